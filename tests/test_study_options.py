"""Each study option is defined once (`privacy.options.PrivacySettings`, `trojan.options.TrojanSettings`,
`qattack.options.QattackSettings`, and the scanner's `qattack.options.ScanSettings`): every option can be set from
the spec (the scanner has no spec study) and from the CLI, with the same default; the cells read it back typed; options
added since cells were stored leave the ids of cells that do not set them unchanged."""

from __future__ import annotations

import pytest
import typer

from quantrisk.cli import app
from quantrisk.commands._options import flag
from quantrisk.config import PrivacyStudy, QattackStudy, TrojanStudy, parse_spec
from quantrisk.errors import UsageError
from quantrisk.grid import expand
from quantrisk.options import option_extra
from quantrisk.privacy.attacks import parse_attacks
from quantrisk.privacy.options import PrivacyOptions, PrivacySettings
from quantrisk.qattack.options import QattackSettings, ScanSettings
from quantrisk.trojan.options import TrojanSettings

STUDIES = [("privacy", PrivacySettings, PrivacyStudy), ("trojan", TrojanSettings, TrojanStudy),
           ("qattack", QattackSettings, QattackStudy), ("scan", ScanSettings, ScanSettings)]


def _cli_params(command: str) -> dict[str, object]:
    """option flag -> click parameter of `quantrisk COMMAND`."""
    group = typer.main.get_command(app)
    return {opt: p for p in group.commands[command].params for opt in p.opts}  # type: ignore[attr-defined]


def _as_cli(value: object) -> object:
    """A spec default as the CLI writes it: a list as comma-separated text, None (all) as 'all'."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return value


@pytest.mark.parametrize(("command", "settings", "study"), STUDIES, ids=[s[0] for s in STUDIES])
def test_every_option_is_settable_from_spec_and_cli_with_one_default(command, settings, study):
    cli = _cli_params(command)
    spec_fields = study.model_fields
    assert settings.option_fields(), "no options found"
    for name, field in settings.option_fields().items():
        assert name in spec_fields, f"{command}: option {name} cannot be set from a spec"
        opt = flag(settings, name)
        assert opt in cli, f"{command}: option {name} cannot be set from the CLI ({opt})"
        param = cli[opt]
        spec_default = spec_fields[name].get_default(call_default_factory=True)
        cli_default = param.default
        if option_extra(field, "cli_text") or isinstance(spec_default, (list, tuple)):
            assert str(cli_default) == str(_as_cli(spec_default)), f"{command} {opt}: {cli_default} vs {spec_default}"
        else:
            assert cli_default == spec_default, f"{command} {opt}: CLI default {cli_default!r}, spec {spec_default!r}"
        assert param.help == field.description and field.description, f"{command} {opt}: help text"


def test_the_one_default_check_fails_when_the_spec_default_of_a_qattack_option_differs():
    """The check above is not vacuous: a spec model that redefines an option with its own default (how the spec's
    and the CLI's qattack defaults had drifted apart: inject lora / full, 150 / 200 steps) fails it."""

    class Drifted(QattackStudy):
        inject_steps: int = 150

    with pytest.raises(AssertionError, match="qattack --inject-steps: CLI default 200, spec 150"):
        test_every_option_is_settable_from_spec_and_cli_with_one_default("qattack", QattackSettings, Drifted)


@pytest.mark.parametrize(("command", "settings", "study"), STUDIES, ids=[s[0] for s in STUDIES])
def test_spec_and_cli_refuse_the_same_bounds(command, settings, study):
    from quantrisk.commands._options import check_bounds

    for name, field in settings.option_fields().items():
        ge = [m.ge for m in field.metadata if hasattr(m, "ge")]
        if not ge or field.annotation is float:
            continue
        with pytest.raises(UsageError, match=f"^{flag(settings, name)} {ge[0] - 1}: must be at least {ge[0]}$"):
            check_bounds(settings, {name: ge[0] - 1})
        with pytest.raises(ValueError, match="greater than or equal"):
            study(**{name: ge[0] - 1})


SPEC = """\
name: o
models: [{zoo: pythia}]
precisions: [fp32]
studies:
  privacy: {n: 10, attacks: [loss, recall]%s}
"""


def test_cells_read_the_options_typed_and_new_options_keep_old_ids():
    plain = [c for c in expand(parse_spec(SPEC % "")) if c.kind == "privacy"][0]
    assert not {"prefix_n", "completion_share", "completion_batch_size"} & set(plain.params)  # ids as before
    opts = PrivacyOptions.from_params(plain.params, seed=0)
    assert (opts.prefix_n, opts.completion_share, opts.completion_batch_size) == (3, 0.5, 16)
    set_ = [c for c in expand(parse_spec(SPEC % ", prefix_n: 5, completion_share: 0.25, completion_batch_size: 4"))
            if c.kind == "privacy"][0]
    assert set_.id != plain.id
    opts = PrivacyOptions.from_params(set_.params, seed=2)
    assert (opts.prefix_n, opts.completion_share, opts.completion_batch_size, opts.seed) == (5, 0.25, 4, 2)
    assert opts.attacks == ("loss", "recall") and opts.n == 10


def test_a_spec_omitting_an_option_gets_the_cli_default():
    spec = parse_spec("name: d\nmodels: [{zoo: llama}]\nprecisions: [fp32]\nstudies:\n  privacy: {}\n  trojan: {}\n")
    cli = _cli_params("privacy")
    assert spec.studies.privacy.n == int(cli["--n"].default) and spec.studies.privacy.completion_n == \
        cli["--completion-n"].default
    assert spec.studies.privacy.attacks == tuple(c.label for c in parse_attacks(cli["--attacks"].default))
    tcli = _cli_params("trojan")
    assert (spec.studies.trojan.n_test, spec.studies.trojan.split_seed, spec.studies.trojan.max_new_tokens) == (
        tcli["--n-test"].default, tcli["--split-seed"].default, tcli["--max-new-tokens"].default)
    for axis in ("dap1", "dap2"):  # the precision axes too
        assert ",".join(getattr(spec.studies.trojan, axis)) == tcli[f"--{axis}"].default


@pytest.mark.parametrize(("args", "want"), [
    (["trojan", "--payload", "DROP"], "error: --payload: payload must contain '{table}'"),
    (["trojan", "--n-rows", "5"], "error: --n-rows 5: must be at least 10"),
    (["privacy", "--completion-share", "1"], "error: --completion-share 1.0: must be less than 1"),
    (["privacy", "--prefix-n", "0", "--batch-size", "0"], "error: --prefix-n 0, --batch-size 0: must be at least 1"),
])
def test_cli_refuses_an_option_by_its_model_before_any_work(args, want, tmp_path, capsys):
    from quantrisk.cli import main

    out = tmp_path / "out"
    assert main([args[0], "--model", str(tmp_path / "no-model"), "--out", str(out), *args[1:]]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == want
    assert not out.exists()
