"""Split tables into key ranges ("chunks") that tile each table: copy and verify work chunk by chunk.

A chunk's range is [lower, upper) on the table's key columns, compared lexicographically; None
means open on that side, so the first and last chunks also cover keys beyond what was seen.
Boundaries of a big table with an integer-led key are interpolated between the column's MIN and
MAX (one index dive each); otherwise they come from walking the key index a chunk at a time
(``WHERE key >= lower ORDER BY key LIMIT 1 OFFSET n``), never with a growing OFFSET from the start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog

from migrator.mysql.schema import TableInfo, deferred_indexes
from migrator.mysql.session import MySQLSession, quote_identifier

log = structlog.get_logger()

Key = tuple[Any, ...]

# Rows below this are not worth more than one chunk, whatever the size estimate says.
MIN_ROWS_PER_CHUNK = 100
# Key types whose values can be interpolated between MIN and MAX to cut a table without walking it.
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
# Tables estimated below this many chunks are walked: cheap, and exact where statistics are stale.
INTERPOLATE_MIN_CHUNKS = 2
# An interpolated range estimated above this many chunks' worth of rows is walked instead.
ESTIMATE_SKEW = 3
# Row size assumed when the catalog has no statistics yet (freshly loaded table).
FALLBACK_ROW_BYTES = 256
# All key reads and every tool session run in UTC so TIMESTAMP keys mean the same everywhere
# (mariadb-dump sets TIME_ZONE='+00:00' in its own session).
SESSION_TIME_ZONE = "+00:00"


# --- literal values ----------------------------------------------------------------------------


def sql_literal(value: object) -> str:
    """A SQL literal for a key value, independent of sql_mode (no backslash escapes are relied on)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | bytearray):
        return "X'" + bytes(value).hex() + "'" if value else "''"
    if isinstance(value, str):
        if "\\" in value or any(ord(ch) < 32 for ch in value):
            # NO_BACKSLASH_ESCAPES changes what '\' means inside quotes; hex means the same everywhere.
            return "_utf8mb4 X'" + value.encode("utf-8").hex() + "'"
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dt.datetime):
        return "'" + value.isoformat(sep=" ", timespec="microseconds") + "'"
    if isinstance(value, dt.date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, dt.timedelta):  # TIME columns arrive as timedelta
        return "'" + _format_time(value) + "'"
    if isinstance(value, dt.time):
        return "'" + value.isoformat(timespec="microseconds") + "'"
    raise TypeError(f"no SQL literal for a key value of type {type(value).__name__}")


def _format_time(value: dt.timedelta) -> str:
    micros = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, frac = divmod(micros, 1_000_000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{sign}{hours:02d}:{minute:02d}:{sec:02d}.{frac:06d}"


# --- JSON that keeps types ---------------------------------------------------------------------


def _encode_value(value: object) -> list[Any]:
    if value is None:
        return ["null"]
    if isinstance(value, bool):
        return ["int", int(value)]
    if isinstance(value, int):
        return ["int", str(value)]  # as text: JSON readers elsewhere may lose big integers
    if isinstance(value, Decimal):
        return ["decimal", str(value)]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, bytes | bytearray):
        return ["bytes", bytes(value).hex()]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, dt.datetime):
        return ["datetime", value.isoformat()]
    if isinstance(value, dt.date):
        return ["date", value.isoformat()]
    if isinstance(value, dt.timedelta):
        return ["timedelta", value.days, value.seconds, value.microseconds]
    if isinstance(value, dt.time):
        return ["time", value.isoformat()]
    raise TypeError(f"cannot journal a key value of type {type(value).__name__}")


def _decode_value(item: list[Any]) -> object:
    kind = item[0]
    decoders: dict[str, Callable[[list[Any]], object]] = {
        "null": lambda _: None,
        "int": lambda i: int(i[1]),
        "decimal": lambda i: Decimal(i[1]),
        "float": lambda i: float(i[1]),
        "bytes": lambda i: bytes.fromhex(i[1]),
        "str": lambda i: str(i[1]),
        "datetime": lambda i: dt.datetime.fromisoformat(i[1]),
        "date": lambda i: dt.date.fromisoformat(i[1]),
        "timedelta": lambda i: dt.timedelta(days=i[1], seconds=i[2], microseconds=i[3]),
        "time": lambda i: dt.time.fromisoformat(i[1]),
    }
    if kind not in decoders:
        raise ValueError(f"unknown key value kind {kind!r}")
    return decoders[kind](item)


