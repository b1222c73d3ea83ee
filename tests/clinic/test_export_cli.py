"""`ecgpipe export` through the CLI's own main(): each format from a state dir, the --json
summary, the patient from fleet/profiles.json, and one clear line (exit 2 or 1) for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cli.main import main
from tests.clinic.test_export_store import DEVICE, GAPS, LAYOUT, write_store


@pytest.fixture
def state(tmp_path: Path) -> Path:
    sd = tmp_path / "state"
    write_store(sd / "ingest" / "ingest.sqlite")
    (sd / "fleet").mkdir()
    (sd / "fleet" / "profiles.json").write_text(json.dumps(
        {"written_at": 0, "devices": {DEVICE: {"catalogue": "brady", "rhythm": "brady", "hr_bpm": 38.0}}}))
    return sd


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(("fmt", "out", "files"), [
    ("wfdb", "rec", ["rec.hea", "rec.dat", "rec.ann"]), ("edf", "a.edf", ["a.edf"]),
    ("fhir", "a.json", ["a.json"]), ("csv", "a.csv", ["a.csv"])])
def test_each_format_says_what_it_wrote(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        fmt: str, out: str, files: list[str]) -> None:
    rc, text, err = run(capsys, "export", "--state-dir", str(state), "--device", DEVICE,
                        "--format", fmt, "--out", str(tmp_path / out))
    assert (rc, err) == (0, "")
    assert f"{len(LAYOUT)} readings" in text
    assert f"{len(GAPS)} gaps" in text
    assert "wrote " + ", ".join(str(tmp_path / f) for f in files) in text
    assert all((tmp_path / f).stat().st_size > 0 for f in files)


def test_json_summary_and_range(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, text, _ = run(capsys, "--state-dir", str(state), "export", "--device", DEVICE, "--format", "fhir",
                      "--out", str(tmp_path / "b.json"), "--from", "2026-11-30T00:53:25Z",
                      "--to", "1796000030", "--json")
    assert rc == 0
    doc = json.loads(text)
    assert doc["readings"] == 20  # seq 5..19 and 25..29: captured in [T0+4.88, T0+29.88)
    assert doc["samples"] == 20 * 250
    assert [(g["sample_index"], g["samples"]) for g in doc["gaps"]] == [(3750, 1250)]
    assert doc["gaps"][0]["duration_s"] == 5.0
    assert doc["files"] == [str(tmp_path / "b.json")]
    bundle = json.loads((tmp_path / "b.json").read_text())
    assert "catalogue brady" in bundle["entry"][0]["resource"]["extension"][0]["valueString"]


@pytest.mark.parametrize(("args", "rc", "message"), [
    (["--from", "yesterday"], 2, "argument --from: 'yesterday' is not a time"),
    (["--to", "2026-02-30"], 2, "argument --to: '2026-02-30' is not a time"),
    (["--from", "1796000030", "--to", "1796000000"], 2, "must be after --from"),
    (["--format", "xml"], 2, "argument --format: invalid choice"),
    (["--out", "/nonexistent-dir/x"], 2, "the directory /nonexistent-dir does not exist"),
    (["--device", "hc-nope"], 1, "no readings stored for device 'hc-nope'"),
    (["--from", "2030-01-01"], 1, f"device {DEVICE} has no readings captured in [2030-01-01T00:00:00"),
])
def test_bad_input_is_one_clear_line(state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     args: list[str], rc: int, message: str) -> None:
    base = {"--device": DEVICE, "--format": "csv", "--out": str(tmp_path / "x.csv")}
    for flag in ("--device", "--format", "--out"):
        if flag in args:
            base.pop(flag)
    argv = ["export", "--state-dir", str(state), *[x for kv in base.items() for x in kv], *args]
    got, out, err = run(capsys, *argv)
    assert got == rc
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("ecgpipe")
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()


def test_a_state_dir_without_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "export", "--state-dir", str(tmp_path / "nothing"), "--device", DEVICE,
                       "--format", "edf", "--out", str(tmp_path / "a.edf"))
    assert (rc, out) == (1, "")
    assert err == (f"ecgpipe: error: no ingest store in {tmp_path / 'nothing'} "
                   f"({tmp_path / 'nothing' / 'ingest' / 'ingest.sqlite'} is missing): give the stack's "
                   "--state-dir, or start one with `ecgpipe up`\n")


def test_a_truncated_export_says_where_the_rest_starts(state: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clinic.export.run.MAX_READINGS", 10)
    rc, text, _ = run(capsys, "export", "--state-dir", str(state), "--device", DEVICE, "--format", "csv",
                      "--out", str(tmp_path / "a.csv"))
    assert rc == 0
    assert "10 readings" in text
    hint = next(line for line in text.splitlines() if line.startswith("only the first 10 readings"))
    rest_from = hint.rsplit("--from ", 1)[1]
    rc, out, _ = run(capsys, "export", "--state-dir", str(state), "--device", DEVICE, "--format", "csv",
                     "--out", str(tmp_path / "b.csv"), "--from", rest_from, "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["first_sample"] == pytest.approx(float(rest_from), abs=1e-6)  # seq 10: the next one
