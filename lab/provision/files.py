"""Writing provisioned files: secrets 0600 in 0700 folders, atomically; public files 0644."""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.chmod(mode)  # an earlier, looser tmp file keeps its mode through O_CREAT
    tmp.replace(path)


def write_private(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    _write(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, data, 0o644)
