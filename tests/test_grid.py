"""Grid expansion: stable content-hash ids, shared cells deduplicated, dependencies first, cycles refused."""

from __future__ import annotations

import hashlib
import json

import pytest

from quantrisk.cells import Cell, cell_id
from quantrisk.config import parse_spec
from quantrisk.errors import UsageError
from quantrisk.grid import expand, toposort

SPEC = """\
name: g
seeds: [0, 1]
models:
  - {zoo: pythia}
  - {zoo: llama}
precisions: [fp32, int8-dynamic, quanto-int4]
studies:
  privacy: {n: 10, attacks: [loss, zlib, reference]}
  trojan: {models: [llama-tiny], dap1: [fp32, rtn-w4g64], dap2: [fp32, int8-dynamic, rtn-w2g64], clean_ablation: true}
"""


def test_cell_id_known_answer():
    params = {"b": 2, "a": [1, "x"]}
    text = '{"deps":["d1","d2"],"kind":"k","params":{"a":[1,"x"],"b":2}}'
    assert cell_id("k", params, ("d2", "d1")) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert Cell("k", params, ("d2", "d1")).id == cell_id("k", {"a": [1, "x"], "b": 2}, ("d1", "d2"))
    assert Cell("k", {**params, "b": 3}).id != Cell("k", params).id


def test_expansion_counts_and_shared_cells():
    cells = expand(parse_spec(SPEC))
    kinds = [c.kind for c in cells]
    # pretrain per replicate seed: (2 targets + 2 references) x 2 seeds; the trojan base is its own sql-pretrain
    # cell, one per seed
    assert kinds.count("pretrain") == 4 * 2
    assert kinds.count("sql-pretrain") == 2
    assert kinds.count("privacy") == 2 * 3 * 2            # models x precisions x seeds
    assert kinds.count("privacy-blind") == 2 * 2          # models x seeds (precision-independent)
    summary = [c for c in cells if c.kind == "privacy-summary"]  # best attack + correlation, computed once
    assert len(summary) == 1 and set(summary[0].deps) == {c.id for c in cells if c.kind == "privacy"}
    assert kinds.count("finetune") == 2 * 2 * 2           # dap1 x (poisoned, clean) x seeds
    assert kinds.count("trojan") == 2 * 2 * 2 * 3         # ... x dap2
    assert len({c.id for c in cells}) == len(cells)
    by_id = {c.id: c for c in cells}
    # one fine-tune feeds its three DAP2 cells
    fts = [c for c in cells if c.kind == "finetune"]
    for ft in fts:
        users = [c for c in cells if c.kind == "trojan" and ft.id in c.deps]
        assert sorted(c.params["dap2"] for c in users) == ["fp32", "int8-dynamic", "rtn-w2g64"]
    # every privacy cell of pythia and one seed depends on the same target + reference pretrain cells, pretrained
    # with that seed (seeds replicate pretraining, hence the split, too)
    for seed in (0, 1):
        deps = {c.deps for c in cells if c.kind == "privacy" and c.params["label"] == "pythia-tiny"
                and c.params["seed"] == seed}
        assert len(deps) == 1 and all(by_id[d].kind == "pretrain" for d in next(iter(deps)))
        assert {by_id[d].params["seed"] for d in next(iter(deps))} == {seed}
    blind = [c for c in cells if c.kind == "privacy-blind" and c.params["label"] == "pythia-tiny"]
    assert sorted(c.params["seed"] for c in blind) == [0, 1]
    assert all(len(c.deps) == 1 and by_id[c.deps[0]].params["seed"] == c.params["seed"] for c in blind)
    assert sorted(c.params["seed"] for c in cells if c.kind == "sql-pretrain") == [0, 1]
    fts = {c.params["seed"]: by_id[c.deps[0]].params["seed"] for c in cells if c.kind == "finetune"}
    assert fts == {0: 0, 1: 1}  # each replicate fine-tunes its own base


def test_dependencies_come_first_and_ids_are_stable():
    a = expand(parse_spec(SPEC))
    seen = set()
    for c in a:
        assert all(d in seen for d in c.deps), c.label
        seen.add(c.id)
    b = expand(parse_spec(SPEC.replace("precisions: [fp32, int8-dynamic, quanto-int4]",
                                       "precisions: [fp32, int8-dynamic, quanto-int4]  # same")))
    assert [c.id for c in a] == [c.id for c in b]
    c2 = expand(parse_spec(SPEC.replace("n: 10", "n: 11")))
    changed = {c.id for c in c2} - {c.id for c in a}
    # the privacy cells change, and the summary cell that depends on them
    assert changed and {next(x for x in c2 if x.id == i).kind for i in changed} == {"privacy", "privacy-blind",
                                                                                    "privacy-summary"}


