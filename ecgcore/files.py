"""Atomic JSON files and append-only JSON-lines histories under a state dir."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, doc: Any) -> None:
    """Write JSON so that a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    tmp.replace(path)


class JsonFileError(Exception):
    """A JSON file that is there but cannot be read or parsed; the message names the file."""


def load_json(path: Path) -> Any:
    """The document in `path`, or None when there is no such file. A file that is there but
    cannot be read (a directory in its place, a symlink loop, a parent that is a file) or is
    not JSON (empty, torn, not UTF-8) raises JsonFileError naming it and what is wrong."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JsonFileError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except ValueError as exc:  # UnicodeDecodeError
        raise JsonFileError(f"{path} is not JSON (not UTF-8 text)") from exc
    if not text.strip():
        raise JsonFileError(f"{path} is empty")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise JsonFileError(f"{path} is not valid JSON ({exc})") from exc


def json_type(doc: Any) -> str:
    """What a JSON value is, in JSON's words: object, array, string, number, true/false, null."""
    if isinstance(doc, dict):
        return "an object"
    if isinstance(doc, list):
        return "an array"
    if isinstance(doc, str):
        return "a string"
    if isinstance(doc, bool):
        return "true/false"
    return "null" if doc is None else "a number"


def read_json(path: Path, default: Any = None) -> Any:
    """The document in `path`, or `default` when it is missing, unreadable or not JSON: for
    files polled while their writer replaces them. load_json tells why a file cannot be read."""
    try:
        doc = load_json(path)
    except JsonFileError:
        return default
    return default if doc is None else doc


def read_json_object(path: Path) -> dict[str, Any] | None:
    """read_json for a file that holds one JSON object: anything else reads as None."""
    doc = read_json(path)
    return doc if isinstance(doc, dict) else None


class JsonLines:
    """An append-only history file; each record is one JSON object on one line."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("a", buffering=1)

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._fh.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete record; a torn last line (a process killed mid-write), a line that is not
    JSON or not an object, is skipped. A missing file has none; one that cannot be read (a
    directory in its place, a symlink loop) raises OSError."""
    out: list[dict[str, Any]] = []
    try:
        with path.open(errors="replace") as fh:
            for line in fh:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict):
                    out.append(rec)
    except FileNotFoundError:
        pass
    return out
