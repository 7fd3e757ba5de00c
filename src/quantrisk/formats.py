"""One number format per quantity, for the report, the CLI tables and any module that prints a number for people.

- AUC, rates and other values in [0, 1] (`prob`): 3 decimals, `0.812`.
- Changes (`delta`): signed, 3 decimals, `+0.009`; a change that rounds to zero prints `0.000`, unsigned.
- Interval bounds (`interval`): as their value, but a nonzero bound never prints as zero: it gets the decimals that
  keep its side of 0 (`-0.00005`), so an interval that excludes 0 never reads as one that includes it.
- p-values (`pvalue`): 3 decimals, `<0.001` below 0.001 (APA style); never scientific notation.
- Counts (`count`): integers with thousands separators, `12,345`; parameter counts (`params`): `1.84 M`.
- Sizes (`megabytes`): 2 decimals and the unit, `1.84 MB` (MB = 2**20 bytes); durations (`seconds`): `12.3 s`.
- Anything else (`number`): integers (and integral floats above 1) as counts, other floats with 3 decimals (1 decimal from 100 up).

Minus signs are ASCII `-` everywhere (terminal, Markdown and HTML alike). `violations(text)` finds the forms this
module never produces (signed zeros, scientific notation, more than 3 decimals); the report test runs it.
"""

from __future__ import annotations

import math
import re
from typing import Any

DECIMALS = 3
NBSP = "\u00a0"


def _fixed(x: float, digits: int = DECIMALS, signed: bool = False) -> str:
    text = f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    if float(text) == 0.0:  # no signed zero: -0.000 and +0.000 are 0.000
        text = f"{0.0:.{digits}f}"
    return text


def prob(x: float | None) -> str:
    """An AUC, a rate or a share: `0.812`; None as an em dash."""
    return "—" if x is None else _fixed(float(x))


def delta(x: float | None) -> str:
    """A signed change: `+0.009`, `-0.250`, `0.000`."""
    return "—" if x is None else _fixed(float(x), signed=True)


def bound(x: float, signed: bool = True) -> str:
    """An interval bound: like `delta` (or `prob` when not `signed`), but a nonzero bound that would print as zero
    keeps its side of 0 with the first decimal that shows it, truncated toward 0 (`-0.00005`, not `-0.000`);
    below 1e-6 it is written `-<0.000001`."""
    x = float(x)
    text = _fixed(x, signed=signed)
    if x == 0.0 or float(text) != 0.0:
        return text
    for digits in range(DECIMALS + 1, 7):  # truncated toward 0: never prints a bound farther from 0 than it is
        t = math.trunc(x * 10 ** digits) / 10 ** digits
        if t != 0.0:
            return _fixed(t, digits, signed)
    return ("-" if x < 0 else "+" if signed else "") + "<0.000001"


def interval(low: float | None, high: float | None, signed: bool = False) -> str:
    """`[0.771, 0.850]` or, signed, `[-0.012, +0.004]`; empty when either bound is missing."""
    if low is None or high is None:
        return ""
    return f"[{bound(low, signed)},{NBSP}{bound(high, signed)}]"


def with_ci(value: float | None, low: float | None, high: float | None, signed: bool = False) -> str | None:
    """`0.812 [0.771, 0.850]` (non-breaking spaces: a table cell never wraps inside it); None without a value."""
    if value is None:
        return None
    head = delta(value) if signed else prob(value)
    ci = interval(low, high, signed)
    return f"{head}{NBSP}{ci}" if ci else head


def pvalue(p: float | None) -> str:
    """`0.003`, `1.000`, `<0.001`."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "<0.001" if p < 0.001 else _fixed(float(p))


def count(n: float | int | None) -> str:
    """`12,345`."""
    return "—" if n is None else f"{round(n):,}"


def params(n: float | int | None) -> str:
    """A parameter count: `1.84 M`, `6.74 B`, `950 k`, `512`."""
    if n is None:
        return "—"
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            v = n / scale
            return f"{v:.2f} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return count(n)


def megabytes(mb: float | None, unit: bool = True) -> str:
    """`1.84 MB` (`1.84` without the unit, for a column that names it)."""
    return "—" if mb is None else f"{mb:.2f}" + (" MB" if unit else "")


def seconds(s: float | None) -> str:
    """`12.3 s`, `4 min 05 s`, `1 h 02 min`."""
    if s is None:
        return "—"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def number(v: Any) -> str:
    """A table cell of no declared quantity: None as an em dash, integral floats as counts, floats with 3
    decimals (1 from 100 up; a nonzero value never prints as zero), anything else as text."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) or (math.isfinite(v) and v == int(v) and abs(v) > 1):
        return count(v)
    if not math.isfinite(v):
        return str(v)
    if abs(v) >= 100:
        return f"{v:,.1f}"
    return bound(v, signed=False)


# Forms `violations` reports: a signed zero, a Python float repr in scientific notation, a number with more than 3
# decimals (allowed only for a small nonzero bound, 0.000x...).
_SIGNED_ZERO = re.compile(r"(?<![\w.])[-+\u2212]0(?:\.0+)?(?![\d.])")
_SCIENTIFIC = re.compile(r"(?<![\w.])\d(?:\.\d+)?e[-+]?\d+(?![\w])", re.IGNORECASE)
_LONG = re.compile(r"(?<![\w.])[-+]?\d+\.\d{4,}(?![\w.])")
_SMALL_BOUND = re.compile(r"[-+]?0\.000\d+")


def violations(text: str) -> list[str]:
    """The number forms in `text` that this module never writes (each with a little context)."""
    out = []
    for rx, what in ((_SIGNED_ZERO, "signed zero"), (_SCIENTIFIC, "scientific notation"), (_LONG, "over 3 decimals")):
        for m in rx.finditer(text):
            if rx is _LONG and _SMALL_BOUND.fullmatch(m.group()):
                continue
            out.append(f"{what}: {text[max(0, m.start() - 30):m.end() + 10]!r}")
    return out
