"""Deterministic synthetic data for training and benchmarks."""
