"""Forged confirmations (issue 12's measured attack): while ingest is down, a forger publishes an
ack to every device's ack topic naming every seq. In a secure stack (the default) the ACL lets
only ingest's login publish acks, so the forger here holds ingest's stolen login and
certificate (not the device keys acks are signed with): the devices ignore the unsigned and
wrongly signed acks, count them, keep every reading, and lose nothing once ingest is back. With
`up --insecure` the same forgeries, from an anonymous client, make end-to-end devices delete
readings they still hold, and the ledger counts them lost (cause forged-ack)."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest

from ecgcore.credentials import ClientCredentials, SecretsDir
from lab.stack.levels import Stable, buffered_total, stored_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.ingest.conftest import Publisher
from tests.lab.test_cli import cj, cli
from wire import INGEST_STATUS_TOPIC, ack_topic, encode_ack, encode_service_status

pytestmark = [pytest.mark.broker, pytest.mark.slow]

DEVICES = 3


def stolen_ingest_login(s: Path) -> ClientCredentials | None:
    """Ingest's login and certificate in a secure stack (None: an insecure one, anonymous)."""
    if not json.loads((s / "stack.json").read_text())["secure"]:
        return None
    return SecretsDir(s / "secrets").client("ingest")


def forge(s: Path, key: bytes | None = None) -> None:
    """An ack for every seq of every device, unsigned (or signed with a key of the forger's)."""
    broker = cj(s, "status")["broker"]
    pub = Publisher(broker["host"], broker["port"], f"forger-{uuid.uuid4().hex[:8]}",
                    stolen_ingest_login(s))
    try:
        for i in range(DEVICES):
            dev = f"hc-{i:04d}"
            pub.publish(ack_topic(dev), encode_ack(dev, [(0, 1_000_000)], key))
        pub.wait_all()
    finally:
        pub.close()


def outage_with_forgeries(s: Path, *up_args: str) -> tuple[int, int]:
    """Up, ingest killed, readings buffer, forgeries published; ingest back, drained, down.
    Returns (buffered just before the forgeries, buffered once they were handled)."""
    sd = StateDir(s)
    cli(s, "up", "--devices", str(DEVICES), "--delivery", "end-to-end", "--no-proxy", *up_args)
    try:
        wait_until(lambda: stored_total(sd) >= DEVICES, 30, what="readings stored")
        cli(s, "kill", "ingest")
        wait_until(lambda: buffered_total(sd) >= 4 * DEVICES, 30, what="readings buffered on the devices")
        before = buffered_total(sd)
        forge(s)
        forge(s, key=b"\x01" * 32)
        log = sd.root / "fleet" / "fleet.log"
        handled = wait_until(lambda: "ignored a bad ack" in log.read_text() or buffered_total(sd) < before,
                             20, what="the forged acks handled")
        assert handled
        after = buffered_total(sd)
        cli(s, "start", "ingest")
        wait_until(lambda: buffered_total(sd) == 0, 60, what="the backlog delivered")
        cli(s, "kill", "devices", "--signal", "TERM")
        wait_until(Stable(sd), 20, what="ingest quiet")
    finally:
        cli(s, "down", check=False)
    return before, after


def test_signed_acks_make_forgeries_harmless(tmp_path: Path) -> None:
    s = tmp_path / "secure"
    before, after = outage_with_forgeries(s)
    assert after >= before, (before, after)  # nothing deleted on a forged word
    log = (s / "fleet" / "fleet.log").read_text()
    assert "unsigned ack" in log or "ack signature does not match" in log, log[-2000:]
    key = s / "secrets" / "ack.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    secrets = [key.read_text().strip()]
    for ident in (s / "secrets" / "identities").glob("*.json"):
        doc = json.loads(ident.read_text())
        assert stat.S_IMODE(ident.stat().st_mode) == 0o600
        secrets += [doc["password"], *([doc["root"]] if "root" in doc else [])]
    logs = [*s.rglob("*.log"), *s.rglob("*.jsonl"), s / "stack.json"]
    for f in logs:
        text = f.read_text(errors="replace")
        assert not [x for x in secrets if x in text], f  # paths travel, never a secret
    assert json.loads((s / "stack.json").read_text())["secure"] is True
    rep = cj(s, "report")
    assert rep["totals"]["lost"] == 0 and rep["totals"]["generated"] == rep["totals"]["stored"], rep["totals"]


def test_a_forged_offline_status_does_not_pause_signed_devices(tmp_path: Path) -> None:
    """Ingest's retained status tells end-to-end devices to hold their readings ("offline")
    or that its broker session is new (re-send). Signed like the acks: a retained "offline"
    published with ingest's stolen login (the ACL lets nobody else write it) but not its key is
    ignored and the devices go on delivering."""
    s = tmp_path / "status"
    sd = StateDir(s)
    cli(s, "up", "--devices", str(DEVICES), "--delivery", "end-to-end", "--no-proxy")
    try:
        wait_until(lambda: stored_total(sd) >= DEVICES, 30, what="readings stored")
        broker = cj(s, "status")["broker"]
        pub = Publisher(broker["host"], broker["port"], f"forger-{uuid.uuid4().hex[:8]}",
                        stolen_ingest_login(s))
        try:
            forged = encode_service_status("offline", "f0f0f0f0f0f0", "f0f0f0f0f0f0", True, 1.0)
            pub.client.publish(INGEST_STATUS_TOPIC, forged, qos=1, retain=True).wait_for_publish(10)
        finally:
            pub.close()
        log = sd.root / "fleet" / "fleet.log"
        wait_until(lambda: "unsigned service status" in log.read_text(), 20, what="the forgery refused")
        after = stored_total(sd)
        wait_until(lambda: stored_total(sd) >= after + 3 * DEVICES, 30, what="delivery going on")
        assert buffered_total(sd) <= 3 * DEVICES  # nothing piling up on the devices
    finally:
        cli(s, "down", check=False)


def test_insecure_acks_let_a_forger_delete_what_devices_still_hold(tmp_path: Path) -> None:
    s = tmp_path / "insecure"
    before, after = outage_with_forgeries(s, "--insecure")
    assert after < before, (before, after)
    assert not (s / "secrets").exists()
    rep = cj(s, "report")
    assert rep["totals"]["lost"] >= before - after > 0, rep["totals"]
    assert not (s / "secrets").exists()  # nothing was provisioned for an insecure stack


def test_a_damaged_secret_stops_up_before_anything_starts(tmp_path: Path) -> None:
    s = tmp_path / "damaged"
    (s / "secrets").mkdir(parents=True)
    (s / "secrets" / "ack.key").write_text("not a key\n")
    res = cli(s, "up", "--devices", "1", check=False)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "ack.key: not an ack key" in lines[0] and "--insecure" in lines[0]
    assert "Traceback" not in res.stderr
    assert not list(s.rglob("*.pid"))  # nothing was started
