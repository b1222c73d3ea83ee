"""`ecgpipe export` of a state dir whose store is PostgreSQL (ingest/store.json): the same
files, byte for byte, as from the same readings in SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cli.main import main
from tests.clinic.test_export_store import DEVICE, write_store

pytest_plugins = ["tests.ingest.pg_fixtures"]  # pg_server, pg_dsn

FILES = {"wfdb": ["rec.hea", "rec.dat", "rec.ann"], "edf": ["rec.edf"], "fhir": ["rec.json"],
         "csv": ["rec.csv"]}


def export_all(state: Path, out: Path) -> dict[str, bytes]:
    out.mkdir()
    got = {}
    for fmt, files in FILES.items():
        target = out / ("rec" if fmt == "wfdb" else files[0])
        assert main(["export", "--state-dir", str(state), "--device", DEVICE, "--format", fmt,
                     "--out", str(target), "--json"]) == 0
        got.update({f: (out / f).read_bytes() for f in files})
    return got


def test_postgres_and_sqlite_stores_export_the_same(tmp_path: Path, pg_dsn: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    write_store(tmp_path / "lite" / "ingest" / "ingest.sqlite")
    write_store(tmp_path / "pg" / "ingest" / "ingest.sqlite", dsn=pg_dsn)
    assert (tmp_path / "pg" / "ingest" / "store.json").is_file()
    assert not (tmp_path / "pg" / "ingest" / "ingest.sqlite").exists()
    lite = export_all(tmp_path / "lite", tmp_path / "out-lite")
    pg = export_all(tmp_path / "pg", tmp_path / "out-pg")
    assert sorted(pg) == sorted(lite)
    for name, data in lite.items():
        assert pg[name] == data, name
    capsys.readouterr()
