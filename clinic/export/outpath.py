"""Where an export writes: the --out path checked once, with one clear line when it cannot be."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clinic.errors import BadRequestError

BLOCK = 1 << 20  # grid slots per block a streaming writer holds at once (2 MiB of int16)


def out_file(path: Path | str, suffixes: tuple[str, ...]) -> Path:
    """The file an export writes (`path` as given): its folder must exist and it must not be a
    folder. `suffixes` is only advice shown when the name has none of them."""
    p = Path(path)
    if p.is_dir():
        example = p / ("ecg" + suffixes[0])
        raise BadRequestError(f"--out {p} is a directory; give a file name (e.g. {example})")
    if not p.parent.is_dir():
        raise BadRequestError(f"--out {p}: the directory {p.parent} does not exist")
    return p


def blocks(length: int, size: int = BLOCK) -> list[tuple[int, int]]:
    """[start, stop) slot ranges of at most `size`, covering [0, length)."""
    return [(i, min(i + size, length)) for i in range(0, length, size)]


@contextmanager
def atomic(out: Path) -> Iterator[Path]:
    """A temporary path beside `out` to write; it becomes `out` only when the block ends without
    an error (Ctrl-C included), so a failed export never leaves a file that looks complete."""
    tmp = out.with_name(f".{out.name}.partial")
    try:
        yield tmp
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
