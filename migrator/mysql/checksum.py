"""Chunked table checksums, source and target side by side; a mismatch drills down to key values.

Per key range each side computes ``COUNT(*)`` and ``BIT_XOR`` of a 64-bit per-row hash (the
first 16 hex digits of MD5 over the row's columns and its NULL flags, as pt-table-checksum does).
Ranges come from the source's key index, so both sides sum exactly the same key range. A table
without a key may hold equal rows, whose hashes XOR to zero: there the range also adds a 60-bit
slice of each row's MD5 (a DECIMAL sum cannot overflow), so a changed pair of duplicates shows.

The hash expression is built so equal data hashes equally on both sides whatever the session:
sessions run in UTC (TIMESTAMP renders in the session time zone), every value is cast to BINARY
(no collation mixing inside CONCAT), FLOAT is widened to DOUBLE first, because its text form keeps
only 6 significant digits and would hide a changed value, and every value is prefixed with its
length, so no byte can move between adjacent columns unseen ((1,'a#','b') vs (1,'a','#b')).

With ``whole_tables=True`` (writes paused, same server version on both sides) each table is
first compared by ``CHECKSUM TABLE``, which the server computes in C over its own row format:
about 4x cheaper per row than any SQL-level hash. Only a table whose two checksums differ is
compared range by range. It is never used while writes flow: MySQL documents that it holds a
read lock on the table for its duration.

``compare_keys`` compares given rows by key (the rows the binlog says changed): see migrator/proofs.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import structlog

from migrator.endpoint import Endpoint
from migrator.errors import VerificationFailed
from migrator.mysql.chunking import (
    SESSION_TIME_ZONE,
    Chunk,
    Key,
    format_range,
    plan_chunks_by_rows,
    sql_literal,
)
from migrator.mysql.schema import ColumnInfo, TableInfo
from migrator.mysql.session import MySQLSession, quote_identifier, scaled_read_timeout

log = structlog.get_logger()

DEFAULT_CHUNK_ROWS = 20_000
DEFAULT_MAX_KEYS = 100  # differing keys reported per mismatched range
IN_FLIGHT_PER_WORKER = 4  # ranges queued per worker: bounded, so memory does not grow with the chunks


def _column_expr(col: ColumnInfo) -> str:
    name = quote_identifier(col.name)
    if col.data_type == "float":
        return f"CAST(CAST({name} AS DOUBLE) AS BINARY)"
    return f"CAST({name} AS BINARY)"


def row_md5_sql(table: TableInfo) -> str:
    """SQL for the MD5 (32 hex digits) of one row: each value length-prefixed, then the NULL flags."""
    values = ", ".join(
        f"COALESCE(CONCAT(LENGTH({expr}), ':', {expr}), '')" for expr in map(_column_expr, table.columns)
    )
    flags = ", ".join(f"ISNULL({quote_identifier(c.name)})" for c in table.columns)
    return f"MD5(CONCAT({values}, '|', {flags}))"


def row_hash_sql(table: TableInfo) -> str:
    """SQL for an unsigned 64-bit hash of one row of ``table``."""
    return f"CAST(CONV(LEFT({row_md5_sql(table)}, 16), 16, 10) AS UNSIGNED)"


def row_addend_sql(table: TableInfo) -> str:
    """A second, 60-bit slice of the row's MD5, summed (not XOR-ed) for tables that may hold duplicates."""
    return f"CAST(CONV(SUBSTRING({row_md5_sql(table)}, 17, 15), 16, 10) AS UNSIGNED)"


@dataclass(frozen=True)
class RangeSum:
    rows: int
    xor: int
    total: int = 0  # keyless tables: the sum of every row's 60-bit addend (duplicates do not cancel)


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
    # Every differing key, past the report limit too, as the binlog reader decodes keys (strings as bytes).
    canonical_keys: frozenset[Key] = field(default=frozenset(), compare=False, repr=False)

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
    additive = "" if table.key_columns else f", COALESCE(SUM({row_addend_sql(table)}), 0)"
    row = session.one(
        f"SELECT COUNT(*), COALESCE(BIT_XOR({row_hash_sql(table)}), 0){additive}"
        f" FROM {_from_clause(table)} WHERE {chunk.where_sql()}"
    )
    assert row is not None
    return RangeSum(int(row[0]), int(row[1]), int(row[2]) if len(row) > 2 else 0)


