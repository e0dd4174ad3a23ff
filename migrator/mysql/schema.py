"""Catalog reads and schema copy: which base tables exist, their keys, and creating them on the target.

Only base tables and sequences (migrator/mysql/sequences.py) are copied here; views, routines,
triggers and events are re-created at step 12, after the data, so that triggers do not fire during
the load and definers can be checked first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from migrator.errors import PreflightFailed
from migrator.mysql.sequences import copy_sequences
from migrator.mysql.session import MySQLSession, qualified, quote_identifier

log = structlog.get_logger()

# Engines whose writes roll back with a transaction; anything else cannot be copied or applied
# with a position committed alongside the rows.
TRANSACTIONAL_ENGINES = frozenset({"innodb", "rocksdb", "tokudb", "ndbcluster"})

# Key column types whose ORDER BY and comparison operators agree, so key ranges tile the table.
# ENUM/SET sort by ordinal but compare as strings; FLOAT literals do not round-trip; BIT compares oddly.
RANGE_SAFE_TYPES = frozenset(
    {
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "integer",
        "bigint",
        "decimal",
        "numeric",
        "double",
        "char",
        "varchar",
        "binary",
        "varbinary",
        "date",
        "datetime",
        "timestamp",
        "time",
        "year",
    }
)

# mysqldump's own session setting; permissive enough to re-create any table the source accepted.
SCHEMA_SQL_MODE = "NO_AUTO_VALUE_ON_ZERO"
# mysqldump's too: the zone both sides of the schema copy read and write TIMESTAMP defaults in.
SCHEMA_TIME_ZONE = "+00:00"


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str  # lower-case base type: "int", "varchar", "datetime", ...
    column_type: str  # full declaration: "int(10) unsigned", "decimal(12,4)", ...
    nullable: bool
    generated: bool  # VIRTUAL/STORED generated column


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    engine: str
    columns: tuple[ColumnInfo, ...]
    key_columns: tuple[str, ...]  # primary key, else first NOT NULL unique key, else ()
    key_name: str | None  # index name of key_columns ("PRIMARY", ...), None without a key
    rows_estimate: int
    avg_row_length: int
    data_length: int
    index_length: int = 0  # the secondary indexes' bytes on the source (InnoDB's INDEX_LENGTH)
    # Without a key: a non-unique index on NOT NULL columns the copy can still split by value
    # ranges (every row with a given value falls in one range), so a keyless table loads in parallel.
    range_index: str | None = None
    range_columns: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        """``schema.table`` for messages and journal keys (not quoted: not for SQL)."""
        return f"{self.schema}.{self.name}"

    @property
    def sql_name(self) -> str:
        return qualified(self.schema, self.name)

    def column(self, name: str) -> ColumnInfo:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def key_is_range_safe(self) -> bool:
        """Whether the key can be split into ranges (see RANGE_SAFE_TYPES)."""
        return bool(self.key_columns) and all(
            self.column(c).data_type in RANGE_SAFE_TYPES for c in self.key_columns
        )

    @property
    def chunk_index(self) -> str | None:
        """The index the copy splits by: the key's, else the range index (kept on the target during the load)."""
        return self.key_name if self.key_columns else self.range_index

    @property
    def size_estimate(self) -> int:
        """Bytes of rows by the catalog: its data length, or rows x average row length where that is more."""
        return max(self.data_length, self.rows_estimate * self.avg_row_length)

    @property
    def is_transactional(self) -> bool:
        return self.engine.lower() in TRANSACTIONAL_ENGINES


def _placeholders(values: Sequence[object]) -> str:
    return ", ".join(["%s"] * len(values))


