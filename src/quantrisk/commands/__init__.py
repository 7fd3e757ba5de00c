"""CLI command groups: each module defines `register(app)`; heavy imports stay inside the commands."""
