"""Chunked table checksums, source and target side by side; a mismatch drills down to key values.

Per key range each side computes ``COUNT(*)`` and ``BIT_XOR`` of a 64-bit per-row hash (the
first 16 hex digits of MD5 over the row's columns and its NULL flags, as pt-table-checksum does).
Ranges come from the source's key index, so both sides sum exactly the same key range.

The hash expression is built so equal data hashes equally on both sides whatever the session:
sessions run in UTC (TIMESTAMP renders in the session time zone), every value is cast to BINARY
(no collation mixing inside CONCAT_WS), and FLOAT is widened to DOUBLE first, because its text
form keeps only 6 significant digits and would hide a changed value.

With ``whole_tables=True`` (writes paused, same server version on both sides) each table is
first compared by ``CHECKSUM TABLE``, which the server computes in C over its own row format:
about 4x cheaper per row than any SQL-level hash. Only a table whose two checksums differ is
compared range by range. It is never used while writes flow: MySQL documents that it holds a
read lock on the table for its duration.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import structlog

from migrator.endpoint import Endpoint
from migrator.errors import VerificationFailed
from migrator.mysql.chunking import SESSION_TIME_ZONE, Chunk, Key, format_range, plan_chunks_by_rows
from migrator.mysql.schema import ColumnInfo, TableInfo
from migrator.mysql.session import MySQLSession, quote_identifier, scaled_read_timeout

log = structlog.get_logger()

DEFAULT_CHUNK_ROWS = 20_000
DEFAULT_MAX_KEYS = 100  # differing keys reported per mismatched range


def _column_expr(col: ColumnInfo) -> str:
    name = quote_identifier(col.name)
    if col.data_type == "float":
        return f"CAST(CAST({name} AS DOUBLE) AS BINARY)"
    return f"CAST({name} AS BINARY)"


def row_hash_sql(table: TableInfo) -> str:
    """SQL for an unsigned 64-bit hash of one row of ``table``."""
    values = ", ".join(_column_expr(c) for c in table.columns)
    flags = ", ".join(f"ISNULL({quote_identifier(c.name)})" for c in table.columns)
    return f"CAST(CONV(LEFT(MD5(CONCAT_WS('#', {values}, CONCAT({flags}))), 16), 16, 10) AS UNSIGNED)"


@dataclass(frozen=True)
class RangeSum:
    rows: int
    xor: int


@dataclass(frozen=True)
class ChunkMismatch:
    schema: str
    table: str
    key_columns: tuple[str, ...]
    lower: Key | None
    upper: Key | None
    source_count: int
    target_count: int
    missing_on_target: tuple[Key, ...] = ()  # keys on the source only
    extra_on_target: tuple[Key, ...] = ()  # keys on the target only
    changed: tuple[Key, ...] = ()  # keys on both sides whose rows differ
    differing_rows: int = 0  # all differing rows, even past the report limit (keyless: by row hash)

    @property
    def differing_keys(self) -> tuple[Key, ...]:
        return tuple(sorted({*self.missing_on_target, *self.extra_on_target, *self.changed}, key=repr))

    def describe(self) -> str:
        where = (
            f"({', '.join(self.key_columns)}) in {format_range(self.lower, self.upper)}"
            if self.key_columns
            else "whole table (no usable key)"
        )
        text = (
            f"{self.schema}.{self.table} {where}: source {self.source_count} rows,"
            f" target {self.target_count} rows, {self.differing_rows} differing"
        )
        for label, keys in (
            ("missing on target", self.missing_on_target),
            ("extra on target", self.extra_on_target),
            ("changed", self.changed),
        ):
            if keys:
                text += f"; {label}: " + ", ".join(repr(k) for k in keys[:10])
                if len(keys) > 10:
                    text += f" (+{len(keys) - 10} more)"
        return text


@dataclass(frozen=True)
class VerifyReport:
    tables: int
    rows: int  # rows summed on the source (of the tables compared range by range)
    target_rows: int
    chunks: int
    mismatches: tuple[ChunkMismatch, ...]
    seconds: float
    per_table_rows: dict[str, int] = field(default_factory=dict)
    whole_tables: int = 0  # tables proven equal by CHECKSUM TABLE alone (their rows are not counted)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        if self.whole_tables:
            head = (
                f"{self.tables} tables ({self.whole_tables} by CHECKSUM TABLE; {self.rows} rows in "
                f"{self.chunks} chunks of the others) in {self.seconds:.1f} s"
            )
        else:
            head = f"{self.tables} tables, {self.rows} rows, {self.chunks} chunks in {self.seconds:.1f} s"
        if self.ok:
            return head + ": equal"
        return (
            head
            + f": {len(self.mismatches)} mismatched ranges\n"
            + "\n".join("  " + m.describe() for m in self.mismatches)
        )


class _Sessions:
    """One session per side per worker thread, all in UTC; closed together."""

    def __init__(self, endpoints: dict[str, Endpoint]) -> None:
        self.endpoints = endpoints
        self._local = threading.local()
        self._all: list[MySQLSession] = []
        self._lock = threading.Lock()

    def get(self, side: str) -> MySQLSession:
        sessions: dict[str, MySQLSession] | None = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        if side not in sessions:
            session = MySQLSession(self.endpoints[side])
            session.execute("SET SESSION time_zone = %s", (SESSION_TIME_ZONE,))
            sessions[side] = session
            with self._lock:
                self._all.append(session)
        return sessions[side]

    def close(self) -> None:
        with self._lock:
            for session in self._all:
                session.close()
            self._all.clear()


def table_checksum(session: MySQLSession, table: TableInfo) -> int | None:
    """``CHECKSUM TABLE``'s value, or None when the server gives none (it then warns)."""
    with session.long_statement(scaled_read_timeout(table.data_length)):  # hours on a big table
        row = session.one(f"CHECKSUM TABLE {table.sql_name}")
    return None if row is None or row[1] is None else int(row[1])