def _encode_key(key: Key | None) -> list[Any] | None:
    return None if key is None else [_encode_value(v) for v in key]


def _decode_key(items: list[Any] | None) -> Key | None:
    return None if items is None else tuple(_decode_value(i) for i in items)


# --- range predicates --------------------------------------------------------------------------


def key_predicate(
    columns: Sequence[str], key: Key, op: str, escape: Callable[[object], str] = sql_literal
) -> str:
    """``(c1, c2) op (v1, v2)`` for op in >, >=, <, <=, written as the lexicographic expansion.

    MariaDB 10.11 does not use an index for row-constructor comparisons (a full scan was measured:
    10,200 rows read for a 200-row range); the OR expansion gets a range scan on the whole key.
    """
    if len(columns) != len(key) or not columns:
        raise ValueError("key and columns differ in length")
    strict = op[0]  # ">" or "<"
    quoted = [quote_identifier(c) for c in columns]
    literals = [escape(v) for v in key]
    terms = []
    for i in range(len(columns)):
        equal = [f"{quoted[j]} = {literals[j]}" for j in range(i)]
        last = i == len(columns) - 1
        compare = f"{quoted[i]} {op if last else strict} {literals[i]}"
        terms.append("(" + " AND ".join([*equal, compare]) + ")" if equal else compare)
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


def range_predicate(
    columns: Sequence[str],
    lower: Key | None,
    upper: Key | None,
    escape: Callable[[object], str] = sql_literal,
) -> str:
    parts = []
    if lower is not None:
        parts.append(key_predicate(columns, lower, ">=", escape))
    if upper is not None:
        parts.append(key_predicate(columns, upper, "<", escape))
    return " AND ".join(parts) if parts else "1=1"


def format_range(lower: Key | None, upper: Key | None) -> str:
    """``[(1,'a'), (5,'b'))`` style text for messages: open ends shown as -inf/+inf."""

    def show(key: Key | None, open_text: str) -> str:
        if key is None:
            return open_text
        return "(" + ", ".join(repr(v) for v in key) + ")"

    return f"[{show(lower, '-inf')}, {show(upper, '+inf')})"


# --- chunks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    schema: str
    table: str
    index: int
    key_columns: tuple[str, ...]
    lower: Key | None  # inclusive; None = open
    upper: Key | None  # exclusive; None = open
    # "rows": copy the key range; "indexes": add the table's deferred secondary indexes, after every
    # rows chunk of the table is done (see schema.split_deferred_indexes).
    kind: str = "rows"
    # False: key_columns are a non-unique index's (a table without a key, split by value ranges for
    # the copy). The range still holds every row with those values; it just names no single row.
    unique: bool = True
    # > 0: a table with no usable index, split by a predicate both servers evaluate alike: the rows
    # whose CRC32 of key_columns' values (see hash_predicate) is ``bucket`` modulo ``buckets``.
    buckets: int = 0
    bucket: int = 0

    def chunk_id(self) -> str:
        """Stable id: table, position, and a digest of the bounds.

        The digest means a re-planned table (different boundaries) never matches an old "done" row,
        so a stale journal can cost a re-copy but never a skipped range.
        """
        digest = hashlib.sha256(self.to_json().encode()).hexdigest()[:12]
        return f"{self.schema}.{self.table}#{self.index:06d}-{digest}"

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "schema": self.schema,
            "table": self.table,
            "index": self.index,
            "key_columns": list(self.key_columns),
            "lower": _encode_key(self.lower),
            "upper": _encode_key(self.upper),
        }
        if self.kind != "rows":  # absent for rows chunks: their ids stay what older journals hold
            data["kind"] = self.kind
        if not self.unique:
            data["unique"] = False
        if self.buckets:
            data["buckets"], data["bucket"] = self.buckets, self.bucket
        return json.dumps(data, sort_keys=True, ensure_ascii=False)

    @property
    def is_indexes(self) -> bool:
        return self.kind == "indexes"

    @classmethod
    def from_json(cls, text: str) -> Chunk:
        data = json.loads(text)
        return cls(
            schema=data["schema"],
            table=data["table"],
            index=int(data["index"]),
            key_columns=tuple(data["key_columns"]),
            lower=_decode_key(data["lower"]),
            upper=_decode_key(data["upper"]),
            kind=str(data.get("kind", "rows")),
            unique=bool(data.get("unique", True)),
            buckets=int(data.get("buckets", 0)),
            bucket=int(data.get("bucket", 0)),
        )

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    def where_sql(self, escape: Callable[[object], str] = sql_literal) -> str:
        """The chunk as a WHERE condition; ``1=1`` for an unbounded chunk (a table without a key)."""
        if not self.key_columns:
            return "1=1"
        if self.buckets:
            return hash_predicate(self.key_columns, self.buckets, self.bucket)
        return range_predicate(self.key_columns, self.lower, self.upper, escape)

    def describe_range(self) -> str:
        if self.is_indexes:
            return "(its secondary indexes, added after the rows)"
        if not self.key_columns:
            return "whole table (no usable key)"
        if self.buckets:
            return f"rows whose CRC32 of ({', '.join(self.key_columns)}) is {self.bucket} modulo {self.buckets}"
        kind = "" if self.unique else " (values of a non-unique index)"
        return f"({', '.join(self.key_columns)}){kind} in {format_range(self.lower, self.upper)}"