def base_tables(session: MySQLSession, schemas: Sequence[str], *, only_table: str | None = None) -> list[TableInfo]:
    """Every base table (no views, sequences or system-versioned tables) of ``schemas``, by name.

    Three catalog reads for all of ``schemas``: call it once per run, not once per table. With
    ``only_table`` (one schema), only that table is read: the server opens one table's metadata instead
    of every table's (5.5 s per lookup at 10,000 tables in one schema, review C2).
    """
    if not schemas:
        return []
    if only_table is not None and len(schemas) != 1:
        raise ValueError("base_tables(only_table=...) reads one schema")
    ph = _placeholders(schemas)
    # Equality on both names lets the server skip opening every other table of the schema.
    only = " AND TABLE_NAME = %s" if only_table is not None else ""
    args = [*schemas, only_table] if only_table is not None else list(schemas)
    tables = session.rows(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COALESCE(ENGINE, ''), COALESCE(TABLE_ROWS, 0),"
        " COALESCE(AVG_ROW_LENGTH, 0), COALESCE(DATA_LENGTH, 0), COALESCE(INDEX_LENGTH, 0)"
        f" FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({ph}){only} AND TABLE_TYPE = 'BASE TABLE'"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME",
        args,
    )
    columns: dict[tuple[str, str], list[ColumnInfo]] = {}
    for schema, table, name, data_type, column_type, nullable, extra in session.rows(
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, EXTRA"
        f" FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN ({ph}){only}"
        " ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        args,
    ):
        generated = (
            "VIRTUAL" in str(extra).upper()
            or "STORED" in str(extra).upper()
            or ("PERSISTENT" in str(extra).upper())
        )
        columns.setdefault((schema, table), []).append(
            ColumnInfo(str(name), str(data_type).lower(), str(column_type), nullable == "YES", generated)
        )
    # Indexes in definition order (the order InnoDB uses to pick an implicit clustered key).
    indexes: dict[tuple[str, str], dict[str, list[tuple[int, str, bool]]]] = {}
    others: dict[tuple[str, str], dict[str, list[tuple[int, str, bool]]]] = {}
    for schema, table, index, seq, column, sub_part, non_unique, index_type in session.rows(
        "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, NON_UNIQUE, INDEX_TYPE"
        f" FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN ({ph}){only}",
        args,
    ):
        if str(index_type).upper() != "BTREE":
            continue
        by_name = (others if int(non_unique) else indexes).setdefault((schema, table), {})
        by_name.setdefault(str(index), []).append((int(seq), str(column), sub_part is not None))

    result = []
    for schema, table, engine, rows, avg, data, index_bytes in tables:
        cols = tuple(columns.get((schema, table), []))
        key_name, key_cols = _choose_key(cols, indexes.get((schema, table), {}))
        range_name: str | None = None
        range_cols: tuple[str, ...] = ()
        if not key_cols:
            range_name, range_cols = _choose_key(cols, others.get((schema, table), {}), primary=False)
            if any(_data_type(cols, name) not in RANGE_SAFE_TYPES for name in range_cols):
                range_name, range_cols = None, ()
        result.append(
            TableInfo(
                schema=str(schema),
                name=str(table),
                engine=str(engine),
                columns=cols,
                key_columns=key_cols,
                key_name=key_name,
                rows_estimate=int(rows),
                avg_row_length=int(avg),
                data_length=int(data),
                index_length=int(index_bytes),
                range_index=range_name,
                range_columns=range_cols,
            )
        )
    return result


def _data_type(columns: Sequence[ColumnInfo], name: str) -> str:
    return next((c.data_type for c in columns if c.name == name), "")


def _choose_key(
    columns: Sequence[ColumnInfo], indexes: dict[str, list[tuple[int, str, bool]]], *, primary: bool = True
) -> tuple[str | None, tuple[str, ...]]:
    nullable = {c.name for c in columns if c.nullable}
    if primary and "PRIMARY" in indexes:
        return "PRIMARY", tuple(c for _, c, _ in sorted(indexes["PRIMARY"]))
    for name, parts in indexes.items():
        ordered = sorted(parts)
        # A prefix index cannot deliver rows in full-column order, and NULLs are not unique.
        if any(prefix for _, _, prefix in ordered) or any(c in nullable for _, c, _ in ordered):
            continue
        return name, tuple(c for _, c, _ in ordered)
    return None, ()


def table_info(session: MySQLSession, schema: str, table: str) -> TableInfo:
    """One table's layout, read for that table alone (see base_tables)."""
    for info in base_tables(session, [schema], only_table=table):
        if info.name == table:
            return info
    raise PreflightFailed(f"table {schema}.{table} does not exist on {session.endpoint.describe()}")


def non_transactional_tables(session: MySQLSession, schemas: Sequence[str]) -> list[str]:
    """``schema.table (ENGINE)`` of base tables without rollback (MyISAM, Aria...): preflight refuses them."""
    return [
        f"{t.qualified_name} ({t.engine})" for t in base_tables(session, schemas) if not t.is_transactional
    ]


def target_is_empty(target: MySQLSession, schemas: Sequence[str]) -> list[str]:
    """The ``schema.table`` names that already hold rows on the target (empty list: all empty)."""
    return [
        t.qualified_name
        for t in base_tables(target, schemas)
        if target.one(f"SELECT 1 FROM {t.sql_name} LIMIT 1") is not None
    ]


_AUTO_INCREMENT = re.compile(r" AUTO_INCREMENT=\d+")
# A secondary B-tree index line of SHOW CREATE TABLE: "  KEY `name` (...)" or "  UNIQUE KEY `name` (...)".
_INDEX_LINE = re.compile(r"^  (?:UNIQUE )?KEY (`(?:[^`]|``)+`) ")


