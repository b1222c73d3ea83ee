"""`inspect reading`, the patient behind `inspect device`, `also_stored` in `inspect devices`,
the duplicates line, and the formatters' readable times.

The unit tests build a state dir by hand with the real devices/outbox.py and ingest/store.py
classes; the last test drives the real CLI over a real short stack (broker, slow).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices.outbox import Outbox
from devices.profile import PatientProfile
from devices.profiles_file import profile_entry, write_profiles
from ingest.store import SqliteStore
from ingest.validate import Accepted, validate
from lab.errors import ConfigError, StateDirError
from lab.report import inspection
from lab.report.reading import NoSamplesError, format_reading, inspect_reading
from lab.report.summary import format_report
from lab.stack.statedir import StackConfig, StateDir
from tests.conftest import wait_until
from wire import Reading, encode_reading

T0 = 1_796_040_000.0  # 2026-11-30T12:00:00Z
DEV = "hc-0001"
RATE = 250
GAIN_UV = 2.5
PROFILE = PatientProfile(hr_bpm=70.0, hrv=2.0, noise=0.01, seed=42, cohort="elderly")


def reading(seq: int) -> Reading:
    samples = (np.sin(np.arange(RATE) / 10.0) * 400).astype(np.int16)
    return Reading(device_id=DEV, boot_epoch=1, seq=seq, captured_at=T0 + seq, sample_rate_hz=RATE,
                   gain_uv=GAIN_UV, samples=samples)


def accepted(seq: int, at: float) -> Accepted:
    v = validate(f"heartcheck/{DEV}/ecg", encode_reading(reading(seq)), at)
    assert isinstance(v, Accepted)
    return v


@pytest.fixture
def sd(tmp_path: Path) -> StateDir:
    """One device, capacity 5 (drop-oldest). Seqs: 0, 1 evicted; 2 stored AND buffered; 3 stored
    (and received twice); 4, 5 buffered; 6 let go of unstored (lost); next_seq 7."""
    state = StateDir(tmp_path / "state")
    state.root.mkdir()
    state.save_config(StackConfig(devices=1, delivery="broker-ack"))
    box = Outbox(state.outbox_db, capacity=5)
    box.register(DEV, PROFILE, T0)
    for seq in range(7):
        box.append(DEV, seq, 1, T0 + seq, encode_reading(reading(seq)), now=T0 + seq + 1)
    box.delete(DEV, [3, 6])
    box.mark_sent(DEV, [2], at=T0 + 3.5)
    box.close()
    store = SqliteStore(state.ingest_db)
    store.store_batch([accepted(2, T0 + 3.6), accepted(3, T0 + 4.6)], [], stored_at=T0 + 5)
    store.store_batch([accepted(3, T0 + 9)], [], stored_at=T0 + 9.1)
    store.close()
    write_profiles(state.devices_json.parent, [(DEV, profile_entry(
        PROFILE, recording="continuous", sample_rate_hz=RATE, chunk_seconds=1.0, strip_seconds=None,
        strips_per_day=3))], T0)
    return state


def where(state: StateDir, seq: int) -> str:
    doc = inspect_reading(state, DEV, seq, now=T0 + 60)
    return str(doc["where"])


def test_where_each_reading_is(sd: StateDir) -> None:
    assert [where(sd, s) for s in range(9)] == [
        "evicted", "evicted", "stored+buffered", "stored", "buffered", "buffered", "lost",
        "never-generated", "never-generated"]


def test_buffered_reading_text_and_csv(sd: StateDir, tmp_path: Path) -> None:
    doc = inspect_reading(sd, DEV, 4, now=T0 + 3600, csv=tmp_path / "r.csv")
    text = format_reading(doc, T0 + 3600)
    assert text.splitlines()[0] == (f"{DEV} seq 4 (boot 1): in {DEV}'s outbox (buffered): "
                                    "not stored by ingest yet")
    assert "captured   2026-11-30T12:00:04Z (59 min 56 s ago), 1 s of ECG at 250 Hz" in text
    assert "enqueued 2026-11-30T12:00:05Z (59 min 55 s ago); never sent" in text
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0] == "t_s,ecg_mV" and len(rows) == 1 + RATE
    t1, mv1 = (float(x) for x in rows[2].split(","))
    assert t1 == pytest.approx(1 / RATE)
    assert mv1 == pytest.approx(reading(4).millivolts()[1], abs=1e-6)  # counts x gain_uv / 1000


def test_stored_reading_times_duplicates_and_png(sd: StateDir, tmp_path: Path) -> None:
    doc = inspect_reading(sd, DEV, 3, now=T0 + 60, png=tmp_path / "r.png")
    assert doc["stored"]["duplicates"] == 1 and doc["samples"]["source"] == "store"
    assert doc["times"]["capture_to_store_s"] == pytest.approx(2.0)
    assert doc["times"]["capture_end_to_store_s"] == pytest.approx(1.0)
    text = format_reading(doc, T0 + 60)
    assert "stored     2026-11-30T12:00:05Z (55 s ago) (sent by boot 1)" in text
    assert "capture->store 2 s (capture end->store 1 s)" in text
    assert "1 copy more received, discarded by ingest (idempotent)" in text
    assert 20_000 < (tmp_path / "r.png").stat().st_size < 2_000_000
    # a 1-s chunk is measured with the stored signal joining it: seq 2 (1 s) before it, no
    # stored seq 4 after it
    assert doc["measured"]["context_s"] == pytest.approx(1.0)
    assert "with 1 s stored around it" in text


def test_stored_and_buffered_says_the_confirmation_was_not_seen(sd: StateDir) -> None:
    text = format_reading(inspect_reading(sd, DEV, 2, now=T0 + 60), T0 + 60)
    assert "had not seen the broker's PUBACK when it stopped" in text
    assert "the report counts it as stored" in text
    assert "1 copy sent, the last 2026-11-30T12:00:03Z" in text


def test_no_samples_anywhere_fails_in_one_line_before_writing(sd: StateDir, tmp_path: Path) -> None:
    cases = {0: "evicted from hc-0001's outbox before it was stored (outbox-full:drop-oldest",
             6: "lost: generated (seq < next_seq 7)", 9: "never generated: hc-0001 has generated seqs 0..6"}
    for seq, why in cases.items():
        with pytest.raises(NoSamplesError, match="no samples to draw or write") as err:
            inspect_reading(sd, DEV, seq, now=T0, png=tmp_path / "x.png", csv=tmp_path / "x.csv")
        assert why in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.csv").exists()


def test_unknown_device_and_negative_seq(sd: StateDir) -> None:
    with pytest.raises(StateDirError, match=r"no device 'hc-9999' .*: it has 1 device \(hc-0001\)"):
        inspect_reading(sd, "hc-9999", 0, now=T0)
    with pytest.raises(ConfigError, match="SEQ must be a whole number 0 or more"):
        inspect_reading(sd, DEV, -1, now=T0)


def test_inspect_devices_counts_buffered_readings_already_stored(sd: StateDir) -> None:
    doc = inspection.inspect_devices(sd, T0 + 3 * 3600 + 12 * 60 + 2)
    row = doc["devices"][0]
    assert row["buffered"] == 3 and row["also_stored"] == 1 and doc["totals"]["also_stored"] == 1
    assert row["oldest_age_s"] == pytest.approx(3 * 3600 + 12 * 60)  # JSON keeps seconds
    text = inspection.format_devices(doc)
    assert "3 h 12 min" in text
    assert ("1 of them already stored by ingest: the device stopped before it saw the confirmation"
            in text and "report counts them as stored" in text)


def test_inspect_device_shows_the_patient(sd: StateDir) -> None:
    doc = inspection.inspect_device(sd, DEV)
    assert doc["profile"]["hr_bpm"] == 70.0 and doc["profile"]["cohort"] == "elderly"
    assert [r["stored"] for r in doc["buffered"]] == [True, False, False]
    text = inspection.format_device(doc, T0 + 120)
    first, second = text.splitlines()[:2]
    assert first == (f"{DEV}: patient: heart rate 70 bpm (HRV 2 bpm), electrode noise 0.01 mV, "
                     "signal seed 42, cohort elderly; records continuously, 1-s chunks at 250 Hz")
    assert second == f"{DEV}: 3 buffered readings (1 already stored by ingest; report counts them as stored)"
    assert "2026-11-30T12:00:02.000Z" in text and "1 min 58 s" in text


def test_inspect_device_of_an_older_state_dir(sd: StateDir) -> None:
    (sd.devices_json.parent / "profiles.json").unlink()
    doc = inspection.inspect_device(sd, DEV)
    assert doc["profile"] is None
    assert "profile unknown (state dir from an older ecgpipe)" in inspection.format_device(doc, T0)
    with pytest.raises(StateDirError, match=r"no device 'nope' .*: it has 1 device \(e.g. hc-0001\)"):
        inspection.inspect_device(sd, "nope")


def test_broker_sample_time_is_iso_and_ago() -> None:
    doc: dict[str, Any] = {"current": {}, "sampled_at": T0, "restarts_seen": 0, "dropped": 0}
    assert inspection.format_broker(doc, T0 + 90).splitlines()[0] == (
        "broker $SYS (latest sample at 2026-11-30T12:00:00Z (1 min 30 s ago)):")
    doc["sampled_at"] = None
    assert "(latest sample at - (none yet))" in inspection.format_broker(doc, T0)


def test_duplicates_are_explained_in_inspect_ingest(sd: StateDir) -> None:
    doc = inspection.inspect_ingest(sd)
    # no history here: the device never published a second copy, so the broker delivered one twice
    assert doc["duplicates"] == {"total": 1, "by_origin": {"broker-redelivery": 1}, "resent_by_reason": {}}
    text = inspection.format_ingest(doc)
    assert ("duplicates: 1 copy of readings already stored, discarded by ingest (idempotent: each "
            "reading is stored once); by origin: 1 delivered twice by the broker") in text


def test_duplicates_line_names_the_resend_reasons() -> None:
    line = inspection.duplicates_line(12, {"broker-redelivery": 2, "device-resend": 10},
                                      {"ingest-session-lost": 8, "probe": 2})
    assert "10 re-sent by a device (8 after ingest's session was lost, 2 by the end-to-end probe)" in line
    assert line.endswith('see docs/architecture.md, "Re-sending only what may be lost"')


def test_report_text_explains_duplicates_and_reads_long_latencies() -> None:
    rep: dict[str, Any] = {
        "state_dir": "/x", "stack": {}, "balanced": True, "evicted_by_reason": {},
        "totals": {"generated": 2, "stored": 2, "duplicates": 3, "buffered": 0, "evicted": 0, "lost": 0},
        "devices": {}, "broker": {"dropped": 0}, "quarantined": {"total": 0, "by_reason": {}},
        "duplicates": {"total": 3, "by_origin": {"device-resend": 3}, "resent_by_reason": {"gap": 3}},
        "latency_s": {"p50": 6.5, "p99": 11520.0, "max": 11600.0, "n": 2}}
    text = format_report(rep)
    assert "duplicates: 3 copies of readings already stored" in text
    assert "3 re-sent by a device (3 when ingest reported a gap)" in text
    assert "p50 6.500 s, p99 3 h 12 min, max 3 h 13 min" in text


# --- the real CLI over a real stack -------------------------------------------------------------

from tests.lab.test_cli import cj, cli  # noqa: E402 - the CLI helpers belong to this section


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


@pytest.mark.broker
@pytest.mark.slow
def test_inspect_reading_over_a_real_stack(tmp_path: Path) -> None:
    st = tmp_path / "state"
    cli(st, "up", "--devices", "2", "--no-proxy", "--delivery", "end-to-end")
    try:
        cli(st, "kill", "ingest")

        def buffered_seq() -> int | None:
            rows = cj(st, "inspect", "device", "hc-0000")["buffered"]
            fresh = [r["seq"] for r in rows if not r["stored"]]
            return fresh[0] if len(fresh) >= 3 else None

        seq = int(wait_until(buffered_seq, 40, what="readings buffered while ingest is dead"))  # type: ignore[call-overload]
        text = cli(st, "inspect", "reading", "hc-0000", str(seq), "--png", str(tmp_path / "b.png"),
                   "--csv", str(tmp_path / "b.csv")).stdout
        assert "in hc-0000's outbox (buffered)" in text and "captured   20" in text
        assert 20_000 < (tmp_path / "b.png").stat().st_size < 2_000_000
        rows = (tmp_path / "b.csv").read_text().splitlines()
        assert rows[0] == "t_s,ecg_mV" and len(rows) == 1 + 250  # 1-s chunks at 250 Hz

        device = cj(st, "inspect", "device", "hc-0000")
        assert 30 <= device["profile"]["hr_bpm"] <= 220 and device["profile"]["recording"] == "continuous"
        assert "patient: heart rate" in cli(st, "inspect", "device", "hc-0000").stdout

        never = cli(st, "inspect", "reading", "hc-0000", "999999", "--png", str(tmp_path / "n.png"),
                    check=False)
        assert never.returncode == 1 and "never generated" in one_line_error(never)
        unknown = cli(st, "inspect", "reading", "hc-9999", "0", check=False)
        assert unknown.returncode == 1 and "it has 2 devices (hc-0000 .. hc-0001)" in one_line_error(unknown)
        negative = cli(st, "inspect", "reading", "hc-0000", "-1", check=False)
        assert negative.returncode in (1, 2) and "SEQ" in one_line_error(negative)

        cli(st, "start", "ingest")
        wait_until(lambda: cj(st, "inspect", "reading", "hc-0000", str(seq))["where"] == "stored", 60,
                   what="the buffered reading stored once ingest is back")
        text = cli(st, "inspect", "reading", "hc-0000", str(seq), "--csv", str(tmp_path / "s.csv")).stdout
        assert "stored by ingest" in text and "capture->store" in text
        assert (tmp_path / "s.csv").read_text() == (tmp_path / "b.csv").read_text()  # same samples
    finally:
        cli(st, "down", check=False)
