"""Attack inputs: every attack's inputs have a provider; the study computes only what the chosen attacks need; a new
input + attack plug in without touching the study; unavailable inputs skip their attacks; model-independent inputs
are computed once per process."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from conftest import save_tiny_model
from quantrisk.privacy.attacks import ATTACKS, Attack, parse_attacks, required_inputs, uses_reference_model
from quantrisk.privacy.inputs import PROVIDERS, InputUnavailable, Provider, register_provider
from quantrisk.privacy.members import MISample, MISet
from quantrisk.privacy.study import PrivacyOptions, privacy_at_precision

TEXTS = [inspect.getsource(f) for f in (inspect.getmodule, inspect.getfile, inspect.cleandoc, inspect.isclass,
                                        inspect.ismodule, inspect.getdoc, inspect.isfunction, inspect.ismethod)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("inputs") / "llama", "llama", seed=3)


def mi_set(prefix_pool: list[str] | None = None) -> MISet:
    samples = [MISample(f"s{i}", t, i % 2) for i, t in enumerate(TEXTS)]
    return MISet(samples, {}, "test", prefix_pool or [])


def spy(monkeypatch, name: str) -> list[int]:
    """Wrap provider `name` so each call is counted."""
    calls: list[int] = []
    p = PROVIDERS[name]

    def counted(ctx):  # noqa: ANN001, ANN202
        calls.append(1)
        return p.fn(ctx)

    monkeypatch.setitem(PROVIDERS, name, Provider(name, counted, p.target_model, p.reference_model, p.description))
    return calls


def run(model_dir: Path, attacks: tuple[str, ...], precision: str = "fp32", **kw):  # noqa: ANN003, ANN201
    opts = PrivacyOptions(attacks=attacks, n_resamples=20, completion_n=0)
    return privacy_at_precision(model_dir, precision, samples=kw.pop("samples", mi_set()), options=opts, **kw)


def test_every_attack_input_has_a_provider():
    for attack in ATTACKS.values():
        assert attack.needs <= set(PROVIDERS), attack.name
    assert required_inputs(parse_attacks("loss,zlib")) == {"target"}
    assert required_inputs(parse_attacks("lowercase,recall")) == {"target", "lower", "conditioned"}
    assert uses_reference_model(["loss", "reference"]) and not uses_reference_model(["loss", "lowercase"])


def test_only_the_inputs_the_attacks_need_are_computed(model_dir, monkeypatch):
    lower, cond, ref = spy(monkeypatch, "lower"), spy(monkeypatch, "conditioned"), spy(monkeypatch, "reference")
    r = run(model_dir, ("loss", "mink"))
    assert (len(lower), len(cond), len(ref)) == (0, 0, 0)
    assert {m.labels["attack"] for m in r.metrics if m.name == "auc"} == {"loss", "mink-0.2"}
    r = run(model_dir, ("loss", "lowercase"))
    assert (len(lower), len(cond), len(ref)) == (1, 0, 0)
    assert r.metric("auc", attack="lowercase") >= 0


def test_unavailable_inputs_skip_their_attacks_with_the_reason(model_dir):
    r = run(model_dir, ("loss", "reference", "recall"))  # no reference model, no prefix pool
    assert r.skipped["reference: no reference model"] == 1
    assert r.skipped["recall: no known non-member text left for the prefix (use a smaller --n)"] == 1
    assert {m.labels["attack"] for m in r.metrics if m.name == "auc"} == {"loss"}


def test_reference_input_is_computed_once_across_precisions(model_dir, tmp_path, monkeypatch):
    ref = spy(monkeypatch, "reference")
    reference = save_tiny_model(tmp_path / "ref", "llama", seed=4)
    a = run(model_dir, ("reference",), "fp32", reference_source=reference)
    b = run(model_dir, ("reference",), "int8-dynamic", reference_source=reference)
    assert len(ref) == 1 and a.environment["reference_model"] == str(reference)
    assert a.metric("auc", attack="reference") >= 0 and b.metric("auc", attack="reference") >= 0


def test_a_new_input_and_attack_plug_in_without_touching_the_study(model_dir, monkeypatch):
    def text_bytes(ctx):  # noqa: ANN001, ANN202 - per-sample value: the UTF-8 size; None for one sample
        return [None if s.id == "s0" else float(len(s.text.encode())) for s in ctx.samples]

    monkeypatch.setitem(PROVIDERS, "text_bytes", Provider("text_bytes", text_bytes, target_model=False))
    monkeypatch.setitem(ATTACKS, "bytesloss", Attack("bytesloss", lambda s, k: s["text_bytes"] * float(
        s.target.logprobs.mean()), frozenset({"target", "text_bytes"})))
    r = run(model_dir, ("bytesloss",))
    rows = [s for s in r.samples if s["kind"] == "mi"]
    assert rows[0]["bytesloss"] is None and all(isinstance(x["bytesloss"], float) for x in rows[1:])
    assert r.skipped["bytesloss: score not computable"] == 1 and 0 <= r.metric("auc", attack="bytesloss") <= 1


def test_provider_registry_rules(model_dir, monkeypatch):
    with pytest.raises(ValueError, match="attack input 'lower' is already registered"):
        register_provider("lower")(lambda ctx: [])
    monkeypatch.setitem(PROVIDERS, "lower", Provider("lower", lambda ctx: [None]))  # wrong length
    with pytest.raises(ValueError, match="provider returned 1 values for 8 samples"):
        run(model_dir, ("lowercase",))

    def broken(ctx):  # noqa: ANN001, ANN202
        raise InputUnavailable("no lower-case text today")

    monkeypatch.setitem(PROVIDERS, "lower", Provider("lower", broken))
    assert run(model_dir, ("loss", "lowercase")).skipped["lowercase: no lower-case text today"] == 1
