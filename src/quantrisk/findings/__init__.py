"""Findings: each claim of the two seed studies, tested on one run's stored rows.

`findings(rows)` is a pure function of the store's rows (`RunRows`); one function per claim in the `CLAIMS`
registry, one module per study (`privacy`: P1-P4, `trojan`: T1-T3), the shared rows, verdicts and the one decision
standard in `base`, the margins in `quantrisk.margins`. Each claim returns a `Finding` with the test used, the effect,
its interval (labelled: simultaneous over the claim's family, or unadjusted), the Holm p, the seed count, the utility
change beside the risk change, and a verdict: holds, does not hold, inconclusive or not testable (with why).
Rules: docs/METRICS.md ("Decision standard").
"""

from quantrisk.findings import privacy, trojan
from quantrisk.findings.base import (
    CLAIMS,
    HOLDS,
    INCONCLUSIVE,
    NO_SUMMARY,
    NOT,
    NOT_TESTABLE,
    VERDICTS,
    Finding,
    RunRows,
    findings,
    register_claim,
    verdict_lines,
)
from quantrisk.findings.privacy import best_attack
from quantrisk.margins import ALPHA, MARGINS

__all__ = ["ALPHA", "CLAIMS", "HOLDS", "INCONCLUSIVE", "MARGINS", "NOT", "NOT_TESTABLE", "NO_SUMMARY", "VERDICTS",
           "Finding", "RunRows", "best_attack", "findings", "privacy", "register_claim", "trojan", "verdict_lines"]
