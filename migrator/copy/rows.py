"""The row path, for tables whose text form loses a value on a target without LOAD DATA LOCAL.

The snapshot renders each row as a SQL tuple itself (FLOAT widened to DOUBLE, which is exact and
rounds back to the same FLOAT on insert; character values as text or hex with their character set;
binary as hex; ENUM/SET by number) and the rows go to the target as multi-row INSERTs over pymysql,
in one transaction per chunk.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pymysql
import pymysql.cursors

from migrator.copy.columns import LOSSY_TEXT_TYPES, ORDINAL_TYPES, enum_zeros_sql
from migrator.copy.context import CopyContext
from migrator.copy.types import ChunkCopyFailed, Copied, DefaultsFiles
from migrator.mysql.chunking import Chunk, chunk_rows_source
from migrator.mysql.schema import SCHEMA_SQL_MODE, ColumnInfo, TableInfo
from migrator.mysql.session import MySQLSession, quote_identifier

# Character columns: the row path sends their bytes as a hex literal with the column's character set.
STRING_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json"})
# Types rendered as hex literals on the row path (bytes, not characters).
BINARY_TYPES = frozenset(
    {
        "binary",
        "varbinary",
        "tinyblob",
        "blob",
        "mediumblob",
        "longblob",
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    }
)
# Multi-row INSERTs are sent at about this size (capped by the target's packet).
ROW_BATCH_BYTES = 1 << 20
ROW_FETCH = 2000


def _value_sql(col: ColumnInfo) -> str:
    name = quote_identifier(col.name)
    if col.data_type in LOSSY_TEXT_TYPES:
        value = f"CAST(CAST({name} AS DOUBLE) AS CHAR)"  # every digit of the stored float
    elif col.data_type == "bit":
        value = f"CAST({name} AS UNSIGNED)"
    elif col.data_type in ORDINAL_TYPES:
        value = f"CAST({name} + 0 AS CHAR)"  # ENUM index, SET bitmask
    elif col.data_type in BINARY_TYPES:
        value = f"CONCAT('X''', HEX({name}), '''')"
    elif col.data_type in STRING_TYPES:
        # utf8mb4 (the connection's character set) goes as quoted text: bytes unchanged, and an
        # invalid sequence fails the INSERT with a warning. Any other character set goes as its
        # stored bytes with that set (_latin1 X'E9'), converted nowhere (QUOTE of a NULL in a utf16
        # column came back as the utf16 reading of 'NULL', '乕䱌'). Hex for all would send twice
        # the bytes (59 MB instead of 31 MB for a 200k-row text table, measured).
        value = (
            f"IF(CHARSET({name}) = 'utf8mb4', CAST(QUOTE({name}) AS BINARY),"
            f" CAST(CONCAT('_', CHARSET({name}), ' X''', HEX({name}), '''') AS BINARY))"
        )
    else:
        # Numbers and temporal values print exactly as ASCII text (TIMESTAMP in the session's UTC).
        value = f"QUOTE({name})"
    return f"IFNULL({value}, 'NULL')"


def row_tuple_sql(table: TableInfo) -> str:
    """A SELECT expression giving each row as the text of a SQL tuple ``(v1, v2, ...)``.

    CONCAT returns NULL when the text would exceed the snapshot's max_allowed_packet; the row
    path treats a NULL tuple as a failure, never as a row to skip.
    """
    parts = ", ',', ".join(_value_sql(c) for c in table.columns if not c.generated)
    # As bytes: the utf8mb4 text goes back out as it came, with no decoding in Python.
    return f"CAST(CONCAT('(', {parts}, ')') AS BINARY)"


def insert_prefix(table: TableInfo) -> bytes:
    cols = ", ".join(quote_identifier(c.name) for c in table.columns if not c.generated)
    return f"INSERT INTO {table.sql_name} ({cols}) VALUES ".encode()


class RowPath:
    """Rows rendered as SQL tuples on the snapshot, sent as INSERTs over pymysql; a CopyPath."""

    name = "rows"

    def __init__(self, context: CopyContext) -> None:
        self.context = context
        self._local = threading.local()  # each worker thread's reading of the target's max_allowed_packet

    def copy(self, chunk: Chunk, files: DefaultsFiles) -> Copied:
        """Send the chunk's rows (no tool, so no defaults file), then count the range."""
        sent = self._insert_rows(chunk)
        return Copied(self.context.count_range(chunk), sent)

    def _insert_rows(self, chunk: Chunk) -> int:
        """Snapshot-rendered tuples, multi-row INSERTs, one transaction. Returns bytes sent.

        The session is not strict (strict refuses ENUM's index-0 value, review B9), so any warning
        other than the one each index-0 value gives fails the chunk: no value is changed silently.
        """
        table = self.context.table(chunk)
        source, target = self.context.snapshot_session(), self.context.target_session()
        budget = min(ROW_BATCH_BYTES, self._target_packet(target) // 2)
        prefix = insert_prefix(table)
        sent = 0
        target.execute("SET SESSION sql_mode = %s", (SCHEMA_SQL_MODE,))
        target.conn.begin()
        try:
            try:
                for batch, zeros in rendered_row_batches(source, table, chunk, budget):
                    sent += self._send_rows(chunk, target, prefix, batch, zeros)
            except RowTooLong as exc:
                raise ChunkCopyFailed(chunk, str(exc)) from exc
            target.conn.commit()
        except BaseException:
            with contextlib.suppress(pymysql.err.Error):
                target.conn.rollback()
            raise
        return sent

    @staticmethod
    def _send_rows(chunk: Chunk, target: MySQLSession, prefix: bytes, rows: list[bytes], zeros: int) -> int:
        sql = prefix + b",".join(rows)
        extra = insert_rendered(target, sql, zeros)
        if extra is not None:
            warnings, said = extra
            raise ChunkCopyFailed(
                chunk,
                f"an INSERT gave {warnings - zeros} warning(s) beyond those of index-0 ENUM values,"
                f" so nothing of the chunk was kept: {said}",
            )
        return len(sql)

    def _target_packet(self, target: MySQLSession) -> int:
        packet: int | None = getattr(self._local, "packet", None)
        if packet is None:
            packet = int(target.value("SELECT @@max_allowed_packet"))
            self._local.packet = packet
        return packet


class RowTooLong(Exception):
    """The source rendered a row's text as NULL: it exceeds the source's max_allowed_packet."""


def rendered_row_batches(
    source: MySQLSession, table: TableInfo, chunk: Chunk, budget: int
) -> Iterator[tuple[list[bytes], int]]:
    """The chunk's rows as rendered INSERT tuples, in batches of about ``budget`` bytes, each with its count
    of index-0 ENUM values (the warnings its INSERT is expected to give). Shared by the row path and the
    local replica's seed, so both render and check values the same way."""
    batch: list[bytes] = []
    size = zeros = 0
    with source.conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(
            f"SELECT {row_tuple_sql(table)}, {enum_zeros_sql(table)}"
            f" FROM {chunk_rows_source(table, chunk)} WHERE {chunk.where_sql()}"
        )
        while rows := cur.fetchmany(ROW_FETCH):
            for text, row_zeros in rows:
                if text is None:
                    raise RowTooLong(
                        f"a row of {table.qualified_name} exceeds the source's max_allowed_packet once rendered; "
                        "raise it to the size of the largest row x 2"
                    )
                row = bytes(text)
                batch.append(row)
                size += len(row) + 1
                zeros += int(row_zeros)
                if size >= budget:
                    yield batch, zeros
                    batch, size, zeros = [], 0, 0
    if batch:
        yield batch, zeros


def insert_rendered(target: MySQLSession, sql: bytes, zeros: int) -> tuple[int, str] | None:
    """Run one INSERT of rendered rows; (warnings, what the first said) if not exactly ``zeros`` expected."""
    with target.conn.cursor() as cur:
        cur.execute(sql)  # bytes go to the server as they are
        if cur.warning_count == zeros:
            return None
        got = cur.warning_count
        cur.execute("SHOW WARNINGS LIMIT 5")
        said = "; ".join(f"{code} {message}" for _, code, message in cur.fetchall())
        return got, said