def hash_predicate(columns: Sequence[str], buckets: int, bucket: int) -> str:
    """``MOD(CRC32(CONCAT_WS(...)), buckets) = bucket``: true for the same rows on both servers.

    A row's bucket depends only on its stored values as text (HASH_SAFE_TYPES, UTC sessions for
    TIMESTAMP), so the snapshot selects and the target clears (a retried chunk) exactly the same
    rows, duplicates included. Each bucket reads the whole table: HASH_MAX_BUCKETS bounds that.
    """
    # Hex literals only: what a quoted backslash means depends on each session's sql_mode.
    values = ", ".join(f"IFNULL({quote_identifier(c)}, 0x00)" for c in columns)
    return f"MOD(CRC32(CONCAT_WS(0x1f, {values})), {int(buckets)}) = {int(bucket)}"


# Column types whose text is the same on every server and version for the same stored value: the
# hash predicate reads only these (FLOAT/DOUBLE print differently across versions, JSON across products).
HASH_SAFE_TYPES = frozenset(
    {
        "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric",
        "char", "varchar", "tinytext", "text", "mediumtext", "longtext",
        "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
        "date", "datetime", "timestamp", "time", "year", "enum", "set",
    }
)  # fmt: skip
# Every bucket is a full scan of the table on the snapshot: at most this many scans per table.
HASH_MAX_BUCKETS = 32


