"""Apply the archived binlogs to the target exactly once (the Vitess pattern).

Each source transaction, or a group of up to ``group_commit`` consecutive ones, runs in ONE target
transaction that also moves ``_migrator.apply_position``; so after a crash at any byte the target's
row says exactly which transactions it holds. The group is sent as multi-statement queries:

    round trip 1: [session SETs] BEGIN; SELECT ... FOR UPDATE (the guard); the statements
    round trip 2: UPDATE _migrator.apply_position ...; COMMIT

The guard locks the position row and proves it still is where this applier last left it (a second
applier, or a hand edit, stops us before COMMIT). DDL cannot share a transaction with the position:
a ``ddl_pending`` marker commits first, then the DDL, then the position; a marker found at start means
we stopped around a DDL, and the operator must say whether it took effect.

A source transaction larger than a round trip is not held: the parser yields it in parts as it reads
it, and they go into a target transaction of its own, rolled back unless the transaction completes.
An XA transaction takes effect at its XA COMMIT: the XA PREPARE only records where its prepared part
is (``_migrator.apply_xa``, with the position), and the XA COMMIT applies that part, read again from
the archive, with the record's deletion and the position.

The text comes from ``mariadb-binlog --start-position=<applied> <archived file>``, one run per file per
pass, each on a fresh target session (the tool prints session state only where it changes from what
*it* assumes, so the session must start from the defaults it assumes, as in ``mysqlbinlog | mysql``).

The target user needs, besides DML/DDL on the migrated schemas and on ``_migrator``: BINLOG REPLAY
(MariaDB 10.5.2+; SUPER before) or, on MySQL 8, REPLICATION_APPLIER / SESSION_VARIABLES_ADMIN, for the
BINLOG statements and pseudo_thread_id. Its max_allowed_packet must hold the largest row event x 4/3.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pymysql
import structlog

from migrator.endpoint import Endpoint
from migrator.errors import ApplyConflict, BinlogGap, StepFailed
from migrator.mysql import positions
from migrator.mysql.flavour import Flavour
from migrator.mysql.positions import binlog_sequence
from migrator.mysql.session import MySQLSession, connect, error_code, is_transient, quote_identifier
from migrator.ports import SnapshotCoordinates
from migrator.tools import client_tools
from migrator.tools.binlog_streamer import ArchivedFile, list_archive
from migrator.tools.binlog_text import (
    Incident,
    PositionMarker,
    SessionStatement,
    Statement,
    Transaction,
    TransactionAbandoned,
    TransactionPart,
    Unit,
    XaOutcome,
    account_statement_kind,
    admin_statement_kind,
    parse,
    statement_dml_kind,
    statement_tables,
)
from migrator.tools.read_ahead import ReadAhead

POSITION_SCHEMA = "_migrator"
POSITION_TABLE = f"{quote_identifier(POSITION_SCHEMA)}.`apply_position`"
FIRST_EVENT_POS = 4  # after the 4-byte magic number
_CREATE_TABLE = f"""CREATE TABLE IF NOT EXISTS {POSITION_TABLE} (
  id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
  file VARCHAR(512) NOT NULL,
  pos BIGINT UNSIGNED NOT NULL,
  gtid VARCHAR(255) NULL COMMENT 'last applied source GTID (information only)',
  ddl_pending TINYINT(1) NOT NULL DEFAULT 0,
  ddl_file VARCHAR(512) NULL,
  ddl_pos BIGINT UNSIGNED NULL,
  ddl_end_pos BIGINT UNSIGNED NULL,
  ddl_text LONGBLOB NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB"""
XA_TABLE = f"{quote_identifier(POSITION_SCHEMA)}.`apply_xa`"
# XA transactions prepared on the source and not yet committed or rolled back there: their prepared part is
# applied at their XA COMMIT, re-read from the archive by these coordinates. A row is written in the same
# target transaction that moves the position past the XA PREPARE, and deleted in the one that moves it past
# the XA COMMIT/ROLLBACK, so a resume anywhere in between neither loses nor repeats the transaction.
_CREATE_XA_TABLE = f"""CREATE TABLE IF NOT EXISTS {XA_TABLE} (
  xid VARBINARY(400) NOT NULL PRIMARY KEY COMMENT 'as mysqlbinlog prints it: X''gtrid'',X''bqual'',formatID',
  file VARCHAR(512) NOT NULL,
  start_pos BIGINT UNSIGNED NOT NULL,
  end_pos BIGINT UNSIGNED NOT NULL,
  apply TINYINT(1) NOT NULL COMMENT '0: the prepared part touches no migrated schema'
) ENGINE=InnoDB"""
# GTID bookkeeping the stream sets per transaction: dropped so the target logs GTIDs of its own.
_GTID_SESSION_VARIABLES = (
    b"gtid_domain_id", b"server_id", b"gtid_seq_no", b"skip_parallel_replication", b"gtid_next"
)
_GUARD = f"SELECT file, pos, ddl_pending FROM {POSITION_TABLE} WHERE id = 1 FOR UPDATE".encode()
_SEPARATOR = b"\n;\n"  # a newline first: a statement may end in a -- comment
_TRUNCATED_TAIL = b"Event truncated"

Position = tuple[str, int]
FaultHook = Callable[[str], None]


class _ArchiveNotReady(Exception):
    """A file the applier must read again is being fetched again: end this pass where it is."""


@dataclass
class _Stream:
    """A large source transaction being applied part by part, in a target transaction of its own."""

    start_pos: int
    verdict: str
    reason: str


def _unit_bytes(unit: Unit) -> int:
    """What a parsed unit holds in memory, roughly (the read-ahead bounds the sum)."""
    if isinstance(unit, (Transaction, TransactionPart)):
        return 256 + sum(len(s.sql) + 64 for s in unit.statements)
    if isinstance(unit, SessionStatement):
        return 64 + len(unit.sql)
    return 128


@dataclass(frozen=True)
class _PreparedXa:
    file: str
    start_pos: int
    end_pos: int
    apply: bool


@dataclass(frozen=True)
class ApplyProgress:
    transactions: int  # source transactions applied (DDL included)
    statements: int
    bytes: int  # statement bytes sent
    skipped: int  # transactions skipped by the filters (the position still moved past them)
    position: Position  # the applied position after this pass (committed on the target)
    ddl: int = 0


_GTID_SESSION_NEEDLES = tuple(b"@@session." + v + b"=" for v in _GTID_SESSION_VARIABLES)


def is_gtid_session_statement(sql: bytes) -> bool:
    lowered = sql.lower()
    if b"set @@session." not in lowered:
        return False
    compact = lowered.replace(b" ", b"")
    return any(needle in compact for needle in _GTID_SESSION_NEEDLES)


def _clean(sql: bytes) -> bytes:
    """Trailing ';' would make an empty statement in a multi-statement query (ER_EMPTY_QUERY)."""
    sql = sql.rstrip()
    while sql.endswith(b";"):
        sql = sql[:-1].rstrip()
    return sql


def _after(a: Position, b: Position) -> bool:
    return (binlog_sequence(a[0]), a[1]) > (binlog_sequence(b[0]), b[1])


def lag_bytes(
    files: Sequence[ArchivedFile] | Sequence[tuple[str, int]], applied: Position, source_head: Position
) -> int:
    """Binlog bytes from ``applied`` to ``source_head``, sizes from the archive or SHOW BINARY LOGS."""
    pairs = [(f.name, f.size) if isinstance(f, ArchivedFile) else f for f in files]
    return positions.lag_bytes(pairs, applied, source_head)


def _run_multi(conn: Any, sql: bytes, count: int, want: int | None = None) -> list[tuple[Any, ...]]:
    """Run ``count`` statements sent as one query; return the rows of the ``want``-th one's result set.

    Only that statement's rows: others may return result sets too (ANALYZE TABLE, a statement-based
    SELECT), which must not be read as the guard's row.

    Results are read by count, not by the server's "more results" flag: MariaDB 10.11 clears that
    flag in the OK packet of a BINLOG statement replaying row events, though it goes on executing the
    rest (pymysql's nextset() would stop early and the next query would read stale packets).
    Every statement we send yields exactly one result; an error ends the batch and raises here.
    """
    rows: list[tuple[Any, ...]] = []
    conn.query(sql)
    for index in range(count):
        if index:
            conn.next_result()
        result = conn._result  # pymysql keeps the current result only here
        if index == want and result is not None and result.rows:
            rows.extend(result.rows)
    return rows


@dataclass
class _Counters:
    transactions: int = 0
    statements: int = 0
    bytes: int = 0
    skipped: int = 0
    ddl: int = 0


class BinlogApplier:
    def __init__(
        self,
        target: Endpoint,
        archive_dir: Path,
        flavour: Flavour,
        *,
        schemas: frozenset[str],
        start: SnapshotCoordinates,
        secrets_dir: Path,
        group_commit: int = 50,
        log: Any = None,
        max_chunk_bytes: int = 8 << 20,
        read_ahead_bytes: int = 16 << 20,
        fault_hook: FaultHook | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.archive_dir = archive_dir
        self.flavour = flavour
        self.schemas = schemas
        self.start = start
        self.secrets_dir = secrets_dir  # the tool reads local files: no credentials needed today
        self.group_commit = max(1, group_commit)
        self.log = log if log is not None else structlog.get_logger()
        self.max_chunk_bytes = max_chunk_bytes
        self.read_ahead_bytes = read_ahead_bytes  # parsed units waiting for the target, at most
        self.fault_hook = fault_hook
        self._sleep = sleep
        self._monotonic = monotonic
        self._tool = client_tools.binlog_tool(flavour).path
        self.error: BaseException | None = None
        self._conn: Any = None  # a pymysql connection (the library ships no types)
        self._chunk_budget = max_chunk_bytes
        self._dirty = False  # the session ran binlog statements: the next file run needs a fresh one
        self._session_db: str | None = None
        # Per pass: the last committed position, and the cursor (past every unit consumed so far).
        self._committed: Position = (start.file, start.position)
        self._cursor: Position = self._committed
        self._cursor_gtid: str | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._group_open = False  # BEGIN + guard sent, or queued in _pending
        self._group_size = 0
        self._xa: dict[str, _PreparedXa] = {}  # prepared on the source, applied once committed there
        self._stream: _Stream | None = None  # a large transaction partly sent, not yet complete

    # --- the position row --------------------------------------------------------------------
    def ensure_position_table(self) -> None:
        with MySQLSession(self.target) as session:
            session.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(POSITION_SCHEMA)}")
            session.execute(_CREATE_TABLE)
            session.execute(_CREATE_XA_TABLE)
            inserted = session.execute(
                f"INSERT IGNORE INTO {POSITION_TABLE} (id, file, pos, gtid) VALUES (1, %s, %s, %s)",
                (self.start.file, self.start.position, self.start.gtid),
            )
        if inserted:
            self.log.info("apply.position_initialised", file=self.start.file, position=self.start.position)

    def applied_position(self) -> Position:
        """The position committed on the target (its own short session: safe from any thread)."""
        with MySQLSession(self.target) as session:
            try:
                row = session.one(f"SELECT file, pos FROM {POSITION_TABLE} WHERE id = 1")
            except pymysql.err.MySQLError as exc:
                if error_code(exc) in (1049, 1146):  # no schema / table yet: nothing applied
                    return (self.start.file, self.start.position)
                raise
        return (str(row[0]), int(row[1])) if row else (self.start.file, self.start.position)

    def _load_position(self) -> Position:
        row = self._query_rows(
            f"SELECT file, pos, ddl_pending, ddl_file, ddl_pos, ddl_end_pos, ddl_text FROM {POSITION_TABLE} "
            "WHERE id = 1"
        )
        if not row:
            raise StepFailed(
                f"{POSITION_TABLE} on the target has no row",
                hint="the applier's ensure_position_table() must run first (step 7 does it)",
            )
        file, pos, pending, ddl_file, ddl_pos, ddl_end, ddl_text = row[0]
        if pending:
            text = bytes(ddl_text or b"").decode("utf-8", "replace")
            raise ApplyConflict(
                f"the applier stopped while running a DDL from {ddl_file}:{ddl_pos} (ends at {ddl_end}) "
                f"on the target, so it cannot know whether it took effect: {text[:500]}",
                hint=f"check on the target whether that DDL took effect (e.g. SHOW CREATE TABLE). If it did: "
                f"UPDATE {POSITION_TABLE} SET file='{ddl_file}', pos={ddl_end}, ddl_pending=0 WHERE id=1; "
                f"if it did not: UPDATE {POSITION_TABLE} SET ddl_pending=0 WHERE id=1 (it will run again). "
                "Then run again.",
            )
        self._xa = {
            bytes(xid).decode("utf-8", "surrogateescape"): _PreparedXa(str(f), int(start), int(end), bool(apply))
            for xid, f, start, end, apply in self._query_rows(
                f"SELECT xid, file, start_pos, end_pos, apply FROM {XA_TABLE}"
            )
        }
        return (str(file), int(pos))

    # --- one pass ----------------------------------------------------------------------------
    def apply_available(self, stop_at: Position | None = None) -> ApplyProgress:
        """Apply every complete transaction in the archive after the applied position, up to ``stop_at``."""
        counters = _Counters()
        try:
            self._connection()
            self._committed = self._cursor = self._load_position()
            self._cursor_gtid = None
            self._reset_pending()
            while stop_at is None or _after(stop_at, self._cursor):
                files = list_archive(self.archive_dir)
                names = [f.name for f in files]
                file = self._cursor[0]
                newer = [n for n in names if binlog_sequence(n) > binlog_sequence(file)]
                if file not in names:
                    if newer:
                        raise BinlogGap(
                            f"the binlog archive {self.archive_dir} lacks {file}, which the applier needs "
                            f"next (it has {names[0]} .. {names[-1]})",
                            hint="the streamer must fetch it; if the source purged it, take a new snapshot "
                            "(restart the migration from step 2)",
                        )
                    break  # not streamed yet
                read_to_end = self._apply_file(file, complete=bool(newer), stop_at=stop_at, counters=counters)
                if not read_to_end or not newer:
                    break
                if binlog_sequence(newer[0]) != binlog_sequence(file) + 1:
                    raise BinlogGap(
                        f"the binlog archive {self.archive_dir} jumps from {file} to {newer[0]}",
                        hint="the streamer must fetch the missing files; if the source purged them, take a "
                        "new snapshot (restart the migration from step 2)",
                    )
                self._cursor = (newer[0], FIRST_EVENT_POS)
            self._save_cursor()
        except BaseException:
            self._discard_connection()
            raise
        return ApplyProgress(
            transactions=counters.transactions,
            statements=counters.statements,
            bytes=counters.bytes,
            skipped=counters.skipped,
            position=self._committed,
            ddl=counters.ddl,
        )

    def _apply_file(
        self, file: str, *, complete: bool, stop_at: Position | None, counters: _Counters
    ) -> bool:
        """Apply one file from the cursor. True if the tool's output was read to its end."""
        if self._dirty:
            self._reconnect()
        self._reset_pending()  # a pristine session needs nothing queued by an earlier run
        path = str(self.archive_dir / file)
        argv = [self._tool, "--no-defaults", f"--start-position={self._cursor[1]}", path]
        stopped = read_all = False
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
            assert proc.stdout is not None
            # Parses while we wait on the target; a transaction larger than a round trip is streamed
            # into the target transaction as it is read, never held whole (review B7).
            units = parse(proc.stdout, stream_bytes=self._chunk_budget)
            ahead = ReadAhead(units, weight=_unit_bytes, max_bytes=self.read_ahead_bytes)
            try:
                for unit in ahead:
                    end = getattr(unit, "end_pos", None)
                    if end is not None and stop_at is not None and _after((file, end), stop_at):
                        stopped = True
                        break
                    try:
                        self._consume(file, unit, counters)
                    except _ArchiveNotReady as exc:
                        self.log.info("apply.archive_not_ready", reason=str(exc))
                        stopped = True
                        break
                else:
                    read_all = True
                self._abort_stream()  # the output ended (or we stopped) inside a large transaction
                self._commit_group()
            finally:
                if not read_all and proc.poll() is None:
                    proc.kill()  # we stop reading early: the tool would block on a full pipe
                ahead.close()  # its parsing ends with the tool's output
                proc.stdout.close()
                proc.wait()
            stderr.seek(0)
            errors = stderr.read()
        if stopped:
            return False
        if proc.returncode != 0 or b"ERROR" in errors:
            message = errors.decode("utf-8", "replace").strip()[-1000:]
            only_truncated_tail = all(
                _TRUNCATED_TAIL in line for line in errors.splitlines() if line.strip()
            ) and proc.returncode == 0
            if complete and not only_truncated_tail:
                raise StepFailed(
                    f"{self._tool} could not read the archived binlog {file}: {message}",
                    hint="compare the file with the source's (size, CRC32); delete it from the archive so "
                    "the streamer fetches it again",
                )
            if complete:
                # The source crashed mid-event and restarted into a new file; it discarded that event too.
                self.log.warning("apply.truncated_file_end", file=file, error=message)
        return True

    # --- units -------------------------------------------------------------------------------
    def _consume(self, file: str, unit: object, counters: _Counters) -> None:
        if isinstance(unit, SessionStatement):
            if is_gtid_session_statement(unit.sql):
                return
            if unit.is_format_description:
                self._commit_group()  # replaying a format description may roll back an open transaction
            self._queue(_clean(unit.sql))
        elif isinstance(unit, PositionMarker):
            if unit.end_pos > self._cursor[1]:
                self._cursor = (file, unit.end_pos)
        elif isinstance(unit, Incident):
            self._commit_group()
            self._save_cursor()
            raise ApplyConflict(
                f"the source logged an incident at {file}:{unit.end_pos} ({unit.text}): "
                "its binlog lost events",
                hint="the changes after the snapshot are incomplete: take a new snapshot "
                "(restart from step 2)",
            )
        elif isinstance(unit, TransactionPart):
            if unit.start_pos < self._cursor[1]:
                return  # applied already: the cursor is always at a transaction's boundary
            self._stream_part(file, unit, counters)
        elif isinstance(unit, TransactionAbandoned):
            self._abort_stream()
        elif isinstance(unit, Transaction):
            if unit.end_pos <= self._cursor[1]:
                return  # before the start position (the tool reprints the file's header)
            if unit.streamed:
                self._stream_end(file, unit, counters)
                return
            self._transaction(file, unit, counters)
        elif isinstance(unit, XaOutcome):
            if unit.end_pos <= self._cursor[1]:
                return
            self._xa_outcome(file, unit, counters)

    def _transaction(self, file: str, tx: Transaction, counters: _Counters) -> None:
        verdict, reason = self._classify(tx)
        where = f"{file}:{tx.start_pos}"
        if verdict == "conflict":
            self._commit_group()
            self._save_cursor()
            raise ApplyConflict(
                f"the source transaction at {where} (GTID {tx.gtid or '-'}) {reason}",
                hint="a transaction can only be applied whole: add the other schemas to migration.schemas, "
                "or apply it by hand and move the position past it: "
                f"UPDATE {POSITION_TABLE} SET file='{file}', pos={tx.end_pos} WHERE id=1",
            )
        if verdict == "apply":
            self._refuse_statement_dml(file, tx)
        if tx.xa_prepared is not None:
            # Not applied yet: it takes effect at its XA COMMIT. Remember where it is, with the position.
            prepared = _PreparedXa(file, tx.start_pos, tx.end_pos, verdict == "apply")
            self._open_group()
            self._queue(self._record_xa_sql(tx.xa_prepared, prepared))
            self._xa[tx.xa_prepared] = prepared
            self._advance(file, tx.end_pos, tx.gtid)
            return
        if verdict == "skip":
            if reason.startswith("account"):
                # The text may carry a password: log the kind only.
                self.log.warning("apply.skipped_account_statement", kind=reason.split(":", 1)[1], at=where,
                                 gtid=tx.gtid)
            else:
                self.log.debug("apply.skipped", reason=reason, at=where, gtid=tx.gtid)
            counters.skipped += 1
            self._cursor = (file, tx.end_pos)
            self._cursor_gtid = tx.gtid or self._cursor_gtid
            return
        if tx.is_ddl:
            self._apply_ddl(file, tx, counters)
            return
        self._open_group()
        self._queue_statements(tx.statements, counters)
        counters.transactions += 1
        self._advance(file, tx.end_pos, tx.gtid)

    def _refuse_statement_dml(self, file: str, tx: Transaction | TransactionPart) -> None:
        dml = next((q for q in tx.queries if statement_dml_kind(q.sql)), None)
        if dml is None:
            return
        self._abort_stream()
        self._commit_group()
        self._save_cursor()
        where = f"{file}:{tx.start_pos}"
        end = getattr(tx, "end_pos", None)
        move = f"pos={end}" if end is not None else "pos=<the end of that transaction>"
        text = dml.sql[:300].decode("utf-8", "replace")
        raise ApplyConflict(
            f"the source transaction at {where} (GTID {tx.gtid or '-'}) changes rows of a migrated schema "
            f"with a statement-based event ({text}): a session on the source still logs with "
            "binlog_format STATEMENT or MIXED (binlog_format=ROW applies to sessions opened after it was "
            "set), and replaying the statement could change other rows on the target than on the source",
            hint="recycle every application connection to the source (restart the pools, or kill the "
            "sessions opened before binlog_format became ROW) so every session logs rows; then check that "
            f"this statement is deterministic, run it on the target by hand and move past it: UPDATE "
            f"{POSITION_TABLE} SET file='{file}', {move} WHERE id=1; and run again. If unsure, "
            "restart from a new snapshot (step 2) once all sessions log rows",
        )

    # --- large transactions, part by part ------------------------------------------------------
    def _stream_part(self, file: str, part: TransactionPart, counters: _Counters) -> None:
        verdict, reason = self._classify(part)  # by the tables so far
        if self._stream is None:
            if verdict == "conflict":
                self._transaction_conflict(file, part, reason)
            self._commit_group()  # the large transaction gets a target transaction of its own
            self._stream = _Stream(part.start_pos, verdict, reason)
        elif verdict != self._stream.verdict:
            self._transaction_conflict(file, part, reason)
        if verdict != "apply":
            return
        self._refuse_statement_dml(file, part)
        self._open_group()
        self._queue_statements(part.statements, counters)
        self._fault("apply.stream_part")

    def _stream_end(self, file: str, tx: Transaction, counters: _Counters) -> None:
        verdict, reason = self._classify(tx)
        stream = self._stream
        if tx.rolled_back:
            self._abort_stream()
            counters.skipped += 1
            self._cursor = (file, tx.end_pos)
            self._cursor_gtid = tx.gtid or self._cursor_gtid
            return
        if stream is None or stream.verdict != verdict or tx.is_ddl:
            self._transaction_conflict(file, tx, reason or "holds a DDL after its first rows")
        self._stream = None
        if verdict == "skip":
            counters.skipped += 1
            self._cursor = (file, tx.end_pos)
            self._cursor_gtid = tx.gtid or self._cursor_gtid
            return
        self._refuse_statement_dml(file, tx)
        self._open_group()
        self._queue_statements(tx.statements, counters)
        counters.transactions += 1
        self._advance(file, tx.end_pos, tx.gtid)
        self._commit_group()

    def _abort_stream(self) -> None:
        """Roll back what was sent of an incomplete large transaction (and nothing else: it runs alone)."""
        if self._stream is None:
            return
        self._stream = None
        if self._group_open and self._conn is not None:
            self._conn.rollback()
        self._reset_pending()
        self._cursor = self._committed
        self._cursor_gtid = None

    def _transaction_conflict(self, file: str, tx: Transaction | TransactionPart, reason: str) -> NoReturn:
        self._abort_stream()
        self._commit_group()
        self._save_cursor()
        end = getattr(tx, "end_pos", None)
        raise ApplyConflict(
            f"the source transaction at {file}:{tx.start_pos} (GTID {tx.gtid or '-'}) {reason}",
            hint="a transaction can only be applied whole: add the other schemas to migration.schemas, "
            "or apply it by hand and move the position past it: "
            f"UPDATE {POSITION_TABLE} SET file='{file}', pos={end if end is not None else '<its end>'} WHERE id=1",
        )

    def _open_group(self) -> None:
        if not self._group_open:
            self._queue(b"BEGIN")
            self._queue(_GUARD)
            self._group_open = True

    def _advance(self, file: str, end_pos: int, gtid: str | None) -> None:
        """A source transaction is queued in the open group: the position moves past it with the group."""
        self._group_size += 1
        self._cursor = (file, end_pos)
        self._cursor_gtid = gtid or self._cursor_gtid
        if self._group_size >= self.group_commit:
            self._commit_group()

    # --- XA ----------------------------------------------------------------------------------
    def _record_xa_sql(self, xid: str, xa: _PreparedXa) -> bytes:
        conn = self._connection()
        return (
            f"INSERT INTO {XA_TABLE} (xid, file, start_pos, end_pos, apply) VALUES "
            f"({conn.escape(xid.encode('utf-8', 'surrogateescape'))}, {conn.escape(xa.file)}, "
            f"{int(xa.start_pos)}, {int(xa.end_pos)}, {int(xa.apply)})"
        ).encode("utf-8", "surrogateescape")

    def _xa_outcome(self, file: str, outcome: XaOutcome, counters: _Counters) -> None:
        """XA COMMIT: the prepared part, re-read from the archive, runs in the group; XA ROLLBACK: nothing.
        Either way its bookkeeping row goes, in the same target transaction as the position."""
        verb = "COMMIT" if outcome.commit else "ROLLBACK"
        prepared = self._xa.get(outcome.xid)
        if prepared is None:
            self._commit_group()
            self._save_cursor()
            raise ApplyConflict(
                f"XA {verb} {outcome.xid} at {file}:{outcome.start_pos} ends an XA transaction whose XA PREPARE "
                "is not in the applied binlog: it was prepared on the source before the snapshot's "
                "coordinates, so neither the copy nor the archive holds its changes",
                hint="step 3 refuses a stop point where the replica holds a prepared XA transaction; this "
                "snapshot was taken without that check: take a new snapshot (restart from step 2) once XA "
                "RECOVER on the source lists no long-prepared transaction",
            )
        self._open_group()
        if outcome.commit and prepared.apply:
            self._queue_statements(self._prepared_statements(outcome.xid, prepared), counters)
            counters.transactions += 1
        else:
            counters.skipped += 1
        conn = self._connection()
        self._queue(f"DELETE FROM {XA_TABLE} WHERE xid = {conn.escape(outcome.xid.encode('utf-8', 'surrogateescape'))}"
                    .encode("utf-8", "surrogateescape"))
        del self._xa[outcome.xid]
        self._advance(file, outcome.end_pos, outcome.gtid)

    def _prepared_statements(self, xid: str, prepared: _PreparedXa) -> tuple[Any, ...]:
        """The prepared part's statements, read again from the archive (never held across the wait for
        its commit). Its session state is not replayed: the rows come from the same source server, whose
        format description the current file's output has already set."""
        path = self.archive_dir / prepared.file
        # No --stop-position: the tool fails when nothing starts at it yet. Read until the part is found.
        argv = [self._tool, "--no-defaults", f"--start-position={prepared.start_pos}", str(path)]
        found: Transaction | None = None
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
            assert proc.stdout is not None
            try:
                for unit in parse(proc.stdout):
                    if isinstance(unit, Transaction) and unit.start_pos == prepared.start_pos:
                        found = unit if unit.xa_prepared == xid else None
                        break
                    if getattr(unit, "end_pos", 0) > prepared.end_pos:
                        break
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stdout.close()
                proc.wait()
            stderr.seek(0)
            errors = stderr.read().decode("utf-8", "replace").strip()
        if found is None:
            with contextlib.suppress(OSError):
                if path.stat().st_size < prepared.end_pos:
                    # The streamer is fetching this file again (it restarted): try on the next pass.
                    raise _ArchiveNotReady(f"{prepared.file} is shorter than {prepared.end_pos} for now")
            raise StepFailed(
                f"could not read the prepared part of XA transaction {xid} back from "
                f"{prepared.file}:{prepared.start_pos}-{prepared.end_pos} in the archive "
                f"({errors[-500:] or 'not found there'})",
                hint="the archive must keep every file from the oldest prepared XA transaction on "
                f"(SELECT * FROM {XA_TABLE} on the target lists them)",
            )
        return found.statements

    def _classify(self, tx: Transaction | TransactionPart) -> tuple[str, str]:
        """('apply'|'skip'|'conflict', reason)."""
        if tx.rolled_back:
            return "skip", "rolled back on the source"
        queries = tx.queries
        if not queries and len(tx.tables) == 1:  # the common row-based case, decided without sets
            ((schema, table),) = tx.tables
            if schema == "mysql" and table.startswith("rds_"):
                return "skip", "RDS internal table (mysql.rds_*)"
            if schema in self.schemas:
                return "apply", ""
            return "skip", f"schemas not migrated: {[schema]}"
        for query in queries:
            kind = account_statement_kind(query.sql)
            if kind is not None:
                return "skip", f"account:{kind}"
            admin = admin_statement_kind(query.sql)
            if admin is not None:  # FLUSH needs RELOAD on the target; OPTIMIZE would rebuild a table there
                return "skip", f"administrative statement {admin} (changes no row)"
        named: set[tuple[str | None, str | None]] = set(tx.tables)
        for query in queries:
            named |= statement_tables(query.sql, query.db)
        rds = {t for t in named if t[0] == "mysql" and (t[1] or "").startswith("rds_")}
        schemas = {t[0] for t in named - rds if t[0] is not None}
        included = schemas & self.schemas
        excluded = schemas - self.schemas
        if rds and not schemas:
            return "skip", "RDS internal table (mysql.rds_*)"
        if included and (excluded or rds):
            outside = sorted(excluded | ({"mysql.rds_*"} if rds else set()))
            return "conflict", (
                f"changes both migrated schemas {sorted(included)} and others {outside}"
            )
        if excluded:
            return "skip", f"schemas not migrated: {sorted(excluded)}"
        return "apply", ""

    def _queue_statements(self, statements: Iterable[Statement], counters: _Counters) -> None:
        """Queue a transaction's statements into the open group (sent in round trips of max_chunk_bytes)."""
        for statement in statements:
            self._use_db_for(statement.db if statement.is_query else None)
            sql = _clean(statement.sql)
            self._queue(sql)
            counters.statements += 1
            counters.bytes += len(sql)

    def _use_db_for(self, db: str | None) -> None:
        # Only a migrated schema exists on the target for sure; others keep the current default.
        if db is not None and db != self._session_db and db in self.schemas:
            self._queue(b"USE " + quote_identifier(db).encode("utf-8", "surrogateescape"))
            self._session_db = db

    # --- DDL ---------------------------------------------------------------------------------
    def _apply_ddl(self, file: str, tx: Transaction, counters: _Counters) -> None:
        """Marker, DDL, position: three commits, the middle one not ours (DDL commits implicitly)."""
        self._commit_group()
        text = b"\n;\n".join(q.sql for q in tx.queries)
        before = self._cursor
        marked = self._execute_autocommit(
            f"UPDATE {POSITION_TABLE} SET file=%s, pos=%s, ddl_pending=1, ddl_file=%s, ddl_pos=%s, "
            "ddl_end_pos=%s, ddl_text=%s WHERE id=1 AND file=%s AND pos=%s AND ddl_pending=0",
            (before[0], before[1], file, tx.start_pos, tx.end_pos, text, *self._committed),
        )
        if marked != 1:
            raise self._moved_conflict()
        self._committed = before
        self._fault("apply.ddl.after_marker")
        for statement in tx.statements:  # CREATE TABLE ... SELECT: the CREATE, then its rows
            self._use_db_for(statement.db if statement.is_query else None)
            self._queue(_clean(statement.sql))
            counters.statements += 1
            counters.bytes += len(statement.sql)
        # MySQL 8.0.21+ logs CREATE TABLE ... SELECT atomically: "CREATE TABLE ... START TRANSACTION", the
        # rows, Xid. That CREATE leaves a transaction open; end it here, before the position moves.
        self._queue(b"COMMIT")
        try:
            self._send()
        except pymysql.err.MySQLError as exc:
            if is_transient(exc):
                raise  # unknown whether it ran: the marker stays, the next pass asks the operator
            self._discard_connection()
            self._execute_autocommit(
                f"UPDATE {POSITION_TABLE} SET ddl_pending=0, ddl_file=NULL, ddl_pos=NULL, ddl_end_pos=NULL, "
                "ddl_text=NULL WHERE id=1",
                (),
            )
            raise ApplyConflict(
                f"the DDL at {file}:{tx.start_pos} failed on the target "
                f"({exc.args[-1] if exc.args else exc}): {text[:500].decode('utf-8', 'replace')}",
                hint="make the target's schema what the source's was before this DDL and run again, or apply "
                f"it by hand and move past it: UPDATE {POSITION_TABLE} SET file='{file}', pos={tx.end_pos} "
                "WHERE id=1",
            ) from exc
        self._fault("apply.ddl.after_ddl")
        done = self._execute_autocommit(
            f"UPDATE {POSITION_TABLE} SET file=%s, pos=%s, gtid=%s, ddl_pending=0, ddl_file=NULL, "
            "ddl_pos=NULL, ddl_end_pos=NULL, ddl_text=NULL WHERE id=1 AND ddl_pending=1",
            (file, tx.end_pos, tx.gtid),
        )
        if done != 1:
            raise self._moved_conflict()
        self._committed = self._cursor = (file, tx.end_pos)
        counters.transactions += 1
        counters.ddl += 1
        self.log.info("apply.ddl", at=f"{file}:{tx.start_pos}", gtid=tx.gtid)

    # --- groups ------------------------------------------------------------------------------
    def _queue(self, sql: bytes) -> None:
        self._pending.append(sql)
        self._pending_bytes += len(sql) + len(_SEPARATOR)
        if self._group_open and self._pending_bytes >= self._chunk_budget:
            self._send()  # a big group goes in several round trips inside the same target transaction

    def _reset_pending(self) -> None:
        self._pending = []
        self._pending_bytes = 0
        self._group_open = False
        self._group_size = 0

    def _commit_group(self) -> None:
        if self._stream is not None:
            self._abort_stream()  # never commit part of a source transaction
        if not self._group_open:
            return
        self._send()
        self._fault("apply.before_commit")
        gtid = self._cursor_gtid
        self._pending = [
            self._update_position_sql(self._cursor, gtid),
            b"COMMIT",
        ]
        self._send()
        self._committed = self._cursor
        self._reset_pending()
        self._fault("apply.after_commit")

    def _update_position_sql(self, position: Position, gtid: str | None) -> bytes:
        conn = self._connection()
        return (
            f"UPDATE {POSITION_TABLE} SET file={conn.escape(position[0])}, pos={int(position[1])}, "
            f"gtid={conn.escape(gtid)} WHERE id=1"
        ).encode()

    def _send(self) -> None:
        """Run the pending statements as one multi-statement query; check the guard's row if it is there."""
        if not self._pending:
            return
        sql, count = _SEPARATOR.join(self._pending), len(self._pending)
        want = next((i for i, statement in enumerate(self._pending) if statement is _GUARD), None)
        self._pending = []
        self._pending_bytes = 0
        conn = self._connection()
        self._dirty = True
        guard = _run_multi(conn, sql, count, want)
        if guard:
            file, pos, pending = guard[0]
            if (str(file), int(pos)) != self._committed or pending:
                conn.rollback()
                raise self._moved_conflict(found=(str(file), int(pos)))

    def _save_cursor(self) -> None:
        """Commit a position that moved past skipped transactions and no-op events only."""
        if self._group_open or self._cursor == self._committed:
            return
        changed = self._execute_autocommit(
            f"UPDATE {POSITION_TABLE} SET file=%s, pos=%s, gtid=COALESCE(%s, gtid) "
            "WHERE id=1 AND file=%s AND pos=%s AND ddl_pending=0",
            (*self._cursor, self._cursor_gtid, *self._committed),
        )
        if changed != 1:
            raise self._moved_conflict()
        self._committed = self._cursor

    def _moved_conflict(self, found: Position | None = None) -> ApplyConflict:
        seen = f" (found {found[0]}:{found[1]})" if found else ""
        return ApplyConflict(
            f"{POSITION_TABLE} on the target is no longer at {self._committed[0]}:{self._committed[1]}"
            f"{seen}: another applier, or a hand edit, moved it",
            hint="make sure only one migrator runs against this target, then run again",
        )

    def _fault(self, name: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(name)

    # --- the connection ----------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = connect(self.target, autocommit=True, multi_statements=True)
            self._dirty = False
            self._session_db = None
            with self._conn.cursor() as cur:
                cur.execute("SELECT @@max_allowed_packet")
                packet = int(cur.fetchone()[0])
            self._chunk_budget = max(64 << 10, min(self.max_chunk_bytes, packet // 2))
        return self._conn

    @property
    def connection_id(self) -> int | None:
        """The target's id for the apply session (fault tests KILL it)."""
        return int(self._conn.thread_id()) if self._conn is not None else None

    def _reconnect(self) -> None:
        self._discard_connection()
        self._connection()

    def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        self._reset_pending()
        if conn is not None:
            with contextlib.suppress(pymysql.err.Error):
                conn.close()

    def _query_rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self._connection().cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def _execute_autocommit(self, sql: str, args: Sequence[Any]) -> int:
        with self._connection().cursor() as cur:
            return int(cur.execute(sql, tuple(args) if args else None))

    def close(self) -> None:
        self._discard_connection()

    # --- the service loop --------------------------------------------------------------------
    def run(self, stop: threading.Event, poll_interval: float = 0.2) -> None:
        """Apply until ``stop`` is set. Transient MySQL errors reconnect with backoff; others end the loop
        with the error on ``self.error``."""
        backoff = 0.5
        self.error = None
        try:
            while not stop.is_set():
                try:
                    progress = self.apply_available()
                except (pymysql.err.MySQLError, OSError) as exc:
                    if not is_transient(exc):
                        raise
                    self.log.warning("apply.transient_error", error=str(exc), retry_in=backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 0.5
                if progress.transactions == 0 and progress.skipped == 0:
                    stop.wait(poll_interval)
        except BaseException as exc:
            self.error = exc
            self.log.error("apply.stopped", error=str(exc))
        finally:
            self.close()
