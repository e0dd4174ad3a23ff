"""A table with no usable index is copied in hash buckets both servers agree on (review B8).

The snapshot and the target run in different default time zones, as in test_copy: a session that
forgot UTC would put a TIMESTAMP row into another bucket on one side, and a retried bucket would
then clear the wrong rows on the target.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from migrator.mysql.chunking import Chunk, plan_chunks
from migrator.mysql.schema import base_tables, copy_schema
from migrator.mysql.session import MySQLSession
from migrator.platforms.local_server import LocalServer
from tests.conftest import MakeServer, admin_endpoint
from tests.integration.test_copy import SNAPSHOT_TZ, TARGET_TZ, CrashingLedger, copier_for, table_rows

ROWS = 6000


@pytest.fixture
def pair(make_server: MakeServer) -> tuple[LocalServer, LocalServer]:
    snapshot = make_server("snapshot", 1, extra_args=SNAPSHOT_TZ)
    target = make_server("target", 2, extra_args=TARGET_TZ)
    snapshot.execute(
        "CREATE DATABASE shop",
        # No key and no index at all: before, one chunk under one fixed timeout, whatever its size.
        "CREATE TABLE shop.audit (at TIMESTAMP(6) NULL, who INT NULL, what VARCHAR(20) NULL, weight FLOAT NULL,"
        " body BLOB NULL) ENGINE=InnoDB",
        "SET SESSION time_zone = '+00:00'",
        "USE shop",  # the seq_1_to_N tables need a current database
        f"INSERT INTO shop.audit SELECT IF(seq % 7 = 0, NULL, FROM_UNIXTIME(1700000000 + seq) + INTERVAL seq MICROSECOND),"
        f" IF(seq % 5 = 0, NULL, seq % 97), ELT(1 + seq % 3, 'login', 'logout', NULL), seq / 3,"
        f" IF(seq % 11 = 0, NULL, RANDOM_BYTES(400)) FROM seq_1_to_{ROWS}",
        # Exact duplicates: a keyless table's rows are a multiset, and each copy of a row must land once.
        "INSERT INTO shop.audit SELECT * FROM shop.audit WHERE who = 3",
        "ANALYZE TABLE shop.audit",
    )
    return snapshot, target


def bucket_counts(session: MySQLSession, chunks: list[Chunk]) -> list[int]:
    session.execute("SET SESSION time_zone = '+00:00'")
    return [int(session.value(f"SELECT COUNT(*) FROM shop.audit WHERE {c.where_sql()}")) for c in chunks]


def test_keyless_table_copied_in_hash_buckets_and_a_retried_bucket_is_cleared_exactly(
    pair: tuple[LocalServer, LocalServer], tmp_path: Path
) -> None:
    snapshot, target = pair
    with MySQLSession(admin_endpoint(snapshot)) as snap, MySQLSession(admin_endpoint(target)) as tgt:
        total = int(snap.value("SELECT COUNT(*) FROM shop.audit"))
        audit = next(t for t in base_tables(snap, ["shop"]) if t.name == "audit")
        assert audit.key_columns == () and audit.range_index is None
        chunks = plan_chunks(snap, audit, 512 * 1024)
        assert len(chunks) >= 4 and all(c.buckets == len(chunks) and not c.unique for c in chunks)
        assert "weight" not in chunks[0].key_columns  # FLOAT's text is not the same on every server
        assert "CRC32 of (at, who, what, body) is 1 modulo" in chunks[1].describe_range()
        assert Chunk.from_json(chunks[1].to_json()) == chunks[1]
        on_snapshot = bucket_counts(snap, chunks)
        assert sum(on_snapshot) == total and min(on_snapshot) > 0  # the buckets tile the table

        copy_schema(snap, tgt, ["shop"])
        # The orchestrator dies right after the target committed the 3rd bucket, before journaling it.
        ledger = CrashingLedger(survive=2)
        with pytest.raises(RuntimeError, match="crashed"):
            copier_for(pair, tmp_path, ledger, workers=1).copy(chunks)
        committed = int(tgt.value("SELECT COUNT(*) FROM shop.audit"))
        assert committed == sum(on_snapshot[:3])  # two recorded, one committed but unrecorded
        ledger.survive = 10**9
        report = copier_for(pair, tmp_path, ledger, workers=2).copy(chunks)
        assert report.chunks_skipped == 2 and report.chunks_done == len(chunks) - 2
        # The unrecorded bucket was cleared by the same predicate and reloaded: no row twice.
        assert bucket_counts(tgt, chunks) == on_snapshot
    assert Counter(table_rows(snapshot, audit)) == Counter(table_rows(target, audit))
