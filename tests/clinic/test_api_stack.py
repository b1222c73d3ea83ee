"""`ecgpipe serve` over a real running stack: a clinician sees the outage grow.

`ecgpipe up --devices 2` (end-to-end), `ecgpipe serve --port 0` as a subprocess, then over HTTP
with the token: the patients' readings arrive; `ecgpipe kill ingest`; the patient's line says
"captured but not yet received" and its count grows; /api/outage names ingest; the stored
readings and their PNG are still served. `down` and the server's SIGTERM always run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ECGPIPE = [sys.executable, "-m", "lab.cli"]
DEV = "hc-0000"


def cli(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*ECGPIPE, *args, "--state-dir", str(state)], capture_output=True, text=True,
                         timeout=180, env={**os.environ, "ECGPIPE_STATE_DIR": ""}, check=False)
    if check:
        assert res.returncode == 0, f"ecgpipe {' '.join(args)} failed: {res.stderr}{res.stdout}"
    return res


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def get(self, path: str, **params: str) -> Any:
        r = self.http.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def patient(self) -> dict[str, Any]:
        doc = self.get(f"/api/patients/{DEV}")
        assert isinstance(doc, dict)
        return doc


def test_a_clinician_sees_the_outage_grow(tmp_path: Path) -> None:
    st = tmp_path / "state"
    cli(st, "up", "--devices", "2", "--no-proxy", "--delivery", "end-to-end")
    server: subprocess.Popen[str] | None = None
    api: Api | None = None
    try:
        server = subprocess.Popen([*ECGPIPE, "serve", "--port", "0", "--state-dir", str(st)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "ECGPIPE_STATE_DIR": ""})
        where = st / "serve" / "serve.json"
        wait_until(where.exists, timeout=60, what="serve.json")
        token = (st / "secrets" / "api" / "clinician.token").read_text().strip()
        api = Api(json.loads(where.read_text())["url"], token)

        wait_until(lambda: api.patient()["readings_stored"] >= 3, timeout=60, what="readings stored")
        before = api.patient()
        assert before["completeness"] is not None and before["completeness"] > 0.5
        cli(st, "kill", "ingest")

        def waiting() -> int:
            nr = api.patient()["not_received"]
            return int(nr["count"]) if "captured but not yet received" in nr["sentence"] else 0

        first = int(wait_until(lambda: waiting() >= 3 and waiting(), timeout=60,  # type: ignore[call-overload]
                               what="readings captured but not received"))
        grown = int(wait_until(lambda: waiting() > first and waiting(), timeout=60,  # type: ignore[call-overload]
                               what="the outage line growing"))
        line = api.patient()["not_received"]
        assert line["stack_running"] is True and line["lost"] == 0
        assert line["buffered_on_device"] >= grown - line["sent_not_stored"]
        assert line["oldest_buffered"] is not None and "the oldest" in line["sentence"]
        outage = api.get("/api/outage")
        assert any(x.startswith("ingest ") for x in outage["impaired"]), outage["impaired"]
        assert outage["backlog"]["buffered_on_devices"] >= grown

        page = api.get(f"/api/patients/{DEV}/readings")
        assert page["count"] >= 3
        png = api.http.get(page["readings"][0]["png"])
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert api.get("/api/ledger")["available"] is True
    finally:
        if api is not None:
            api.http.close()
        if server is not None:
            os.kill(server.pid, signal.SIGTERM)
            server.communicate(timeout=60)
        cli(st, "down", check=False)
    assert server.returncode == 0
