"""The house's floors: a module imports (at import time) only from its own floor or the floors below it.

errors · fileio → spec · spec_keys · registry · metrics · rerank · ops → model · data · losses → engine · evaluation
→ api · export · sweep → report → cli (../shared/design.md). Imports inside functions are
not counted: they run late, which is how an upper floor is reached on purpose (``reid bench``).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import reid

FLOORS = [{"errors", "fileio"}, {"spec", "spec_keys", "registry", "metrics", "rerank", "ops"}, {"model", "data", "losses"}, {"engine", "evaluation"},
          {"api", "export", "sweep"}, {"report"}, {"cli", "__main__"}]
ROOT = Path(reid.__file__).parent


def _floor(part: str) -> int:
    return next(i for i, names in enumerate(FLOORS) if part in names)


def _module_imports() -> dict[str, set[str]]:
    """``{module of reid: modules of reid it imports at module level}``, relative imports resolved; ``from a.b import
    c`` points at ``a.b.c`` when that is a module, else at ``a.b`` (the parent packages Python loads on the way are
    not counted: every submodule would otherwise form a circle with its package's ``__init__``)."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: list[str] = []
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *([base] if base else [])])
                targets += [f"{base}.{a.name}" if known(f"{base}.{a.name}") == f"{base}.{a.name}" else base for a in node.names]
        edges[name] = {known(t) for t in targets if t.split(".")[0] == "reid" and known(t) not in ("", name)}
    return edges


def _top_level_imports() -> dict[str, set[str]]:
    """``{top-level part of reid: parts it imports at module level}``, read off :func:`_module_imports`."""
    edges: dict[str, set[str]] = {}
    for module, targets in _module_imports().items():
        if module == "reid":
            continue
        part = module.split(".")[1]
        edges.setdefault(part, set()).update(t.split(".")[1] for t in targets if t != "reid" and t.split(".")[1] != part)
    return {part: targets for part, targets in edges.items() if targets}


def test_every_part_of_reid_has_a_floor():
    parts = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file())) and p.stem != "__init__"}
    assert parts == set().union(*FLOORS)


def test_imports_point_down_or_across_a_floor_and_never_in_a_circle():
    edges = _top_level_imports()
    upward = sorted(f"{a} → {b}" for a, targets in edges.items() for b in targets if _floor(b) > _floor(a))
    assert upward == []
    circles = sorted(f"{a} ↔ {b}" for a, targets in edges.items() for b in targets if a < b and a in edges.get(b, set()))
    assert circles == []


def test_only_the_report_and_the_command_line_reach_the_assignment():
    """The assignment (its documented table, fixed-kernel pooling, roles) sits apart from the core: no module
    outside ``reid/report`` and ``reid/cli`` imports ``reid.report.assignment``, not even inside a function."""
    reaching = []
    for path in ROOT.rglob("*.py"):
        if path.relative_to(ROOT).parts[0] in {"report", "cli"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            reaching += [f"{path.relative_to(ROOT)}: {n}" for n in names if n == "reid.report.assignment" or n.startswith("reid.report.assignment.")]
    assert reaching == []


def test_no_module_imports_itself_back_through_others():
    """The whole module graph, not only the floors: no circle of any length (e.g. data.build → data.imageset →
    data.build, the one issue 25 removed)."""
    edges = _module_imports()
    assert "reid.errors" in edges["reid.spec"]  # the graph is read: the spec raises reid's errors
    with pytest.raises(graphlib.CycleError):  # and a circle would be seen
        graphlib.TopologicalSorter({**edges, "reid.errors": edges["reid.errors"] | {"reid.spec"}}).prepare()
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as error:
        raise AssertionError(f"import circle: {' → '.join(error.args[1])}") from None
