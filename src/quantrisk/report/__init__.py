"""quantrisk.report."""
