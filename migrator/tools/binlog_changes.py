"""What a range of the archived binlog changed: per table, the keys of every row it wrote.

Step 8 proves tables equal while writes still flow, and the rounds and step 10 then re-verify only
the rows that changed after that proof. This module reads the archive between two positions with
the binlog tool's ``--verbose`` row images (``### UPDATE `db`.`t` / ### WHERE / ###   @1=...``)
and collects the key values (primary key, else the NOT NULL unique key) of the rows each event
touched: the before and the after image of an UPDATE, so a moved key is seen at both ends.

Fail closed, always: a proof built on a change set that missed a change would be a false "equal".
- The range is unreadable, so everything may have changed (``None``): the tool exits non-zero or
  prints ERROR; a file of the range is missing, unreadable or shorter than the range; the output
  ends without the tool's footer; a DDL (other than account and admin statements, which change no
  row) or a statement whose tables cannot be named.
- One table changed "as a whole" (``ChangeSet.whole``): it has no key, its key has a type this
  reader does not decode exactly (only integers and CHAR/VARCHAR/BINARY/VARBINARY are), a key value
  printed as NULL or unparseable, statement-format DML, or a row image that names unknown columns.

An XA transaction's rows are logged with its XA PREPARE and take effect at its XA COMMIT, a later
group with no rows: a range holding the commit (or rollback) counts the rows of the prepared part,
read from the range itself or, when the prepare lies before it, from coordinates the caller passes
(``xa_open``: the applier's ``_migrator.apply_xa`` at the range's start). An XA end whose prepare is
in neither makes the range unreadable.

How values are printed (MariaDB 10.11 ``mariadb-binlog`` and MySQL 8 ``mysqlbinlog`` alike, both
``my_b_write_quoted``): integers signed, followed by the unsigned reading when negative
(``@1=-1 (4294967295)``); strings quoted, bytes below 0x20 as ``\\xNN``, every other byte raw
(``'`` and ``\\`` included: a value holding the four characters ``\\x0a`` prints like a newline);
BINARY(n) without its trailing 0x00 padding. An ambiguous string yields every reading it can have
(a key that does not exist is simply found on neither side); past ``MAX_READINGS`` the table
changed as a whole.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from migrator.mysql.flavour import Flavour
from migrator.mysql.positions import binlog_sequence, position_key
from migrator.mysql.schema import TableInfo
from migrator.tools import client_tools
from migrator.tools.binlog_streamer import list_archive
from migrator.tools.binlog_text import (
    FOOTER,
    BinlogParseError,
    Transaction,
    TransactionPart,
    XaOutcome,
    account_statement_kind,
    admin_statement_kind,
    parse,
    statement_tables,
)

log = structlog.get_logger()

STREAM_BYTES = 8 << 20  # a transaction bigger than this is read in parts (review B7)

Table = tuple[str, str]
KeyValue = int | bytes
Key = tuple[KeyValue, ...]

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
STRING_TYPES = frozenset({"char", "varchar"})
BINARY_TYPES = frozenset({"binary", "varbinary"})
MAX_READINGS = 16  # readings of one ambiguous key before the table counts as changed as a whole


class ArchiveUnreadable(Exception):
    """The range cannot be read completely: the caller must assume every table changed."""


@dataclass(frozen=True)
class XaPrepare:
    """Where the prepared part of an XA transaction (XA START ... XA PREPARE, its row events) is in the archive.

    The rows take effect at its XA COMMIT, a later event group with no rows: a range holding that
    commit changed these rows, wherever the prepare lies (the applier's ``_migrator.apply_xa`` rows)."""

    file: str
    start_pos: int
    end_pos: int

    def as_list(self) -> list[Any]:
        return [self.file, self.start_pos, self.end_pos]


# --- layouts: which @N are the key, and how to read them ------------------------------------
@dataclass(frozen=True)
class KeyColumn:
    name: str
    ordinal: int  # @N in the row images: the column's ORDINAL_POSITION
    kind: str  # "int", "uint", "str", "bin"
    pad_to: int = 0  # BINARY(n): the tool prints the value without its trailing 0x00 padding


@dataclass(frozen=True)
class TableLayout:
    schema: str
    name: str
    key: tuple[KeyColumn, ...] | None  # None: changes are tracked for the table as a whole
    why_whole: str = ""

    @property
    def table(self) -> Table:
        return (self.schema, self.name)


_BINARY_LENGTH = re.compile(r"^binary\((\d+)\)", re.IGNORECASE)


def layout_of(table: TableInfo) -> TableLayout:
    """How to read ``table``'s key from row images; ``key=None`` when it cannot be read exactly."""
    if not table.key_columns:
        return TableLayout(table.schema, table.name, None, "no primary or NOT NULL unique key")
    ordinals = {c.name: i + 1 for i, c in enumerate(table.columns)}
    key: list[KeyColumn] = []
    for name in table.key_columns:
        col = table.column(name)
        if col.data_type in INTEGER_TYPES:
            kind = "uint" if "unsigned" in col.column_type.lower() else "int"
            key.append(KeyColumn(name, ordinals[name], kind))
        elif col.data_type in STRING_TYPES:
            key.append(KeyColumn(name, ordinals[name], "str"))
        elif col.data_type in BINARY_TYPES:
            fixed = _BINARY_LENGTH.match(col.column_type)
            key.append(KeyColumn(name, ordinals[name], "bin", int(fixed.group(1)) if fixed else 0))
        else:
            return TableLayout(table.schema, table.name, None, f"key column {name} is {col.data_type}")
    return TableLayout(table.schema, table.name, tuple(key))


def layouts_of(tables: Iterable[TableInfo]) -> dict[Table, TableLayout]:
    return {(t.schema, t.name): layout_of(t) for t in tables}


# --- the change set ------------------------------------------------------------------------------
@dataclass
class ChangeSet:
    """Rows changed in a range, by key; ``whole``: tables changed in ways not named by key."""

    keys: dict[Table, set[Key]] = field(default_factory=dict)
    whole: dict[Table, str] = field(default_factory=dict)  # table -> why

    def add_key(self, table: Table, key: Key) -> None:
        self.keys.setdefault(table, set()).add(key)

    def add_whole(self, table: Table, why: str) -> None:
        self.whole.setdefault(table, why)

    def tables(self) -> set[Table]:
        return {t for t, keys in self.keys.items() if keys} | set(self.whole)

    def covers(self, table: Table, key: Key) -> bool:
        """Whether the range may have changed the row with ``key``."""
        return table in self.whole or key in self.keys.get(table, ())

    def key_count(self) -> int:
        return sum(len(k) for t, k in self.keys.items() if t not in self.whole)

    def union(self, other: ChangeSet) -> ChangeSet:
        out = ChangeSet({t: set(k) for t, k in self.keys.items()}, dict(self.whole))
        for table, keys in other.keys.items():
            out.keys.setdefault(table, set()).update(keys)
        for table, why in other.whole.items():
            out.add_whole(table, why)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": {f"{s}.{t}": [_encode_key(k) for k in sorted(keys, key=repr)]
                     for (s, t), keys in sorted(self.keys.items()) if keys and (s, t) not in self.whole},
            "whole": {f"{s}.{t}": why for (s, t), why in sorted(self.whole.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], tables: Iterable[Table]) -> ChangeSet:
        by_name = {f"{s}.{t}": (s, t) for s, t in tables}
        out = cls()
        for name, keys in data.get("keys", {}).items():
            table = by_name.get(name)
            if table is None:
                raise ValueError(f"the journal's proof names a table no longer migrated: {name}")
            out.keys[table] = {_decode_key(k) for k in keys}
        for name, why in data.get("whole", {}).items():
            table = by_name.get(name)
            if table is None:
                raise ValueError(f"the journal's proof names a table no longer migrated: {name}")
            out.whole[table] = str(why)
        return out