def _from_clause(table: TableInfo) -> str:
    force = (
        f" FORCE INDEX ({quote_identifier(table.key_name)})" if table.key_name and table.key_columns else ""
    )
    return f"{table.sql_name}{force}"


def range_sum(session: MySQLSession, table: TableInfo, chunk: Chunk) -> RangeSum:
    row = session.one(
        f"SELECT COUNT(*), COALESCE(BIT_XOR({row_hash_sql(table)}), 0)"
        f" FROM {_from_clause(table)} WHERE {chunk.where_sql()}"
    )
    assert row is not None
    return RangeSum(int(row[0]), int(row[1]))


def _row_hashes(session: MySQLSession, table: TableInfo, chunk: Chunk) -> dict[Key, int]:
    keys = ", ".join(quote_identifier(c) for c in chunk.key_columns)
    rows = session.rows(
        f"SELECT {keys}, {row_hash_sql(table)} FROM {_from_clause(table)} WHERE {chunk.where_sql()}"
    )
    return {tuple(r[:-1]): int(r[-1]) for r in rows}


def _hash_multiset(session: MySQLSession, table: TableInfo) -> Counter[int]:
    rows = session.rows(f"SELECT {row_hash_sql(table)} AS h, COUNT(*) FROM {table.sql_name} GROUP BY h")
    return Counter({int(h): int(n) for h, n in rows})


def drill_down(
    source: MySQLSession,
    target: MySQLSession,
    table: TableInfo,
    chunk: Chunk,
    *,
    source_sum: RangeSum,
    target_sum: RangeSum,
    max_keys: int = DEFAULT_MAX_KEYS,
) -> ChunkMismatch:
    """Compare a mismatched range row by row and name the differing keys."""
    base = ChunkMismatch(
        schema=table.schema,
        table=table.name,
        key_columns=chunk.key_columns,
        lower=chunk.lower,
        upper=chunk.upper,
        source_count=source_sum.rows,
        target_count=target_sum.rows,
    )
    if not chunk.key_columns:
        ours, theirs = _hash_multiset(source, table), _hash_multiset(target, table)
        return replace(base, differing_rows=sum(((ours - theirs) + (theirs - ours)).values()))
    src, dst = _row_hashes(source, table, chunk), _row_hashes(target, table, chunk)
    missing = sorted((k for k in src if k not in dst), key=repr)
    extra = sorted((k for k in dst if k not in src), key=repr)
    changed = sorted((k for k in src if k in dst and src[k] != dst[k]), key=repr)
    return replace(
        base,
        missing_on_target=tuple(missing[:max_keys]),
        extra_on_target=tuple(extra[:max_keys]),
        changed=tuple(changed[:max_keys]),
        differing_rows=len(missing) + len(extra) + len(changed),
    )


