"""Steps 8 and 10 on real servers: chunked checksums side by side, and drill-down to the keys."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from migrator.copy import ChunkCopier, MemoryLedger
from migrator.errors import VerificationFailed
from migrator.mysql.checksum import VerifyReport, compare_tables, row_counts
from migrator.mysql.chunking import plan_chunks, plan_chunks_by_rows
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.schema import TableInfo, base_tables, copy_schema
from migrator.mysql.session import MySQLSession
from migrator.platforms.local_server import LocalServer
from tests.conftest import MakeServer, admin_endpoint
from tests.integration.test_copy import SCHEMAS, SNAPSHOT_TZ, TARGET_TZ, build_rich_dataset

Pair = tuple[LocalServer, LocalServer]


@pytest.fixture
def twins(make_server: MakeServer) -> Pair:
    """The same dataset built on two servers in different time zones: equal by construction."""
    source = make_server("source", 1, extra_args=SNAPSHOT_TZ)
    target = make_server("target", 2, extra_args=TARGET_TZ)
    build_rich_dataset(source)
    build_rich_dataset(target)
    return source, target


def tables_of(server: LocalServer) -> dict[str, TableInfo]:
    with MySQLSession(admin_endpoint(server)) as session:
        return {t.qualified_name: t for t in base_tables(session, SCHEMAS)}


def compare(twins: Pair, tables: list[TableInfo], chunk_rows: int = 2000) -> VerifyReport:
    source, target = twins
    return compare_tables(admin_endpoint(source), admin_endpoint(target), tables, chunk_rows=chunk_rows)


def test_equal_data_in_different_time_zones_is_equal(twins: Pair) -> None:
    tables = list(tables_of(twins[0]).values())
    report = compare(twins, tables)
    assert report.ok, report.summary()
    with MySQLSession(admin_endpoint(twins[0])) as session:
        counts = row_counts(session, tables)
    assert report.rows == report.target_rows == sum(counts.values())
    assert report.per_table_rows == counts
    assert counts["shop.orders"] == 20_002
    assert report.chunks > 15  # orders alone is 11 ranges of 2000 rows
    assert "equal" in report.summary()


def test_a_changed_row_is_named_by_table_range_and_key(twins: Pair) -> None:
    source, target = twins
    target.execute("UPDATE shop.orders SET note = CONCAT(COALESCE(note, ''), '!') WHERE id = 6993")
    target.execute("UPDATE shop.order_items SET qty = 999 WHERE order_id = -69972 AND line = 0")
    tables = tables_of(source)
    report = compare(twins, [tables["shop.orders"], tables["shop.order_items"]])
    assert not report.ok
    by_table = {m.table: m for m in report.mismatches}
    assert set(by_table) == {"orders", "order_items"}
    orders = by_table["orders"]
    assert orders.changed == ((6993,),) and orders.differing_keys == ((6993,),)
    assert orders.source_count == orders.target_count
    assert orders.lower is None or orders.lower <= (6993,)
    assert orders.upper is None or orders.upper > (6993,)
    assert by_table["order_items"].changed == ((-69972, 0),)
    text = report.summary()
    assert "shop.orders (id) in [" in text and "changed: (6993,)" in text
    assert "shop.order_items (order_id, line) in [" in text and "(-69972, 0)" in text


def test_deleted_and_extra_rows_change_the_counts(twins: Pair) -> None:
    source, target = twins
    target.execute(
        "DELETE FROM shop.orders WHERE id = -69993",
        "DELETE FROM shop.tags WHERE name = 'it''s'",
        "INSERT INTO shop.bin_keys VALUES (0x0000000000, 7)",
    )
    tables = tables_of(source)
    report = compare(twins, [tables["shop.orders"], tables["shop.tags"], tables["shop.bin_keys"]])
    by_table = {m.table: m for m in report.mismatches}
    assert by_table["orders"].missing_on_target == ((-69993,),)
    assert by_table["orders"].source_count == by_table["orders"].target_count + 1
    # -69993 is the smallest key but one (-2^63): the first range or, cut by interpolation, the second
    assert by_table["orders"].lower in (None, (-69993,))
    assert by_table["tags"].missing_on_target == (("it's",),)
    assert by_table["bin_keys"].extra_on_target == ((b"\x00\x00\x00\x00\x00",),)
    assert by_table["bin_keys"].target_count == by_table["bin_keys"].source_count + 1


def test_keyless_table_compares_as_a_multiset(twins: Pair) -> None:
    source, target = twins
    tables = tables_of(source)
    heap = tables["shop.events_log"]
    target.execute("DELETE FROM shop.events_log LIMIT 1")
    assert compare(twins, [heap]).mismatches[0].differing_rows == 1
    source.execute("DELETE FROM shop.events_log")
    target.execute("DELETE FROM shop.events_log")
    rows = "('a', 1, NULL), ('b', NULL, '2020-01-01 00:00:00'), ('a', 1, NULL)"
    source.execute(f"INSERT INTO shop.events_log VALUES {rows}")
    target.execute(f"INSERT INTO shop.events_log VALUES {rows}")
    assert compare(twins, [heap]).ok
    target.execute("UPDATE shop.events_log SET n = 2 WHERE msg = 'b'")
    report = compare(twins, [heap])
    (mismatch,) = report.mismatches
    assert mismatch.key_columns == () and mismatch.differing_rows == 2
    assert "whole table" in mismatch.describe()


def test_null_and_empty_string_and_timestamp_shift_are_differences(twins: Pair) -> None:
    source, target = twins
    tables = tables_of(source)
    target.execute(
        "UPDATE shop.orders SET note = '' WHERE id = -69972 AND note IS NULL",  # seq 4: note was NULL
        "UPDATE shop.orders SET amount = NULL WHERE id = -69986 AND amount IS NOT NULL",
    )
    conn = target.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            cur.execute("UPDATE shop.ts_keys SET v = 'moved' WHERE ts = '2021-03-28 00:01:37' AND id = 0")
            assert cur.rowcount == 1
    finally:
        conn.close()
    report = compare(twins, [tables["shop.orders"], tables["shop.ts_keys"]])
    by_table = {m.table: m for m in report.mismatches}
    assert by_table["orders"].changed == ((-69972,), (-69986,))
    (ts_key,) = by_table["ts_keys"].changed
    assert ts_key == (dt.datetime(2021, 3, 28, 0, 1, 37), 0)  # keys reported in UTC


def test_float_precision_lost_by_the_dump_is_detected(make_server: MakeServer, tmp_path: Path) -> None:
    """mariadb-dump prints FLOAT with 6 significant digits: the checksum must see the change."""
    source = make_server("source", 1)
    target = make_server("target", 2)
    source.execute(
        "CREATE DATABASE f",
        "CREATE TABLE f.t (id INT PRIMARY KEY, exact FLOAT, lossy FLOAT, d DOUBLE, m DECIMAL(30,10))",
        "INSERT INTO f.t VALUES (1, 0.25, 0.25, 0.1, 0.1), (2, -1.5, 1.2345678, 1.0000000000000002, -1)",
    )
    with MySQLSession(admin_endpoint(source)) as snap, MySQLSession(admin_endpoint(target)) as tgt:
        (table,) = copy_schema(snap, tgt, ["f"])
        copier = ChunkCopier(
            admin_endpoint(source),
            admin_endpoint(target),
            MARIADB_10_11,
            workers=1,
            ledger=MemoryLedger(),
            secrets_dir=tmp_path,
            method="dump",
        )
        copier.copy(plan_chunks(snap, table, 1024))
        # What the dump pipe's text did to FLOAT before FLOAT tables took the row path: 6 digits.
        tgt.execute("UPDATE f.t SET lossy = CAST(lossy AS CHAR)")
        # Text reads cannot tell the two apart (both show 1.23457) ...
        assert snap.rows("SELECT lossy FROM f.t WHERE id = 2") == tgt.rows(
            "SELECT lossy FROM f.t WHERE id = 2"
        )
        # ... the stored values differ ...
        assert snap.value("SELECT CAST(lossy AS DOUBLE) FROM f.t WHERE id = 2") != tgt.value(
            "SELECT CAST(lossy AS DOUBLE) FROM f.t WHERE id = 2"
        )
        assert tgt.value("SELECT m FROM f.t WHERE id = 1") == Decimal("0.1000000000")
    # ... and the checksum names exactly that row.
    report = compare_tables(admin_endpoint(source), admin_endpoint(target), [table])
    assert [m.changed for m in report.mismatches] == [((2,),)]


def test_a_missing_target_table_fails_loudly(twins: Pair) -> None:
    source, target = twins
    target.execute("DROP TABLE shop.tags")
    with pytest.raises(VerificationFailed, match=r"shop\.tags .* on the target failed"):
        compare(twins, [tables_of(source)["shop.tags"]])


def test_whole_table_checksums_prove_equal_tables(twins: Pair) -> None:
    source, target = twins
    tables = list(tables_of(source).values())
    report = compare_tables(admin_endpoint(source), admin_endpoint(target), tables, whole_tables=True)
    assert report.ok, report.summary()
    assert report.whole_tables == len(tables)
    assert report.chunks == 0 and report.rows == 0  # nothing needed a range comparison
    assert f"{len(tables)} tables ({len(tables)} by CHECKSUM TABLE; 0 rows in 0 chunks" in report.summary()


def test_a_table_whose_whole_checksum_differs_is_narrowed_down_to_the_key(twins: Pair) -> None:
    source, target = twins
    target.execute("UPDATE shop.orders SET weight = 12345.5 WHERE id = 4242")
    tables = list(tables_of(source).values())
    report = compare_tables(
        admin_endpoint(source), admin_endpoint(target), tables, whole_tables=True, chunk_rows=2000
    )
    assert not report.ok
    assert report.whole_tables == len(tables) - 1
    assert [(m.table, m.changed) for m in report.mismatches] == [("orders", ((4242,),))]
    with MySQLSession(admin_endpoint(source)) as session:
        ranges = len(plan_chunks_by_rows(session, tables_of(source)["shop.orders"], 2000))
    assert report.chunks == ranges >= 10 and report.rows == 20_002  # only orders was compared range by range


# --- blind spots (review A4) -----------------------------------------------------------------
@pytest.fixture
def pair(make_server: MakeServer) -> Pair:
    return make_server("source", 1), make_server("target", 2)


def _one_table(pair: Pair, ddl: str, source_rows: str, target_rows: str) -> VerifyReport:
    source, target = pair
    for server, rows in ((source, source_rows), (target, target_rows)):
        server.execute("CREATE DATABASE b", ddl, f"INSERT INTO b.t VALUES {rows}")
    with MySQLSession(admin_endpoint(source)) as session:
        (table,) = base_tables(session, ["b"])
    return compare_tables(admin_endpoint(source), admin_endpoint(target), [table])


def test_duplicate_rows_of_a_keyless_table_do_not_cancel(pair: Pair) -> None:
    """BIT_XOR of two equal row hashes is 0: {paid, paid} and {refunded, refunded} looked equal."""
    report = _one_table(
        pair,
        "CREATE TABLE b.t (n INT, state VARCHAR(10))",
        "(1, 'paid'), (1, 'paid'), (2, 'x')",
        "(1, 'refunded'), (1, 'refunded'), (2, 'x')",
    )
    (mismatch,) = report.mismatches
    assert mismatch.key_columns == () and mismatch.differing_rows == 4
    assert mismatch.source_count == mismatch.target_count == 3


def test_a_value_cannot_move_between_adjacent_columns(pair: Pair) -> None:
    """CONCAT_WS('#') hashed (1,'a#','b') and (1,'a','#b') alike."""
    report = _one_table(
        pair,
        "CREATE TABLE b.t (id INT PRIMARY KEY, x VARCHAR(5), y VARCHAR(5))",
        "(1, 'a#', 'b'), (2, NULL, ''), (3, '', NULL)",
        "(1, 'a', '#b'), (2, '', NULL), (3, NULL, '')",
    )
    (mismatch,) = report.mismatches
    assert set(mismatch.changed) == {(1,), (2,), (3,)}
