"""Watching a running stack through the CLI, as a user in a second terminal would: status and
inspect devices with --watch, tail, logs (and -f), and ingest run in the foreground."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from lab.stack.levels import stored_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until
from tests.lab.test_cli import ECGPIPE, cj, cli

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ISO_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z ")


class Lines:
    """A background process's stdout lines, collected by a thread (no fixed sleeps)."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([*ECGPIPE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env={**os.environ, "ECGPIPE_STATE_DIR": ""})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=30)
        self._reader.join(timeout=10)
        return self.proc.returncode, err


def test_watching_a_running_stack(tmp_path: Path) -> None:
    s = tmp_path / "stack"
    sd = StateDir(s)
    cli(s, "up", "--devices", "2", "--delivery", "end-to-end")
    try:
        wait_until(lambda: stored_total(sd) >= 4, 30, what="readings stored")
        devices = sorted(cj(s, "status")["device_states"])

        # refreshing views: two frames each, then they stop by themselves
        for args, marker in ((("status",), "proxy-devices"), (("inspect", "devices"), "total buffered")):
            res = cli(s, *args, "--watch", "--interval", "0.2", "--count", "2")
            assert res.stdout.count(marker) == 2, res.stdout
            assert "Traceback" not in res.stderr

        # tail: decoded readings as they reach the broker; one device; JSON Lines
        rows = [json.loads(ln) for ln in cli(s, "tail", "--count", "3", "--json").stdout.splitlines()]
        assert len(rows) == 3 and all(r["device_id"] in devices and r["seq"] >= 0 for r in rows), rows
        text = cli(s, "tail", "--device", devices[1], "--count", "2").stdout.splitlines()
        readings = [ln for ln in text if devices[1] in ln]
        assert len(readings) == 2 and not any(devices[0] in ln for ln in text), text

        # logs: one stream, one timestamp style; one component; the last N lines
        merged = cli(s, "logs").stdout.splitlines()
        assert merged and all(ISO_LINE.match(ln) for ln in merged), merged[:5]
        assert {"broker", "ingest", "devices"} <= {ln.split()[1] for ln in merged}
        stamps = [ln.split()[0] for ln in merged]
        assert stamps == sorted(stamps)  # merged by time
        only = cli(s, "logs", "ingest").stdout.splitlines()
        assert only and {ln.split()[1] for ln in only} == {"ingest"}
        assert len(cli(s, "logs", "-n", "3").stdout.splitlines()) == 3

        # logs -f follows: what happens after it started shows up (here: ingest killed and back)
        follow = Lines("logs", "ingest", "-f", "--state-dir", str(s))
        before = len(only)
        cli(s, "kill", "ingest")
        # ingest in the foreground, through the stack's ingest link, until SIGTERM
        fg = Lines("ingest", "run", "--state-dir", str(s))
        n0 = stored_total(sd)
        wait_until(lambda: stored_total(sd) >= n0 + 4, 30, what="the foreground ingest storing readings")
        rc, err = fg.stop(signal.SIGTERM)
        assert rc == 0 and "Traceback" not in err, err
        cli(s, "start", "ingest")
        wait_until(lambda: len(follow.lines) > before, 20, what="logs -f showing ingest's new lines")
        rc, err = follow.stop()
        assert rc in (0, 130) and "Traceback" not in err, err
    finally:
        cli(s, "down", check=False)
    assert "exited" in cli(s, "status").stdout
