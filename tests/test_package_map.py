"""docs/architecture.md opens with a map of the packages: folder → what it owns → what it may
import. This test reads that table and checks every import in the source tree against it, so
the map cannot drift from the code.

A module belongs to the most specific folder (or file) row that contains it. Imports inside the
same row are always allowed; an import of another ecgpipe package must be listed in the row's
"may import" column (a listed package allows its sub-packages too, e.g. `lab.stack` allows
`lab.stack.procs`). Third-party and standard-library imports are not checked here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
OURS = ("wire", "ecgcore", "devices", "ingest", "analysis", "lab", "clinic", "bench", "fuzz")
SOURCES = ("wire", "ecgcore", "devices", "ingest", "analysis", "lab", "clinic", "bench", "fuzz")


def read_map() -> dict[str, set[str]]:
    """Row name (dotted: `lab.stack`, `lab.demo`) → the dotted packages it may import."""
    text = DOC.read_text()
    start = text.index("<!-- package-map -->")
    end = text.index("<!-- /package-map -->")
    rows: dict[str, set[str]] = {}
    for line in text[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`").rstrip("/").removesuffix(".py").replace("/", ".")
        rows[name] = {m.replace("/", ".").rstrip(".").removesuffix(".py")
                      for m in re.findall(r"`([^`]+)`", cells[2])}
    return rows


def owner(module: str, rows: dict[str, set[str]]) -> str | None:
    best = None
    for name in rows:
        if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(best)):
            best = name
    return best


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            # `from lab import stack` imports the sub-package lab.stack
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                    if (ROOT / node.module.replace(".", "/") / a.name).is_dir()
                    or (ROOT / node.module.replace(".", "/") / f"{a.name}.py").is_file()]
    return [(n, m) for n, m in out if m.split(".")[0] in OURS]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def allowed(target: str, own: str, rows: dict[str, set[str]], may: set[str]) -> bool:
    if owner(target, rows) == own:
        return True
    if target == own.split(".", maxsplit=1)[0]:  # `import lab` / `from lab import x`: the namespace
        return True
    return any(target == m or target.startswith(m + ".") for m in may)


def test_the_map_lists_every_source_folder() -> None:
    rows = read_map()
    missing = [str(path.relative_to(ROOT)) for top in SOURCES for path in sorted((ROOT / top).rglob("*.py"))
               if owner(module_name(path), rows) is None and (path.name != "__init__.py" or imports(path))]
    assert not missing, f"docs/architecture.md's package map has no row for: {missing}"


def test_every_import_is_one_the_map_allows() -> None:
    rows = read_map()
    bad = []
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            own = owner(module_name(path), rows)
            if own is None:
                continue
            for line, target in imports(path):
                if not allowed(target, own, rows, rows[own]):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {target}")
    assert not bad, "imports the package map does not allow:\n" + "\n".join(bad)


def test_the_map_allows_nothing_that_is_not_used() -> None:
    """A "may import" entry nobody uses is a stale map: drop it."""
    rows = read_map()
    used: dict[str, set[str]] = {name: set() for name in rows}
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*.py")):
            own = owner(module_name(path), rows)
            if own is None:
                continue
            for _, target in imports(path):
                for m in rows[own]:
                    if target == m or target.startswith(m + "."):
                        used[own].add(m)
    stale = {name: sorted(rows[name] - used[name]) for name in rows if rows[name] - used[name]}
    assert not stale, f"map entries no module uses: {stale}"


def test_nothing_imports_in_a_circle_between_rows() -> None:
    rows = read_map()
    seen: dict[str, int] = {}

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if seen.get(name) == 2:
            return
        assert seen.get(name) != 1, f"the map has a cycle: {' -> '.join((*stack, name))}"
        seen[name] = 1
        for dep in rows[name]:
            target = owner(dep, rows)
            if target is not None and target != name:
                visit(target, (*stack, name))
        seen[name] = 2

    for name in rows:
        visit(name, ())
