"""
Tests for the reusable parts of the benchmarks in C{bench/}.
"""
