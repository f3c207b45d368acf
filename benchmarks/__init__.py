"""Benchmarks: captionlib against classic baselines, measured in the same run. `python -m benchmarks`."""
