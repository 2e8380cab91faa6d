"""The architecture of docs/architecture.md, checked on the source: one-way imports between the
plugin core, its napari glue, training, evaluation and benchmarks; inside the core, sub-packages
by concern with one-way arrows between them; no import cycle (every import counts: module
level, inside functions and under ``if TYPE_CHECKING:``, because a reader follows all of them);
modules small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
PACKAGES = {
    "napari_cellflux": REPO / "src" / "napari_cellflux",
    "training": REPO / "training",
    "evaluation": REPO / "evaluation",
    "benchmarks": REPO / "benchmarks",
}
# What each part may import from the others (one-way: left never imports right).
ALLOWED = {
    "napari_cellflux.core": {"napari_cellflux.core"},
    "napari_cellflux._gui": {"napari_cellflux.core", "napari_cellflux._gui"},
    "training": {"napari_cellflux.core", "training"},
    "evaluation": {"napari_cellflux.core", "training", "evaluation"},
    "benchmarks": {"napari_cellflux.core", "training", "evaluation", "benchmarks"},
}
# Inside the core: each sub-package and the sub-packages it may import (docs/architecture.md).
CORE_LAYERS = {
    "cells": set(),
    "conditions": set(),
    "network": set(),
    "synthetic": set(),
    "formats": {"cells"},
    "simulation": {"cells", "conditions", "network", "formats"},
    "doses": {"cells", "formats", "simulation"},
    "results": {"cells", "formats", "simulation"},
    "trainer": {"cells", "conditions", "formats"},
}
GUI_LIBRARIES = ("napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy")
# "About 400 lines" (450 as ruff format writes them): a module longer than this should be
# cut where it hides steps.
LINE_BUDGET = 450


def _modules() -> dict[str, Path]:
    """Every non-test module of the four packages, by dotted name."""
    found = {}
    for name, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            if "tests" in rel.parts or "_tests" in rel.parts:
                continue
            parts = [name, *rel.parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Absolute names of everything ``module`` imports, wherever the import statement is."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: {n for n in _imports(m, p) if n in modules and n != m} for m, p in modules.items()}


def _part(module: str) -> str:
    for part in sorted(ALLOWED, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    return module


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                walk(dep, [*stack, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_each_part_imports_only_the_parts_below_it():
    wrong = []
    for module, deps in _graph().items():
        part = _part(module)
        if part not in ALLOWED:  # the package roots (napari_cellflux/__init__, __main__)
            continue
        wrong += [
            f"{module} imports {dep}"
            for dep in deps
            if _part(dep) in ALLOWED and _part(dep) not in ALLOWED[part]
        ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("part", ["napari_cellflux.core", "training", "evaluation"])
def test_headless_parts_never_import_a_gui_library(part):
    modules = _modules()
    wrong = [
        f"{m} imports {n}"
        for m, p in modules.items()
        if _part(m) == part
        for n in _imports(m, p)
        if n.split(".")[0] in GUI_LIBRARIES
    ]
    assert not wrong, "\n".join(wrong)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The checker itself: imports inside functions and under TYPE_CHECKING make cycles."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from .c import x\ndef g():\n    from pkg import a\n"
    )
    (pkg / "c.py").write_text("from .a import f\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["_"]), "PACKAGES", {"pkg": pkg})
    graph = _graph()
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg", "pkg.a", "pkg.c"}  # the TYPE_CHECKING import counts
    assert graph["pkg.c"] == {"pkg.a"}
    with pytest.raises(AssertionError, match="pkg.a -> pkg.b -> pkg.a"):
        test_the_import_graph_has_no_cycle()
    with pytest.raises(AssertionError, match="pkg.a -> pkg.b -> pkg.c -> pkg.a"):
        test_the_import_graph_has_no_cycle()


def _core_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] != ["napari_cellflux", "core"] or len(parts) < 3:
        return None
    return parts[2]


def test_every_core_module_sits_in_a_sub_package_with_a_stated_purpose():
    core = PACKAGES["napari_cellflux"] / "core"
    flat = sorted(p.name for p in core.glob("*.py") if p.name != "__init__.py")
    assert not flat, f"core modules outside a sub-package: {flat}"
    packages = {p.name for p in core.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(CORE_LAYERS), "core sub-packages and CORE_LAYERS disagree"
    for name in packages:
        doc = ast.get_docstring(ast.parse((core / name / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) == 1, f"core/{name}/__init__.py: one-line purpose"


def test_core_sub_packages_import_only_the_ones_below_them():
    wrong = []
    for module, deps in _graph().items():
        layer = _core_layer(module)
        if layer is None:
            continue
        for dep in deps:
            target = _core_layer(dep)
            if target and target != layer and target not in CORE_LAYERS[layer]:
                wrong.append(f"{module} ({layer}) imports {dep} ({target})")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_core_layers_are_drawn_in_docs_architecture():
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    for layer, below in CORE_LAYERS.items():
        line = f"{layer}/ -> " + (", ".join(sorted(below)) if below else "nothing")
        assert line in doc, f"docs/architecture.md lacks the line {line!r}"


def test_modules_stay_small_enough_to_read():
    long = {
        m: n
        for m, p in _modules().items()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > LINE_BUDGET
    }
    assert not long, f"modules over {LINE_BUDGET} lines (cut them where they hide steps): {long}"


def test_docs_architecture_names_every_module():
    """docs/architecture.md shows the tree: a module added or renamed must appear there."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = sorted(
        m
        for m, p in _modules().items()
        if p.name not in ("__init__.py", "__main__.py") and p.name not in doc
    )
    assert not missing, f"docs/architecture.md does not name {missing}: add them to the tree"