def _normalised_create(sql: str) -> str:
    # The counter moves as rows arrive; it is not part of the table's definition. Index lines are
    # sorted: indexes added after the data come last in SHOW CREATE, whatever their source order.
    lines = [line.rstrip(",") for line in _AUTO_INCREMENT.sub("", sql).splitlines()]
    indexes = sorted(line for line in lines if _INDEX_LINE.match(line))
    rest = [line for line in lines if not _INDEX_LINE.match(line)]
    return "\n".join(rest + indexes)


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`")


def split_deferred_indexes(create: str, keep: str | None) -> tuple[str, list[str]]:
    """``(CREATE TABLE without the deferrable indexes, their definitions for ALTER TABLE ... ADD)``.

    Loading rows into a table without its secondary indexes and building them afterwards by sort
    costs the target about a quarter less CPU than maintaining them row by row (measured in bench/).
    Deferrable: plain and UNIQUE B-tree secondary indexes except ``keep`` (the key the copy chunks
    by). Nothing is deferred in a table with foreign keys (they need their indexes) and FULLTEXT and
    SPATIAL indexes stay in the CREATE.
    """
    lines = create.splitlines()
    if "FOREIGN KEY" in create or len(lines) < 3:
        return create, []
    body, deferred = [], []
    for line in lines[1:-1]:
        match = _INDEX_LINE.match(line)
        if match and _unquote(match.group(1)) != keep:
            deferred.append(line.strip().rstrip(","))
        else:
            body.append(line.rstrip(","))
    if not deferred:
        return create, []
    return "\n".join([lines[0], ",\n".join(body), lines[-1]]), deferred


def deferred_indexes(session: MySQLSession, table: TableInfo) -> list[str]:
    """The definitions copy_schema(defer_indexes=True) leaves out of ``table`` on the target."""
    create = _show_create(session, table.schema, table.name)
    return [] if create is None else split_deferred_indexes(create, table.chunk_index)[1]


def missing_indexes(target: MySQLSession, table: TableInfo, definitions: Sequence[str]) -> list[str]:
    """Those of ``definitions`` (index lines) whose index name the target's table lacks."""
    present = {
        str(r[0])
        for r in target.rows(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            (table.schema, table.name),
        )
    }
    missing = []
    for definition in definitions:
        match = _INDEX_LINE.match("  " + definition)
        if match and _unquote(match.group(1)) not in present:
            missing.append(definition)
    return missing


def _schema_charset(session: MySQLSession, schema: str) -> tuple[str, str] | None:
    row = session.one(
        "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA"
        " WHERE SCHEMA_NAME = %s",
        (schema,),
    )
    return None if row is None else (str(row[0]), str(row[1]))


def _show_create(session: MySQLSession, schema: str, table: str) -> str | None:
    exists = session.one(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, table),
    )
    if exists is None:
        return None
    row = session.one(f"SHOW CREATE TABLE {qualified(schema, table)}")
    assert row is not None
    return str(row[1])


def _prepare_session(session: MySQLSession, *, target: bool) -> MySQLSession:
    # Same output format and permissive defaults on both sides (what mysqldump does).
    session.execute("SET SESSION sql_mode = %s", (SCHEMA_SQL_MODE,))
    # SHOW CREATE TABLE prints a TIMESTAMP column's constant DEFAULT in the session's time zone
    # and CREATE TABLE reads it in its own: one fixed zone on both sides keeps the instant
    # (a +02:00 target would shift it, or refuse '1970-01-01 00:00:01' with 1067; review A5).
    session.execute("SET SESSION time_zone = %s", (SCHEMA_TIME_ZONE,))
    if target:
        session.execute("SET SESSION foreign_key_checks = 0")  # tables reference each other in any order
    return session


def _names(session: MySQLSession, schemas: Sequence[str]) -> set[tuple[str, str]]:
    """Every table, view and sequence name in ``schemas``: one catalog read instead of one per table."""
    return {
        (str(schema), str(name))
        for schema, name in session.rows(
            f"SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({_placeholders(schemas)})",
            list(schemas),
        )
    }


def missing_tables(target: MySQLSession, tables: Sequence[TableInfo]) -> list[TableInfo]:
    """Those of ``tables`` the target has no table (or view, or sequence) of that name for: one catalog read."""
    present = _names(target, sorted({t.schema for t in tables})) if tables else set()
    return [t for t in tables if (t.schema, t.name) not in present]


def _create_tables(
    snapshot: MySQLSession,
    target: MySQLSession,
    tables: Sequence[TableInfo],
    present: set[tuple[str, str]],
    *,
    defer_indexes: bool,
    defer_min_bytes: int = 0,
) -> int:
    """Create those of ``tables`` the target lacks; compare the others. Returns how many were created."""
    created = 0
    current_schema: str | None = None
    for table in tables:
        row = snapshot.one(f"SHOW CREATE TABLE {table.sql_name}")
        assert row is not None
        create = str(row[1])
        stripped, deferred = split_deferred_indexes(create, table.chunk_index)
        if (table.schema, table.name) not in present:
            if table.schema != current_schema:
                target.execute(f"USE {quote_identifier(table.schema)}")
                current_schema = table.schema
            defer = defer_indexes and table.size_estimate > defer_min_bytes
            target.execute(stripped if defer else create)
            created += 1
            log.debug("schema.table_created", table=table.qualified_name, deferred_indexes=len(deferred) if defer else 0)
            continue
        existing = _show_create(target, table.schema, table.name)
        if existing is None or _normalised_create(existing) not in (_normalised_create(create), _normalised_create(stripped)):
            raise PreflightFailed(
                f"table {table.qualified_name} exists on the target with a different definition",
                hint="drop it on the target (or make it identical) and run again",
            )
    return created


def copy_schema(
    snapshot: MySQLSession,
    target: MySQLSession,
    schemas: Sequence[str],
    *,
    defer_indexes: bool = True,
    defer_min_bytes: int = 0,
    workers: int = 1,
    connect_snapshot: Callable[[], MySQLSession] | None = None,
    connect_target: Callable[[], MySQLSession] | None = None,
) -> list[TableInfo]:
    """Create ``schemas``, their sequences (with their state) and base tables on the target; returns the tables.

    With ``defer_indexes``, tables are created without their deferrable secondary indexes (see
    split_deferred_indexes); plan_chunks(..., with_indexes=True) then plans the chunk that adds them
    (a no-op for a table that has them). Tables of at most ``defer_min_bytes`` keep their indexes: for
    a table loaded in one chunk, a separate index build (a DDL) costs more than it saves.
    Idempotent: an existing identical database or table (or one lacking only the deferred indexes)
    is kept; a different one raises PreflightFailed naming it, and nothing is dropped.

    With ``workers`` > 1 and both ``connect_*`` (each opens a new session), the tables are created
    by that many sessions at once: a CREATE TABLE waits mostly for the target's disk (about 20 ms
    each, so 10,000 tables one after another took minutes).
    """
    _prepare_session(snapshot, target=False)
    _prepare_session(target, target=True)
    tables = base_tables(snapshot, schemas)
    for schema in schemas:
        wanted = _schema_charset(snapshot, schema)
        if wanted is None:
            raise PreflightFailed(
                f"schema {schema} does not exist on the snapshot {snapshot.endpoint.describe()}"
            )
        present = _schema_charset(target, schema)
        if present is None:
            target.execute(
                f"CREATE DATABASE {quote_identifier(schema)} CHARACTER SET {wanted[0]} COLLATE {wanted[1]}"
            )
            log.info("schema.created", schema=schema, charset=wanted[0], collation=wanted[1])
        elif present != wanted:
            raise PreflightFailed(
                f"schema {schema} exists on the target with {present[0]}/{present[1]},"
                f" the snapshot has {wanted[0]}/{wanted[1]}",
                hint="drop it on the target or point the migration at an empty target",
            )
    # Before the tables: a column's DEFAULT NEXTVAL(s) needs s (1146 otherwise).
    copy_sequences(snapshot, target, schemas)
    names = _names(target, schemas) if tables else set()
    if workers > 1 and connect_snapshot is not None and connect_target is not None and len(tables) > 1:
        # Interleaved shares: each session gets big and small tables alike.
        shares = [tables[i::workers] for i in range(min(workers, len(tables)))]

        def create_share(share: list[TableInfo]) -> int:
            assert connect_snapshot is not None and connect_target is not None
            with connect_snapshot() as snap, connect_target() as tgt:
                _prepare_session(snap, target=False)
                _prepare_session(tgt, target=True)
                return _create_tables(snap, tgt, share, names, defer_indexes=defer_indexes, defer_min_bytes=defer_min_bytes)

        with ThreadPoolExecutor(max_workers=len(shares), thread_name_prefix="schema") as pool:
            created = sum(pool.map(create_share, shares))
    else:
        created = _create_tables(
            snapshot, target, tables, names, defer_indexes=defer_indexes, defer_min_bytes=defer_min_bytes
        )
    log.info("schema.tables_created", created=created, kept=len(tables) - created)
    return tables
