"""Smoke run of bench/big_transaction.py: a 40 MB source transaction, applied with small round trips.

The orchestrator's RSS must grow far less than the transaction's size (review B7: it once held the whole
transaction, ~1.4x its size plus object overhead, and a statement's rows as one BINLOG statement).
"""

from __future__ import annotations

from pathlib import Path

from bench.big_transaction import run


def test_a_40mb_transaction_applies_with_little_memory(tmp_path: Path) -> None:
    result = run(0.04, tmp_path, row_kb=256, max_chunk_bytes=1 << 20, read_ahead_bytes=4 << 20)
    size_mb = result.transaction_bytes / (1 << 20)
    # The apply's own peak (VmHWM reset before it): the spawned child's start-up can peak higher when
    # it re-imports a large parent program (pytest with other test modules loaded).
    growth_mb = result.apply_peak_rss_mb - result.baseline_rss_mb
    assert size_mb > 38 and result.rows == 163  # run() also compares COUNT and SUM(CRC32) on both sides
    assert growth_mb < size_mb / 2, f"RSS grew {growth_mb:.1f} MB for a {size_mb:.1f} MB transaction"
