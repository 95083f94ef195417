"""Helpers shared by the test modules, the conftests and the benchmark scripts: plain functions, no
fixtures (those stay in the conftests)."""
