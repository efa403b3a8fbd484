"""Benchmark scripts (run as ``python benchmarks/<name>.py``; each exposes ``run(...) -> dict``)."""
