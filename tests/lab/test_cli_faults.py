"""Network faults through the CLI, end to end: a 3-device stack, its ingest link cut for 3 s."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgcore.files import read_jsonl
from lab.stack.levels import Stable, buffered_total, caught_up, generated_total, stored_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.lab.test_cli import cj, cli

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_cut_ingest_for_3s_loses_nothing_end_to_end(tmp_path: Path) -> None:
    s = tmp_path / "stack"
    sd = StateDir(s)
    cli(s, "up", "--devices", "3", "--delivery", "end-to-end", "--ack-timeout", "2")
    try:
        st = cj(s, "status")
        for name in ("broker", "ingest", "devices", "proxy-ingest", "proxy-devices"):
            assert st[name]["state"] == "running" and isinstance(st[name]["pid"], int), name
        assert {"host", "port"} <= set(st["broker"])
        px = st["proxy-ingest"]
        assert px["fault"] is None and px["upstream_port"] == st["broker"]["port"]
        assert px["listen_port"] not in (st["broker"]["port"], st["proxy-devices"]["listen_port"])
        wait_until(lambda: stored_total(sd) >= 3, 30, what="readings stored through both proxies")

        line = one_line(cli(s, "cut", "ingest", "--for", "3s").stdout)
        assert line.startswith("cut the ingest link") and "reset 1 connection" in line and "for 3s" in line
        st = cj(s, "status")  # the command returns once the fault is in effect
        assert st["proxy-ingest"]["fault"]["fault"] == "cut" and st["proxy-ingest"]["fault"]["for_s"] == 3.0
        assert st["proxy-devices"]["fault"] is None
        assert "CUT for 3s" in cli(s, "status").stdout
        g0 = generated_total(sd)
        wait_until(lambda: generated_total(sd) >= g0 + 6, 10,
                   what="readings generated while ingest is cut off")
        wait_until(lambda: cj(s, "status")["proxy-ingest"]["fault"] is None, 10,
                   what="the cut to end by itself")

        wait_until(lambda: caught_up(sd) and buffered_total(sd) <= 6, 40,
                   what="the backlog drained after the cut")
        # the other commands, each one line, on the other link
        assert one_line(cli(s, "slow", "devices", "--latency", "100ms", "--jitter", "20ms",
                            "--bandwidth", "1mbps").stdout).startswith("slowed the devices link")
        assert cj(s, "status")["proxy-devices"]["fault"]["latency_s"] == 0.1
        line = one_line(cli(s, "heal", "devices").stdout)
        assert line.startswith("healed the devices link") and "ended slow" in line
        assert "no fault" in one_line(cli(s, "heal", "devices").stdout)

        cli(s, "kill", "devices", "--signal", "TERM")
        wait_until(Stable(sd), 20, what="ingest quiet after the fleet stopped")
    finally:
        cli(s, "down", check=False)

    rep = cj(s, "report")
    t = rep["totals"]
    assert t["generated"] > 0 and t["lost"] == 0, rep
    assert t["generated"] == t["stored"] + t["buffered"] + t["evicted"]
    hist = [(r["event"], r["fault"], r["target"], r.get("reason"))
            for r in read_jsonl(s / "history" / "nemesis.jsonl")]
    assert hist == [("fault_start", "cut", "ingest", None), ("fault_end", "cut", "ingest", "expired"),
                    ("fault_start", "slow", "devices", None), ("fault_end", "slow", "devices", "healed")]
