"""The attacker (lab/nemesis/attacker.py, `ecgpipe attack`) against a running secure stack: what
the broker refuses, what ingest quarantines, a replay deduplicated, nothing forged stored and
nothing lost (issue 12). One stack for the module; each test reads its own counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import store_view
from lab.checker import check
from lab.history import load_history
from lab.stack.levels import Stable, stored_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.lab.test_cli import cj, cli

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    s = tmp_path_factory.mktemp("attacks") / "stack"
    cli(s, "up", "--devices", "4", "--delivery", "end-to-end", "--no-proxy")
    try:
        wait_until(lambda: stored_total(StateDir(s)) >= 8, 30, what="genuine readings stored")
        yield s
    finally:
        cli(s, "down", check=False)


def attack(s: Path, *args: str) -> dict[str, object]:
    doc = json.loads(cli(s, "attack", *args, "--rate", "200", "--json").stdout)
    assert isinstance(doc, dict)
    return doc


def quarantined(s: Path) -> dict[str, int]:
    return store_view.quarantine_counts(StateDir(s).ingest_db)


def test_the_broker_refuses_what_a_stolen_device_login_may_not_do(stack: Path) -> None:
    for kind in ("forge-other", "forged-acks", "forged-status"):
        doc = attack(stack, kind, "--as", "hc-0000", "--victim", "hc-0001", "--count", "10")
        assert doc["connected"] is True and doc["sent"] == 10, doc
        assert doc["pubacks"] == {"Not authorized": 10}, (kind, doc)
    anonymous = attack(stack, "wrong-key", "--as", "anonymous", "--count", "5")
    assert anonymous["connected"] is False and anonymous["sent"] == 0, anonymous


def test_forgeries_and_garbage_on_its_own_topic_are_quarantined(stack: Path) -> None:
    before = quarantined(stack)
    doc = attack(stack, "wrong-key", "--as", "hc-0002", "--count", "15")
    assert doc["pubacks"] == {"Success": 15}, doc  # the broker lets its own topic through
    attack(stack, "garbage", "--as", "hc-0002", "--count", "10")
    wait_until(lambda: sum(quarantined(stack).values()) >= sum(before.values()) + 25, 20,
               what="the forgeries and the garbage quarantined")
    after = quarantined(stack)
    assert after.get("bad-signature", 0) - before.get("bad-signature", 0) == 15, after
    text = cli(stack, "inspect", "ingest").stdout
    assert "bad-signature" in text


def test_a_replay_is_a_duplicate_never_stored_twice(stack: Path) -> None:
    sd = StateDir(stack)
    rows = [r for r in store_view.stored_readings(sd.ingest_db) if r.device_id == "hc-0003"]
    dups_before = len(store_view.duplicate_readings(sd.ingest_db))
    doc = attack(stack, "replay", "--as", "hc-0003", "--victim", "hc-0003", "--count", str(len(rows)))
    assert doc["pubacks"] == {"Success": len(rows)}, doc
    wait_until(lambda: len(store_view.duplicate_readings(sd.ingest_db)) >= dups_before + len(rows), 20,
               what="every replay counted as a duplicate")
    keys = [(r.boot_epoch, r.seq) for r in store_view.stored_readings(sd.ingest_db)
            if r.device_id == "hc-0003"]
    assert len(keys) == len(set(keys))


def test_nothing_forged_is_stored_and_nothing_is_lost(stack: Path) -> None:
    # the fleet stopped first: a reading can be stored before the event saying its device
    # generated it reaches the history, and would read as unexpected on a running stack
    cli(stack, "kill", "devices", "--signal", "TERM")
    wait_until(Stable(StateDir(stack)), 30, what="ingest quiet after the fleet stopped")
    rep = cj(stack, "report")
    assert rep["totals"]["lost"] == 0, rep["totals"]
    assert rep["quarantined"]["by_reason"].get("bad-signature", 0) > 0, rep["quarantined"]
    result = check(load_history(stack))
    assert result.forged == () and result.unexpected == (), (result.forged, result.unexpected)


def test_attack_without_a_stack_is_one_line(tmp_path: Path) -> None:
    res = cli(tmp_path / "none", "attack", "garbage", check=False)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
