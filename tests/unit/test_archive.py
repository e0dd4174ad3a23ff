"""Which archived binlogs may go: only files every reader is past, never the newest (review C4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.tools.archive import DiskSpaceLow, check_free_space, free_mb, keep_from, prunable

FILES = ["mysql-bin.000009", "mysql-bin.000010", "mysql-bin.000011", "mysql-bin.000012"]


def test_the_earliest_reader_decides() -> None:
    applier, verifier = ("mysql-bin.000012", 400), ("mysql-bin.000010", 9_000)
    assert keep_from([applier, verifier]) == "mysql-bin.000010"
    assert prunable(FILES, keep_from([applier, verifier])) == ["mysql-bin.000009"]
    assert prunable(FILES, keep_from([applier])) == ["mysql-bin.000009", "mysql-bin.000010", "mysql-bin.000011"]


def test_an_unknown_reader_keeps_everything() -> None:
    assert keep_from([("mysql-bin.000012", 4), None]) is None
    assert prunable(FILES, None) == []


def test_the_newest_file_is_never_pruned_and_order_is_by_number() -> None:
    assert prunable(["mysql-bin.000003"], "mysql-bin.000009") == []
    # 1000000 sorts before 999999 as text, not as a binlog sequence.
    names = ["mysql-bin.999999", "mysql-bin.1000000", "mysql-bin.1000001"]
    assert prunable(names, "mysql-bin.1000001") == ["mysql-bin.999999", "mysql-bin.1000000"]


def test_free_space_guard(tmp_path: Path) -> None:
    check_free_space(tmp_path, 0)  # off
    check_free_space(tmp_path / "not-yet-created", 1)
    with pytest.raises(DiskSpaceLow) as low:
        check_free_space(tmp_path, int(free_mb(tmp_path)) + 10_000)
    assert "below binlog.min_free_mb" in str(low.value) and "migrator run" in low.value.hint
