"""The import graph of the package, computed from the source with `ast` (imports inside functions and under
`TYPE_CHECKING` count): no import circle, no arrow that runs back up between rooms (a room is a top-level module
or sub-package of `quantrisk`, drawn as one box: the graph of rooms has no loop, so each room stands above all it
imports), and every import allowed by the layer table below (docs/ARCHITECTURE.md draws the same table). An
allow-list: a new module belongs to the layer of its longest listed prefix, and a new arrow between layers must be
added here on purpose, with no exception for single modules.

Every study plugs in from below the same way: its `cell.py` (cell kinds, registered in `cells`) and `report.py`
(report sections, registered in `report.sections`) are in the `plugged` layer, by their longer prefix, while the
rest of its package stays in `studies`. So `cells` and `report` import no study, a study's core cannot import its
own plug-ins, and the study's room (the package, one box) stands above `cells` and `report` with no back arrow."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "quantrisk"

# layer -> the module prefixes in it (the longest matching prefix decides; a package's modules follow it)
LAYERS: dict[str, tuple[str, ...]] = {
    "leaves": ("quantrisk", "quantrisk.errors", "quantrisk.results", "quantrisk.registry", "quantrisk.environment",
               "quantrisk.threads", "quantrisk.allocator", "quantrisk.progress", "quantrisk.quiet",
               "quantrisk.runlock", "quantrisk.spec_yaml", "quantrisk.proportions", "quantrisk.run_display",
               "quantrisk.margins", "quantrisk.safefs", "quantrisk.sanitize", "quantrisk.network"),
    "numerics": ("quantrisk.stats", "quantrisk.scoring", "quantrisk.vocab_stats"),
    "data": ("quantrisk.data",),
    "backends": ("quantrisk.models.quantizers",),
    "precision": ("quantrisk.precision",),
    "models": ("quantrisk.models",),
    "analysis": ("quantrisk.comparisons", "quantrisk.findings"),
    "studies": ("quantrisk.privacy", "quantrisk.trojan"),
    "cells": ("quantrisk.cells",),
    "store": ("quantrisk.store",),
    "report": ("quantrisk.report",),
    # a study's plug-in modules (its cell kinds, its report sections) and the qattack study, which is all plug-in
    "plugged": ("quantrisk.privacy.cell", "quantrisk.privacy.report", "quantrisk.trojan.cell", "quantrisk.trojan.report",
                "quantrisk.qattack", "quantrisk.studies"),
    "spec": ("quantrisk.config", "quantrisk.spec_studies"),
    "execution": ("quantrisk.executors", "quantrisk.grid", "quantrisk.runner"),
    "study_runs": ("quantrisk.study_runs",),
    "cli": ("quantrisk.cli", "quantrisk.commands"),
}
_BASE = ("leaves",)
# layer -> the layers it may import (besides itself)
ALLOWED: dict[str, tuple[str, ...]] = {
    "leaves": (),
    "numerics": _BASE,
    "data": _BASE,
    "backends": _BASE,
    "precision": (*_BASE, "backends"),
    "models": (*_BASE, "numerics", "data", "backends", "precision"),
    "analysis": (*_BASE, "numerics", "precision"),
    "studies": (*_BASE, "numerics", "data", "backends", "precision", "models", "analysis"),
    "cells": (*_BASE, "numerics", "data", "precision", "models"),  # no study: each registers its kinds from below
    "store": (*_BASE, "cells"),
    "report": (*_BASE, "numerics", "precision", "analysis", "store"),
    "plugged": (*_BASE, "numerics", "data", "backends", "precision", "models", "analysis", "studies", "cells",
                "store", "report"),
    "spec": (*_BASE, "data", "precision", "models", "studies", "plugged"),
    "execution": (*_BASE, "precision", "models", "studies", "plugged", "spec", "cells", "store"),
    "study_runs": (*_BASE, "studies", "plugged", "spec", "cells", "store", "execution"),
    "cli": tuple(LAYERS),
}
# circles owned by another change in flight (each must be gone by the time its change lands)
KNOWN_CIRCLES: tuple[frozenset[str], ...] = ()


def module_name(path: Path, root: Path = SRC) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """module -> the package modules it imports (a `from a import b` of a submodule b is an arrow to a.b)."""
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    top = root.name

    def resolve(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t == top or t.startswith(top + "."):
                    r = resolve(t)
                    if r is not None and r != name:
                        out.add(r)
        graph[name] = out
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def room_of(module: str) -> str:
    """The room a module is drawn in: `quantrisk.x` for a top-level module x or any module of sub-package x."""
    return ".".join(module.split(".")[:2])


def room_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """room -> the other rooms its modules import."""
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        rooms.setdefault(room_of(module), set()).update(room_of(t) for t in targets)
    return {r: t - {r} for r, t in rooms.items()}


def back_arrows(graph: dict[str, set[str]]) -> list[str]:
    """The module imports that tie rooms into a loop (one of them runs back up whichever way the floors are laid)."""
    rooms = room_graph(graph)
    bad = []
    for loop in circles(rooms):
        for module, targets in sorted(graph.items()):
            for t in sorted(targets):
                if room_of(module) in loop and room_of(t) in loop and room_of(t) != room_of(module):
                    bad.append(f"{module} imports {t} ({room_of(module)} and {room_of(t)} import each other)")
    return bad


def layer_of(module: str) -> str:
    best, where = "", None
    for layer, prefixes in LAYERS.items():
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best):
                best, where = p, layer
    assert where is not None, f"{module} is in no layer: add it to LAYERS"
    return where


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module)
        for t in sorted(targets):
            theirs = layer_of(t)
            if theirs != mine and theirs not in ALLOWED[mine]:
                bad.append(f"{module} ({mine}) imports {t} ({theirs})")
    return bad


def test_the_package_has_no_import_circle():
    found = [sorted(c) for c in circles(import_graph()) if c not in KNOWN_CIRCLES]
    assert not found, found


def test_no_arrow_runs_back_up_between_rooms():
    bad = back_arrows(import_graph())
    assert not bad, "\n".join(bad)


def test_every_import_is_allowed_by_the_layer_table():
    assert set(ALLOWED) == set(LAYERS)
    bad = layer_violations(import_graph())
    assert not bad, "\n".join(bad)


def test_the_checks_catch_a_circle_and_an_upward_import(tmp_path):
    pkg = tmp_path / "quantrisk"
    (pkg / "privacy").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "privacy" / "__init__.py").write_text("")
    (pkg / "privacy" / "study.py").write_text("def f():\n    from quantrisk.runner import run\n")  # inside a function
    (pkg / "runner.py").write_text("from quantrisk.privacy import study\n")
    (pkg / "errors.py").write_text("from .privacy.study import f\n")  # relative, a leaf importing a study
    graph = import_graph(pkg)
    assert graph["quantrisk.privacy.study"] == {"quantrisk.runner"}
    assert graph["quantrisk.runner"] == {"quantrisk.privacy.study"}
    assert circles(graph) == [frozenset({"quantrisk.privacy.study", "quantrisk.runner"})]
    assert layer_violations(graph) == ["quantrisk.errors (leaves) imports quantrisk.privacy.study (studies)",
                                       "quantrisk.privacy.study (studies) imports quantrisk.runner (execution)"]


def test_the_check_catches_rooms_that_import_each_other_without_a_module_circle(tmp_path):
    pkg = tmp_path / "quantrisk"
    for d in ("report", "qattack"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "report" / "tables.py").write_text("X = 1\n")
    (pkg / "report" / "sections.py").write_text("def f():\n    from quantrisk.qattack.report import g\n")
    (pkg / "qattack" / "report.py").write_text("from quantrisk.report.tables import X\n")
    graph = import_graph(pkg)
    assert circles(graph) == []
    assert back_arrows(graph) == [
        "quantrisk.qattack.report imports quantrisk.report.tables (quantrisk.qattack and quantrisk.report import "
        "each other)",
        "quantrisk.report.sections imports quantrisk.qattack.report (quantrisk.report and quantrisk.qattack import "
        "each other)"]


def test_every_command_is_a_module_level_function():
    """Each CLI command is a function of its command module (importable and callable directly), not a closure
    defined inside `register(app)`; a command written as a closure fails here."""
    from quantrisk.cli import app

    callbacks = [c.callback for c in app.registered_commands]
    assert len(callbacks) >= 14
    closures = [f.__qualname__ for f in callbacks if "<locals>" in f.__qualname__]
    assert not closures, closures
    for f in callbacks:
        assert getattr(importlib.import_module(f.__module__), f.__name__) is f
