"""quantrisk benchmarks: `python -m benchmarks <name> [options]` appends dated rows to BENCHMARKS.md."""
