"""Shipped scenarios, compressed, reach their expected verdicts against the real stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def run_scenario(tmp_path: Path, name: str, *args: str) -> tuple[int, dict, str]:
    out = tmp_path / name
    res = subprocess.run([sys.executable, "-m", "lab.cli", "scenario", "run", name, "--out", str(out),
                          "--json", *args], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "ECGPIPE_STATE_DIR": ""})
    doc = json.loads(res.stdout) if res.stdout.strip().startswith("{") else {}
    return res.returncode, doc, res.stderr


def test_cardiocomm_72h_compressed_in_all_three_modes(tmp_path: Path) -> None:
    # 200 strip-mode monitors instead of 1,000 (still more outage strips than the broker queue
    # holds), 96 simulated hours at 20,000x: about 17 real seconds a mode
    rc, doc, err = run_scenario(tmp_path, "cardiocomm-72h", "--devices", "200", "--speed", "20000")
    assert set(doc) == {"fire-and-forget", "broker-ack", "end-to-end"}, err[-2000:]
    for mode, rep in doc.items():
        assert rep["ok"], (mode, rep["verdict"])
        t = rep["check"]["totals"]
        assert t["generated"] == t["stored"] + t["buffered"] + t["evicted"] + t["lost"]
        for fig in ("timeline.png", "gaps.png", "report.json"):
            assert (tmp_path / "cardiocomm-72h" / mode / fig).stat().st_size > 1000, (mode, fig)
    assert rc == 0
    e2e, back = doc["end-to-end"]["check"]["totals"], doc["broker-ack"]["check"]
    assert e2e["lost"] == 0 and e2e["generated"] >= 200 * 3 * 3  # three strips a day, four days
    assert back["totals"]["lost_by_cause"]["broker-queue-overflow"] > 0
    assert (tmp_path / "cardiocomm-72h" / "end-to-end" / "strip.png").exists()


def test_a_bad_scenario_file_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\nduration = "1h"\nseed = 1\nexpect = ["lost = 0"]\n\n'
                   '[fleet]\ndevices = 3\noutbox_capacity = -5\n')
    res = subprocess.run([sys.executable, "-m", "lab.cli", "scenario", "run", str(bad), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "line 8" in lines[0] and "outbox_capacity" in lines[0], res.stderr
    assert not (tmp_path / "out").exists()


# Continuous-mode scenarios compress less: each device makes `speed / chunk` readings per real
# second. 10 devices, 5-s chunks and 60x keep every variant near 30-45 real seconds.
CONTINUOUS = ["--devices", "10", "--chunk-seconds", "5", "--speed", "60"]


@pytest.mark.parametrize("name", ["broker-restart-no-persistence", "device-reboot"])
def test_continuous_scenarios_compressed(tmp_path: Path, name: str) -> None:
    rc, doc, err = run_scenario(tmp_path, name, *CONTINUOUS)
    assert doc, err[-2000:]
    for variant, rep in doc.items():
        assert rep["ok"], (variant, rep["verdict"])
        t = rep["check"]["totals"]
        assert t["generated"] > 0 and t["generated"] == t["stored"] + t["buffered"] + t["evicted"] + t["lost"]
    assert rc == 0
    if name == "broker-restart-no-persistence":
        causes = doc["no-persistence"]["check"]["totals"]["lost_by_cause"]
        assert causes["broker-restart-no-persistence"] > 0
        assert doc["persistence"]["check"]["totals"]["lost"] == 0
    else:
        assert doc["end-to-end"]["check"]["totals"]["lost"] == 0
        assert doc["broker-ack"]["check"]["totals"]["lost_by_cause"]["broker-queue-overflow"] > 0
