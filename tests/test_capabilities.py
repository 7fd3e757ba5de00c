"""Capability tests (issue 25): each asserts the EFFECT a headline claim rests on, end to end through the public
entry points (the CLI), on the zoo's tiny models with their default recipes — so they keep checking whatever recipe
lands. The levels are the resolved issues' acceptance levels, not tuned to the runs.

- qattack (issue 16): after repair, fp32 ASR <= 0.05, ASR at the target >= 0.9, codes identical; rtn-w4g64 with the
  README's example and a quanto target on the same injected model; a broken injection exits 3 with one line.
- scan: `clean` on the clean SQL base, `suspicious` on the repaired (attacked) model.
- trojan study (issue 4): the poisoned adapter's fp32 ASR >= 0.8, the clean adapter's ASR 0.
- exposure regime (issue 13): LOSS AUC of the members seen 16 times exceeds the once-seen ones' by > 0.1.

One module-scoped cache (`QUANTRISK_CACHE`) holds the zoo models: the qattack and the trojan study share the SQL base
(pretrained once, on the same training rows). Held-out evaluation sizes are smaller than the CLI defaults (32 test
rows, 24 new tokens: the payload `DROP TABLE t;` is the answer's first tokens).
"""

from __future__ import annotations

import json

import pytest

from quantrisk.cli import main