def _encode_key(key: Key) -> list[Any]:
    return [["i", str(v)] if isinstance(v, int) else ["b", v.hex()] for v in key]


def _decode_key(items: Sequence[Sequence[str]]) -> Key:
    return tuple(int(v) if kind == "i" else bytes.fromhex(v) for kind, v in items)


def encode_keys(keys: Iterable[Key]) -> list[list[Any]]:
    return [_encode_key(k) for k in keys]


def decode_keys(items: Iterable[Sequence[Sequence[str]]]) -> list[Key]:
    return [_decode_key(i) for i in items]


# --- reading one row image value -----------------------------------------------------------
_HEX_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_INT_VALUE = re.compile(rb"^(-?\d+)(?: \((\d+)\))?$")


def value_readings(column: KeyColumn, text: bytes) -> list[KeyValue] | None:
    """Every value the printed ``text`` can stand for (one, unless a string is ambiguous); None: unreadable."""
    if column.kind in ("int", "uint"):
        match = _INT_VALUE.match(text)
        if match is None:
            return None
        signed, unsigned = int(match.group(1)), match.group(2)
        if column.kind == "uint":
            return [int(unsigned) if unsigned is not None else signed]
        return [signed]
    if len(text) < 2 or not text.startswith(b"'") or not text.endswith(b"'"):
        return None  # NULL (never in a key) or a shape we do not know
    body = text[1:-1]
    escapes = list(_HEX_ESCAPE.finditer(body))
    if len(escapes) > 10:
        return None
    readings: list[KeyValue] = []
    for choice in itertools.product((True, False), repeat=len(escapes)):
        out, last = bytearray(), 0
        for decode, match in zip(choice, escapes, strict=True):
            out += body[last : match.start()]
            out += bytes([int(match.group(1), 16)]) if decode else match.group(0)
            last = match.end()
        out += body[last:]
        if column.pad_to and len(out) < column.pad_to:
            out += b"\x00" * (column.pad_to - len(out))
        if bytes(out) not in readings:
            readings.append(bytes(out))
        if len(readings) > MAX_READINGS:
            return None
    return readings


