"""A refreshing view: what `ecgpipe status --watch` and `ecgpipe inspect devices --watch` run.

On a terminal, rich.live.Live redraws the frame in place (colour unless NO_COLOR is set). When
`out` is not a terminal (a pipe, a file, a test), each frame is printed in full as plain text
after a line `--- 2026-11-30T13:37:21Z`, so a watch can be logged and tested. A LabError raised by
the render function (the stack went away, a state file is being rewritten) becomes that frame's
text, and the watch goes on. Ctrl-C ends it with exit code 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from lab.errors import LabError
from lab.timefmt import iso

Render = Callable[[], RenderableType | str]
PLAIN_WIDTH = 160  # columns of a frame rendered for a pipe (rich tables shrink to their content)


def frame(render: Render) -> RenderableType:
    """One frame: the render function's result, a str shown as it is (no rich markup), or the
    LabError it raised."""
    try:
        result = render()
    except LabError as exc:
        return Text(f"ecgpipe: {exc}", style="bold red")
    return Text(result) if isinstance(result, str) else result


def is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty()
    except ValueError:  # a closed stream
        return False


def watch(render: Render, *, interval_s: float, count: int | None, out: TextIO,
          sleep: Callable[[float], None] = time.sleep, now: Callable[[], float] = time.time) -> int:
    """Redraw render() every interval_s seconds until Ctrl-C, or `count` frames. Returns 0."""
    if not interval_s > 0:
        raise LabError(f"the watch interval must be more than 0 s, got {interval_s}")
    if count is not None and count < 1:
        raise LabError(f"the watch count must be at least 1, got {count}")
    try:
        if is_terminal(out):
            _watch_live(render, interval_s=interval_s, count=count, out=out, sleep=sleep)
        else:
            _watch_plain(render, interval_s=interval_s, count=count, out=out, sleep=sleep, now=now)
    except KeyboardInterrupt:
        pass
    return 0


def _frames(count: int | None) -> range:
    return range(count) if count is not None else range(2**62)


def _watch_plain(render: Render, *, interval_s: float, count: int | None, out: TextIO,
                 sleep: Callable[[float], None], now: Callable[[], float]) -> None:
    console = Console(file=out, force_terminal=False, no_color=True, highlight=False, width=PLAIN_WIDTH)
    for i in _frames(count):
        if i:
            sleep(interval_s)
        out.write(f"--- {iso(now())}\n")
        console.print(frame(render))
        out.flush()


def _watch_live(render: Render, *, interval_s: float, count: int | None, out: TextIO,
                sleep: Callable[[float], None]) -> None:
    console = Console(file=out, highlight=False)  # rich honours NO_COLOR and TERM=dumb itself
    with Live(console=console, auto_refresh=False, transient=False) as live:
        for i in _frames(count):
            if i:
                sleep(interval_s)
            live.update(frame(render), refresh=True)
