"""Membership-inference attacks: each a small function from one sample's inputs to one number, **higher = more
likely a member**, found by name in a registry. An attack declares the inputs it needs by name (`needs=`); the
providers in `privacy/inputs/` compute them, and the study computes only what the selected attacks need.

Names: `loss`, `zlib`, `lowercase`, `mink` / `mink-<k>`, `minkpp` / `minkpp-<k>`, `reference`, `recall`, `dcpdd`,
`gradnorm`, `neighbourhood`; `k` is a
fraction in (0, 1] (default 0.2). Formulas, sources and orientation: docs/METRICS.md ("Membership-inference attack
scores"); each function's docstring gives its formula and paper. A new attack is one decorated function here (or in
any module imported by the study) plus a known-answer test.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quantrisk.errors import UsageError
from quantrisk.privacy.options import DEFAULT_ATTACKS  # noqa: F401 - re-exported (the default attack list)
from quantrisk.registry import Registry
from quantrisk.scoring import TokenScores

SIGMA_FLOOR = 1e-6


@dataclass
class AttackInput:
    """What an attack may look at for one sample: its text, the target model's token scores (`target`), and the
    other inputs it declared (`sample["lower"]`, `sample["reference"]`, ...; see `privacy/inputs/`)."""

    text: str
    target: TokenScores
    inputs: dict[str, Any] = field(default_factory=dict)
    scored: str | None = None  # the text of the scored span when the text was cut at the context (else `text`)

    @property
    def scored_text(self) -> str:
        return self.text if self.scored is None else self.scored

    def __getitem__(self, name: str) -> Any:
        return self.target if name == "target" else self.inputs[name]


@dataclass(frozen=True)
class Attack:
    name: str
    fn: Callable[[AttackInput, float], float]
    needs: frozenset[str] = field(default_factory=lambda: frozenset({"target"}))
    takes_k: bool = False
    description: str = ""


ATTACKS: Registry[Attack] = Registry("attack", key=lambda a: a.fn)
DEFAULT_K = 0.2


def register_attack(name: str, *, needs: tuple[str, ...] = ("target",), takes_k: bool = False, description: str = ""):
    """Decorator: add `fn(sample, k) -> float` to the registry under `name`; `needs`: the names of the attack inputs
    (providers in `privacy/inputs/`) it reads. A name already taken raises `ValueError`."""

    def wrap(fn: Callable[[AttackInput, float], float]) -> Callable[[AttackInput, float], float]:
        ATTACKS.add(name, Attack(name, fn, frozenset(needs), takes_k, description or (fn.__doc__ or "").strip()))
        return fn

    return wrap


def _smallest_mean(values: np.ndarray, k: float) -> float:
    m = values.shape[0]
    count = max(1, math.ceil(k * m))
    return float(np.sort(values)[:count].mean())


@register_attack("loss", description="mean token log-prob (negative NLL)")
def loss_score(s: AttackInput, k: float) -> float:
    """LOSS: mean ℓ (Yeom et al. 2018)."""
    return float(s.target.logprobs.mean())


@register_attack("zlib", description="mean log-prob / zlib-compressed size in bytes")
def zlib_score(s: AttackInput, k: float) -> float:
    """zlib: mean ℓ / |zlib(x)| in bytes (Carlini et al. 2021), x the span that was scored (a text cut at the
    context is compared with the zlib size of its scored part, not of the whole text)."""
    return float(s.target.logprobs.mean()) / len(zlib.compress(s.scored_text.encode("utf-8")))


@register_attack("lowercase", needs=("target", "lower"), description="-mean ℓ(x) / mean ℓ(lower(x))")
def lowercase_score(s: AttackInput, k: float) -> float:
    """Lowercase: −mean ℓ(x) / mean ℓ(lower(x)), the perplexity ratio with its sign flipped (Carlini et al. 2021)."""
    return -float(s.target.logprobs.mean()) / float(s["lower"].logprobs.mean())


@register_attack("mink", takes_k=True, description="mean of the k% lowest token log-probs")
def mink_score(s: AttackInput, k: float) -> float:
    """Min-K%: mean of the ⌈k·m⌉ smallest ℓ_i (Shi et al. 2024)."""
    return _smallest_mean(s.target.logprobs, k)


@register_attack("minkpp", takes_k=True, description="mean of the k% lowest standardised log-probs (ℓ-μ)/σ")
def minkpp_score(s: AttackInput, k: float) -> float:
    """Min-K%++: mean of the ⌈k·m⌉ smallest z_i = (ℓ_i − μ_i) / σ_i over the vocabulary (Zhang et al. 2024)."""
    z = (s.target.logprobs - s.target.mu) / np.sqrt(np.maximum(s.target.var, SIGMA_FLOOR**2))
    return _smallest_mean(z, k)


@register_attack("reference", needs=("target", "reference"), description="mean ℓ target − mean ℓ reference model")
def reference_score(s: AttackInput, k: float) -> float:
    """Reference model: mean ℓ_target(x) − mean ℓ_reference(x), the reference being a second model trained on other
    data, not the baseline precision (Carlini et al. 2021)."""
    return float(s.target.logprobs.mean()) - float(s["reference"].logprobs.mean())


@register_attack("recall", needs=("target", "conditioned"),
                 description="ReCaLL: mean ℓ(x | non-member prefix) / mean ℓ(x)")
def recall_score(s: AttackInput, k: float) -> float:
    """ReCaLL: mean ℓ(x | P) / mean ℓ(x), P a fixed prefix of known non-members (Xie et al. 2024)."""
    return float(s["conditioned"].logprobs.mean()) / float(s.target.logprobs.mean())


DCPDD_CAP = 0.01  # DC-PDD's upper bound a on each token's term (the paper's and its code's default)


@register_attack("dcpdd", needs=("target", "token_freq"),
                 description="DC-PDD: mean over first occurrences of min(p_i · −log f(t_i), a)")
def dcpdd_score(s: AttackInput, k: float) -> float:
    """DC-PDD (Zhang et al. 2024, "Pretraining Data Detection for LLMs: A Divergence-based Calibration Method"):
    over the first occurrence of each distinct scored token t_i, mean of min(p_i · −log f(t_i), a), p_i = exp ℓ_i,
    f = Laplace-smoothed token frequencies of the corpus's reference part, a = `DCPDD_CAP`. Higher = member."""
    lp = s.target.logprobs
    ids = np.asarray(s.target.token_ids)[1 : 1 + lp.shape[0]]
    _, first = np.unique(ids, return_index=True)
    first.sort()
    terms = np.exp(lp[first]) * -np.log(s["token_freq"][ids[first]])
    return float(np.minimum(terms, DCPDD_CAP).mean())


