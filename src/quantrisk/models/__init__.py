"""quantrisk.models."""
