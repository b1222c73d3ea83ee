"""Same key, other content (issue 12): on a running `--insecure` stack (anonymous, unsigned: a
secure stack refuses these at the broker or as bad-signature, tests/lab/test_attacks.py), a
client publishes CRC-valid readings under keys ingest has already stored: with capture times 50
years ahead (quarantined as implausible-time), and with the genuine capture times but other
samples (quarantined as conflicts). The genuine readings stay, nothing is counted as a
duplicate, and `inspect ingest` and `report` say so."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ingest import store_view
from lab.stack.levels import stored_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.ingest.conftest import Publisher
from tests.lab.test_cli import cj, cli
from wire import Reading, encode_reading
from wire.topics import ecg_topic

pytestmark = [pytest.mark.broker, pytest.mark.slow]

FIFTY_YEARS = 50 * 365 * 86400.0


def test_forged_readings_under_stored_keys_are_quarantined_not_duplicates(tmp_path: Path) -> None:
    s = tmp_path / "stack"
    sd = StateDir(s)
    cli(s, "up", "--devices", "2", "--delivery", "end-to-end", "--no-proxy", "--insecure")
    try:
        wait_until(lambda: stored_total(sd) >= 6, 30, what="genuine readings stored")
        genuine = store_view.stored_readings(sd.ingest_db)[:3]
        broker = cj(s, "status")["broker"]
        pub = Publisher(broker["host"], broker["port"], f"forger-{uuid.uuid4().hex[:8]}")
        try:
            for row in genuine:
                samples = store_view.reading_samples(sd.ingest_db, row.device_id, row.boot_epoch, row.seq)
                assert samples is not None
                ahead = Reading(row.device_id, row.boot_epoch, row.seq, row.captured_at + FIFTY_YEARS,
                                samples.sample_rate_hz, samples.gain_uv, samples.samples)
                altered = Reading(row.device_id, row.boot_epoch, row.seq, row.captured_at,
                                  samples.sample_rate_hz, samples.gain_uv, samples.samples // 2)
                pub.publish(ecg_topic(row.device_id), encode_reading(ahead))
                pub.publish(ecg_topic(row.device_id), encode_reading(altered))
            pub.wait_all()
        finally:
            pub.close()
        wait_until(lambda: sum(store_view.quarantine_counts(sd.ingest_db).values()) >= 6, 20,
                   what="the forgeries quarantined")
        doc = cj(s, "inspect", "ingest")
        assert doc["quarantine"]["by_reason"] == {"conflict": 3, "implausible-time": 3}, doc["quarantine"]
        assert "conflict: 3" in cli(s, "inspect", "ingest").stdout
        kept = {(r.device_id, r.boot_epoch, r.seq): r.captured_at
                for r in store_view.stored_readings(sd.ingest_db)}
        for row in genuine:  # the genuine readings stay, and were not counted as duplicates
            assert kept[(row.device_id, row.boot_epoch, row.seq)] == row.captured_at
        dups = {(d.device_id, d.boot_epoch, d.seq) for d in store_view.duplicate_readings(sd.ingest_db)}
        assert not dups & {(r.device_id, r.boot_epoch, r.seq) for r in genuine}
    finally:
        cli(s, "down", check=False)
    rep = cj(s, "report")
    assert rep["quarantined"]["by_reason"] == {"conflict": 3, "implausible-time": 3}
    assert rep["totals"]["lost"] == 0, rep["totals"]
