"""Several source sessions in one consistent snapshot with its binlog coordinates (the local replica's seed)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pymysql
import pytest

from migrator.mysql.consistent_snapshot import PreparedXaTransactions, open_consistent_snapshot
from migrator.mysql.flavour import detect
from migrator.mysql.session import MySQLSession
from tests.conftest import MakeServer, admin_endpoint
from tests.integration.test_local_replica import RecordingLog


def _connect(endpoint: Any) -> Any:
    return pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.user,
                           password=endpoint.password.reveal(), autocommit=True)


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_the_commit_lock_holds_back_xa_prepare(make_server: MakeServer) -> None:
    """What the XA check relies on (MariaDB 10.11): under BACKUP STAGE BLOCK_COMMIT an XA PREPARE waits."""
    server = make_server("source", 1)
    endpoint = admin_endpoint(server)
    server.execute("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY)")
    xa, lock = _connect(endpoint), _connect(endpoint)
    with xa.cursor() as cur:
        for sql in ("XA START 'x'", "INSERT INTO d.t VALUES (1)", "XA END 'x'"):
            cur.execute(sql)
    with lock.cursor() as cur:
        cur.execute("BACKUP STAGE START")
        cur.execute("BACKUP STAGE BLOCK_COMMIT")
    prepared = threading.Event()

    def prepare() -> None:
        with xa.cursor() as cur:
            cur.execute("XA PREPARE 'x'")
        prepared.set()

    thread = threading.Thread(target=prepare)
    thread.start()
    with MySQLSession(endpoint) as watcher:
        _wait_for(
            lambda: any(str(r[0]).startswith("XA PREPARE") for r in watcher.rows(
                "SELECT INFO FROM information_schema.PROCESSLIST WHERE STATE = 'Waiting for backup lock'")),
            10, "the XA PREPARE to wait for the backup lock",
        )
        assert not prepared.is_set() and watcher.rows("XA RECOVER") == []
        with lock.cursor() as cur:
            cur.execute("BACKUP STAGE END")
        thread.join(10)
        assert prepared.is_set() and len(watcher.rows("XA RECOVER")) == 1
    with xa.cursor() as cur:
        cur.execute("XA ROLLBACK 'x'")
    xa.close()
    lock.close()


def test_sessions_share_one_moment_and_a_prepared_xa_that_stays_stops_it_by_name(make_server: MakeServer) -> None:
    server = make_server("source", 1)
    endpoint = admin_endpoint(server)
    server.execute("CREATE DATABASE d", "CREATE TABLE d.t (id INT PRIMARY KEY AUTO_INCREMENT, v INT)")
    flavour = detect(str(server_version(endpoint)))
    stop = threading.Event()

    def write() -> None:
        with MySQLSession(endpoint) as s:
            while not stop.is_set():
                s.execute("INSERT INTO d.t (v) VALUES (1)")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        with MySQLSession(endpoint) as probe:
            _wait_for(lambda: int(probe.value("SELECT COUNT(*) FROM d.t")) > 50, 10, "the writer's first rows")
        snapshot = open_consistent_snapshot(endpoint, flavour, sessions=3, xa_timeout=5, log=RecordingLog())
        try:
            counts = {int(s.value("SELECT COUNT(*) FROM d.t")) for s in snapshot.sessions}
            assert len(counts) == 1  # while the writer goes on, every session sees the same rows
            assert snapshot.coordinates.position > 4
        finally:
            snapshot.close()
    finally:
        stop.set()
        writer.join(10)

    xa = _connect(endpoint)
    with xa.cursor() as cur:
        for sql in ("XA START 'stuck'", "INSERT INTO d.t (v) VALUES (2)", "XA END 'stuck'", "XA PREPARE 'stuck'"):
            cur.execute(sql)
    log = RecordingLog()
    with pytest.raises(PreparedXaTransactions, match="stuck") as raised:
        open_consistent_snapshot(endpoint, flavour, sessions=2, xa_timeout=0.5, log=log)
    assert "XA COMMIT or XA ROLLBACK" in (raised.value.hint or "")
    assert [e for e, _ in log.events] == ["replica.seed_waits_for_xa"]
    with xa.cursor() as cur:
        cur.execute("XA ROLLBACK 'stuck'")
    xa.close()


def server_version(endpoint: Any) -> str:
    with MySQLSession(endpoint) as s:
        return str(s.value("SELECT VERSION()"))
