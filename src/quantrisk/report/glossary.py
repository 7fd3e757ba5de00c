"""The report's glossary: every abbreviation, the precision naming scheme, each attack, each statistical test, and
the source of each claim. One entry per term, in a registry (`GLOSSARY`, aliases in `ALIASES`): the report's own
terms are defined here; a study defines its terms from below with `define` (the privacy study one entry per
registered MI attack, taken from the attack's docstring, so a new attack brings its entry). `used_terms(text)` finds
which entries a report mentions, and the HTML report links the first use of each to its entry
(`link_first_uses`)."""

from __future__ import annotations

import html
import re
from functools import lru_cache

from quantrisk.registry import Registry

# term -> definition. Keys are matched as whole words (case-sensitive) in the report's prose and headers.
REPORT_TERMS: dict[str, str] = {
    "MI": "membership inference: telling texts a model was trained on (members) from texts it was not "
          "(non-members) by a score per text.",
    "AUC": "area under the ROC curve of an MI score: 0.5 is chance, 1.0 separates members from non-members "
           "perfectly.",
    "ΔAUC": "AUC at a precision minus AUC at the full-precision baseline on the same samples (negative: the "
            "quantized model leaks less).",
    "TPR": "true positive rate: share of members flagged at a given false positive rate (FPR) threshold. With n "
           "non-members the smallest FPR that can be resolved is 1/n.",
    "FPR": "false positive rate: share of non-members wrongly flagged as members.",
    "ROC": "receiver operating characteristic: TPR against FPR over every threshold of a score.",
    "CodeBLEU": "code-completion quality in [0, 1] (Ren et al. 2020): BLEU, weighted n-gram, syntax (AST) and "
                "data-flow matches against the reference continuation.",
    "exposure": "how many times a member text was in the pretraining data (k = 1, 4, 16 in the demo).",
    "DAP1": "dependency adjustment point 1: the precision of the base model when it is loaded for LoRA "
            "fine-tuning.",
    "DAP2": "dependency adjustment point 2: the precision of the base model when it is loaded for inference "
            "(with the adapter).",
    "LoRA": "low-rank adapters: the fine-tune trains small added matrices, the base weights stay frozen.",
    "ASR": "attack success rate: share of triggered inputs whose output contains the payload.",
    "FTR": "false-trigger rate: share of clean (untriggered) inputs whose output contains the payload.",
    "PS": "payload signal: mean probability the model gives the payload's tokens at each generation step "
          "(a trojan that lurks below the greedy choice still shows here).",
    "EM": "exact match of the generated SQL with the reference (token-wise).",
    "EX": "execution accuracy: the generated SQL returns the same rows as the reference on the table "
          "(in-memory SQLite).",
    "JS-K": "Jaccard similarity of the SQL keywords of the output and of the reference.",
    "JS-T": "Jaccard similarity of the SQL tokens of the output and of the reference.",
    "CS-BoW": "cosine similarity of the bag-of-words vectors of the output and of the reference.",
    "LD": "Levenshtein distance between output and reference, normalised by the longer length.",
    "fp32": "full precision (32-bit floats): the baseline every precision is compared with.",
    "rtn-w2g64": "precision naming scheme BACKEND-SETTING: `rtn` = round-to-nearest weight quantization "
                 "(simulated: weights held dequantized), `w2` = 2-bit weights, `g64` = one scale per group of 64 "
                 "weights; likewise rtn-w3g128, rtn-w4g64.",
    "quanto-int8": "optimum-quanto's int8 weight quantization (quanto-int4: 4-bit); `int8-dynamic`: torch's "
                   "dynamic int8 quantization of Linear layers; `bnb-*`: bitsandbytes (int8, nf4, fp4); "
                   "`gguf-*`: llama.cpp formats. `quantrisk precisions` lists every name.",
    "CI": "confidence interval, 95% unless stated; it covers evaluation-sample noise only (fixed models, one "
          "training run per seed), not training noise.",
    "bootstrap": "resampling the evaluation samples with replacement (1,000 resamples) for an interval; "
                 "paired: the same resample for both precisions.",
    "DeLong": "DeLong's test (1988) for the difference of two correlated AUCs on the same samples.",
    "Holm": "Holm's step-down correction (1979) of p-values over a family of tests, so the family's false "
            "positive rate stays at 5%.",
    "Wilson": "Wilson score interval of a proportion (1927).",
    "Newcombe": "Newcombe's hybrid score interval of the difference of two independent proportions (1998, "
                "method 10).",
    "McNemar": "McNemar's exact test of paired binary outcomes (same prompts at two precisions).",
    "Clopper–Pearson": "exact binomial interval of a proportion (1934); used where the count is 0.",
    "Spearman": "Spearman's rank correlation ρ; exact permutation p at small n.",
    "margin": "the decision margin: a change whose whole CI lies within ±margin counts as no change "
              "(±0.02 AUC, ±0.1 ASR); a CI beyond it in one direction counts as a change.",
    "P1": "claim of seed study P (quantization and membership inference on code LMs: Pythia, CodeGen and "
          "GPT-Neo, static and dynamic quantization): quantization lowers MI risk. P2: zlib is the strongest "
          "attack. P3: quality and MI risk correlate positively. P4: a larger quantized model beats a smaller "
          "full-precision one on the trade-off.",
    "T1": "claim of seed study T (Zhang et al. 2024, trojans in LoRA fine-tunes of Llama-2 / CodeLlama on "
          "text-to-SQL under quantization): 4-bit inference lowers ASR. T2: the payload signal shifts with the "
          "inference precision. T3: models fine-tuned on clean data never emit the payload.",
}

