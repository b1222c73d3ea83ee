"""PostgreSQL fixtures for the ingest tests: one throwaway server per test session (per
pytest-xdist worker), and a fresh database per test, so no test sees another's rows.

A test module loads them with `pytest_plugins = ["tests.ingest.pg_fixtures"]` (importing the
names instead would make ruff see every test argument as a redefinition); the
server is started on first use (ecgcore/pgserver.py: initdb, a free port, fsync off) and
stopped at the end of the session. A missing PostgreSQL is an error, not a skip: scripts/setup
installs it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from ecgcore.pgserver import create_database, temporary_server


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The DSN of the session's server's `ecgpipe` database (admin: superuser, trust)."""
    with temporary_server(tmp_path_factory.mktemp("pg")) as dsn:
        yield dsn


def _with_db(dsn: str, name: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A DSN of a database made for this test alone (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    create_database(pg_server, name)
    yield _with_db(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