# --- the verbose row images ----------------------------------------------------------------
_QUOTED = rb"`((?:[^`]|``)*)`"
_ROW_OP = re.compile(rb"^### (?:INSERT INTO|UPDATE|DELETE FROM) " + _QUOTED + rb"\." + _QUOTED + rb"\s*$")
_IMAGE = re.compile(rb"^### (?:WHERE|SET)\s*$")
_COLUMN = re.compile(rb"^###   @(\d+)=(.*)$")


def _name(raw: bytes) -> str:
    return raw.replace(b"``", b"`").decode("utf-8", "surrogateescape")


class _RowImages:
    """Collects keys from ``### ...`` lines as they stream past the text parser."""

    def __init__(self, layouts: Mapping[Table, TableLayout], changes: ChangeSet) -> None:
        self.layouts = layouts
        self.changes = changes
        self.table: Table | None = None
        self.image: dict[int, bytes] | None = None

    def line(self, line: bytes) -> None:
        if not line.startswith(b"###"):
            self._close_image()
            self.table = None
            return
        op = _ROW_OP.match(line)
        if op:
            self._close_image()
            self.table = (_name(op.group(1)), _name(op.group(2)))
            return
        if self.table is None:
            raise ArchiveUnreadable(f"a row image line outside a row event: {line[:120]!r}")
        if _IMAGE.match(line):
            self._close_image()
            self.image = {}
            return
        column = _COLUMN.match(line)
        if column is None or self.image is None:
            self._whole("a row image line this reader does not know")
            return
        self.image[int(column.group(1))] = column.group(2).rstrip(b"\r")

    def finish(self) -> None:
        self._close_image()
        self.table = None

    def _whole(self, why: str) -> None:
        if self.table is not None and self.table in self.layouts:
            self.changes.add_whole(self.table, why)

    def _close_image(self) -> None:
        image, self.image = self.image, None
        if image is None or self.table is None:
            return
        layout = self.layouts.get(self.table)
        if layout is None:
            return  # not a migrated table
        if layout.key is None:
            self.changes.add_whole(self.table, layout.why_whole)
            return
        readings: list[list[KeyValue]] = []
        for column in layout.key:
            text = image.get(column.ordinal)
            values = None if text is None else value_readings(column, text)
            if not values:
                self.changes.add_whole(self.table, f"key column {column.name} not readable in a row image")
                return
            readings.append(values)
        keys = list(itertools.product(*readings))
        if len(keys) > MAX_READINGS:
            self.changes.add_whole(self.table, "a key with too many possible readings")
            return
        for key in keys:
            self.changes.add_key(self.table, key)