@register_attack("gradnorm", needs=("grad_norm",), description="−‖∇θ L(x)‖₂ (gradient norm of the loss)")
def gradnorm_score(s: AttackInput, k: float) -> float:
    """Gradient norm: −‖∇_θ L(x)‖₂, L = the sample's mean token NLL, θ = all weights; members sit nearer a minimum,
    so their gradients are smaller (Maini et al. 2024, "LLM Dataset Inference"; MIMIR's GradNorm, Duan et al. 2024).
    Full precision and back-ends whose weights autograd can differentiate; skipped with the reason elsewhere."""
    return -float(s["grad_norm"])


@register_attack("neighbourhood", needs=("target", "neighbours"),
                 description="mean ℓ(x) − mean over code neighbours of mean ℓ(x̃)")
def neighbourhood_score(s: AttackInput, k: float) -> float:
    """Neighbourhood comparison (Mattern et al. 2023), code-aware: mean ℓ(x) − (1/N) Σ_j mean ℓ(x̃_j), x̃_j
    semantics-preserving rewrites of x (identifier renames, respacing; privacy/neighbours.py), i.e. the paper's
    L(x̃) − L(x) with L the loss; higher = member (a member fits better than its own rewrites)."""
    nb = s["neighbours"]
    return math.nan if nb is None else float(s.target.logprobs.mean()) - float(nb)


_NAME = re.compile(r"^([a-z]+)(?:-([0-9.]+))?$")


@dataclass(frozen=True)
class AttackChoice:
    """A parsed attack name: the attack and its k."""

    label: str
    attack: Attack
    k: float

    def __call__(self, sample: AttackInput) -> float:
        return self.attack.fn(sample, self.k)


def parse_attack(name: str) -> AttackChoice:
    """`mink-0.1` → (mink, k=0.1). UsageError for unknown names or a k outside (0, 1]."""
    m = _NAME.match(name.strip().lower())
    if not m or m.group(1) not in ATTACKS:
        from quantrisk.suggest import did_you_mean

        hint = did_you_mean(m.group(1) if m else name, ATTACKS)
        raise UsageError(f"unknown attack {name!r}; valid: {', '.join(ATTACKS)} (mink/minkpp take -k, e.g. mink-0.1)"
                         + (f"; {hint.strip()[1:-1]}" if hint else ""))
    attack = ATTACKS[m.group(1)]
    if m.group(2) is not None and not attack.takes_k:
        raise UsageError(f"attack {attack.name!r} takes no k (got {name!r})")
    k = float(m.group(2)) if m.group(2) is not None else DEFAULT_K
    if not 0 < k <= 1:
        raise UsageError(f"attack {name!r}: k must be in (0, 1]")
    label = f"{attack.name}-{k:g}" if attack.takes_k else attack.name
    return AttackChoice(label, attack, k)


def parse_attacks(names: str | list[str]) -> list[AttackChoice]:
    """Comma-separated or list of attack names → parsed choices (duplicates rejected)."""
    items = [n for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not items:
        raise UsageError(f"no attack given; valid: {', '.join(ATTACKS)}")
    out = [parse_attack(n) for n in items]
    labels = [c.label for c in out]
    if len(set(labels)) != len(labels):
        raise UsageError(f"attack listed twice: {', '.join(sorted({x for x in labels if labels.count(x) > 1}))}")
    return out


def required_inputs(choices: list[AttackChoice]) -> set[str]:
    """The attack inputs the chosen attacks need (always including `target`)."""
    return {"target"}.union(*(c.attack.needs for c in choices))


def uses_reference_model(attacks: list[str]) -> bool:
    """Whether any of the attacks (names) needs an input computed from the reference model."""
    from quantrisk.privacy.inputs import PROVIDERS

    return any(PROVIDERS[n].reference_model for n in required_inputs(parse_attacks(attacks)) if n in PROVIDERS)