def test_upstream_change_changes_downstream_ids():
    a = {c.label: c.id for c in expand(parse_spec(SPEC))}
    b = {c.label: c.id for c in expand(parse_spec(SPEC.replace("{zoo: llama}", "{zoo: llama, seed: 0, size: tiny}")))}
    assert a == b  # same values spelled differently
    c = {c.label: c.id for c in expand(parse_spec(SPEC.replace("steps: 100", "").replace("clean_ablation: true",
                                                                                          "clean_ablation: true, steps: 7")))}
    assert c["finetune llama-tiny poisoned @ fp32 seed 0"] != a["finetune llama-tiny poisoned @ fp32 seed 0"]
    assert c["trojan llama-tiny poisoned fp32->fp32 seed 0"] != a["trojan llama-tiny poisoned fp32->fp32 seed 0"]
    assert c["pretrain llama-tiny (code + SQL)"] == a["pretrain llama-tiny (code + SQL)"]


def test_toposort_orders_and_refuses_cycles():
    x = Cell("k", {"i": 0})
    y = Cell("k", {"i": 1}, (x.id,))
    z = Cell("k", {"i": 2}, (y.id,))
    assert [c.id for c in toposort([z, y, x])] == [x.id, y.id, z.id]
    p = Cell("k", {"i": 3}, ("q",), "p", id="p")
    q = Cell("k", {"i": 4}, ("p",), "q", id="q")
    with pytest.raises(UsageError, match="cycle: p, q"):
        toposort([p, q])
    with pytest.raises(UsageError, match="unknown cell"):
        toposort([Cell("k", {}, ("nope",))])


def test_synthetic_study_expands_with_shared_parent():
    spec = parse_spec("name: s\nseeds: [3]\nstudies:\n  synthetic: {n_cells: 4}\n")
    cells = expand(spec)
    assert len(cells) == 5 and cells[0].params["index"] == -1
    assert all(c.deps == (cells[0].id,) for c in cells[1:])
    assert json.loads(json.dumps([c.to_dict() for c in cells])) == [c.to_dict() for c in cells]
    assert [Cell.from_dict(c.to_dict()) for c in cells] == cells


def test_exposure_recipe_overrides_reach_the_pretrain_cell_only_when_set():
    plain = "name: r\nprecisions: [fp32]\nmodels:\n  - {zoo: pythia}\nstudies:\n  privacy: {n: 10, attacks: [loss]}\n"
    set_ = plain.replace("{zoo: pythia}", "{zoo: pythia, per_split: 30, max_filler: 50, batch_size: 4}")
    a = [c for c in expand(parse_spec(plain)) if c.kind == "pretrain"]
    b = [c for c in expand(parse_spec(set_)) if c.kind == "pretrain"]
    assert not {"per_split", "max_filler", "batch_size"} & set(a[0].params)  # unset: the cell keeps its old id
    assert (b[0].params["per_split"], b[0].params["max_filler"], b[0].params["batch_size"]) == (30, 50, 4)
    with pytest.raises(UsageError, match="exposure-regime settings"):
        parse_spec(set_.replace("{zoo: pythia,", "{zoo: pythia, regime: memorise,"))


def test_the_trojan_bases_pretraining_settings_reach_its_cell_when_set():
    """`pretrain_steps` / `pretrain_vocab_size` of the trojan study reach the sql-pretrain cell only when set (unset:
    the cell keeps its id), and the pretraining settings built from them carry them."""
    from quantrisk.models.pretrain import default_settings

    plain = "name: t\nprecisions: [fp32]\nmodels:\n  - {zoo: llama}\nstudies:\n  trojan: {models: [llama-tiny]}\n"
    set_ = plain.replace("{models: [llama-tiny]}", "{models: [llama-tiny], pretrain_steps: 7, pretrain_vocab_size: 1024}")
    a = [c for c in expand(parse_spec(plain)) if c.kind == "sql-pretrain"]
    b = [c for c in expand(parse_spec(set_)) if c.kind == "sql-pretrain"]
    assert not {"pretrain_steps", "pretrain_vocab_size"} & set(a[0].params)
    assert (b[0].params["pretrain_steps"], b[0].params["pretrain_vocab_size"]) == (7, 1024)
    s = default_settings("llama", "tiny", regime="memorise", steps=b[0].params["pretrain_steps"],
                         vocab_size=b[0].params["pretrain_vocab_size"])
    assert (s.steps, s.vocab_size) == (7, 1024) and default_settings("llama", "tiny", regime="memorise").vocab_size != 1024
    with pytest.raises(UsageError, match="pretrain_vocab_size"):
        parse_spec(set_.replace("1024", "100"))