# --- reading the archive ---------------------------------------------------------------------
def _files_in_range(archive_dir: Path, start: tuple[str, int], end: tuple[str, int]) -> list[tuple[str, int]]:
    """(name, size) of every archived file from start's to end's, or ArchiveUnreadable naming the gap."""
    first, last = binlog_sequence(start[0]), binlog_sequence(end[0])
    archived = {binlog_sequence(f.name): f for f in list_archive(archive_dir)}
    files: list[tuple[str, int]] = []
    for seq in range(first, last + 1):
        found = archived.get(seq)
        if found is None:
            raise ArchiveUnreadable(f"binlog file number {seq} is missing from the archive {archive_dir}")
        files.append((found.name, found.size))
    if files[0][0] != start[0] or files[-1][0] != end[0]:
        raise ArchiveUnreadable(f"the archive's files do not match the range {start}..{end}")
    if files[0][1] < start[1]:
        raise ArchiveUnreadable(f"{start[0]} in the archive is {files[0][1]} bytes, shorter than {start[1]}")
    if files[-1][1] < end[1]:
        raise ArchiveUnreadable(f"{end[0]} in the archive is {files[-1][1]} bytes, shorter than {end[1]}")
    return files


def _tool_lines(argv: list[str], sink: _RowImages | None) -> Iterator[bytes]:
    """The tool's stdout lines; raises ArchiveUnreadable on a failure, an ERROR or a missing footer."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        footer = False
        try:
            for line in proc.stdout:
                if sink is not None:
                    sink.line(line.rstrip(b"\n"))
                if line.startswith(FOOTER):
                    footer = True
                yield line
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            rc = proc.wait()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if sink is not None:
        sink.finish()
    if rc != 0 or "ERROR" in stderr.upper():
        raise ArchiveUnreadable(f"{' '.join(argv[-1:])}: the binlog tool exited {rc}: {stderr.strip()[:300]}")
    if not footer:
        raise ArchiveUnreadable(f"{argv[-1]}: the binlog tool's output ended without its footer")


def _statement_changes(
    unit: Transaction | TransactionPart, schemas: frozenset[str] | None, changes: ChangeSet, *, whole_why: str
) -> None:
    """Tables named by a transaction's statements (DDL, statement-format DML): as a whole, or None."""
    at = unit.end_pos if isinstance(unit, Transaction) else unit.start_pos
    for statement in unit.queries:
        if account_statement_kind(statement.sql) or admin_statement_kind(statement.sql):
            continue  # they change no row of a migrated table
        named = statement_tables(statement.sql, statement.db)
        if not named:
            raise ArchiveUnreadable(f"a statement whose tables cannot be named at {at}")
        for schema, table in named:
            if schema is None:
                raise ArchiveUnreadable(f"a statement with no default database at {at}")
            if schemas is not None and schema not in schemas:
                continue
            if unit.is_ddl or table is None:
                raise ArchiveUnreadable(f"a DDL on {schema}.{table or '*'} at {at}")
            changes.add_whole((schema, table), whole_why)


