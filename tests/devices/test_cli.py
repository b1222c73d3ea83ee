from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devices.__main__ import parse_config
from ecgcore.modes import Delivery

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devices", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_help_lists_the_documented_options() -> None:
    done = run("--help")
    assert done.returncode == 0
    for option in ("--state-dir", "--host", "--port", "--devices", "--delivery",
                   "--outbox-capacity", "--outbox-policy", "--chunk-seconds", "--sample-rate",
                   "--seed", "--speed", "--id-prefix", "--ack-timeout", "--window",
                   "--history", "--no-history", "--recording", "--strip-seconds",
                   "--strips-per-day", "--strip-chunks", "--profiles", "--profile-file",
                   "--episode"):
        assert option in done.stdout


@pytest.mark.parametrize("args", [
    ["--host", "h", "--port", "1", "--devices", "2", "--delivery", "broker-ack"],  # no state dir
    ["--state-dir", "d", "--host", "h", "--port", "1", "--devices", "2", "--delivery", "maybe"],
    ["--state-dir", "d", "--host", "h", "--port", "1", "--devices", "0", "--delivery",
     "broker-ack"],
    ["--state-dir", "d", "--host", "h", "--port", "99999", "--devices", "2", "--delivery",
     "broker-ack"],
    ["--state-dir", "d", "--host", "h", "--port", "1", "--devices", "2", "--delivery",
     "broker-ack", "--id-prefix", "bad prefix"],
    ["--state-dir", "d", "--host", "h", "--port", "1", "--devices", "2", "--delivery",
     "broker-ack", "--recording", "sometimes"],
    ["--state-dir", "d", "--host", "h", "--port", "1", "--devices", "2", "--delivery",
     "broker-ack", "--recording", "strip", "--strips-per-day", "0"],
    ["--state-dir", "d", "--host", "h", "--port", "1", "--devices", "2", "--delivery",
     "broker-ack", "--recording", "strip", "--sample-rate", "2000"],  # 60,000 samples
])
def test_bad_arguments_give_one_line_and_exit_2(args: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_config(args)
    assert info.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0]
    assert out == ""


def test_a_bad_argument_from_the_command_line(tmp_path: Path) -> None:
    done = run("--state-dir", str(tmp_path), "--host", "h", "--port", "1", "--devices", "2",
               "--delivery", "broker-ack", "--chunk-seconds", "-1")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "chunk seconds must be positive" in done.stderr
    assert not (tmp_path / "fleet").exists()


def test_parse_config_defaults_match_the_architecture(tmp_path: Path) -> None:
    cfg = parse_config(["--state-dir", str(tmp_path), "--host", "127.0.0.1", "--port", "1",
                        "--devices", "3", "--delivery", "end-to-end"])
    assert cfg.delivery is Delivery.END_TO_END
    assert (cfg.outbox_capacity, cfg.outbox_policy, cfg.chunk_seconds, cfg.sample_rate,
            cfg.seed, cfg.speed, cfg.id_prefix, cfg.ack_timeout, cfg.window, cfg.ecg_source) == (
        5000, "drop-oldest", 1.0, 250, 0, 1.0, "hc", 10.0, 50, "ecgsyn")
    assert cfg.device_ids() == ["hc-0000", "hc-0001", "hc-0002"]
    assert cfg.outbox_path == tmp_path / "fleet" / "outbox.sqlite"


def test_history_and_strip_options(tmp_path: Path) -> None:
    common = ["--state-dir", str(tmp_path), "--host", "127.0.0.1", "--port", "1",
              "--devices", "3", "--delivery", "broker-ack"]
    cfg = parse_config(common)
    assert cfg.history is True and cfg.history_path == tmp_path / "history" / "devices.jsonl"
    assert (cfg.recording, cfg.strip_seconds, cfg.strips_per_day, cfg.strip_chunks) == (
        "continuous", 30.0, 3, 1)
    cfg = parse_config([*common, "--no-history", "--recording", "strip", "--strip-seconds", "20",
                        "--strips-per-day", "6", "--strip-chunks", "4", "--speed", "3600"])
    assert cfg.history is False and cfg.strip_mode and cfg.speed == 3600
    assert (cfg.device.recording, cfg.device.strip_seconds, cfg.device.strips_per_day,
            cfg.device.strip_chunks, cfg.device.samples_per_strip) == ("strip", 20.0, 6, 4, 5000)


def test_profile_options_reach_the_fleet_config(tmp_path: Path) -> None:
    base = ["--state-dir", str(tmp_path), "--host", "h", "--port", "1", "--devices", "10",
            "--delivery", "broker-ack"]
    cfg = parse_config([*base, "--profiles", "sinus:70%,af:30%", "--episode",
                        "pause@1796045840+6s:devices=0-1", "--episode", "vt-run@1796045900+10s"])
    assert cfg.profiles == "sinus:70%,af:30%"
    assert cfg.episodes == ("pause@1796045840+6s:devices=0-1", "vt-run@1796045900+10s")
    fleet = cfg.patient_profiles()
    assert sum(p.rhythm.rhythm == "af" for p in fleet) == 3
    assert [len(p.episodes) for p in fleet] == [2, 2] + [1] * 8
    assert parse_config(base).patient_profiles()[0].rhythm.catalogue == "sinus"


@pytest.mark.parametrize(("extra", "message"), [
    (["--profiles", "sinus:70%,afib:30%"], "did you mean 'af'"),
    (["--episode", "pause@soon+6s"], "neither Unix seconds nor an ISO time"),
    (["--profile-file", "/nonexistent/p.toml"], "cannot read the profile file"),
])
def test_bad_profile_options_are_one_line_and_exit_2(extra: list[str], message: str) -> None:
    done = run("--state-dir", "d", "--host", "h", "--port", "1", "--devices", "10",
               "--delivery", "broker-ack", *extra)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
