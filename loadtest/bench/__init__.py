"""Service benchmarks: each prints JSON with a ratio against a baseline measured in the same run."""
