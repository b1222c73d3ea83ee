"""Warnings as errors in the processes the tests start, as in the test process itself.

pytest runs the tests with every warning turned into an error (pyproject.toml,
[tool.pytest.ini_options] filterwarnings), but the processes the tests start (`python -m
devices`, `python -m ingest`, the lab's entry points) run with Python's default filters, so a
warning there would only be a line on stderr nobody reads. tests/conftest.py sets
ECGPIPE_STRICT_WARNINGS=1 in the test process's environment; every child inherits it, and each
entry point calls `apply_from_env()` first thing, which installs the same filters as pytest's.
Without the variable (a lab run, a user's shell) nothing changes.
"""

from __future__ import annotations

import os
import warnings

ENV_STRICT_WARNINGS = "ECGPIPE_STRICT_WARNINGS"

# (category, module regex): the same ignores as pyproject's pytest filterwarnings, in its
# order. neurokit2 pulls in pandas/sklearn, which emit deprecation noise we do not own.
_IGNORED: tuple[tuple[type[Warning], str], ...] = (
    (DeprecationWarning, "neurokit2.*"),
    (DeprecationWarning, "pandas.*"),
    (FutureWarning, "neurokit2.*"),
)


def strict_requested() -> bool:
    """Whether this process was asked to turn warnings into errors."""
    return os.environ.get(ENV_STRICT_WARNINGS) == "1"


def apply_from_env() -> None:
    """With ECGPIPE_STRICT_WARNINGS=1 in the environment, make every warning an error except
    the ignored library noise above; otherwise leave the warning filters alone."""
    if not strict_requested():
        return
    warnings.simplefilter("error")
    for category, module in _IGNORED:
        # filterwarnings() puts each filter in front, so these take precedence over "error"
        warnings.filterwarnings("ignore", category=category, module=module)