# Key columns read as bytes where the binlog reader sees bytes, so drilled keys and binlog keys compare.
_TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})


def canonical_key_sql(table: TableInfo, columns: Sequence[str]) -> list[str]:
    """Key columns as the binlog reader decodes them: integers as numbers, strings as their stored bytes."""
    out = []
    for name in columns:
        col = table.column(name)
        quoted = quote_identifier(name)
        out.append(f"CAST({quoted} AS BINARY)" if col.data_type in _TEXT_TYPES else quoted)
    return out


def _row_hashes(session: MySQLSession, table: TableInfo, chunk: Chunk) -> dict[Key, tuple[int, Key]]:
    """key -> (row hash, the key in canonical form)."""
    keys = [quote_identifier(c) for c in chunk.key_columns]
    canonical = canonical_key_sql(table, chunk.key_columns)
    n = len(keys)
    rows = session.rows(
        f"SELECT {', '.join(keys)}, {', '.join(canonical)}, {row_hash_sql(table)}"
        f" FROM {_from_clause(table)} WHERE {chunk.where_sql()}"
    )
    return {tuple(r[:n]): (int(r[-1]), tuple(r[n : 2 * n])) for r in rows}


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
    changed = sorted((k for k in src if k in dst and src[k][0] != dst[k][0]), key=repr)
    canonical = {src[k][1] for k in missing} | {dst[k][1] for k in extra} | {src[k][1] for k in changed}
    canonical |= {dst[k][1] for k in changed}
    return replace(
        base,
        missing_on_target=tuple(missing[:max_keys]),
        extra_on_target=tuple(extra[:max_keys]),
        changed=tuple(changed[:max_keys]),
        differing_rows=len(missing) + len(extra) + len(changed),
        canonical_keys=frozenset(canonical),
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
    on_table: Callable[[TableInfo, list[ChunkMismatch]], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> VerifyReport:
    """Checksum ``tables`` on both sides, range by range, and drill into every range that differs.

    ``workers`` threads share the work, each with a session per side, and the two sides of a range
    are queued next to each other so they run at the same time. The comparison means "equal now":
    both sides must be quiet (snapshot frozen / writes paused and the target caught up), or the
    caller must know which rows changed meanwhile (migrator/proofs.py).
    ``whole_tables``: try CHECKSUM TABLE first (see the module's doc); only for quiet sides of the
    same server version, since its value depends on the server's row format.
    Tables are planned one at a time as the work reaches them, and at most ``IN_FLIGHT_PER_WORKER``
    ranges per worker are queued: memory stays flat in the number of chunks (4 TB is ~1 M ranges).
    ``on_table(table, mismatches)`` runs once a table's last range is compared (to journal its proof).
    """
    started = monotonic()
    sessions = _Sessions({"source": source, "target": target})
    mismatches: list[ChunkMismatch] = []
    per_table: dict[str, int] = {}
    total_rows = target_rows = 0
    proven_whole = 0
    chunks_total = 0
    done = 0
    pool = ThreadPoolExecutor(max_workers=max(2, workers), thread_name_prefix="checksum")
    window = max(2, workers) * IN_FLIGHT_PER_WORKER

    def task(side: str, table: TableInfo, chunk: Chunk) -> RangeSum:
        try:
            return range_sum(sessions.get(side), table, chunk)
        except Exception as exc:
            raise VerificationFailed(
                f"checksum of {table.qualified_name} {chunk.describe_range()} on the {side} failed: {exc}"
            ) from exc

    in_flight: deque[tuple[TableInfo, Chunk, Future[RangeSum], Future[RangeSum], bool]] = deque()
    table_mismatches: list[ChunkMismatch] = []

    def settle_oldest() -> None:
        nonlocal total_rows, target_rows, done
        table, chunk, src_future, dst_future, last = in_flight.popleft()
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
            table_mismatches.append(mismatch)
        done += 1
        if on_progress is not None:
            on_progress(done, chunks_total)
        if last:
            if on_table is not None:
                on_table(table, list(table_mismatches))
            table_mismatches.clear()

    try:
        ranged = list(tables)
        if whole_tables and ranged:
            proven = _whole_table_pass(pool, sessions, ranged)
            for table in ranged:
                if table.qualified_name in proven and on_table is not None:
                    on_table(table, [])
            ranged = [t for t in ranged if t.qualified_name not in proven]
            proven_whole = len(proven)
        planner = sessions.get("source")
        for table in ranged:
            chunks = plan_chunks_by_rows(planner, table, chunk_rows)
            chunks_total += len(chunks)
            for i, chunk in enumerate(chunks):
                while len(in_flight) >= window:
                    settle_oldest()
                in_flight.append(
                    (
                        table,
                        chunk,
                        pool.submit(task, "source", table, chunk),
                        pool.submit(task, "target", table, chunk),
                        i == len(chunks) - 1,
                    )
                )
        while in_flight:
            settle_oldest()
    finally:
        # On a failure, queued ranges are dropped instead of run to no purpose.
        pool.shutdown(wait=True, cancel_futures=True)
        sessions.close()
    report = VerifyReport(
        tables=len(tables),
        rows=total_rows,
        target_rows=target_rows,
        chunks=chunks_total,
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


# --- rows by key ----------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyComparison:
    """Rows of one table compared by key on both sides."""

    table: str
    keys: int  # keys asked for
    source_rows: int  # rows found (and hashed) on the source
    target_rows: int
    differing: frozenset[Key]  # canonical keys whose rows differ, or that exist on one side only
    seconds: float


def _key_literal(value: object, charset: str | None) -> str:
    if isinstance(value, bytes):
        if charset:  # a string column: a literal in its charset, so its index serves the lookup
            return f"_{charset} X'{value.hex()}'" if value else f"_{charset} ''"
        return f"X'{value.hex()}'" if value else "''"
    return sql_literal(value)


def _key_charsets(session: MySQLSession, table: TableInfo) -> dict[str, str | None]:
    rows = session.rows(
        "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (table.schema, table.name),
    )
    return {str(name): (str(cs) if cs else None) for name, cs in rows}


def _keys_predicate(table: TableInfo, keys: Sequence[Key], charsets: dict[str, str | None]) -> str:
    cols = table.key_columns
    quoted = [quote_identifier(c) for c in cols]
    if len(cols) == 1:
        return f"{quoted[0]} IN (" + ", ".join(_key_literal(k[0], charsets.get(cols[0])) for k in keys) + ")"
    return " OR ".join(
        "(" + " AND ".join(f"{q} = {_key_literal(v, charsets.get(c))}" for q, c, v in zip(quoted, cols, k, strict=True))
        + ")"
        for k in keys
    )


def _hashes_by_key(session: MySQLSession, table: TableInfo, where: str) -> dict[Key, int]:
    canonical = canonical_key_sql(table, table.key_columns)
    rows = session.rows(
        f"SELECT {', '.join(canonical)}, {row_hash_sql(table)} FROM {_from_clause(table)} WHERE {where}"
    )
    return {tuple(r[:-1]): int(r[-1]) for r in rows}


def compare_keys(
    source: MySQLSession,
    target: MySQLSession,
    table: TableInfo,
    keys: Iterable[Key],
    *,
    batch: int = 500,
    pool: ThreadPoolExecutor | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> KeyComparison:
    """Compare the rows with ``keys`` (canonical: integers, strings as bytes) on both sides.

    Rows are matched by the key each side returns, not by the key asked for: a lookup that finds a
    row under a collation-equal but different key shows as a row on one side only. ``pool`` runs
    the two sides of a batch at once.
    """
    if not table.key_columns:
        raise ValueError(f"{table.qualified_name} has no key to compare rows by")
    started = monotonic()
    wanted = sorted(set(keys), key=repr)
    charsets = _key_charsets(source, table)
    differing: set[Key] = set()
    src_rows = dst_rows = 0
    for i in range(0, len(wanted), batch):
        where = _keys_predicate(table, wanted[i : i + batch], charsets)
        if pool is not None:
            src_future = pool.submit(_hashes_by_key, source, table, where)
            dst = _hashes_by_key(target, table, where)
            src = src_future.result()
        else:
            src, dst = _hashes_by_key(source, table, where), _hashes_by_key(target, table, where)
        src_rows += len(src)
        dst_rows += len(dst)
        differing |= {k for k in src.keys() | dst.keys() if src.get(k) != dst.get(k)}
    return KeyComparison(
        table.qualified_name, len(wanted), src_rows, dst_rows, frozenset(differing), monotonic() - started
    )


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
