"""Size limits that ruff cannot express: files and functions in lab/ and clinic/ stay small enough to read.

    python scripts/limits.py      exits 1 and lists every file over MAX_FILE_LINES lines and every
                                  function over MAX_FUNCTION_LINES lines, unless EXCEPTIONS names it

A function's length counts from its `def` line to its last line, docstring included. An entry in
EXCEPTIONS needs a reason, and the check fails when an exception is no longer needed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOTS = ("lab", "clinic")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
# "path" or "path:function" -> why it may be longer
EXCEPTIONS: dict[str, str] = {}


def _functions(tree: ast.AST) -> list[tuple[str, int, int]]:
    return [(node.name, node.lineno, (node.end_lineno or node.lineno) - node.lineno + 1)
            for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def problems(root: Path) -> tuple[list[str], set[str]]:
    found: list[str] = []
    used: set[str] = set()
    for sub in ROOTS:
        for path in sorted((root / sub).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            text = path.read_text()
            n = len(text.splitlines())
            if n > MAX_FILE_LINES:
                if rel in EXCEPTIONS:
                    used.add(rel)
                else:
                    found.append(f"{rel}: {n} lines (limit {MAX_FILE_LINES})")
            for name, line, length in _functions(ast.parse(text, rel)):
                key = f"{rel}:{name}"
                if length > MAX_FUNCTION_LINES:
                    if key in EXCEPTIONS:
                        used.add(key)
                    else:
                        found.append(f"{rel}:{line}: function {name} is {length} lines "
                                     f"(limit {MAX_FUNCTION_LINES})")
    return found, used


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    found, used = problems(root)
    found += [f"EXCEPTIONS[{key!r}] is no longer needed" for key in sorted(set(EXCEPTIONS) - used)]
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
