"""The run loop of a service process: SIGTERM and SIGINT ask it to stop cleanly.

    return run_until_signalled(service.run, service.request_stop)

The handlers are installed only on the main thread (a test may run a service's main in a
thread), and the previous ones are put back when `run` returns or raises.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


def run_until_signalled(run: Callable[[], int], request_stop: Callable[[], None]) -> int:
    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        request_stop()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        return run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
