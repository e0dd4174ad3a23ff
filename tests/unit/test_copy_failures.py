"""A chunk that failed because the target ran out of disk says so, whatever words the server chose."""

from __future__ import annotations

import pytest

from migrator.copy.types import ChunkCopyFailed, looks_out_of_space
from migrator.mysql.chunking import Chunk


@pytest.mark.parametrize(
    "detail",
    [
        # MariaDB 10.11, index build after the rows on a full tmpfs (fault campaign, disk-full trial)
        "OperationalError: (1815, 'Internal error: rename index to add')",
        "OperationalError: (1114, \"The table 'orders' is full\")",
        "OperationalError: (1021, 'Disk full (./shop/orders.ibd); waiting for someone to free some space...')",
        "ERROR 3 (HY000): Error writing file '/tmp/MLfd=5' (Errcode: 28 \"No space left on device\")",
        "OperationalError: (1030, 'Got error 28 \"No space left on device\" from storage engine InnoDB')",
    ],
)
def test_out_of_space_answers_are_recognised(detail: str) -> None:
    assert looks_out_of_space(detail)


@pytest.mark.parametrize(
    "detail",
    [
        "OperationalError: (1062, \"Duplicate entry '7' for key 'PRIMARY'\")",
        "OperationalError: (2013, 'Lost connection to server during query')",
        "the loader printed no row count: b'' ",
        "OperationalError: (1146, \"Table 'shop.orders_1114' doesn't exist\")",
    ],
)
def test_other_failures_are_not_called_disk_space(detail: str) -> None:
    assert not looks_out_of_space(detail)


def test_the_hint_names_the_disk() -> None:
    chunk = Chunk("shop", "orders", 0, ("id",), None, None, kind="indexes")
    failed = ChunkCopyFailed(chunk, "OperationalError: (1815, 'Internal error: rename index to add')")
    assert "out of disk space" in (failed.hint or "")
