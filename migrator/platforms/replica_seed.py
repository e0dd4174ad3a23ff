"""Fill an empty local replica from the live source in parallel, as of one binlog position.

What ``mariadb-dump --single-transaction --master-data | mariadb`` did in one stream (336 s for
10,000 small tables, and it could not load a table whose DEFAULT is NEXTVAL of a sequence dumped
after it), done with the copy's own pieces:

1. ``workers`` source sessions open one consistent snapshot and its coordinates
   (migrator.mysql.consistent_snapshot: commits blocked for a moment, no prepared XA).
2. Schemas, sequences (before the tables that draw from them) and base tables are created with
   step 6's schema copy, with every index (a replica must be the source's twin).
3. Each worker copies whole tables, or key-range chunks of big ones, through its own snapshot
   session: the row path of the copy (rows rendered as SQL tuples by the source, multi-row INSERTs,
   one replica transaction per chunk). External tools cannot join a snapshot; a session can.
   After each chunk the session rolls back to a savepoint, which keeps the snapshot but releases
   the table's metadata lock, so DDL on the source waits at most for one chunk (as mysqldump does).
4. Procedures, functions, views, triggers (after the rows: they must not fire on the load) and
   events (with the source's status; the replica's scheduler is off) are created, so that DDL the source logs later (a DROP
   PROCEDURE, an ALTER VIEW) replays on the replica as it did after the dump.

Nothing goes to the replica's binlog (sql_log_bin = 0: step 3's proof reads it for the replica's
own writes). The caller then starts replication at the returned coordinates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from migrator.copy.rows import RowTooLong, insert_rendered, rendered_row_batches
from migrator.endpoint import Endpoint
from migrator.errors import StepFailed
from migrator.mysql import routines
from migrator.mysql.chunking import SESSION_TIME_ZONE, Chunk, plan_chunks
from migrator.mysql.consistent_snapshot import open_consistent_snapshot
from migrator.mysql.flavour import Flavour
from migrator.mysql.schema import SCHEMA_SQL_MODE, TableInfo, copy_schema
from migrator.mysql.session import MySQLSession
from migrator.ports import SnapshotCoordinates
from migrator.tools.dump_pipe import ROW_BATCH_BYTES, insert_prefix

# Copy chunks of about this much data; a table at most this big is one chunk with no planning query.
CHUNK_BYTES = 32 * 1024 * 1024
SAVEPOINT = "migrator_seed"


@dataclass(frozen=True)
class SeedReport:
    coordinates: SnapshotCoordinates
    tables: int
    chunks: int
    rows: int
    objects: int  # procedures, functions, views, triggers and events created
    seconds: float


def _plan(catalog: MySQLSession, tables: Sequence[TableInfo], chunk_bytes: int) -> list[Chunk]:
    """Whole small tables (no query), key ranges of big ones; biggest tables first, so they do not finish last."""
    chunks: list[Chunk] = []
    for table in sorted(tables, key=lambda t: (-t.size_estimate, t.schema, t.name)):
        if table.size_estimate <= chunk_bytes:
            chunks.append(Chunk(table.schema, table.name, 0, (), None, None))
        else:
            # Boundaries from the live source: any boundaries tile the table, the rows come from the snapshot.
            chunks.extend(plan_chunks(catalog, table, chunk_bytes, with_indexes=False))
    return chunks


class _Worker:
    """One snapshot session of the source and one session of the replica; copies chunks one at a time."""

    def __init__(self, snapshot: MySQLSession, replica: Endpoint) -> None:
        self.source = snapshot
        self.source.execute(f"SAVEPOINT {SAVEPOINT}")
        self.replica = _replica_session(replica)
        for sql in (
            f"SET SESSION time_zone = '{SESSION_TIME_ZONE}'",
            "SET SESSION foreign_key_checks = 0",
            # Not strict: strict refuses ENUM's index-0 value; every other warning fails the chunk.
            f"SET SESSION sql_mode = '{SCHEMA_SQL_MODE}'",
        ):
            self.replica.execute(sql)
        self.packet = int(self.replica.value("SELECT @@max_allowed_packet"))

    def close(self) -> None:
        self.replica.close()

    def copy(self, table: TableInfo, chunk: Chunk) -> int:
        """The chunk's rows in one replica transaction; returns how many."""
        budget = min(ROW_BATCH_BYTES, self.packet // 2)
        prefix = insert_prefix(table)
        count = 0
        self.replica.conn.begin()
        try:
            try:
                for batch, zeros in rendered_row_batches(self.source, table, chunk, budget):
                    self._insert(table, prefix, batch, zeros)
                    count += len(batch)
            except RowTooLong as exc:
                raise StepFailed(str(exc)) from exc
            self.replica.conn.commit()
        except BaseException:
            self.replica.conn.rollback()
            raise
        # Keeps the snapshot, drops the table's metadata lock: DDL on the source need not wait for the whole seed.
        self.source.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
        return count

    def _insert(self, table: TableInfo, prefix: bytes, rows: list[bytes], zeros: int) -> None:
        extra = insert_rendered(self.replica, prefix + b",".join(rows), zeros)
        if extra is not None:
            warnings, said = extra
            raise StepFailed(
                f"loading {table.qualified_name} into the replica changed a value ({warnings} warnings,"
                f" {zeros} expected from index-0 ENUM values): {said}"
            )

def _copy_rows(
    snapshot_sessions: list[MySQLSession], replica: Endpoint, tables: dict[tuple[str, str], TableInfo], chunks: list[Chunk]
) -> int:
    """Every chunk, each worker through its own snapshot session; returns the rows copied."""
    queue = list(reversed(chunks))
    lock = threading.Lock()
    failed = threading.Event()

    def work(snapshot: MySQLSession) -> int:
        worker = _Worker(snapshot, replica)
        rows = 0
        try:
            while not failed.is_set():
                with lock:
                    if not queue:
                        return rows
                    chunk = queue.pop()
                try:
                    rows += worker.copy(tables[(chunk.schema, chunk.table)], chunk)
                except BaseException:
                    failed.set()  # the others stop after their current chunk
                    raise
            return rows
        finally:
            worker.close()

    with ThreadPoolExecutor(max_workers=len(snapshot_sessions), thread_name_prefix="seed") as pool:
        futures = [pool.submit(work, s) for s in snapshot_sessions]
        return sum(f.result() for f in futures)


def _replica_session(replica: Endpoint) -> MySQLSession:
    session = MySQLSession(replica)
    session.execute("SET SESSION sql_log_bin = 0")  # the load is the replica's starting state, not its own writes
    return session


def _copy_definitions(catalog: MySQLSession, replica: Endpoint, schemas: list[str]) -> int:
    """Procedures, functions, views, triggers and events of ``schemas`` (events with the source's status)."""
    definitions = [routines.definition(catalog, ref) for ref in routines.list_objects(catalog, schemas)]
    if not definitions:
        return 0
    with _replica_session(replica) as session:
        pending = definitions
        errors: dict[str, str] = {}
        while pending:  # a view over a view: in passes until nothing more succeeds
            failed = []
            for d in pending:
                try:
                    # Events keep their status, as in the source (and as the dump had them): step 3
                    # refuses a replica whose scheduler could fire them.
                    routines.create(session, d, events_disabled=False)
                except pymysql.err.MySQLError as exc:
                    failed.append(d)
                    errors[str(d.ref)] = str(exc)
            if len(failed) == len(pending):
                raise StepFailed(
                    "creating the local replica failed: " + "; ".join(f"{d.ref}: {errors[str(d.ref)]}" for d in failed)
                )
            pending = failed
    return len(definitions)


def seed_replica(
    source: Endpoint,
    replica: Endpoint,
    flavour: Flavour,
    schemas: list[str],
    *,
    workers: int,
    xa_timeout: float,
    log: Any,
    chunk_bytes: int = CHUNK_BYTES,
) -> SeedReport:
    """Copy ``schemas`` from ``source`` into the empty ``replica``; returns where its replication must start."""
    started = time.monotonic()
    snapshot = open_consistent_snapshot(
        source,
        flavour,
        sessions=workers,
        xa_timeout=xa_timeout,
        log=log,
        session_setup=(f"SET SESSION time_zone = '{SESSION_TIME_ZONE}'",),
    )
    try:
        with MySQLSession(source) as catalog:
            with _replica_session(replica) as target:
                tables = copy_schema(
                    catalog,
                    target,
                    schemas,
                    defer_indexes=False,
                    workers=workers,
                    connect_snapshot=lambda: MySQLSession(source),
                    connect_target=lambda: _replica_session(replica),
                )
            schema_seconds = time.monotonic() - started
            chunks = _plan(catalog, tables, chunk_bytes)
            rows = _copy_rows(snapshot.sessions, replica, {(t.schema, t.name): t for t in tables}, chunks)
            rows_seconds = time.monotonic() - started - schema_seconds
            objects = _copy_definitions(catalog, replica, schemas)
    finally:
        snapshot.close()
    report = SeedReport(snapshot.coordinates, len(tables), len(chunks), rows, objects, time.monotonic() - started)
    log.info(
        "replica.seeded",
        tables=report.tables,
        chunks=report.chunks,
        rows=report.rows,
        objects=report.objects,
        seconds=round(report.seconds, 2),
        schema_seconds=round(schema_seconds, 2),
        rows_seconds=round(rows_seconds, 2),
        file=report.coordinates.file,
        position=report.coordinates.position,
    )
    return report
