"""quantrisk.trojan."""
