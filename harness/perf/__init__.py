"""`harness bench`: throughput ratios and CI regression checks (see docs/performance.md)."""
