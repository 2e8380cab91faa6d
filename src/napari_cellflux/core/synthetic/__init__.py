"""Procedural cells with known effects (demo weights, tests, benchmarks)."""