def compare_tables(
    source: Endpoint,
    target: Endpoint,
    tables: Sequence[TableInfo],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = 2,
    max_keys: int = DEFAULT_MAX_KEYS,
    whole_tables: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> VerifyReport:
    """Checksum ``tables`` on both sides, range by range, and drill into every range that differs.

    ``workers`` threads share the work, each with a session per side, and the two sides of a range
    are queued next to each other so they run at the same time. The comparison means "equal now":
    both sides must be quiet (snapshot frozen / writes paused and the target caught up).
    ``whole_tables``: try CHECKSUM TABLE first (see the module's doc); only for quiet sides of the
    same server version, since its value depends on the server's row format.
    """
    started = monotonic()
    sessions = _Sessions({"source": source, "target": target})
    mismatches: list[ChunkMismatch] = []
    per_table: dict[str, int] = {}
    total_rows = target_rows = 0
    proven_whole = 0
    pool = ThreadPoolExecutor(max_workers=max(2, workers), thread_name_prefix="checksum")
    try:
        ranged = list(tables)
        if whole_tables and ranged:
            proven = _whole_table_pass(pool, sessions, ranged)
            ranged = [t for t in ranged if t.qualified_name not in proven]
            proven_whole = len(proven)
        planner = sessions.get("source")
        plan: list[tuple[TableInfo, Chunk]] = [
            (table, chunk) for table in ranged for chunk in plan_chunks_by_rows(planner, table, chunk_rows)
        ]
        futures: list[tuple[TableInfo, Chunk, Future[RangeSum], Future[RangeSum]]] = []

        def task(side: str, table: TableInfo, chunk: Chunk) -> RangeSum:
            try:
                return range_sum(sessions.get(side), table, chunk)
            except Exception as exc:
                raise VerificationFailed(
                    f"checksum of {table.qualified_name} {chunk.describe_range()} on the {side} failed: {exc}"
                ) from exc

        for table, chunk in plan:
            futures.append(
                (
                    table,
                    chunk,
                    pool.submit(task, "source", table, chunk),
                    pool.submit(task, "target", table, chunk),
                )
            )
        for done, (table, chunk, src_future, dst_future) in enumerate(futures, start=1):
            src, dst = src_future.result(), dst_future.result()
            total_rows += src.rows
            target_rows += dst.rows
            per_table[table.qualified_name] = per_table.get(table.qualified_name, 0) + src.rows
            if src != dst:
                mismatch = drill_down(
                    sessions.get("source"),
                    sessions.get("target"),
                    table,
                    chunk,
                    source_sum=src,
                    target_sum=dst,
                    max_keys=max_keys,
                )
                log.warning("checksum.mismatch", detail=mismatch.describe())
                mismatches.append(mismatch)
            if on_progress is not None:
                on_progress(done, len(futures))
    finally:
        # On a failure, queued ranges are dropped instead of run to no purpose.
        pool.shutdown(wait=True, cancel_futures=True)
        sessions.close()
    report = VerifyReport(
        tables=len(tables),
        rows=total_rows,
        target_rows=target_rows,
        chunks=len(plan),
        mismatches=tuple(mismatches),
        seconds=monotonic() - started,
        per_table_rows=per_table,
        whole_tables=proven_whole,
    )
    log.info(
        "checksum.done",
        tables=report.tables,
        whole_tables=proven_whole,
        rows=report.rows,
        chunks=report.chunks,
        mismatches=len(mismatches),
        seconds=round(report.seconds, 3),
    )
    return report


def _whole_table_pass(pool: ThreadPoolExecutor, sessions: _Sessions, tables: Sequence[TableInfo]) -> set[str]:
    """CHECKSUM TABLE of every table on both sides at once; returns the tables proven equal.

    No COUNT(*) beside it: a missing or extra row changes the checksum, and counting would add
    about 60% to the time writes are paused. The others go to the range comparison.
    """

    def task(side: str, table: TableInfo) -> int | None:
        try:
            return table_checksum(sessions.get(side), table)
        except Exception as exc:
            raise VerificationFailed(
                f"CHECKSUM TABLE {table.qualified_name} on the {side} failed: {exc}"
            ) from exc

    futures = [(t, pool.submit(task, "source", t), pool.submit(task, "target", t)) for t in tables]
    proven: set[str] = set()
    for table, src_future, dst_future in futures:
        src_sum, dst_sum = src_future.result(), dst_future.result()
        if src_sum is not None and src_sum == dst_sum:
            proven.add(table.qualified_name)
        else:
            log.info("checksum.whole_table_differs", table=table.qualified_name)
    return proven


def row_counts(session: MySQLSession, tables: Sequence[TableInfo]) -> dict[str, int]:
    """Exact ``COUNT(*)`` per ``schema.table``."""
    return {t.qualified_name: int(session.value(f"SELECT COUNT(*) FROM {t.sql_name}")) for t in tables}
