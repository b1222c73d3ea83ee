"""Where a key is in a scenario's TOML text, and errors that name that line.

    Locator(text).line(path)        the line of a key, a table header or an array element
    Errors(file, text).at(path, m)  a ScenarioError naming the file and the line of `path`
    toml_error(exc, text, file)     tomllib's syntax error as a ScenarioError with its line
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

from lab.scenario.model import Path_, ScenarioError


class Locator:
    """Line numbers of keys, table headers and array elements, by path.

    ("fleet", "devices") is `devices` in [fleet]; ("faults", 2, "end") is `end` in the third
    [[faults]]; ("expect", 1) is the second element of `expect = [...]`. Runs only on text that
    tomllib has accepted, so it can assume valid TOML; if it gets lost it stops, and lookups
    fall back to the nearest enclosing path it did record."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: dict[Path_, int] = {}
        self._starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        with contextlib.suppress(IndexError, ValueError):
            self._scan()

    def line(self, path: Path_) -> int | None:
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def _lineno(self, pos: int) -> int:
        lo, hi = 0, len(self._starts)
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if self._starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo + 1

    def _note(self, path: Path_, pos: int) -> None:
        self.lines.setdefault(path, self._lineno(pos))

    def _skip(self, i: int, newlines: bool) -> int:
        t = self.text
        while i < len(t):
            c = t[i]
            if c in " \t" or (newlines and c in "\r\n"):
                i += 1
            elif c == "#":
                while i < len(t) and t[i] != "\n":
                    i += 1
            else:
                break
        return i

    def _string(self, i: int) -> tuple[str, int]:
        t = self.text
        for q in ('"""', "'''"):
            if t.startswith(q, i):
                j = i + 3
                while True:
                    if q == '"""' and t[j] == "\\":
                        j += 2
                        continue
                    if t.startswith(q, j):
                        while t.startswith(q[0], j + 3):  # up to two quotes may close the content
                            j += 1
                        return t[i + 3:j], j + 3
                    j += 1
        q = t[i]
        j = i + 1
        while t[j] != q:
            j += 2 if (q == '"' and t[j] == "\\") else 1
        raw = t[i + 1:j]
        if q == '"':
            with contextlib.suppress(ValueError):
                raw = json.loads(f'"{raw}"')
        return raw, j + 1

    def _key(self, i: int) -> tuple[list[str], int]:
        t = self.text
        keys: list[str] = []
        while True:
            i = self._skip(i, newlines=False)
            if t[i] in "\"'":
                k, i = self._string(i)
            else:
                m = re.compile(r"[A-Za-z0-9_-]+").match(t, i)
                if m is None:
                    raise ValueError(f"no key at {i}")
                k, i = m.group(), m.end()
            keys.append(k)
            i = self._skip(i, newlines=False)
            if i < len(t) and t[i] == ".":
                i += 1
                continue
            return keys, i

    def _value(self, i: int, path: Path_) -> int:
        t = self.text
        c = t[i]
        if c in "\"'":
            return self._string(i)[1]
        if c == "[":
            i, n = i + 1, 0
            while True:
                i = self._skip(i, newlines=True)
                if t[i] == "]":
                    return i + 1
                self._note((*path, n), i)
                i = self._skip(self._value(i, (*path, n)), newlines=True)
                n += 1
                if t[i] == ",":
                    i += 1
        if c == "{":
            i += 1
            while True:
                i = self._skip(i, newlines=False)
                if t[i] == "}":
                    return i + 1
                start = i
                keys, i = self._key(i)
                self._note(path + tuple(keys), start)
                i = self._skip(i + 1, newlines=False)  # past '='
                i = self._skip(self._value(i, path + tuple(keys)), newlines=False)
                if t[i] == ",":
                    i += 1
        m = re.compile(r"[^,\]}#\r\n]*").match(t, i)
        return m.end() if m else i + 1

    def _scan(self) -> None:
        t = self.text
        current: Path_ = ()
        arrays: dict[Path_, int] = {}

        def resolve(keys: list[str]) -> Path_:
            path: Path_ = ()
            for k in keys:
                path += (k,)
                if path in arrays:
                    path += (arrays[path] - 1,)
            return path

        i = self._skip(0, newlines=True)
        while i < len(t):
            start = i
            if t[i] == "[":
                double = t.startswith("[[", i)
                keys, i = self._key(i + (2 if double else 1))
                i += 2 if double else 1
                table = (*resolve(keys[:-1]), keys[-1])
                self._note(table, start)
                if double:
                    arrays[table] = arrays.get(table, 0) + 1
                    table += (arrays[table] - 1,)
                    self._note(table, start)
                current = table
            else:
                keys, i = self._key(i)
                path = current + tuple(keys)
                self._note(path, start)
                i = self._value(self._skip(i + 1, newlines=False), path)
            i = self._skip(i, newlines=True)


class Errors:
    """ScenarioErrors for one file, each naming the line of the offending key (line 1 when
    the key cannot be found)."""

    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.loc = Locator(text)

    def at(self, path: Path_, message: str) -> ScenarioError:
        return ScenarioError(message, file=self.file, line=self.loc.line(path) or 1, key=path)

    def relocate(self, prefix: Path_, exc: ScenarioError,
                 origin: Callable[[str], Path_] | None = None) -> ScenarioError:
        """A model's error (its key relative to the value that raised it) at its place in the file:
        under `prefix`, or under origin(first key) when the value came from more than one table."""
        key = exc.key
        if origin is not None and key and isinstance(key[0], str):
            prefix = origin(key[0])
        return self.at(prefix + key, exc.message)


_TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def toml_error(exc: tomllib.TOMLDecodeError, text: str, file: Path) -> ScenarioError:
    """tomllib's message, with its line as the error's line and its column kept in the text."""
    m = _TOML_AT.search(str(exc))
    line = int(m.group(1)) if m else max(1, len(text.rstrip().splitlines()))
    message = _TOML_AT.sub("", str(exc)).strip()
    if m:
        message += f" (column {m.group(2)})"
    return ScenarioError(f"not valid TOML: {message}", file=file, line=line)
