"""The studies that plug in from below: importing this module registers each one's cell kind and report sections.

A study package owns its parts and registers them in the registries beneath it (`cells.CELL_KINDS` through
`register_cell_kind`, `report.sections.SECTIONS` through `section`); nothing below imports the study. The modules
that assemble the application (`grid`, which expands a spec into cells, and the commands that build reports)
import this one, so a plugged-in study is known wherever cells run or a report is built. A new study's plug-in
modules are one more import here.
"""

from __future__ import annotations

import quantrisk.qattack.cell  # noqa: F401 - the `qattack` cell kind
import quantrisk.qattack.report  # noqa: F401 - the `qattack` report sections