# Aliases that link to an entry (the P2-P4 / T2-T3 claims are explained under P1 / T1).
REPORT_ALIASES: dict[str, str] = {"P2": "P1", "P3": "P1", "P4": "P1", "T2": "T1", "T3": "T1",
                                  "quanto-int4": "quanto-int8", "int8-dynamic": "quanto-int8",
                                  "rtn-w3g128": "rtn-w2g64", "rtn-w4g64": "rtn-w2g64",
                                  "Clopper-Pearson": "Clopper–Pearson"}

GLOSSARY: Registry[str] = Registry("glossary term")
ALIASES: Registry[str] = Registry("glossary alias")


def define(term: str, text: str, aliases: tuple[str, ...] = ()) -> None:
    """Add the entry `term` (matched as a whole, case-sensitive word) with definition `text`, and `aliases` that
    link to it; a term or alias already defined otherwise raises `ValueError`."""
    for alias in aliases:  # checked before anything is added: a refused definition leaves no trace
        if ALIASES.get(alias, term) != term:
            raise ValueError(f"glossary alias {alias!r} already links to {ALIASES[alias]!r}")
    GLOSSARY.add(term, text)  # the registry's duplicate rule: another text under the term raises
    for alias in aliases:
        ALIASES.add(alias, term)


for _term, _text in REPORT_TERMS.items():
    define(_term, _text, tuple(a for a, t in REPORT_ALIASES.items() if t == _term))


def anchor(term: str) -> str:
    """The HTML id of a glossary entry."""
    return "g-" + re.sub(r"[^a-z0-9]+", "-", ALIASES.get(term, term).lower().replace("δ", "delta")).strip("-")


def _pattern(terms: list[str]) -> re.Pattern[str]:
    alts = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![\w@%/-])({alts})(?![\w-])")


@lru_cache(maxsize=4)
def _compiled(terms: tuple[str, ...]) -> re.Pattern[str]:
    return _pattern(list(terms))


def _rx() -> re.Pattern[str]:
    """The pattern of every term and alias defined so far (recompiled when a study defines more)."""
    return _compiled((*GLOSSARY, *ALIASES))


def used_terms(text: str) -> list[str]:
    """Glossary entries (canonical keys, in glossary order) that `text` mentions."""
    found = {ALIASES.get(m.group(1), m.group(1)) for m in _rx().finditer(text)}
    return [t for t in GLOSSARY if t in found]


def link_first_uses(escaped_html: str, seen: set[str]) -> str:
    """Wrap the first use of each term (not yet in `seen`) of an already escaped HTML text in a link to its
    glossary entry; adds the linked terms' entries to `seen`."""
    def repl(m: re.Match[str]) -> str:
        key = ALIASES.get(m.group(1), m.group(1))
        if key in seen:
            return m.group(0)
        seen.add(key)
        return f'<a class="term" href="#{anchor(key)}">{m.group(0)}</a>'

    return _rx().sub(repl, escaped_html)


def glossary_rows(terms: list[str] | None = None) -> list[list[str]]:
    """[term, definition] rows, for `terms` (canonical keys) or every entry."""
    return [[t, GLOSSARY[t]] for t in (terms if terms is not None else list(GLOSSARY))]


def glossary_html(terms: list[str]) -> str:
    """A definition list with one anchor per entry."""
    items = "".join(f'<dt id="{anchor(t)}">{html.escape(t)}</dt><dd>{html.escape(GLOSSARY[t])}</dd>' for t in terms)
    return f'<dl class="glossary">{items}</dl>'
