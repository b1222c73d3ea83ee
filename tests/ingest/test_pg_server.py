"""ecgcore/pgserver.py: the throwaway server runs as the postgres user when we are root, stops
and leaves nothing behind, and says clearly what is wrong when it cannot start."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from ecgcore import pgserver
from ecgcore.pgserver import PgServerError, init_cluster, temporary_server


def test_a_temporary_server_runs_unprivileged_and_is_gone_afterwards(tmp_path: Path) -> None:
    with temporary_server(tmp_path) as dsn:
        with psycopg.connect(dsn) as conn:
            pid, user = conn.execute("SELECT pg_backend_pid(), current_user").fetchone() or (0, "")
            data = conn.execute("SHOW data_directory").fetchone()
            # while connected: the backend process ends with the connection
            assert Path(f"/proc/{pid}").stat().st_uid != 0  # PostgreSQL never runs as root
        assert user == "postgres" and data is not None
        root = Path(data[0]).parent
        assert root.is_dir() and root.stat().st_mode & 0o777 == 0o711
    assert not root.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=2)


@pytest.mark.skipif(os.geteuid() != 0, reason="the folder check is for running as root")
def test_a_data_dir_the_postgres_user_cannot_reach_is_named(tmp_path: Path) -> None:
    blocked = tmp_path / "private"
    blocked.mkdir(mode=0o700)
    with pytest.raises(PgServerError, match="does not let the postgres user through"):
        init_cluster(blocked / "data")


def test_missing_binaries_are_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ECGPIPE_PG_BIN", str(tmp_path))
    with pytest.raises(PgServerError, match="no postgres binary"):
        pgserver.bin_dir()
