"""Tokens: one file per user (0600 in a 0700 folder), only hashes in the server, 401 without the
right one, users added or removed while a server runs; `ecgpipe serve --add-user` and
`ecgpipe serve` itself (a real process on a free port: serve.json, the token never printed,
SIGTERM stops it with exit 0 and removes serve.json)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clinic.api.tokens import TokenBook, ensure_user, token_dir, token_file
from clinic.errors import BadRequestError
from lab.stack.statedir import StateDir
from tests.clinic.test_api_support import DEV1, client_for, make_state, token_of
from tests.conftest import wait_until

ECGPIPE = [sys.executable, "-m", "lab.cli"]


@pytest.fixture
def sd(tmp_path: Path) -> StateDir:
    return make_state(tmp_path / "state")


def test_token_files_are_private_and_one_per_user(sd: StateDir) -> None:
    path, made = ensure_user(sd.root, "alice")
    assert made and path == token_file(sd.root, "alice")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_dir(sd.root).stat().st_mode) == 0o700
    again, made_again = ensure_user(sd.root, "alice")
    assert again == path and not made_again  # kept, not replaced
    assert token_of(sd, "alice") != token_of(sd, "bob")
    assert len(token_of(sd, "alice")) >= 40
    with pytest.raises(BadRequestError, match="user name"):
        ensure_user(sd.root, "../etc")


def test_the_server_keeps_only_hashes(sd: StateDir) -> None:
    token = token_of(sd, "alice")
    book = TokenBook(token_dir(sd.root))
    assert book.user_of(token) == "alice"
    assert book.user_of(token[:-1]) is None and book.user_of("") is None
    held = book.digests()
    assert token.encode() not in held.values() and all(len(d) == 32 for d in held.values())


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong-token", "Basic YWxpY2U6eA==",
                                    "bearer   "])
def test_requests_without_a_users_token_are_401(sd: StateDir, header: str | None) -> None:
    client = client_for(sd)
    headers = {"Authorization": header} if header is not None else {}
    client.headers.pop("Authorization")
    r = client.get("/api/patients", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["status"] == 401 and "token" in r.json()["detail"]
    assert client.get(f"/api/patients/{DEV1}/readings/1/0.png", headers=headers).status_code == 401


def test_users_added_and_removed_while_serving(sd: StateDir) -> None:
    client = client_for(sd)  # the clinician's token in every request
    assert client.get("/api/patients").status_code == 200
    bob = token_of(sd, "bob")  # made after the app
    assert client.get("/api/patients", headers={"Authorization": f"Bearer {bob}"}).status_code == 200
    token_file(sd.root, "bob").unlink()
    assert client.get("/api/patients", headers={"Authorization": f"Bearer {bob}"}).status_code == 401
    assert client.get("/api/patients").status_code == 200


def test_add_user_says_where_and_never_prints_the_token(sd: StateDir) -> None:
    run = subprocess.run([*ECGPIPE, "serve", "--state-dir", str(sd.root), "--add-user", "carol"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    path = token_file(sd.root, "carol")
    assert str(path) in run.stdout
    assert path.read_text().strip() not in run.stdout + run.stderr
    bad = subprocess.run([*ECGPIPE, "serve", "--state-dir", str(sd.root), "--add-user", "Carol!"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("ecgpipe: error: --add-user")
    assert "Traceback" not in bad.stderr
    nowhere = subprocess.run([*ECGPIPE, "serve", "--state-dir", str(sd.root / "absent"), "--port", "0"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert nowhere.returncode == 1 and nowhere.stderr.count("\n") == 1
    assert "no ecgpipe state" in nowhere.stderr
    port = subprocess.run([*ECGPIPE, "serve", "--state-dir", str(sd.root), "--port", "70000"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert port.returncode == 2 and "65535" in port.stderr


def _get(url: str, token: str | None) -> tuple[int, bytes]:
    r = httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=30)
    return r.status_code, r.content


def test_serve_listens_on_a_free_port_and_stops_on_sigterm(sd: StateDir) -> None:
    where = sd.root / "serve" / "serve.json"
    proc = subprocess.Popen([*ECGPIPE, "serve", "--state-dir", str(sd.root), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(where.exists, timeout=60, what="serve.json")
        doc = json.loads(where.read_text())
        assert doc["pid"] == proc.pid and doc["port"] > 0
        assert doc["url"] == f"http://127.0.0.1:{doc['port']}"
        token = token_of(sd)
        status, body = _get(f"{doc['url']}/api/patients", token)
        assert status == 200 and DEV1 in body.decode()
        assert _get(f"{doc['url']}/api/patients", None)[0] == 401
        second = subprocess.run([*ECGPIPE, "serve", "--state-dir", str(sd.root), "--port", "0"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 1 and "already serving" in second.stderr
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not where.exists()
    assert str(token_dir(sd.root)) in out
    assert token not in out + err
