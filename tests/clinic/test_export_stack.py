"""A real short stack: fire-and-forget devices, ingest killed for a few seconds (QoS 0 to an
offline session is lost, so the store gets a gap), then `ecgpipe export` in all four formats,
one while the stack runs and three after `ecgpipe down`, each read back by its own ecosystem."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyedflib
import pytest
from fhir.resources.R4B.bundle import Bundle

from clinic.export.wfdb_out import ANN_EXT, quiet, wfdb_module
from ingest.store_range import device_readings
from lab.stack.levels import generated_total
from lab.stack.statedir import StateDir
from tests.conftest import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ECGPIPE = [sys.executable, "-m", "lab.cli"]
DEV = "hc-0000"
OUTAGE_READINGS = 4  # per device, generated while ingest is dead


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*ECGPIPE, *args, "--state-dir", str(state)], capture_output=True, text=True,
                         timeout=180, env={**os.environ, "ECGPIPE_STATE_DIR": ""}, check=False)
    assert res.returncode == 0, f"ecgpipe {' '.join(args)} failed: {res.stderr}{res.stdout}"
    return res


def export(state: Path, fmt: str, out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cli(state, "export", "--device", DEV, "--format", fmt,
                                         "--out", str(out), "--json").stdout)
    return doc


def stored(sd: StateDir) -> int:
    return len(device_readings(sd.ingest_db, DEV))


def make_outage(state: Path) -> None:
    sd = StateDir(state)
    cli(state, "up", "--devices", "2", "--delivery", "fire-and-forget")
    wait_until(lambda: stored(sd) >= 3, 60, what="readings stored before the outage")
    cli(state, "kill", "ingest")
    g0 = generated_total(sd)
    wait_until(lambda: generated_total(sd) >= g0 + 2 * OUTAGE_READINGS, 30, what="readings during the outage")
    cli(state, "start", "ingest")
    before = stored(sd)
    wait_until(lambda: stored(sd) >= before + 3, 60, what="readings stored after the outage")


def test_exports_of_a_real_outage(tmp_path: Path) -> None:
    state = tmp_path / "state"
    try:
        make_outage(state)
        wfdb_doc = export(state, "wfdb", tmp_path / "rec")  # while the stack runs
    finally:
        cli(state, "down")
    gaps = [g for g in wfdb_doc["gaps"] if g["duration_s"] >= OUTAGE_READINGS - 1]
    assert gaps, wfdb_doc["gaps"]  # the outage's gap, whatever else jitter did
    with quiet():
        rec = wfdb_module().rdrecord(str(tmp_path / "rec"))
        ann = wfdb_module().rdann(str(tmp_path / "rec"), ANN_EXT)
    assert rec.fs == wfdb_doc["sample_rate_hz"]
    assert int(np.isnan(rec.p_signal[:, 0]).sum()) == sum(g["samples"] for g in wfdb_doc["gaps"])
    assert [s for s, a in zip(ann.sample.tolist(), ann.aux_note, strict=True) if a.startswith("gap")] == \
        [g["sample_index"] for g in wfdb_doc["gaps"]]

    edf_doc = export(state, "edf", tmp_path / "a.edf")  # after down: the same store, read at rest
    assert edf_doc["samples"] >= wfdb_doc["samples"]
    with pyedflib.EdfReader(str(tmp_path / "a.edf")) as f:
        assert f.getSampleFrequency(0) == edf_doc["sample_rate_hz"]
        _, durations, texts = f.readAnnotations()
        assert sum(1 for t in texts if t == "gap") == len(edf_doc["gaps"])
        assert max(d for d, t in zip(durations, texts, strict=True) if t == "gap") >= OUTAGE_READINGS - 1

    fhir_doc = export(state, "fhir", tmp_path / "b.json")
    bundle = Bundle.model_validate_json((tmp_path / "b.json").read_text())
    assert len(bundle.entry or []) == 2 + fhir_doc["readings"]

    csv_doc = export(state, "csv", tmp_path / "c.csv")
    with (tmp_path / "c.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert sum(1 for r in rows if r["gap_s"]) == len(csv_doc["gaps"])
    assert sum(1 for r in rows if r["ecg_mV"]) == csv_doc["samples"]
