"""Shared fixtures: a real Mosquitto on a free port, started from broker_config/.

At import, ECGPIPE_STRICT_WARNINGS=1 goes into this process's environment, so every process a
test starts inherits it and turns warnings into errors as pytest does here
(ecgcore/strict_warnings.py; each entry point calls apply_from_env() first).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ecgcore.strict_warnings import ENV_STRICT_WARNINGS
from ecgcore.waiting import wait_until as poll_until
from lab.stack.broker import BrokerSettings, RunningBroker
from lab.stack.ports import free_port

os.environ[ENV_STRICT_WARNINGS] = "1"  # inherited by every child process (see the docstring)

_counter = itertools.count()


def make_broker(tmp_path: Path, **kw: object) -> RunningBroker:
    port = free_port()
    root = tmp_path / f"broker-{port}"
    settings = BrokerSettings(
        port=port, data_dir=root / "data", log_file=root / "mosquitto.log", **kw  # type: ignore[arg-type]
    )
    return RunningBroker(settings, root / "mosquitto.conf").start()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    """A fresh Mosquitto for one test, on a free loopback port, stopped afterwards."""
    b = make_broker(tmp_path)
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., RunningBroker]]:
    """Start brokers with custom settings (e.g. max_queued=50); all are stopped afterwards."""
    started: list[RunningBroker] = []

    def factory(**kw: object) -> RunningBroker:
        b = make_broker(tmp_path, **kw)
        started.append(b)
        return b

    yield factory
    for b in started:
        b.stop()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique names for client ids, device ids and topics, so tests never collide."""
    run = uuid.uuid4().hex[:6]

    def make(prefix: str) -> str:
        return f"{prefix}-{os.getpid()}-{run}-{next(_counter)}"

    return make


def wait_until(cond: Callable[[], object], timeout: float = 20.0, interval: float = 0.05,
               what: str = "condition") -> object:
    """Poll cond() until it returns something truthy and return that, or fail the test at the
    deadline (the polling is ecgcore.waiting.wait_until's)."""
    last: list[object] = [None]

    def probe() -> object:
        last[0] = cond()
        return last[0]

    if not poll_until(probe, timeout, poll_s=interval):
        pytest.fail(f"timed out after {timeout}s waiting for {what}")
    return last[0]


def _processes_under(root: Path) -> list[int]:
    """Pids of live processes whose command line names a path under `root` (a test's stack:
    every lab process gets --state-dir DIR or a config file inside its tmp dir)."""
    needle = str(root).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="session", autouse=True)
def reap_leftover_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the session (each xdist worker has its own base temp dir), kill what a failed or
    interrupted test left running from its tmp dir, so one broken test cannot load the
    machine for the rest of the suite or for the next run. Reports how many it reaped."""
    yield
    root = tmp_path_factory.getbasetemp()
    leftovers = _processes_under(root)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if leftovers:
        print(f"\nreaped {len(leftovers)} process(es) left running under {root}: {leftovers}")


# The scenario runs' file goes first: with `--dist loadfile` the scheduler hands files out in
# collection order, and that file's pool of stacks (about 12 minutes of simulated time passing,
# five runs at once) holds its worker while it waits. Collected last, it started at ~20 % and
# the suite waited for it alone at the end. Python's sort is stable: the rest keep their order.
FIRST = ("tests/lab/test_scenario_runs.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: 0 if item.nodeid.split("::", 1)[0] in FIRST else 1)
