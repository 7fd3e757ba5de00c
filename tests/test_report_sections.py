"""Report sections are registered functions (`report.sections.SECTIONS`): adding one is one function; a name taken by
another function is refused; `collect_sections` puts the head first, then the body in registration order."""

from __future__ import annotations

import pytest

from quantrisk.report import sections
from quantrisk.report.sections import SECTIONS, Section, collect_sections, section
from quantrisk.store import Store
from test_report import _store


def test_a_registered_section_appears_in_the_report_after_the_body(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    _store(path)
    with Store(path, create=False) as st:
        before = [s.title for s in collect_sections(st)]
    parts = dict(sections.PARTS)
    monkeypatch.setattr(sections, "SECTIONS", type(SECTIONS)("report section"))
    monkeypatch.setattr(sections, "PARTS", {})
    for name, fn in SECTIONS.items():
        sections.section(name, parts[name])(fn)
        if name == "failed cells":  # a throw-away section, registered after the last body section
            sections.section("example")(lambda c: [Section("Example", f"{len(c.found)} findings")])
    with Store(path, create=False) as st:
        after = [s.title for s in collect_sections(st)]
    assert after == [*before[:-1], "Example", before[-1]]  # the environment (tail) stays last
    assert before[:2] == ["Bottom line", "Setup"] and before[-1] == "Environment"


def test_a_section_name_taken_by_another_function_is_refused():
    with pytest.raises(ValueError, match="report section 'setup' is already registered"):
        section("setup", "head")(lambda c: [])
