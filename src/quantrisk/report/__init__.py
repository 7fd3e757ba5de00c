"""Reports from the results store alone: `build_report` (HTML + Markdown) and `export_run` (CSV / Parquet)."""

from quantrisk.report.build import Report, build_report
from quantrisk.report.export import FORMATS, export_run

__all__ = ["FORMATS", "Report", "build_report", "export_run"]