def plan_hash_buckets(session: MySQLSession, table: TableInfo, chunk_bytes: int) -> list[Chunk]:
    """A table that cannot be cut into ranges, in buckets of about ``chunk_bytes`` (at most
    HASH_MAX_BUCKETS); one whole-table chunk when it is small or has no hash-safe column (review B8)."""
    columns = tuple(c.name for c in table.columns if not c.generated and c.data_type in HASH_SAFE_TYPES)
    size = max(table.data_length, table.rows_estimate * estimated_row_bytes(session, table))
    buckets = min(HASH_MAX_BUCKETS, -(-size // chunk_bytes))
    if not columns or buckets <= 1:
        return [_whole_table(table)]
    log.info("chunking.planned", table=table.qualified_name, chunks=buckets, method="hash", columns=len(columns))
    return [
        Chunk(table.schema, table.name, k, columns, None, None, unique=False, buckets=buckets, bucket=k)
        for k in range(buckets)
    ]


def chunk_rows_source(table: TableInfo, chunk: Chunk) -> str:
    """What a chunk's rows are read FROM: the table, held to the index the chunk is a range of.

    Without FORCE INDEX, MariaDB reads a keyless table's value-range chunk by scanning the whole
    table once the range holds a large share of it (each quarter of the bench's page_views, the run
    of 1,500 equal values in a 6,040-row test table): a table of few chunks was read once per chunk.
    """
    if not chunk.key_columns or table.chunk_index is None or chunk.buckets:
        return table.sql_name  # the whole table, or a hash bucket of it: a plain scan
    return f"{table.sql_name} FORCE INDEX ({quote_identifier(table.chunk_index)})"


def estimated_row_bytes(session: MySQLSession, table: TableInfo) -> int:
    """Average row size: catalog statistics, else a sample of the first rows, else a fallback."""
    if table.avg_row_length > 0 and table.rows_estimate > 0:
        return table.avg_row_length
    cols = [c for c in table.columns if not c.generated]
    if cols:
        lengths = " + ".join(f"COALESCE(LENGTH({quote_identifier(c.name)}), 0)" for c in cols)
        sample = session.value(f"SELECT AVG({lengths}) FROM (SELECT * FROM {table.sql_name} LIMIT 1000) AS s")
        if sample:
            return max(1, int(sample) + 2 * len(cols))  # plus a little per-field overhead
    return FALLBACK_ROW_BYTES


def rows_per_chunk_for(session: MySQLSession, table: TableInfo, chunk_bytes: int) -> int:
    return max(MIN_ROWS_PER_CHUNK, chunk_bytes // estimated_row_bytes(session, table))


def plan_chunks(
    session: MySQLSession, table: TableInfo, chunk_bytes: int, *, with_indexes: bool = True
) -> list[Chunk]:
    """Chunks of about ``chunk_bytes`` each, by the row-size estimate; one chunk without a usable key.

    ``with_indexes`` (pair it with copy_schema(defer_indexes=True), both defaults) appends the
    chunk that adds the table's deferred secondary indexes, when it has any.
    """
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    if table.key_is_range_safe:
        chunks = plan_chunks_by_rows(session, table, rows_per_chunk_for(session, table, chunk_bytes))
    elif not table.key_columns and table.range_columns and table.range_index:
        chunks = plan_value_ranges(session, table, rows_per_chunk_for(session, table, chunk_bytes))
    else:
        chunks = plan_hash_buckets(session, table, chunk_bytes)
    if with_indexes and deferred_indexes(session, table):
        chunks.append(Chunk(table.schema, table.name, len(chunks), (), None, None, kind="indexes"))
    return chunks


def _whole_table(table: TableInfo) -> Chunk:
    if table.key_columns:
        log.warning(
            "chunking.single_chunk",
            table=table.qualified_name,
            key=list(table.key_columns),
            reason="key type cannot be split into ranges (ENUM, SET, FLOAT, BIT...)",
        )
    else:
        log.warning(
            "chunking.single_chunk", table=table.qualified_name, reason="no primary or NOT NULL unique key"
        )
    return Chunk(table.schema, table.name, 0, (), None, None)


def plan_value_ranges(session: MySQLSession, table: TableInfo, rows_per_chunk: int) -> list[Chunk]:
    """Chunks of about ``rows_per_chunk`` rows by value ranges of a table's non-unique index.

    For a table without a primary or unique key (copy only: a range names no single row, so the
    checksum drill-down cannot use it). A value repeated more than ``rows_per_chunk`` times makes
    one larger chunk; every row falls in exactly one range, as with a key.
    """
    if rows_per_chunk <= 0:
        raise ValueError("rows_per_chunk must be positive")
    assert table.range_index is not None
    session.execute("SET SESSION time_zone = %s", (SESSION_TIME_ZONE,))
    cols = table.range_columns
    order = ", ".join(quote_identifier(c) for c in cols)
    head = f"SELECT {order} FROM {table.sql_name} FORCE INDEX ({quote_identifier(table.range_index)})"
    boundaries: list[Key] = []
    lower: Key | None = None
    while True:
        where = f" WHERE {key_predicate(cols, lower, '>=')}" if lower is not None else ""
        row = session.one(f"{head}{where} ORDER BY {order} LIMIT 1 OFFSET {rows_per_chunk}")
        if row is None:
            break
        found = tuple(row)
        if found == lower:  # a run of one value longer than a chunk: end the chunk after the run
            row = session.one(f"{head} WHERE {key_predicate(cols, found, '>')} ORDER BY {order} LIMIT 1")
            if row is None:
                break
            found = tuple(row)
        lower = found
        boundaries.append(found)
    edges: list[Key | None] = [None, *boundaries, None]
    chunks = [
        Chunk(table.schema, table.name, i, cols, edges[i], edges[i + 1], unique=False) for i in range(len(edges) - 1)
    ]
    log.info(
        "chunking.planned",
        table=table.qualified_name,
        chunks=len(chunks),
        rows_per_chunk=rows_per_chunk,
        index=table.range_index,
        unique=False,
    )
    return chunks


def plan_chunks_by_rows(session: MySQLSession, table: TableInfo, rows_per_chunk: int) -> list[Chunk]:
    """Chunks of about ``rows_per_chunk`` rows each (the last one open-ended).

    A big table whose key starts with an integer column is cut by interpolating that column between
    its MIN and MAX, one index dive per boundary; walking the key (below) reads every key of the
    table first, which for the bench's 814 MB cost the source 0.7 CPU-s and the copy 0.4-1.8 s
    before any row moved, and for a 1 TB table would cost a full scan of its primary key. Where the
    optimizer's estimate puts a cut range above ESTIMATE_SKEW chunks' worth (keys bunched, a large
    gap), that range alone is walked.
    """
    if rows_per_chunk <= 0:
        raise ValueError("rows_per_chunk must be positive")
    if not table.key_is_range_safe:
        return [_whole_table(table)]
    session.execute("SET SESSION time_zone = %s", (SESSION_TIME_ZONE,))
    boundaries = _interpolated_boundaries(session, table, rows_per_chunk)
    method = "interpolated"
    if boundaries is None:
        boundaries, method = _walked_boundaries(session, table, rows_per_chunk, None, None), "walked"
    keys = table.key_columns
    edges: list[Key | None] = [None, *boundaries, None]
    chunks = [Chunk(table.schema, table.name, i, keys, edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    log.info(
        "chunking.planned",
        table=table.qualified_name,
        chunks=len(chunks),
        rows_per_chunk=rows_per_chunk,
        method=method,
    )
    return chunks


def _key_select(table: TableInfo) -> tuple[str, str]:
    """(``SELECT key FROM table FORCE INDEX (key)``, ``key`` as an ORDER BY list)."""
    order = ", ".join(quote_identifier(c) for c in table.key_columns)
    force = f" FORCE INDEX ({quote_identifier(table.key_name)})" if table.key_name else ""
    return f"SELECT {order} FROM {table.sql_name}{force}", order


def _walked_boundaries(
    session: MySQLSession, table: TableInfo, rows_per_chunk: int, lower: Key | None, upper: Key | None
) -> list[Key]:
    """Every ``rows_per_chunk``-th key in [lower, upper), read by walking the key index."""
    head, order = _key_select(table)
    keys = table.key_columns
    below = f" AND {key_predicate(keys, upper, '<')}" if upper is not None else ""
    boundaries: list[Key] = []
    while True:
        where = f" WHERE {key_predicate(keys, lower, '>=')}" if lower is not None else " WHERE 1=1"
        row = session.one(f"{head}{where}{below} ORDER BY {order} LIMIT 1 OFFSET {rows_per_chunk}")
        if row is None:
            return boundaries
        lower = tuple(row)
        boundaries.append(lower)


def _interpolated_boundaries(session: MySQLSession, table: TableInfo, rows_per_chunk: int) -> list[Key] | None:
    """Boundaries from the leading integer key column's MIN..MAX, or None where walking is the way."""
    first = table.column(table.key_columns[0])
    if first.data_type not in INTEGER_TYPES or table.rows_estimate < INTERPOLATE_MIN_CHUNKS * rows_per_chunk:
        return None  # a small table walks in milliseconds, and its statistics may be stale
    column = quote_identifier(first.name)
    low, high = session.one(f"SELECT MIN({column}), MAX({column}) FROM {table.sql_name}") or (None, None)
    if low is None or high is None:
        return []
    pieces = max(1, -(-table.rows_estimate // rows_per_chunk))
    span = int(high) - int(low) + 1
    cuts = sorted({int(low) + span * i // pieces for i in range(1, pieces)} - {int(low)})
    head, order = _key_select(table)
    found: list[Key] = []
    for cut in cuts:  # the first key at or after each cut: one index dive
        row = session.one(f"{head} WHERE {column} >= {cut} ORDER BY {order} LIMIT 1")
        if row is None:
            break
        if not found or tuple(row) != found[-1]:  # a gap wider than a piece gives one key twice
            found.append(tuple(row))
    # Bunched keys leave some ranges far over a chunk's worth: walk those ranges (only). The
    # estimates are scaled to the table's row count: InnoDB's run low on long ranges (2,530 for 5,010).
    edges: list[Key | None] = [None, *found, None]
    ranges = list(itertools.pairwise(edges))
    estimates = [_estimated_rows(session, table, lower, upper) for lower, upper in ranges]
    scale = max(1.0, table.rows_estimate / max(1, sum(estimates)))
    boundaries: list[Key] = []
    for (lower, upper), estimate in zip(ranges, estimates, strict=True):
        if lower is not None:
            boundaries.append(lower)
        if estimate * scale > ESTIMATE_SKEW * rows_per_chunk:
            boundaries.extend(_walked_boundaries(session, table, rows_per_chunk, lower, upper))
    return boundaries


def _estimated_rows(session: MySQLSession, table: TableInfo, lower: Key | None, upper: Key | None) -> int:
    """The optimizer's row estimate for a key range (InnoDB dives the index at both ends: cheap)."""
    head, _ = _key_select(table)
    plan = session.dicts(f"EXPLAIN {head} WHERE {range_predicate(table.key_columns, lower, upper)}")
    return max((int(step.get("rows") or 0) for step in plan), default=0)


# --- moved ---------------------------------------------------------------------------------------
# The copy's plan (order, batches, lazy planning, chunk time budgets) lives in migrator.copy.planning,
# which imports this module: importers that still name them here get them on first use.
_MOVED_TO_COPY_PLANNING = frozenset(
    {
        "BATCH_CHUNKS",
        "BATCH_TABLES",
        "MIN_CHUNK_TIMEOUT",
        "SECONDS_PER_MB_SCANNED",
        "SECONDS_PER_MB_WRITTEN",
        "LazyPlanner",
        "batches",
        "chunk_timeout",
        "copy_order",
        "plan_copy",
    }
)

if TYPE_CHECKING:  # for mypy; the look-up below serves them at run time
    from migrator.copy.planning import BATCH_CHUNKS as BATCH_CHUNKS  # noqa: PLC0414 (explicit re-export)
    from migrator.copy.planning import BATCH_TABLES as BATCH_TABLES  # noqa: PLC0414 (explicit re-export)
    from migrator.copy.planning import MIN_CHUNK_TIMEOUT as MIN_CHUNK_TIMEOUT  # noqa: PLC0414 (explicit re-export)
    from migrator.copy.planning import SECONDS_PER_MB_SCANNED as SECONDS_PER_MB_SCANNED  # noqa: PLC0414 (explicit re-export)
    from migrator.copy.planning import SECONDS_PER_MB_WRITTEN as SECONDS_PER_MB_WRITTEN  # noqa: PLC0414 (explicit re-export)
    from migrator.copy.planning import LazyPlanner as LazyPlanner  # noqa: PLC0414 (explicit re-export)
    from migrator.copy.planning import batches as batches  # noqa: PLC0414 (explicit re-export)
    from migrator.copy.planning import chunk_timeout as chunk_timeout  # noqa: PLC0414 (explicit re-export)
    from migrator.copy.planning import copy_order as copy_order  # noqa: PLC0414 (explicit re-export)
    from migrator.copy.planning import plan_copy as plan_copy  # noqa: PLC0414 (explicit re-export)
else:

    def __getattr__(name: str) -> Any:
        if name in _MOVED_TO_COPY_PLANNING:
            from migrator.copy import planning

            return getattr(planning, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