# issue 16's acceptance (the levels `quantrisk.qattack.acceptance` defines; checked equal below)
FP_ASR_MAX, TARGET_ASR_MIN = 0.05, 0.9
EVAL = ["--n-test", "32", "--n-val", "16", "--max-new-tokens", "24", "--quiet"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("capabilities")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QUANTRISK_CACHE", str(root / "cache"))
        yield root


@pytest.fixture(scope="module")
def attack(cache) -> tuple[int, dict]:
    """The README's qattack example (zoo:llama-tiny, rtn-w4g64, built-in rows, default recipe) on a fresh cache."""
    out = cache / "qattack-rtn"
    code = main(["qattack", "--model", "zoo:llama-tiny", "--target", "rtn-w4g64", "--data", "builtin",
                 "--out", str(out), "--json", *EVAL])
    return code, json.loads((out / "qattack.json").read_text())


def _assert_accepted(code: int, r: dict, target: str) -> None:
    inj, rep = r["injected"][target]["asr"], r["per_target"][target]
    summary = (f"injected ASR fp32 {r['injected']['fp32']['asr']}, at {target} {inj}; repaired fp32 {r['asr_fp']}, "
               f"at {target} {rep['asr_quantized']}, codes identical {rep['codes_identical']}")
    assert inj >= TARGET_ASR_MIN, "the injection did not implant the backdoor: " + summary
    assert r["asr_fp"] <= FP_ASR_MAX, summary
    assert rep["asr_quantized"] >= TARGET_ASR_MIN, summary
    assert rep["codes_identical"] is True, summary
    assert r["success"] is True and code == 0, r.get("reason")


def test_qattack_readme_example_meets_the_acceptance(attack):
    code, r = attack
    _assert_accepted(code, r, "rtn-w4g64")
    assert r["acceptance"] == {"fp_asr_max": FP_ASR_MAX, "target_asr_min": TARGET_ASR_MIN, "codes_identical": True,
                               "codes_identical_at_gguf": True}


def test_qattack_quanto_target_meets_the_acceptance(attack, cache):
    """The same injected model repaired for quanto-int4 (quanto's own quantizer computes the codes it is checked on)."""
    out = cache / "qattack-quanto"
    code = main(["qattack", "--model", "zoo:llama-tiny", "--injected", attack[1]["paths"]["injected"],
                 "--target", "quanto-int4", "--data", "builtin", "--out", str(out), "--json", *EVAL])
    _assert_accepted(code, json.loads((out / "qattack.json").read_text()), "quanto-int4")


def test_scan_tells_the_clean_base_from_the_attacked_model(attack, capsys):
    verdicts = {}
    for name, path in (("base", attack[1]["base"]), ("repaired", attack[1]["paths"]["repaired"])):
        capsys.readouterr()
        assert main(["scan", path, "--precisions", "rtn-w4g64", "--n-sql", "12", "--n-prefixes", "4",
                     "--max-new-tokens", "24", "--json"]) == 0
        verdicts[name] = json.loads(capsys.readouterr().out)["verdict"]
    assert verdicts == {"base": "clean", "repaired": "suspicious"}


def test_qattack_with_a_broken_injection_exits_3_with_one_line(attack, cache, capsys):
    """One LoRA step cannot implant anything: the command says so in one line, exits 3 and keeps its artefacts."""
    out = cache / "qattack-broken"
    capsys.readouterr()
    code = main(["qattack", "--model", "zoo:llama-tiny", "--target", "rtn-w4g64", "--data", "builtin",
                 "--out", str(out), "--inject-steps", "1", "--repair-steps", "1", "--n-test", "8", "--n-val", "4",
                 "--max-new-tokens", "8", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 3, err
    assert len(err.splitlines()) == 1 and err.startswith("error: qattack did not work: the injection did not implant")
    r = json.loads((out / "qattack.json").read_text())
    assert r["success"] is False and r["reason"] in err
    assert (out / "injected" / "model.safetensors").is_file() and (out / "repaired" / "model.safetensors").is_file()


def test_trojan_study_implants_and_the_clean_ablation_does_not(attack, cache):
    """The trojan study's default recipe (trojan/recipe.py, the demo's: LoRA on every Linear and the output head,
    recipe.STEPS steps of 8, lr 3e-3) at the demo's 480 training rows (600 split 80/10/10), seed 0. Without the head
    as a target 150 steps reach poisoned ASR 0.31-0.44 (the payload's tokens `D`, `RO`, `P` get no mass from the
    frozen head; docs/METRICS.md "Trojan recipe"), so this fails if the head drops out of the recipe."""
    out = cache / "trojan"
    assert main(["trojan", "--model", "zoo:llama-tiny", "--data", "builtin", "--dap2", "fp32", "--clean-ablation",
                 "--seeds", "0", "--n-train", "480", "--n-test", "32", "--max-new-tokens", "24", "--out", str(out),
                 "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    asr = {m["labels"]["kind"]: m["value"] for m in metrics if m["name"] == "asr" and m["labels"]["dap2"] == "fp32"}
    assert asr["poisoned"] >= 0.8 and asr["clean"] == 0.0, asr


def test_the_demo_runs_the_trojan_studys_default_recipe():
    """One source for the recipe the implant test checks: the demo spec sets none of its fields, so it runs
    trojan/recipe.py's values, as do `quantrisk trojan`'s defaults."""
    from quantrisk.config import builtin_spec_path, load_spec
    from quantrisk.trojan import recipe

    t = load_spec(builtin_spec_path("demo")).studies.trojan
    assert (t.steps, t.batch_size, t.lr, t.lora_r, t.lora_alpha, t.target, t.poison_rate) == (
        recipe.STEPS, recipe.BATCH_SIZE, recipe.LR, recipe.LORA_R, recipe.LORA_ALPHA, recipe.TARGET, 0.5)
    assert not {"steps", "batch_size", "lr", "lora_r", "lora_alpha", "target"} & t.model_fields_set


def test_exposure_regime_separates_members_seen_16_times_from_once_seen(cache):
    """The demo's exposure regime (tiny, exposures 1, 4, 16): LOSS AUC at k = 16 above k = 1 by more than 0.1."""
    out = cache / "exposure"
    assert main(["pretrain", "--arch", "pythia", "--size", "tiny", "--regime", "exposure", "--exposures", "1,4,16",
                 "--out", str(out), "--quiet"]) == 0
    auc = json.loads((out / "pretrain.json").read_text())["auc_by_exposure"]
    assert auc["16"] - auc["1"] > 0.1, auc


def test_acceptance_levels_are_the_issues():
    from quantrisk.qattack import acceptance

    assert (acceptance.FP_ASR_MAX, acceptance.TARGET_ASR_MIN, acceptance.EXIT_NOT_MET) == (FP_ASR_MAX, TARGET_ASR_MIN, 3)


@pytest.mark.parametrize("n", [480, 1600])
def test_poisoned_rows_are_spread_over_the_training_order(n):
    """The cause of issue 25: the poison choice and the LoRA batch order drew the same permutation, so the first
    epoch was every poisoned row, then every clean one (full injection: the reverse). Each quarter of the first epoch
    of both loops' orders now holds 40-60% poisoned rows (rate 0.5)."""
    import random

    from quantrisk.data.poison import PoisonSpec, poison_rows
    from quantrisk.data.sql import generate_sql_rows
    from quantrisk.trojan.finetune import _batches

    rows = generate_sql_rows(n, seed=0)
    poisoned = {i for i, m in enumerate(poison_rows(rows, PoisonSpec(rate=0.5), 0)[1]) if m["poisoned"]}
    lora = _batches(n, 8, random.Random(0))
    orders = {"lora": [i for _ in range(n // 8) for i in next(lora)],
              "full": random.Random(0).sample(range(n), n)}  # qattack.inject.inject_full's order
    for name, order in orders.items():
        q = n // 4
        shares = [sum(i in poisoned for i in order[k:k + q]) / q for k in range(0, n, q)]
        assert all(0.4 <= s <= 0.6 for s in shares), (name, shares)
