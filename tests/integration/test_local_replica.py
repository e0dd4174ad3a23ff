"""The local platform's replica, built by the parallel seed (issue 13 item 3): identical, and replicating
from exactly the position its rows were read at, with writes, a sequence default and a prepared XA on the
source while it is built."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from migrator.mysql import heartbeat, routines
from migrator.mysql.flavour import detect
from migrator.mysql.schema import base_tables
from migrator.mysql.sequences import read_sequences
from migrator.mysql.session import MySQLSession
from migrator.platforms.local import LocalPlatform
from migrator.platforms.replica_seed import seed_replica
from tests.conftest import MakeServer, admin_endpoint
from tests.harness import Sandbox, make_sandbox, stop_local_replicas

SCHEMAS = ["shop", "hr"]


class RecordingLog:
    """A structlog-shaped logger that keeps each event's name and fields, and signals chosen events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.seen: dict[str, threading.Event] = {}

    def watch(self, event: str) -> threading.Event:
        return self.seen.setdefault(event, threading.Event())

    def _record(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))
        if event in self.seen:
            self.seen[event].set()

    info = warning = error = debug = exception = _record

    def bind(self, **_fields: Any) -> RecordingLog:
        return self


class Writer(threading.Thread):
    """Autocommit INSERTs of consecutive ids into shop.seed_writes until stopped: a busy source."""

    def __init__(self, endpoint: Any) -> None:
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.stop_now = threading.Event()
        self.written = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with MySQLSession(self.endpoint) as s:
                while not self.stop_now.is_set():
                    s.execute("INSERT INTO shop.seed_writes (id, note) VALUES (%s, 'w')", (self.written + 1,))
                    self.written += 1
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.fixture
def sandbox(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(make_server, tmp_path)
    box.source.execute(
        "CREATE SEQUENCE shop.ticket_seq START WITH 1000",
        # mariadb-dump wrote this table before the sequence it draws from: the old load failed (1146).
        "CREATE TABLE shop.tickets (id BIGINT NOT NULL PRIMARY KEY DEFAULT NEXTVAL(shop.ticket_seq), note VARCHAR(20))",
        "INSERT INTO shop.tickets (note) VALUES ('a'), ('b')",
        "CREATE TABLE shop.seed_writes (id INT PRIMARY KEY, note VARCHAR(10))",
        "CREATE TABLE shop.xa_rows (id INT PRIMARY KEY)",
    )
    yield box
    stop_local_replicas(box)


def _contents(session: MySQLSession) -> dict[str, Any]:
    """Every migrated table's rows (sorted), the sequences' state and the routines' definitions."""
    tables = {
        t.qualified_name: sorted(session.rows(f"SELECT * FROM {t.sql_name}"), key=repr)
        for t in base_tables(session, SCHEMAS)
    }
    sequences = {k: v.state for k, v in read_sequences(session, SCHEMAS).items()}
    objects = sorted(str(r) for r in routines.list_objects(session, SCHEMAS))
    events = session.rows(
        "SELECT EVENT_SCHEMA, EVENT_NAME, STATUS FROM information_schema.EVENTS ORDER BY EVENT_SCHEMA, EVENT_NAME"
    )
    return {"tables": tables, "sequences": sequences, "objects": objects, "events": events}


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_replica_is_built_at_one_position_and_replicates_from_it(sandbox: Sandbox) -> None:
    config = sandbox.config()
    log = RecordingLog()
    waiting_for_xa = log.watch("replica.seed_waits_for_xa")
    platform = LocalPlatform(config, log=log)
    source = admin_endpoint(sandbox.source)
    with MySQLSession(source) as s:
        heartbeat.ensure_table(s)  # as step 2 does before it creates the replica

    # A prepared XA on the source when the build starts: its rows must reach the replica once.
    xa = pymysql.connect(host="127.0.0.1", port=sandbox.source.port, user=source.user,
                         password=source.password.reveal(), autocommit=True)
    with xa.cursor() as cur:
        for sql in ("XA START 'seed'", "INSERT INTO shop.xa_rows VALUES (1), (2)", "XA END 'seed'", "XA PREPARE 'seed'"):
            cur.execute(sql)
    writer = Writer(source)
    writer.start()
    built: dict[str, Any] = {}

    def build() -> None:
        try:
            built["handle"] = platform.create_replica("test-snapshot")
        except BaseException as exc:
            built["error"] = exc

    builder = threading.Thread(target=build)
    builder.start()
    # The build holds off while the XA is prepared; it goes on once the XA is committed.
    _wait_for(lambda: waiting_for_xa.is_set() or not builder.is_alive(), 60, "the build to notice the prepared XA")
    assert waiting_for_xa.is_set(), f"the build did not wait for the prepared XA: {built}"
    with xa.cursor() as cur:
        cur.execute("XA COMMIT 'seed'")
    xa.close()
    builder.join(120)
    writer.stop_now.set()
    writer.join(10)
    assert writer.error is None, writer.error
    assert "error" not in built, built.get("error")
    assert writer.written > 0
    # Rows after the build replicate too (the sequence moves by replication as well).
    sandbox.source.execute("INSERT INTO shop.tickets (note) VALUES ('after')", "INSERT INTO shop.xa_rows VALUES (3)")

    replica = built["handle"].endpoint
    with MySQLSession(source) as src, MySQLSession(replica) as rep:
        head = src.dicts("SHOW MASTER STATUS")[0]

        def caught_up() -> bool:
            status = rep.dicts("SHOW SLAVE STATUS")[0]
            assert status["Last_SQL_Errno"] == 0, status["Last_SQL_Error"]
            return bool(
                status["Relay_Master_Log_File"] == head["File"] and int(status["Exec_Master_Log_Pos"]) == int(head["Position"])
            )

        _wait_for(caught_up, 60, "the replica to reach the source's head")
        status = rep.dicts("SHOW SLAVE STATUS")[0]
        assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes"
        # Started too early, a row written during the build would arrive twice (1062 stops it above);
        # too late, it would be missing here.
        assert _contents(rep) == _contents(src)
        assert [tuple(r) for r in rep.rows("SELECT id FROM shop.xa_rows ORDER BY id")] == [(1,), (2,), (3,)]
        assert int(rep.value("SELECT COUNT(*) FROM shop.seed_writes")) == writer.written
        # The load is not in the replica's own binlog (step 3 proves the snapshot from it).
        assert not [
            e for e in rep.dicts("SHOW BINLOG EVENTS") if "seed_writes" in str(e.get("Info", ""))
        ]
    seeded = [fields for event, fields in log.events if event == "replica.seeded"]
    assert seeded and seeded[0]["tables"] >= 10


def test_big_tables_are_seeded_in_key_ranges_by_every_worker(sandbox: Sandbox, make_server: MakeServer) -> None:
    """Chunks of 64 KB: the sample's tables split into key ranges (hash buckets where keyless), read by three
    snapshot sessions: the replica still holds exactly the source's rows."""
    replica = make_server("replica", 7)
    source = admin_endpoint(sandbox.source)
    with MySQLSession(source) as s:
        heartbeat.ensure_table(s)
        flavour = detect(str(s.value("SELECT VERSION()")))
    log = RecordingLog()
    report = seed_replica(
        source, admin_endpoint(replica), flavour, [*SCHEMAS, heartbeat.SCHEMA],
        workers=3, xa_timeout=5, log=log, chunk_bytes=64 * 1024,
    )
    assert report.chunks > report.tables * 2  # most tables came in several ranges
    with MySQLSession(source) as src, MySQLSession(admin_endpoint(replica)) as rep:
        assert _contents(rep) == _contents(src)
        assert report.rows == sum(len(rows) for rows in _contents(src)["tables"].values()) + int(
            src.value(f"SELECT COUNT(*) FROM {heartbeat.SCHEMA}.heartbeat")
        )
