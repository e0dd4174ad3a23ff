"""Chunks without a server: literals, range predicates, JSON round-trips, ids."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from migrator.copy.planning import BATCH_TABLES, MIN_CHUNK_TIMEOUT, batches, chunk_timeout, copy_order
from migrator.mysql.chunking import (
    Chunk,
    format_range,
    hash_predicate,
    key_predicate,
    range_predicate,
    sql_literal,
)
from migrator.mysql.schema import ColumnInfo, TableInfo

ODD_VALUES: list[object] = [
    0,
    -9223372036854775808,
    18446744073709551615,
    10**30,
    Decimal("-12345678901234.567890"),
    Decimal("1E+2"),
    1.0000000000000002,
    "plain",
    'it\'s "quoted"',
    "back\\slash",
    "emoji 🦀 ünïcode",
    "nul\x00byte",
    b"\x00\xff\x27\x5c",
    b"",
    dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
    dt.datetime(1970, 1, 1),
    dt.date(1000, 1, 1),
    dt.timedelta(hours=-838, minutes=-59, seconds=-59),
    dt.timedelta(days=2, seconds=3, microseconds=4),
    None,
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_chunk_json_round_trips_every_key_type(value: object) -> None:
    chunk = Chunk("db", "t`x", 3, ("a", "b"), (value, 1), (value, 2))
    again = Chunk.from_json(chunk.to_json())
    assert again == chunk
    assert type(again.lower[0]) is type(value)  # type: ignore[index]
    assert again.chunk_id() == chunk.chunk_id()


def test_literals_are_sql_mode_independent() -> None:
    assert sql_literal(-5) == "-5"
    assert sql_literal(Decimal("1E+2")) == "100"
    assert sql_literal("it's") == "'it''s'"
    # A backslash or control character goes as hex, which NO_BACKSLASH_ESCAPES cannot reinterpret.
    assert sql_literal("a\\b") == "_utf8mb4 X'615c62'"
    assert sql_literal("a\x00") == "_utf8mb4 X'6100'"
    assert sql_literal(b"\x00\xff") == "X'00ff'"
    assert sql_literal(b"") == "''"
    assert sql_literal(dt.datetime(2020, 1, 2, 3, 4, 5, 6)) == "'2020-01-02 03:04:05.000006'"
    assert sql_literal(dt.date(2020, 1, 2)) == "'2020-01-02'"
    assert sql_literal(dt.timedelta(hours=-1, minutes=30)) == "'-00:30:00.000000'"
    assert sql_literal(dt.timedelta(hours=838, minutes=59, seconds=59)) == "'838:59:59.000000'"
    with pytest.raises(TypeError):
        sql_literal(object())


def test_key_predicate_expands_tuple_comparison() -> None:
    assert key_predicate(["id"], (5,), ">=") == "`id` >= 5"
    assert key_predicate(["a", "b"], (1, "x"), ">=") == "(`a` > 1 OR (`a` = 1 AND `b` >= 'x'))"
    assert key_predicate(["a", "b", "c"], (1, 2, 3), "<") == (
        "(`a` < 1 OR (`a` = 1 AND `b` < 2) OR (`a` = 1 AND `b` = 2 AND `c` < 3))"
    )
    assert key_predicate(["we`ird"], ("v",), "<") == "`we``ird` < 'v'"
    with pytest.raises(ValueError):
        key_predicate(["a", "b"], (1,), ">=")


def test_range_predicate_and_open_ends() -> None:
    assert range_predicate(["id"], None, None) == "1=1"
    assert range_predicate(["id"], (1,), None) == "`id` >= 1"
    assert range_predicate(["id"], None, (9,)) == "`id` < 9"
    assert range_predicate(["id"], (1,), (9,)) == "`id` >= 1 AND `id` < 9"
    assert format_range(None, (9, "x")) == "[-inf, (9, 'x'))"


def test_where_sql_for_keyless_chunk_is_unbounded() -> None:
    chunk = Chunk("db", "heap", 0, (), None, None)
    assert chunk.where_sql() == "1=1"
    assert "no usable key" in chunk.describe_range()


def test_where_sql_uses_the_given_escape() -> None:
    chunk = Chunk("db", "t", 1, ("id",), (1,), (2,))
    assert chunk.where_sql(lambda v: f"<{v}>") == "`id` >= <1> AND `id` < <2>"


def test_chunk_ids_differ_when_bounds_differ() -> None:
    a = Chunk("db", "t", 1, ("id",), (100,), (200,))
    b = Chunk("db", "t", 1, ("id",), (100,), (201,))
    assert a.chunk_id() != b.chunk_id()
    assert a.chunk_id().startswith("db.t#000001-")
    assert a.chunk_id() == Chunk("db", "t", 1, ("id",), (100,), (200,)).chunk_id()


MB = 1024 * 1024


def _table(name: str, data: int, index: int = 0) -> TableInfo:
    cols = (ColumnInfo("v", "varchar", "varchar(10)", True, False),)
    return TableInfo("s", name, "InnoDB", cols, (), None, 0, 0, data, index)


def test_rows_chunk_ids_do_not_change_and_hash_buckets_round_trip() -> None:
    # Journals written before hash buckets keep their ids: the new fields are absent at their defaults.
    plain = Chunk("s", "t", 0, ("id",), (1,), (5,))
    assert "buckets" not in plain.to_json()
    bucket = Chunk("s", "t", 2, ("a", "b"), None, None, unique=False, buckets=8, bucket=2)
    assert Chunk.from_json(bucket.to_json()) == bucket and bucket.chunk_id() != plain.chunk_id()
    assert bucket.where_sql() == hash_predicate(("a", "b"), 8, 2)
    assert bucket.where_sql() == "MOD(CRC32(CONCAT_WS(0x1f, IFNULL(`a`, 0x00), IFNULL(`b`, 0x00))), 8) = 2"
    assert "\\" not in bucket.where_sql() and "'" not in bucket.where_sql()  # same under any sql_mode


def test_chunk_timeout_scales_with_what_a_chunk_writes_and_scans() -> None:
    small = _table("small", 10 * MB)
    assert chunk_timeout(small, [Chunk("s", "small", 0, ("id",), None, None)], 16 * MB) == 16 * 32
    # A 20 GB table copied whole: the old fixed 480 s could never be enough.
    whole = _table("whole", 20 * 1024 * MB)
    assert chunk_timeout(whole, [Chunk("s", "whole", 0, (), None, None)], 16 * MB) > 20 * 1024 * 30
    # Hash buckets write their share but each scans the whole table.
    buckets = [Chunk("s", "whole", k, ("v",), None, None, unique=False, buckets=32, bucket=k) for k in range(32)]
    share = 20 * 1024 / 32
    assert chunk_timeout(whole, buckets, 16 * MB) == share * 30 + 20 * 1024 * 2
    assert chunk_timeout(_table("empty", 0), [], 1) == MIN_CHUNK_TIMEOUT


def test_copy_order_and_batches() -> None:
    tables = [_table("a", 5 * MB), _table("b", 50 * MB, index=3 * MB), _table("c", 500 * MB), _table("d", 0, 1)]
    assert [t.name for t in copy_order(tables)] == ["b", "d", "c", "a"]  # index builds first, then by size
    many = [_table(f"t{i:05d}", 1000) for i in range(1000)]
    groups = batches(many, 16 * MB)
    assert [len(g) for g in groups] == [BATCH_TABLES] * 3 + [1000 - 3 * BATCH_TABLES]
    assert batches([_table("big", 100 * 1024 * MB), *many[:3]], 16 * MB)[0][0].name == "big"
    assert len(batches([_table("big", 100 * 1024 * MB), *many[:3]], 16 * MB)[0]) == 1  # alone: 6,400 chunks
