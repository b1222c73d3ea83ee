"""The ecgpipe CLI driven as a user would: up, status, kill, start, resume, inspect, report, down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ECGPIPE = [sys.executable, "-m", "lab.cli"]


def cli(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*ECGPIPE, *args, "--state-dir", str(state)], capture_output=True, text=True,
                         timeout=180, env={**os.environ, "ECGPIPE_STATE_DIR": ""}, check=False)
    if check:
        assert res.returncode == 0, f"ecgpipe {' '.join(args)} failed: {res.stderr}{res.stdout}"
    return res


def cj(state: Path, *args: str) -> dict:
    return json.loads(cli(state, *args, "--json").stdout)


def test_cli_session(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    cli(a, "up", "--devices", "3", "--delivery", "end-to-end", "--max-queued", "50")
    try:
        # a second stack side by side, in its own state dir and on its own port
        cli(b, "up", "--devices", "2", "--delivery", "broker-ack", "--no-proxy")
        sa, sb = cj(a, "status"), cj(b, "status")
        for s in (sa, sb):
            assert {s["broker"]["state"], s["ingest"]["state"], s["devices"]["state"]} == {"running"}
            assert isinstance(s["broker"]["pid"], int) and s["broker"]["host"] == "127.0.0.1"
        assert sa["broker"]["port"] != sb["broker"]["port"]
        assert sb["proxy-ingest"]["state"] == "exited"  # --no-proxy: a direct connection
        assert sa["devices"]["online"] == 3 and len(sa["device_states"]) == 3
        again = cli(a, "up", "--replace", check=False)  # refused before anything starts or is discarded
        assert again.returncode == 1 and "already running" in again.stderr and "starting" not in again.stdout
        cli(b, "down")

        out = cli(a, "kill", "ingest").stdout
        assert "KILL" in out
        assert cj(a, "status")["ingest"]["state"] == "exited"
        wait_until(lambda: sum(d["buffered"] for d in cj(a, "inspect", "devices")["devices"]) >= 6, 30,
                   what="readings buffered on the devices while ingest is dead")
        devs = cj(a, "inspect", "devices")["devices"]
        assert {"device_id", "buffered", "evicted", "oldest_seq", "newest_seq"} <= set(devs[0])
        one = devs[0]["device_id"]
        listing = cj(a, "inspect", "device", one)
        assert listing["device_id"] == one and len(listing["buffered"]) >= 1
        assert "buffered readings" in cli(a, "inspect", "device", one).stdout
        assert "dropped" in cj(a, "inspect", "broker") and "dropped" in cli(a, "inspect", "broker").stdout

        cli(a, "start", "ingest")
        assert cj(a, "status")["ingest"]["state"] == "running"
        cli(a, "kill", "ingest", "--signal", "STOP")
        assert cj(a, "status")["ingest"]["state"] == "stopped"
        cli(a, "resume", "ingest")
        assert cj(a, "status")["ingest"]["state"] == "running"
        wait_until(lambda: sum(d["buffered"] for d in cj(a, "inspect", "devices")["devices"]) <= 6, 40,
                   what="outboxes drained after ingest came back")
        ing = cj(a, "inspect", "ingest")
        assert set(ing["devices"]) == {d["device_id"] for d in devs}
        assert all(v["stored"] > 0 for v in ing["devices"].values())

        port = cj(a, "status")["broker"]["port"]
        cli(a, "kill", "broker")
        st = cj(a, "status")
        assert st["broker"]["state"] == "exited" and st["broker"]["last_signal"] == "KILL"
        cli(a, "start", "broker")
        st = cj(a, "status")
        assert st["broker"]["state"] == "running" and st["broker"]["port"] == port
        wait_until(lambda: cj(a, "status")["devices"]["online"] == 3, 40,
                   what="devices back after the broker")

        cli(a, "kill", "devices", "--signal", "TERM")
        assert cj(a, "status")["devices"]["state"] == "exited"
        cli(a, "start", "devices")
        assert cj(a, "status")["devices"]["online"] == 3
    finally:
        cli(a, "down", check=False)
        cli(b, "down", check=False)

    st = cj(a, "status")
    assert {st["broker"]["state"], st["ingest"]["state"], st["devices"]["state"]} == {"exited"}
    rep = cj(a, "report")  # works after down, from the state dir alone
    t = rep["totals"]
    assert set(t) >= {"generated", "stored", "duplicates", "buffered", "evicted", "lost"}
    assert t["generated"] == t["stored"] + t["buffered"] + t["evicted"] + t["lost"]
    assert t["lost"] == 0 and t["generated"] > 0
    assert "dropped" in rep["broker"] and rep["latency_s"]["p50"] is not None
    assert rep["latency_s"]["p99"] >= rep["latency_s"]["p50"]
    text = cli(a, "report").stdout
    assert "TOTAL" in text and "holds" in text


@pytest.mark.parametrize("args", [
    ["up", "--devices", "0"],
    ["up", "--delivery", "carrier-pigeon"],
    ["kill", "toaster"],
    ["kill", "ingest", "--signal", "HUP"],
    ["status"],  # no stack in an empty state dir
    ["report"],
    ["inspect", "device", "nope"],
    ["cut", "toaster"],
    ["cut", "ingest", "--for=-3s"],
    ["cut", "ingest", "--for", "3"],
    ["slow", "ingest", "--latency", "fast"],
    ["slow", "devices", "--bandwidth", "64k"],
    ["flap", "ingest", "--up", "5s"],
    ["heal", "ingest"],  # no stack in an empty state dir
])
def test_bad_arguments_give_one_clear_line(tmp_path: Path, args: list[str]) -> None:
    res = cli(tmp_path / "empty", *args, check=False)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
