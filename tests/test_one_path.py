"""One path per study: `quantrisk privacy` / `quantrisk trojan` run a one-model spec through grid -> cells -> runner,
so the same settings give identical metric rows through the CLI and through a YAML spec; and a rerun resumes."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from conftest import save_tiny_model
from quantrisk.cli import main
from quantrisk.store import Store

SQLQA = Path(__file__).resolve().parent / "data" / "sqlqa" / "sqlqa.subsample.jsonl"
TIMINGS = {"load_seconds", "score_tokens_per_second", "finetune_seconds", "gen_seconds", "gen_tokens_per_s",
           "eval_seconds"}  # wall-clock: differ between any two runs


def rows_of(metrics: list[dict]) -> list[tuple]:
    """Metric rows as comparable tuples, timings left out, in a fixed order."""
    return sorted((m["name"], json.dumps(m["labels"], sort_keys=True), m["value"], m["ci_low"], m["ci_high"])
                  for m in metrics if m["name"] not in TIMINGS)


def store_rows(run: Path, kinds: tuple[str, ...]) -> list[tuple]:
    with Store(run, create=False) as st:
        return rows_of([r for r in st.metrics() if r["kind"] in kinds])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("one-path") / "llama", "llama", seed=5)


def test_privacy_cli_and_spec_give_identical_metric_rows(model_dir, tmp_path, capsys):
    texts = [inspect.getsource(f) for _, f in sorted(vars(inspect).items()) if inspect.isfunction(f)][:20]
    data = tmp_path / "mi.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(texts)))
    settings = dict(precisions="fp32,int8-dynamic,rtn-w2g64", attacks="loss,zlib,lowercase,mink-0.5", n=6,
                    completion_n=2, max_new_tokens=4, resamples=50, seed=3)
    cli = ["privacy", "--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "cli"), "--quiet",
           *(x for k, v in settings.items() for x in (f"--{k.replace('_', '-')}", str(v)))]
    assert main(cli) == 0
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""name: same-settings
seeds: [3]
models: [{{path: {model_dir}}}]
precisions: [fp32, int8-dynamic, rtn-w2g64]
studies:
  privacy: {{n: 6, attacks: [loss, zlib, lowercase, mink-0.5], completion_n: 2, max_new_tokens: 4,
             n_resamples: 50, data: {data}}}
""")
    assert main(["run", str(spec), "--out", str(tmp_path / "spec"), "--quiet"]) == 0
    capsys.readouterr()
    written = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    via_spec = store_rows(tmp_path / "spec", ("privacy", "privacy-blind", "privacy-summary"))
    assert rows_of(written["metrics"]) == via_spec
    names = {r[0] for r in via_spec}
    assert {"auc", "codebleu", "best_attack_auc"} <= names  # the summary cell's derived numbers are in both
    with Store(tmp_path / "spec", create=False) as st:
        skipped = {k: v for c in st.cells() for k, v in c["skipped"].items()}
    assert written["skipped"] == skipped  # e.g. why the correlation was not computed (an untrained model's CodeBLEU)
    assert len([r for r in via_spec if r[0] == "auc"]) == 3 * 4
    # the CLI ran through the runner: a rerun on the same --out resumes (nothing recomputed, same file)
    assert main(cli) == 0
    with Store(tmp_path / "cli", create=False) as st:
        last = st.runs()[-1]
    assert last["n_run"] == 0 and last["n_skipped"] == last["n_cells"] == 3 + 1 + 1  # 3 precision cells, the blind baselines, the summary
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["metrics"] == written["metrics"]


def test_trojan_cli_and_spec_give_identical_metric_rows(model_dir, tmp_path, capsys):
    cli = ["trojan", "--model", str(model_dir), "--data", str(SQLQA), "--dap1", "fp32", "--dap2", "fp32,int8-dynamic",
           "--seeds", "1", "--steps", "2", "--batch-size", "4", "--n-test", "2", "--max-new-tokens", "4",
           "--out", str(tmp_path / "cli"), "--quiet"]
    assert main(cli) == 0
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""name: same-settings
seeds: [1]
models: [{{path: {model_dir}}}]
studies:
  trojan: {{data: {SQLQA}, n_rows: null, split_seed: null, dap1: [fp32], dap2: [fp32, int8-dynamic], steps: 2,
            batch_size: 4, n_test: 2, max_new_tokens: 4}}
""")
    assert main(["run", str(spec), "--out", str(tmp_path / "spec"), "--quiet"]) == 0
    capsys.readouterr()
    written = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    via_spec = store_rows(tmp_path / "spec", ("finetune", "trojan"))
    assert rows_of(written["metrics"]) == via_spec
    assert {"asr", "ftr", "finetune_final_loss", "js_t", "weight_mb"} <= {r[0] for r in via_spec}
    samples = [json.loads(x) for x in (tmp_path / "cli" / "samples.jsonl").read_text().splitlines()]
    with Store(tmp_path / "spec", create=False) as st:
        assert samples == [row for _, row in st.samples(kind="trojan")]
