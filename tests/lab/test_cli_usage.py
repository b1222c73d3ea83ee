"""The command line as a new user meets it, without a stack: --version, help that states every
default, unit and an example, one exit-code rule (2 bad usage, 1 failed operation), `up`
refusing to overwrite a finished run, "did you mean" in scenario files."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.cli.parser import build_parser
from lab.demo import conclusion, demo_root_of

ECGPIPE = [sys.executable, "-m", "lab.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ECGPIPE, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "ECGPIPE_STATE_DIR": ""}, check=False)


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def test_version() -> None:
    res = run("--version")
    assert res.returncode == 0 and res.stdout.startswith("ecgpipe ") and res.stdout.split()[1][0].isdigit()


def _commands(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...],
                                                                                       argparse.ArgumentParser]]:
    out = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append(((*path, name), sub))
                out += _commands(sub, (*path, name))
    return out


COMMANDS = _commands(build_parser())


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_shows_an_example_and_every_default(path: tuple[str, ...],
                                                          parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert "example" in text and "ecgpipe " + path[0] in text.split("example")[-1], text
    assert "STATE_DIR_SUB" not in text
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or action.dest == "help":
            continue
        assert action.help, f"{path} {action.option_strings} has no help"
        if action.default is not None and action.default is not False and action.default != argparse.SUPPRESS:
            assert "default" in parser._get_formatter()._expand_help(action), (
                f"{' '.join(path)} {action.option_strings[0]}: help does not show its default")


def test_help_names_units_and_the_state_dir_as_dir() -> None:
    up = " ".join(run("up", "--help").stdout.split())  # argparse wraps lines anywhere
    for piece in ("--sample-rate HZ", "--chunk-seconds SECONDS", "--state-dir DIR", "(default 250)",
                  "(default end-to-end)", "(default drop-oldest)", "(default 0)"):
        assert piece in up, piece
    assert "(default KILL)" in " ".join(run("kill", "--help").stdout.split())


def test_ingest_run_shows_its_own_options_and_takes_the_state_dir_after_it(tmp_path: Path) -> None:
    text = " ".join(run("ingest", "run", "--help").stdout.split())
    for option in ("--state-dir DIR", "--host", "--port", "--acks", "--keepalive", "--session-expiry"):
        assert option in text, option
    res = run("ingest", "run", "--state-dir", str(tmp_path / "nothing"))
    assert res.returncode == 1 and str(tmp_path / "nothing") in one_error_line(res)


@pytest.mark.parametrize("args", [
    ["up", "--devices", "many"],
    ["demo", "--modes", "carrier-pigeon"],
    ["tail", "--count", "0"],
    ["logs", "-n", "-3"],
    ["status", "--watch", "--interval", "0"],
    ["inspect", "reading", "hc-0000", "-1"],
    ["inspect", "reading", "hc-0000", "seven"],
    ["scenario", "run", "cardiocomm-72h", "--speed", "-1"],
    ["slow", "ingest"],
    ["frobnicate"],
])
def test_bad_usage_exits_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    res = run(*args, "--state-dir", str(tmp_path)) if args[0] != "scenario" else run(*args)
    one_error_line(res)
    assert res.returncode == 2, (res.returncode, res.stderr)


def test_a_failed_operation_exits_1(tmp_path: Path) -> None:
    res = run("report", "--state-dir", str(tmp_path / "none"))
    one_error_line(res)
    assert res.returncode == 1


def test_up_refuses_to_replace_a_finished_run_silently(tmp_path: Path) -> None:
    sd = tmp_path / "old-run"
    sd.mkdir()
    (sd / "stack.json").write_text(json.dumps({"devices": 3}))
    res = run("up", "--state-dir", str(sd))
    line = one_error_line(res)
    assert res.returncode == 1 and "finished run" in line and "--replace" in line
    assert "starting" not in res.stdout
    assert (sd / "stack.json").exists()  # nothing was discarded


def test_a_mistyped_scenario_key_or_value_gets_a_did_you_mean(tmp_path: Path) -> None:
    f = tmp_path / "typo.toml"
    f.write_text('description = "x"\nduration = "5m"\nexpct = ["lost = 0"]\n[fleet]\ndevices = 2\n')
    assert "did you mean 'expect'?" in one_error_line(run("scenario", "run", str(f)))
    f.write_text('description = "x"\nduration = "5m"\nexpect = ["lost = 0"]\n[fleet]\ndevices = 2\n'
                 'delivery = "end-to-ned"\n')
    assert "did you mean 'end-to-end'?" in one_error_line(run("scenario", "run", str(f)))


def test_the_demo_keeps_its_runs_in_one_demo_dir_and_concludes_only_about_what_ran(tmp_path: Path) -> None:
    assert demo_root_of(tmp_path) == tmp_path / "demo"
    assert demo_root_of(tmp_path / "demo") == tmp_path / "demo"

    def rep(lost: int, dropped: int) -> dict[str, object]:
        return {"totals": {"lost": lost, "generated": 100}, "broker": {"dropped": dropped}}

    two = conclusion({"broker-ack": rep(40, 40), "end-to-end": rep(0, 0)})
    assert len(two) == 2 and "PUBACK is not storage" in two[0] and "end-to-end lost 0" in two[1]
    assert not any("fire-and-forget" in line for line in two)
    lucky = conclusion({"broker-ack": rep(0, 0)})
    assert "lost nothing this time" in lucky[0]
