"""ecgcore.strict_warnings: warnings become errors in the processes the tests start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecgcore.strict_warnings import ENV_STRICT_WARNINGS

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import warnings
from ecgcore.strict_warnings import apply_from_env
apply_from_env()
warnings.warn("a child's warning", UserWarning, stacklevel=1)
print("survived")
"""


def run_child(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_test_process_passes_strict_warnings_on_to_its_children() -> None:
    assert os.environ.get(ENV_STRICT_WARNINGS) == "1"  # set by tests/conftest.py


def test_a_child_with_the_variable_turns_a_warning_into_an_error() -> None:
    done = run_child(dict(os.environ))
    assert done.returncode == 1
    assert "UserWarning: a child's warning" in done.stderr
    assert "survived" not in done.stdout


@pytest.mark.parametrize("value", [None, "0"])
def test_without_the_variable_a_warning_stays_a_warning(value: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_STRICT_WARNINGS}
    if value is not None:
        env[ENV_STRICT_WARNINGS] = value
    done = run_child(env)
    assert done.returncode == 0, done.stderr
    assert "survived" in done.stdout
    assert "UserWarning: a child's warning" in done.stderr


def test_library_noise_stays_ignored_in_a_strict_child() -> None:
    code = ("import warnings\n"
            "from ecgcore.strict_warnings import apply_from_env\n"
            "apply_from_env()\n"
            "warnings.warn_explicit('old', DeprecationWarning, 'x.py', 1, module='pandas.core')\n"
            "warnings.warn_explicit('older', FutureWarning, 'y.py', 1, module='neurokit2.ecg')\n"
            "print('survived')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "survived" in done.stdout
