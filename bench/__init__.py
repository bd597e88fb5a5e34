"""Benchmarks of OCO Deploy (`make bench`); results go to docs/benchmarks.md, never into tests."""
