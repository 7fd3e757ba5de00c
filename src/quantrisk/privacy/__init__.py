"""quantrisk.privacy."""
