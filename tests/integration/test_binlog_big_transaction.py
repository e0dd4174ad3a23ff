"""A source transaction larger than a round trip streams into one target transaction, exactly once (B7)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from migrator.platforms.local_server import LocalServer
from migrator.ports import SnapshotCoordinates
from migrator.tools.binlog_text import Transaction, parse
from tests.conftest import MakeServer
from tests.integration.binlog_text_tool import mariadb_text
from tests.integration.test_binlog_applier import (
    TARGET_ARGS,
    copy_binlogs,
    make_applier,
    master_status,
    rows,
    table_rows,
)


class Crash(Exception):
    pass


def _source_with_a_big_transaction(make_server: MakeServer) -> tuple[LocalServer, LocalServer, SnapshotCoordinates]:
    source = make_server("source", 1)
    target = make_server("target", 2, extra_args=TARGET_ARGS)
    for server in (source, target):
        server.execute("CREATE DATABASE app", "CREATE TABLE app.big (id INT PRIMARY KEY, b LONGBLOB)",
                       "CREATE TABLE app.small (id INT PRIMARY KEY)")
    start = SnapshotCoordinates(*master_status(source))
    conn = source.root()
    try:
        cur = conn.cursor()
        cur.execute("INSERT INTO app.small VALUES (1)")
        conn.begin()  # ~8 MB of row events in one transaction
        for i in range(160):
            cur.execute("INSERT INTO app.big VALUES (%s, %s)", (i, os.urandom(50_000)))
        cur.execute("UPDATE app.big SET b = REVERSE(b) WHERE id < 20")
        # One statement of ~4 MB of rows: mysqlbinlog prints it as ONE BINLOG statement, cut at events.
        cur.execute("INSERT INTO app.big SELECT 1000 + seq, REPEAT(MD5(seq), 3000) FROM mysql.seq_1_to_40")
        conn.commit()
        cur.execute("INSERT INTO app.small VALUES (2)")
    finally:
        conn.close()
    return source, target, start


def test_a_crash_mid_stream_rolls_the_big_transaction_back_and_a_resume_applies_it_once(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source, target, start = _source_with_a_big_transaction(make_server)
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)
    parts: list[str] = []

    def crash_on_fourth_part(name: str) -> None:
        if name == "apply.stream_part":
            parts.append(name)
            if len(parts) == 4:
                raise Crash(name)

    crashing = make_applier(target, archive, start, tmp_path, group_commit=50,
                            fault_hook=crash_on_fourth_part, max_chunk_bytes=512 << 10)
    with pytest.raises(Crash):
        crashing.apply_available()
    crashing.close()
    assert len(parts) == 4  # parts went to the target before the transaction's end was read
    assert rows(target, "SELECT COUNT(*) FROM app.big") == [(0,)]
    assert rows(target, "SELECT id FROM app.small") == [(1,)]

    resumed = make_applier(target, archive, start, tmp_path, group_commit=50,
                           max_chunk_bytes=512 << 10)
    progress = resumed.apply_available()
    assert progress.position == master_status(source)
    for table in ("big", "small"):
        assert table_rows(target, "app", table) == table_rows(source, "app", table)


def test_stopping_inside_a_big_transaction_leaves_none_of_it(make_server: MakeServer, tmp_path: Path) -> None:
    source, target, start = _source_with_a_big_transaction(make_server)
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)
    (big,) = [u for u in parse(mariadb_text(source, start.file, start.position).splitlines())
              if isinstance(u, Transaction) and ("app", "big") in u.tables]
    applier = make_applier(target, archive, start, tmp_path, max_chunk_bytes=512 << 10)
    progress = applier.apply_available(stop_at=(start.file, (big.start_pos + big.end_pos) // 2))
    assert progress.position == (start.file, big.start_pos)  # up to the big transaction, nothing of it
    assert rows(target, "SELECT COUNT(*) FROM app.big") == [(0,)]
    assert rows(target, "SELECT id FROM app.small") == [(1,)]
    assert applier.apply_available().position == master_status(source)
    assert table_rows(target, "app", "big") == table_rows(source, "app", "big")
