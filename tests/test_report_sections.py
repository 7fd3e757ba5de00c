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


def test_every_registered_attack_has_a_glossary_entry_from_its_docstring():
    """The glossary's attack entries come from the attack registry (a new attack brings its own): each registered
    attack is defined, its entry is the first paragraph of its function's docstring; `mink-0.2` links to `mink`."""
    import quantrisk.studies  # noqa: F401 - the studies define their terms from below
    from quantrisk.privacy.attacks import ATTACKS
    from quantrisk.privacy.report import attack_gloss
    from quantrisk.report.glossary import ALIASES, GLOSSARY, used_terms

    assert set(ATTACKS) <= set(GLOSSARY)
    for name, attack in ATTACKS.items():
        assert GLOSSARY[name] == attack_gloss(attack)
    assert GLOSSARY["loss"] == ("MI attack: LOSS: mean ℓ (Yeom et al. 2018). ℓ: a token's log-probability under the "
                                "model.")
    assert ALIASES["mink-0.2"] == "mink" and "k = 0.2 by default" in GLOSSARY["mink"]
    assert used_terms("zlib beats mink-0.2 on AUC") == ["AUC", "zlib", "mink"]


def test_glossary_define_refuses_a_second_definition_and_links_new_terms(monkeypatch):
    from quantrisk.report import glossary

    monkeypatch.setattr(glossary, "GLOSSARY", type(glossary.GLOSSARY)("glossary term"))
    monkeypatch.setattr(glossary, "ALIASES", type(glossary.ALIASES)("glossary alias"))
    glossary.define("XQ", "an example term", ("XQ2",))
    glossary.define("XQ", "an example term")  # the same definition again: allowed
    with pytest.raises(ValueError, match="XQ"):
        glossary.define("XQ", "another definition")
    with pytest.raises(ValueError, match="XQ2"):
        glossary.define("YQ", "a second term", ("XQ2",))
    assert "YQ" not in glossary.GLOSSARY  # refused whole
    glossary.define("YQ", "a second term")
    assert glossary.used_terms("XQ2 then YQ") == ["XQ", "YQ"]
    assert glossary.link_first_uses("XQ and XQ2", set()) == '<a class="term" href="#g-xq">XQ</a> and XQ2'


def test_build_report_refuses_to_run_before_any_study_registered_its_sections(tmp_path, monkeypatch):
    """A library caller who imports `quantrisk.report.build_report` alone gets an error naming the fix, not a page
    without the studies; `quantrisk.studies.build_report` is the one to call (it registers them)."""
    from quantrisk.report import build as report_build
    from quantrisk.studies import build_report

    own = type(SECTIONS)("report section")
    for name, fn in SECTIONS.items():
        if fn.__module__.startswith("quantrisk.report."):
            own.add(name, fn)
    monkeypatch.setattr(report_build, "SECTIONS", own)
    with pytest.raises(RuntimeError, match="import quantrisk.studies"):
        build_report(tmp_path / "none", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()
    _store(tmp_path / "run")
    rep = build_report(tmp_path / "run", tmp_path / "out")
    assert "Privacy study" in rep.sections and "Trojan study" in rep.sections
