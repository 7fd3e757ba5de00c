"""The layer rules of docs/ARCHITECTURE.md, checked on the source (imports inside functions count too)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "quantrisk"
EXECUTION = ("quantrisk.config", "quantrisk.grid", "quantrisk.cells", "quantrisk.runner", "quantrisk.executors",
             "quantrisk.store", "quantrisk.report", "quantrisk.commands", "quantrisk.cli", "quantrisk.study_runs")
# module (or package) -> module prefixes it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "quantrisk.privacy": EXECUTION,
    "quantrisk.trojan": EXECUTION,
    "quantrisk.models": EXECUTION,
    "quantrisk.data": EXECUTION,
    "quantrisk.config": EXECUTION[1:],
    "quantrisk.spec_studies": EXECUTION,
    "quantrisk.cells": ("quantrisk.config", "quantrisk.grid", "quantrisk.runner", "quantrisk.store", "quantrisk.report"),
    "quantrisk.grid": ("quantrisk.runner", "quantrisk.store", "quantrisk.report"),
    "quantrisk.comparisons": (*EXECUTION, "quantrisk.privacy", "quantrisk.trojan", "quantrisk.models"),
    "quantrisk.findings": (*EXECUTION, "quantrisk.privacy", "quantrisk.trojan", "quantrisk.models"),
    "quantrisk.findings_trojan": (*EXECUTION, "quantrisk.privacy", "quantrisk.trojan", "quantrisk.models"),
    "quantrisk.report": ("quantrisk.privacy", "quantrisk.trojan", "quantrisk.models", "quantrisk.cells",
                         "quantrisk.runner", "quantrisk.grid", "quantrisk.study_runs"),
    "quantrisk.study_runs": ("quantrisk.report", "quantrisk.commands", "quantrisk.cli"),
}
# the registries' metadata (names, orientation) may be read above their layer
ALLOWED = ("quantrisk.trojan.metrics", "quantrisk.privacy.attacks")


def imports_of(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def test_no_module_imports_a_layer_above_it():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        name = module_name(path)
        for owner, banned in FORBIDDEN.items():
            if name == owner or name.startswith(owner + "."):
                bad += [f"{name} imports {m}" for m in sorted(imports_of(path))
                        if any(m == b or m.startswith(b + ".") for b in banned) and m not in ALLOWED]
    assert not bad, "\n".join(bad)


def test_the_rule_catches_a_violation(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("def f():\n    from quantrisk.grid import expand\n")
    assert "quantrisk.grid" in imports_of(p)
