"""Imports run one way, top to bottom (DESIGN.md "Layout").

The package's own imports are read from the source (nothing is imported),
and three things fail:

- an import that runs back up the module order below, wherever it stands;
- an import inside a function or an ``if TYPE_CHECKING:`` block that dodges
  a cycle: upward, or of a module that itself reaches the importer at
  import time;
- a cycle among the imports a module runs when it is loaded.

``cli`` and ``serve`` import each command's and each role's modules inside
the function that runs them, so a command loads only what it uses; those
point down the order and pass.

What still runs back up is listed in ``KNOWN_UPWARD`` with the reason; the
test fails as well when an entry there no longer happens, so the list only
shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mailadmin"

# DESIGN.md's order, top first: a module may import its own layer and those
# below it.  The modules DESIGN does not name are placed where what they
# import and who imports them puts them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__", "cli"),
    ("serve",),  # starts the roles below
    ("adapters", "webapp", "jobs", "dry_run", "srs_bounce", "metrics_server"),
    ("wiring",),  # the Runtime every role is given
    ("engine",),
    ("checks",),
    ("services", "store", "passwords", "listeners", "quarantine_links", "sd_notify"),
    ("config",),
    ("mailtext", "errors", "paths", "verdicts", "message", "metrics"),
)
RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}

# (importer, imported) modules that still run back up, each with what removes it.
KNOWN_UPWARD: dict[tuple[str, str], str] = {}

# Function-local imports that dodge a cycle today, each with what removes it.
KNOWN_LOCAL: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    local: bool  # inside a function or an ``if TYPE_CHECKING:`` block


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _exists(module: str) -> bool:
    path = PACKAGE.parent.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names if a.name.split(".")[0] == "mailadmin")
        return
    base = node.module or ""
    if node.level:
        anchor = importer.split(".")
        anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, *([base] if base else [])])
    if base.split(".")[0] != "mailadmin":
        return
    for alias in node.names:
        # ``from mailadmin.store import rules`` imports the module mailadmin.store.rules.
        sub = f"{base}.{alias.name}"
        yield sub if _exists(sub) else base


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports() -> list[Import]:
    found: list[Import] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # alembic's scripts, loaded by alembic, not by the package
        importer = _module_name(path)
        is_package = path.name == "__init__.py"

        def add(node: ast.Import | ast.ImportFrom, local: bool) -> None:
            for target in _targets(node, importer, is_package):
                found.append(Import(importer, target, node.lineno, local))

        def walk(nodes: list[ast.stmt], local: bool) -> None:
            for node in nodes:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    add(node, local)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for inner in ast.walk(node):
                        if isinstance(inner, (ast.Import, ast.ImportFrom)):
                            add(inner, True)
                elif isinstance(node, ast.If) and _is_type_checking(node):
                    walk(node.body, True)
                    walk(node.orelse, local)
                elif isinstance(node, ast.ClassDef):
                    walk(node.body, local)
                elif isinstance(node, (ast.If, ast.With)):
                    walk(node.body, local)
                    walk(getattr(node, "orelse", []), local)
                elif isinstance(node, ast.Try):
                    walk(node.body, local)
                    for handler in node.handlers:
                        walk(handler.body, local)
                    walk(node.orelse, local)
                    walk(node.finalbody, local)

        walk(ast.parse(path.read_text(encoding="utf-8")).body, False)
    return found


IMPORTS = _imports()


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mailadmin"


def _upward(i: Import) -> bool:
    return RANK[_unit(i.imported)] < RANK[_unit(i.importer)]


def _load_graph() -> dict[str, set[str]]:
    """What loading each module imports at once: its module-level imports and,
    for each, the packages above it (whose ``__init__`` runs first) but its own."""
    graph: dict[str, set[str]] = {}
    for i in IMPORTS:
        if i.local:
            continue
        parts = i.imported.split(".")
        targets = {".".join(parts[:n]) for n in range(2, len(parts) + 1)}
        # A package the importer is in has begun loading before the importer.
        graph.setdefault(i.importer, set()).update(
            t for t in targets if not (i.importer == t or i.importer.startswith(t + "."))
        )
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    todo = [start]
    while todo:
        module = todo.pop()
        if module == goal:
            return True
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return False


def test_every_module_has_a_place_in_the_order() -> None:
    units = {_unit(_module_name(p)) for p in PACKAGE.rglob("*.py")} - {"mailadmin"}
    assert sorted(units - set(RANK)) == []


def test_no_import_runs_back_up_the_order() -> None:
    upward = {(i.importer, i.imported): i for i in IMPORTS if _upward(i)}
    unknown = [f"{i.importer}:{i.line} imports {i.imported}"
               for key, i in upward.items() if key not in KNOWN_UPWARD]
    assert unknown == []
    gone = [key for key in KNOWN_UPWARD if key not in upward]
    assert gone == [], "no longer upward: remove from KNOWN_UPWARD"


def test_no_function_local_import_dodges_a_cycle() -> None:
    graph = _load_graph()
    dodges = {(i.importer, i.imported): i for i in IMPORTS
              if i.local and (_upward(i) or _reaches(graph, i.imported, i.importer))}
    unknown = [f"{i.importer}:{i.line} imports {i.imported} inside a function"
               for key, i in dodges.items() if key not in KNOWN_LOCAL]
    assert unknown == []
    gone = [key for key in KNOWN_LOCAL if key not in dodges]
    assert gone == [], "no longer a dodge: remove from KNOWN_LOCAL"


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    return sorted(module for module in graph if any(_reaches(graph, t, module) for t in graph[module]))


def test_loading_a_module_never_comes_back_to_it() -> None:
    assert _cycles(_load_graph()) == []


@pytest.mark.parametrize(("importer", "imported"), [
    ("mailadmin.store.rules", "mailadmin.webapp.page"),
    ("mailadmin.mailtext.entries", "mailadmin.config.model"),
    ("mailadmin.engine.decide", "mailadmin.adapters.milter"),
    ("mailadmin.checks.spam_scan", "mailadmin.wiring"),
])
def test_an_upward_import_is_caught(importer: str, imported: str) -> None:
    assert _upward(Import(importer, imported, 1, False))


def test_the_old_circle_of_the_web_app_is_caught() -> None:
    """A view importing app.py again (app -> routes -> views -> app) is a cycle."""
    graph = _load_graph()
    graph["mailadmin.webapp.views.lists"].add("mailadmin.webapp.app")
    assert "mailadmin.webapp.app" in _cycles(graph)
