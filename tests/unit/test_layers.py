"""The packages form floors: a module imports only from its own package and the ones below it.

    core < models < snapshotlib < exporters < streams < serving < coldstream

``core`` (settings, the root error, thread and logging helpers, event records) imports none of
the others; ``coldstream`` (the CLI and its commands) may import them all. Every import counts,
also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOORS = ["core", "models", "snapshotlib", "exporters", "streams", "serving", "coldstream"]


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_no_import_runs_upward_or_in_a_circle() -> None:
    wrong = []
    for floor, package in enumerate(FLOORS):
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, module in _imports(path):
                top = module.split(".")[0]
                if top in FLOORS and FLOORS.index(top) > floor:
                    wrong.append(
                        f"{path.relative_to(ROOT)}:{line}: {module} ({top} is above {package})"
                    )
    assert not wrong, "\n".join(wrong)


def test_every_package_is_on_a_floor() -> None:
    packaged = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert packaged == set(FLOORS)


def test_every_module_is_under_400_lines() -> None:
    """A module does one job; one that grows past 400 lines is doing two."""
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for folder in (*FLOORS, "bench", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) >= 400
    ]
    assert not long, "\n".join(long)
