"""Benchmarks: migrator's copy, apply and verify against their peers, measured in the same run."""
