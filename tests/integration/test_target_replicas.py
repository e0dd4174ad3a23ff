"""Replicas already attached to the target get the copied rows too: the copy keeps the binlog on (review A7)."""

from __future__ import annotations

import time
from pathlib import Path

from migrator.copy import ChunkCopier, MemoryLedger
from migrator.mysql.chunking import plan_chunks_by_rows
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.schema import copy_schema
from migrator.mysql.session import MySQLSession
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, MakeServer, admin_endpoint


def count(session: MySQLSession) -> int:
    return int(session.value("SELECT COUNT(*) FROM app.items"))


def test_copy_reaches_a_replica_of_the_target(make_server: MakeServer, tmp_path: Path) -> None:
    snapshot = make_server("snapshot", 1)
    target = make_server("target", 2)
    downstream = make_server("target-replica", 5)  # HA the operator attached before the cut-over
    snapshot.execute(
        "CREATE DATABASE app",
        "USE app",
        "CREATE TABLE app.items (id INT PRIMARY KEY, v VARCHAR(40))",
        "INSERT INTO app.items SELECT seq, CONCAT('v', seq) FROM seq_1_to_3000",
    )
    with MySQLSession(admin_endpoint(target)) as t:
        first = str(t.rows("SHOW BINARY LOGS")[0][0])
    with MySQLSession(admin_endpoint(downstream)) as d:
        d.execute(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s,"
            " MASTER_LOG_FILE=%s, MASTER_LOG_POS=4, MASTER_USE_GTID=no",
            (target.port, ADMIN_USER, ADMIN_PASSWORD, first),
        )
        d.execute("START SLAVE")
    with MySQLSession(admin_endpoint(target)) as t:
        deadline = time.monotonic() + 20
        while not t.rows("SHOW SLAVE HOSTS") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert t.rows("SHOW SLAVE HOSTS"), "the downstream replica did not register"

    with MySQLSession(admin_endpoint(snapshot)) as snap, MySQLSession(admin_endpoint(target)) as tgt:
        tables = copy_schema(snap, tgt, ["app"])
        chunks = [c for t in tables for c in plan_chunks_by_rows(snap, t, 500)]
        assert len(chunks) > 1
        copier = ChunkCopier(
            admin_endpoint(snapshot),
            admin_endpoint(target),
            MARIADB_10_11,
            workers=2,
            ledger=MemoryLedger(),
            secrets_dir=tmp_path / "secrets",
        )
        copier.copy(chunks)
        assert count(tgt) == 3000
    with MySQLSession(admin_endpoint(downstream)) as d:
        deadline = time.monotonic() + 30
        while count(d) < 3000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert count(d) == 3000  # before: the table, but none of its rows (loaded with sql_log_bin=0)
