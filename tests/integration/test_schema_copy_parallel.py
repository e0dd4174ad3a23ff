"""The schema copy at many tables (issue 13 item 3): created by several sessions at once, small tables with
their indexes, and a resume that finds every table needs no per-table round trip."""

from __future__ import annotations

from migrator.mysql.schema import copy_schema, deferred_indexes, missing_indexes, missing_tables
from migrator.mysql.session import MySQLSession
from tests.conftest import MakeServer, admin_endpoint

SMALL = 12
DEFER_ABOVE = 200_000  # bytes: the big table's ~0.6 MB is above, an empty table's 16 KB below


def test_tables_are_created_by_several_sessions_and_only_big_ones_wait_for_their_indexes(
    make_server: MakeServer,
) -> None:
    snapshot = make_server("snapshot", 1)
    target = make_server("target", 2)
    snapshot.execute(
        "CREATE DATABASE p",
        *(f"CREATE TABLE p.t{i:02d} (id INT PRIMARY KEY, n INT, v VARCHAR(20), KEY n (n), UNIQUE KEY v (v))"
          for i in range(SMALL)),
        "CREATE TABLE p.big (id INT PRIMARY KEY, pad CHAR(255) NOT NULL, n INT, KEY n (n))",
        "INSERT INTO p.big SELECT seq, REPEAT('x', 255), seq % 7 FROM p.seq_1_to_2000",
        "ANALYZE TABLE p.big",
    )
    snap_ep, tgt_ep = admin_endpoint(snapshot), admin_endpoint(target)
    with MySQLSession(snap_ep) as snap, MySQLSession(tgt_ep) as tgt:
        tables = copy_schema(
            snap, tgt, ["p"], defer_min_bytes=DEFER_ABOVE, workers=3,
            connect_snapshot=lambda: MySQLSession(snap_ep), connect_target=lambda: MySQLSession(tgt_ep),
        )
        assert len(tables) == SMALL + 1 and missing_tables(tgt, tables) == []
        by_name = {t.name: t for t in tables}
        assert by_name["big"].size_estimate > DEFER_ABOVE >= by_name["t00"].size_estimate
        for i in range(SMALL):  # small: created whole, nothing left for an index build
            assert snap.one(f"SHOW CREATE TABLE p.t{i:02d}") == tgt.one(f"SHOW CREATE TABLE p.t{i:02d}")
        big = by_name["big"]
        assert missing_indexes(tgt, big, deferred_indexes(snap, big)) == ["KEY `n` (`n`)"]

        # A table gone from the target since: the resume's one catalog read names it, the copy re-creates it.
        tgt.execute("DROP TABLE p.t05")
        assert [t.name for t in missing_tables(tgt, tables)] == ["t05"]
        again = copy_schema(
            snap, tgt, ["p"], defer_min_bytes=DEFER_ABOVE, workers=3,
            connect_snapshot=lambda: MySQLSession(snap_ep), connect_target=lambda: MySQLSession(tgt_ep),
        )
        assert [t.name for t in again] == [t.name for t in tables] and missing_tables(tgt, again) == []
        assert snap.one("SHOW CREATE TABLE p.t05") == tgt.one("SHOW CREATE TABLE p.t05")
