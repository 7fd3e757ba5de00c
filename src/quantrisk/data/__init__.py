"""quantrisk.data."""
