"""The studies that plug in from below: importing this module registers each one's cell kinds and report sections.

A study package owns its parts and registers them in the registries beneath it (`cells.CELL_KINDS` through
`register_cell_kind` from its `cell` module, `report.sections.SECTIONS` through `section` from its `report`
module); nothing below imports a study. The modules that assemble the application (`grid`, which expands a spec
into cells, and the commands that build reports) import this one, so a plugged-in study is known wherever cells
run or a report is built. A new study's plug-in modules are one more import here. The order of the imports is the
order of the studies' sections on the page (privacy, trojan, qattack), so it is kept as written, not sorted. A
library caller builds a report with `quantrisk.studies.build_report` (`quantrisk.report.build_report` refuses to
run before a study has registered its sections).
"""

from __future__ import annotations

# the page order of the studies' sections: kept as written, not sorted
# isort: off
import quantrisk.privacy.cell  # noqa: F401 - the `privacy`, `privacy-summary`, `privacy-blind` cell kinds
import quantrisk.privacy.report  # noqa: F401 - the privacy report sections (AUC tables, paired comparisons, plots)
import quantrisk.trojan.cell  # noqa: F401 - the `sql-pretrain`, `finetune`, `trojan` cell kinds
import quantrisk.trojan.report  # noqa: F401 - the trojan report sections (ASR / FTR tables, plots)
import quantrisk.qattack.cell  # noqa: F401 - the `qattack` cell kind
import quantrisk.qattack.report  # noqa: F401 - the `qattack` report sections
# isort: on
from quantrisk.report.build import Report, build_report  # noqa: E402 - after the studies: every section is known

__all__ = ["Report", "build_report"]
