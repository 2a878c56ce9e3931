"""Benchmark loaders: the paper's AIME 2024 / AMC / MATH-500 files and a seeded arithmetic generator."""