def read_changes(
    archive_dir: Path,
    flavour: Flavour,
    start: tuple[str, int],
    end: tuple[str, int],
    *,
    layouts: Mapping[Table, TableLayout] | None = None,
    schemas: Iterable[str] | None = None,
    xa_open: Mapping[str, XaPrepare] | None = None,
) -> ChangeSet:
    """What (start, end] changed; raises ArchiveUnreadable. ``layouts`` None: tables only (no -v decoding).

    ``schemas``: DDL and statements on other schemas are ignored (RDS's own writes to ``mysql``);
    None: any DDL means everything. ``xa_open``: the XA transactions prepared and not yet ended at
    ``start``, by XID. An XA COMMIT or ROLLBACK in the range counts the rows of its prepared part (read
    from there when it lies before ``start``); one whose prepare is neither in the range nor in
    ``xa_open`` makes the range unreadable.
    """
    changes = ChangeSet()
    if position_key(end) <= position_key(start):
        return changes
    wanted = None if schemas is None else frozenset(schemas)
    tool = client_tools.binlog_tool(flavour).path
    prepared_here: set[str] = set()  # XIDs prepared inside the range: their rows are counted already
    ended_earlier: list[XaPrepare] = []  # prepared before the range, ended in it
    for name, _size in _files_in_range(archive_dir, start, end):
        path = archive_dir / name
        if not path.is_file():
            raise ArchiveUnreadable(f"{path} vanished from the archive")
        argv = [tool, "--no-defaults"]
        if layouts is not None:
            argv += ["--verbose", "--base64-output=decode-rows"]
        if name == start[0]:
            argv.append(f"--start-position={start[1]}")
        if name == end[0]:
            argv.append(f"--stop-position={end[1]}")
        argv.append(str(path))
        sink = _RowImages(layouts, changes) if layouts is not None else None
        # A big transaction comes in parts (never held whole); a part's tables count as changed at once,
        # which over-counts only if the transaction then never commits (harmless: more is re-compared).
        for unit in parse(_tool_lines(argv, sink), stream_bytes=STREAM_BYTES):
            if isinstance(unit, XaOutcome):
                ended_earlier += _xa_ended(unit, name, prepared_here, xa_open or {})
                continue
            if not isinstance(unit, Transaction | TransactionPart):
                continue
            if isinstance(unit, Transaction) and unit.xa_prepared is not None:
                prepared_here.add(unit.xa_prepared)
            if unit.is_ddl:
                _statement_changes(unit, wanted, changes, whole_why="DDL")
                continue
            if layouts is None:
                for t in unit.tables:
                    changes.add_whole(t, "changed")
            if unit.queries:
                _statement_changes(unit, wanted, changes, whole_why="statement-format DML")
    for part in ended_earlier:  # its prepared part alone: no XA outcome in it, nothing open needed
        changes = changes.union(
            read_changes(
                archive_dir, flavour, (part.file, part.start_pos), (part.file, part.end_pos), layouts=layouts,
                schemas=schemas,
            )
        )
    return changes


def _xa_ended(outcome: XaOutcome, file: str, prepared_here: set[str], xa_open: Mapping[str, XaPrepare]) -> list[XaPrepare]:
    """The prepared part to read for an XA COMMIT/ROLLBACK met in a range: none when it was prepared in the
    range (its rows are counted there). A rollback counts too: more is re-compared, nothing is missed."""
    if outcome.xid in prepared_here:
        prepared_here.discard(outcome.xid)  # an XID may be reused later in the range
        return []
    prepared = xa_open.get(outcome.xid)
    if prepared is None:
        verb = "COMMIT" if outcome.commit else "ROLLBACK"
        raise ArchiveUnreadable(
            f"XA {verb} {outcome.xid} at {file}:{outcome.start_pos} ends an XA transaction whose XA PREPARE is "
            "neither in the range nor known to be open at its start"
        )
    return [prepared]


def rows_changed(
    archive_dir: Path,
    flavour: Flavour,
    start: tuple[str, int],
    end: tuple[str, int],
    *,
    tables: Sequence[TableInfo],
    schemas: Iterable[str],
    xa_open: Mapping[str, XaPrepare] | None = None,
) -> ChangeSet | None:
    """Keys of the rows of ``tables`` that (start, end] changed; None when the range cannot be read.
    ``xa_open``: the XA transactions prepared and not ended at ``start`` (see read_changes)."""
    try:
        return read_changes(
            archive_dir, flavour, start, end, layouts=layouts_of(tables), schemas=schemas, xa_open=xa_open
        )
    except (ArchiveUnreadable, BinlogParseError) as exc:
        log.warning("binlog_changes.unreadable", start=list(start), end=list(end), why=str(exc))
        return None


def tables_changed(
    archive_dir: Path, flavour: Flavour, start: tuple[str, int], end: tuple[str, int]
) -> set[Table] | None:
    """Tables with row events or statements in (start, end]; None when the range cannot be read, or a
    DDL or a statement whose tables cannot be named means "assume everything changed"."""
    try:
        return read_changes(archive_dir, flavour, start, end).tables()
    except (ArchiveUnreadable, BinlogParseError) as exc:
        log.warning("binlog_changes.unreadable", start=list(start), end=list(end), why=str(exc))
        return None
