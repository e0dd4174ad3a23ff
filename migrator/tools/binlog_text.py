"""Parse `mariadb-binlog` / `mysqlbinlog` text output into session statements and whole transactions.

The tool prints each event as comment lines (``# at N``, then ``#YYMMDD hh:mm:ss server id S
end_log_pos E ... <event>``) followed by the statements that replay it, each ended by the current
DELIMITER. We work on bytes because row images and statement text need not be UTF-8.

A unit is only yielded once the event that completes it has been printed, and a stream that ends
without the tool's footer (``# End of log file``) drops its last, possibly half-printed event, so a
truncated tail (a file still being written) never yields anything incomplete.

Dropped on purpose, with the reason:
- ``DELIMITER x``: a mysql-client command; we track it to split statements.
- ``use `db```: not yielded; the default database is attached to each Query event's text, so the
  applier issues ``USE`` only for statements it actually runs (a skipped schema may not exist on the target).
- ``ROLLBACK`` printed with a Format_description event and the trailing ``ROLLBACK /* added by
  mysqlbinlog */``: they close a transaction the pipe may have left open; the applier never leaves one open.
- ``START TRANSACTION`` / ``BEGIN`` / ``COMMIT`` / Xid: the applier brackets (groups of) transactions itself.
Translated: ``/*!\\C cs */`` (the mysql client's charset command, which the server cannot parse) becomes
``SET NAMES cs``; the tool always follows it with ``SET @@session.character_set_client=...``.

Session state is interpreted, not replayed blindly (``session_sql``): the applier runs it inside its own
grouped target transaction, where transaction control would commit the group early (``SET autocommit=1``
after ``=0``) or fail (``SET TRANSACTION ...``, ``GTID_NEXT``). What a statement needs is kept (timestamp,
sql_mode, character sets and collations, time_zone, FK/unique checks, lc_time_names, pseudo_thread_id,
auto_increment_*, ...); autocommit, SET TRANSACTION, GTID_NEXT and the original_*/immediate_* bookkeeping
are dropped, from a combined ``SET a=1, b=2`` list too.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

FOOTER = b"# End of log file"
_ADDED_BY_TOOL = b"/* added by mysqlbinlog */"

_AT = re.compile(rb"^# at (\d+)\s*$")
_HEADER = re.compile(
    rb"^#\d{6}\s+\d{1,2}:\d{2}:\d{2}\s+server id\s+(\d+)\s+end_log_pos\s+(\d+)"
    rb"(?:\s+CRC32\s+0x[0-9a-fA-F]+)?\s*(.*)$"
)
_QUOTED = rb"`((?:[^`]|``)*)`"
_TABLE_MAP = re.compile(rb"Table_map:\s+" + _QUOTED + rb"\." + _QUOTED + rb"\s+mapped to number")
_GTID_MARIADB = re.compile(rb"^GTID\s+(\d+-\d+-\d+)(.*)$")
_GTID_NEXT = re.compile(rb"SET\s+@@SESSION\.GTID_NEXT\s*=\s*'([^']+)'", re.IGNORECASE)
_USE = re.compile(rb"^use\s+(?:" + _QUOTED + rb"|(\S+))\s*$", re.IGNORECASE)
_CHARSET_COMMAND = re.compile(rb"^/\*!\\C\s+(\w+)\s*\*/$")
_DELIMITER = re.compile(rb"^delimiter\s+(\S+)", re.IGNORECASE)
# Statements that never commit implicitly; any other Query text (DDL) ends a target transaction.
_DML = re.compile(
    rb"^\s*(?:insert|update|delete|replace|load|call|do|select|with|savepoint|release|rollback\s+(?:work\s+)?to)\b",
    re.IGNORECASE,
)

# Events that change nothing on replay: the position may move past them.
_MARKER_EVENTS = (b"Gtid list", b"Binlog checkpoint", b"Rotate", b"Stop", b"Start_encryption",
                  b"Previous-GTIDs", b"Heartbeat")
_ROW_EVENTS = (b"Write_rows", b"Update_rows", b"Delete_rows", b"Partial_update_rows", b"Rows_query")
_CONTEXT_EVENTS = (b"User_var", b"Intvar", b"Rand")


# --- session state: what a statement needs is kept, transaction control is dropped ---------------
# Variables whose SET must never run inside the applier's open target transaction: autocommit (=1 after =0
# commits it), the transaction characteristics and GTID_NEXT (errors inside a transaction), sql_log_bin and
# binlog_format (the same), and the source's commit bookkeeping (original_*, immediate_*: the target keeps
# its own). Everything else mysqlbinlog prints is per-statement context and is kept.
_TRANSACTION_CONTROL = frozenset({
    b"autocommit", b"transaction_isolation", b"tx_isolation", b"transaction_read_only", b"tx_read_only",
    b"gtid_next", b"sql_log_bin", b"binlog_format",
})
_DROPPED_PREFIXES = (b"original_", b"immediate_")
_VERSIONED_COMMENT = re.compile(rb"^/\*(M?!\d*)\s?([\s\S]*?)\s*\*/$")
_TRAILING_COMMENT = re.compile(rb"\s*/\*(?![!M])[\s\S]*?\*/\s*$")
_SET = re.compile(rb"^\s*SET\s+", re.IGNORECASE)
_SET_TRANSACTION = re.compile(rb"^\s*SET\s+(?:(?:SESSION|GLOBAL|LOCAL)\s+)?TRANSACTION\b", re.IGNORECASE)
_ASSIGNED_NAME = re.compile(rb"^\s*((?:@@(?:session\.|local\.)?|(?:session|local)\s+)?)(@?`?[\w$]+`?)\s*:?=",
                            re.IGNORECASE)


def _top_level_items(text: bytes) -> list[bytes]:
    """``a=1, b='x,y', c=f(1,2)`` -> the three assignments (commas inside quotes or brackets kept)."""
    items: list[bytes] = []
    depth, quote, start, i = 0, 0, 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == 0x5C:  # backslash escapes the next byte
                i += 1
            elif ch == quote:
                quote = 0
        elif ch in (0x27, 0x22, 0x60):  # ' " `
            quote = ch
        elif ch == 0x28:
            depth += 1
        elif ch == 0x29:
            depth -= 1
        elif ch == 0x2C and depth == 0:
            items.append(text[start:i])
            start = i + 1
        i += 1
    items.append(text[start:])
    return items


def _assigned_variable(item: bytes) -> bytes | None:
    """The lower-case session variable an assignment sets (``autocommit`` for ``@@session.autocommit=1``);
    None for a user variable (``@x:=1``) or something that is not an assignment (``NAMES utf8mb4``)."""
    match = _ASSIGNED_NAME.match(item)
    if match is None or match.group(2).startswith(b"@"):
        return None
    return match.group(2).strip(b"`").lower()


def _is_transaction_control(variable: bytes) -> bool:
    return variable in _TRANSACTION_CONTROL or variable.startswith(_DROPPED_PREFIXES)


def session_sql(sql: bytes) -> bytes | None:
    """The part of a session statement mysqlbinlog printed that may run inside an open transaction, or None.

    ``SET TRANSACTION ...`` (also as ``/*!50718 ...*/``), ``SET @@SESSION.GTID_NEXT=...`` and
    ``/*!80001 SET @@session.original_commit_timestamp=...*/`` give None; ``SET @@session.foreign_key_checks=1,
    @@session.autocommit=0`` gives ``SET @@session.foreign_key_checks=1``. Anything else is returned as is.
    """
    wrapper = b""
    body = sql
    versioned = _VERSIONED_COMMENT.match(sql.strip())
    if versioned:
        wrapper, body = versioned.group(1), versioned.group(2)
    body = _TRAILING_COMMENT.sub(b"", body)  # "/* added by mysqlbinlog */"
    if _SET_TRANSACTION.match(body):
        return None
    set_keyword = _SET.match(body)
    if set_keyword is None:
        return sql
    items = _top_level_items(body[set_keyword.end():])
    kept = [item for item in items if not _is_transaction_control(_assigned_variable(item) or b"")]
    if len(kept) == len(items):
        return sql
    if not kept:
        return None
    rebuilt = b"SET " + b",".join(kept).strip()
    return b"/*" + wrapper + b" " + rebuilt + b"*/" if wrapper else rebuilt


class BinlogParseError(ValueError):
    """The text does not have the shape this parser knows; applying on would risk a wrong result."""


@dataclass(frozen=True)
class Statement:
    """One statement of a transaction. ``db`` is the default database of a Query event's text."""

    sql: bytes
    db: str | None = None
    is_query: bool = False  # the text of a Query event (statement-based DML or DDL), not a SET or BINLOG


@dataclass(frozen=True)
class SessionStatement:
    """Session state to set before what follows (SET ..., the format description's BINLOG)."""

    sql: bytes
    is_format_description: bool = False


@dataclass(frozen=True)
class Transaction:
    """A complete source transaction, or a standalone Query event.

    ``is_ddl``: it holds a statement that may commit implicitly (a DDL, alone or as in CREATE TABLE ...
    SELECT, which MariaDB logs as a transaction of the CREATE and the rows), so it cannot be grouped.
    """

    start_pos: int
    end_pos: int  # end_log_pos of the commit event (Xid / COMMIT query) or of the DDL's Query event
    statements: tuple[Statement, ...]
    gtid: str | None = None
    tables: frozenset[tuple[str, str]] = frozenset()  # (schema, table) from Table_map events
    is_ddl: bool = False
    rolled_back: bool = False  # ended by a ROLLBACK query (only non-transactional changes were logged)
    # The prepared part of an XA transaction (XA START ... XA END; XA PREPARE): its XID, e.g. "X'7831',X'',1".
    # It takes effect only at its XA COMMIT, a separate XaOutcome later in the stream (maybe files later).
    xa_prepared: str | None = None
    streamed: bool = False  # TransactionParts with its earlier statements came before (parse(stream_bytes=))

    @property
    def queries(self) -> tuple[Statement, ...]:
        return tuple(s for s in self.statements if s.is_query)


@dataclass(frozen=True)
class TransactionPart:
    """The statements so far of a large source transaction still being read (``parse(stream_bytes=...)``).

    Its remaining statements come with the closing Transaction (``streamed=True``) or, if the transaction
    never completes in this output (the source crashed mid-write, the file is still being written),
    a TransactionAbandoned. ``tables`` and ``queries`` are those seen so far."""

    start_pos: int
    statements: tuple[Statement, ...]
    gtid: str | None
    tables: frozenset[tuple[str, str]]
    is_ddl: bool = False  # always: a transaction that may commit implicitly is never streamed
    rolled_back: bool = False  # always: known only at its end

    @property
    def queries(self) -> tuple[Statement, ...]:
        return tuple(s for s in self.statements if s.is_query)


@dataclass(frozen=True)
class TransactionAbandoned:
    """A transaction whose parts were yielded did not complete: what was applied of it must be undone."""

    start_pos: int


@dataclass(frozen=True)
class XaOutcome:
    """``XA COMMIT xid`` or ``XA ROLLBACK xid`` of a transaction prepared earlier (an XA PREPARE unit)."""

    start_pos: int
    end_pos: int
    xid: str
    commit: bool
    gtid: str | None = None


@dataclass(frozen=True)
class PositionMarker:
    """An event with nothing to replay (rotate, checkpoint, format description): the position may pass it."""

    end_pos: int
    event: str


@dataclass(frozen=True)
class Incident:
    """The source logged an incident (lost events): a replica must stop here."""

    end_pos: int
    text: str


Unit = SessionStatement | Transaction | TransactionPart | TransactionAbandoned | XaOutcome | PositionMarker | Incident


def _unquote(raw: bytes) -> str:
    return raw.replace(b"``", b"`").decode("utf-8", "surrogateescape")


@dataclass
class _Event:
    at: int
    end_pos: int
    text: bytes  # what follows end_log_pos/CRC on the header line, e.g. b"Xid = 7"
    statements: list[bytes] = field(default_factory=list)

    def kind(self, *prefixes: bytes) -> bool:
        return self.text.startswith(prefixes)


def is_dml(sql: bytes) -> bool:
    """False for statements that may commit implicitly (DDL), which cannot share a target transaction."""
    return _DML.match(_strip_literals(sql)) is not None


@dataclass
class _OpenTransaction:
    start_pos: int
    gtid: str | None
    flagged_ddl: bool = False  # MariaDB's GTID "ddl" flag: CREATE TABLE ... SELECT comes as a transaction
    statements: list[Statement] = field(default_factory=list)
    tables: set[tuple[str, str]] = field(default_factory=set)
    xid: str | None = None  # opened by XA START
    held_bytes: int = 0  # statement bytes held since the last part was yielded
    streamed: bool = False

    ddl_seen: bool = False

    @property
    def is_ddl(self) -> bool:
        if not self.ddl_seen:  # once true it stays true: a scan per call would be quadratic in a big transaction
            self.ddl_seen = self.flagged_ddl or any(s.is_query and not is_dml(s.sql) for s in self.statements)
        return self.ddl_seen

    def part(self) -> TransactionPart:
        part = TransactionPart(self.start_pos, tuple(self.statements), self.gtid, frozenset(self.tables))
        self.statements = []
        self.held_bytes = 0
        self.streamed = True
        return part

    def close(self, end_pos: int, *, rolled_back: bool = False, xa_prepared: bool = False) -> Transaction:
        return Transaction(
            start_pos=self.start_pos,
            end_pos=end_pos,
            statements=tuple(self.statements),
            gtid=self.gtid,
            tables=frozenset(self.tables),
            is_ddl=self.is_ddl,
            rolled_back=rolled_back,
            xa_prepared=self.xid if xa_prepared else None,
            streamed=self.streamed,
        )


@dataclass(frozen=True)
class _PendingGtid:
    gtid: str | None
    start_pos: int
    flagged_ddl: bool


def _keyword(sql: bytes) -> bytes:
    return sql.strip().rstrip(b";").strip().upper()


_XA = re.compile(rb"^\s*XA\s+(START|BEGIN|END|PREPARE|COMMIT|ROLLBACK)\s+(.*?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_XA_SUFFIX = re.compile(rb"\s+(?:ONE\s+PHASE|JOIN|RESUME|SUSPEND(?:\s+FOR\s+MIGRATE)?)\s*$", re.IGNORECASE)


def _xa(sql: bytes) -> tuple[bytes, str, bool] | None:
    """(verb, xid, one_phase) for an XA statement: ``XA COMMIT X'31',X'',1 ONE PHASE`` ->
    (b"COMMIT", "X'31',X'',1", True)."""
    match = _XA.match(sql)
    if match is None:
        return None
    rest = match.group(2)
    suffix = _XA_SUFFIX.search(rest)
    one_phase = bool(suffix and b"ONE" in suffix.group(0).upper())
    xid = rest[: suffix.start()] if suffix else rest
    verb = match.group(1).upper()
    return (b"START" if verb == b"BEGIN" else verb), xid.decode("utf-8", "surrogateescape"), one_phase


_TABLE_MAP_EVENT = 19
_BINLOG_OPEN = b"BINLOG '"
_BASE64_LINE = 76  # the tools wrap an event's base64 at 76 characters
# MariaDB's tool prints a statement's row images larger than its packet limit as fragments:
# SET @binlog_fragment_0 ='...'; SET @binlog_fragment_1 ='...'; BINLOG @binlog_fragment_0, @binlog_fragment_1;
# cut anywhere, even inside a line.
_FRAGMENT_OPEN = re.compile(rb"^SET @binlog_fragment_(\d+) ='$")
_FRAGMENTS_APPLY = re.compile(rb"^BINLOG @binlog_fragment_\d+(?:, @binlog_fragment_\d+)*")


class _RowImages:
    """The base64 body of one BINLOG statement as it is read, cut at event boundaries.

    mysqlbinlog prints all row events of one source *statement* (its Table_map events, then its rows
    events) as one BINLOG statement, so a single DELETE of 50 M rows is one statement of many GB. Each
    event is base64-encoded on its own lines; its header gives its size. A cut yields a self-contained
    BINLOG statement: the statement's Table_map events again, then the rows events read since the last
    cut (the server keeps no table map from one BINLOG statement to the next: without them the rows of
    later statements are silently not applied, as tried on MariaDB 10.11).
    """

    def __init__(self, *, fragments: bool = False) -> None:
        self.fragments = fragments
        self.between_fragments = False
        self.table_maps: list[bytes] = []
        self.events: list[bytes] = []
        self.bytes = 0
        self._current: list[bytes] = []
        self._need = 0
        self._type = 0
        self._head = b""  # the start of an event's first line, cut short by a fragment boundary

    def add(self, line: bytes) -> None:
        if self._head:
            line, self._head = self._head + line, b""
        if self._current and len(self._current[-1]) < _BASE64_LINE:
            # The rest of a line that a fragment boundary cut (inside an event every line is full).
            self._current[-1] += line
            self._need -= len(line)
            self._end_event()
            return
        if not self._current:
            if len(line) < 28 and self.fragments:
                self._head = line
                return
            try:
                head = base64.b64decode(line[:28], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BinlogParseError(f"unreadable row image line in a BINLOG statement: {line[:80]!r}") from exc
            if len(head) < 19:
                raise BinlogParseError(f"short row image line in a BINLOG statement: {line[:80]!r}")
            size = int.from_bytes(head[9:13], "little")
            self._need, self._type = 4 * ((size + 2) // 3), head[4]
        self._current.append(line)
        self._need -= len(line)
        self._end_event()

    def _end_event(self) -> None:
        if self._need > 0:
            return
        if self._need < 0:
            raise BinlogParseError("a row image in a BINLOG statement is longer than its event header says")
        event = b"\n".join(self._current)
        self._current = []
        if self._type == _TABLE_MAP_EVENT:
            self.table_maps.append(event)
            if not self.events:
                return  # a statement's table maps come first; each cut repeats them
        self.events.append(event)
        self.bytes += len(event)

    def complete(self) -> bool:
        return not self._current and not self._head

    def cut(self) -> bytes | None:
        """A BINLOG statement of the table maps and the events read since the last cut (None if none)."""
        if not self.events:
            return None
        text = b"\n".join([_BINLOG_OPEN, *self.table_maps, *self.events, b"'"])
        self.events = []
        self.bytes = 0
        return text


class _Parser:
    def __init__(self, stream_bytes: int | None = None) -> None:
        self.stream_bytes = stream_bytes
        self.row_images: _RowImages | None = None  # a BINLOG statement being read in cuts (stream_bytes)
        self.delimiter = b";"
        self.statement_lines: list[bytes] = []
        self.event: _Event | None = None
        self.last_at = 0
        self.default_db: str | None = None
        self.tx: _OpenTransaction | None = None
        self.pending_gtid: _PendingGtid | None = None  # a GTID event whose Query event is still to come
        self.footer_seen = False
        self.out: list[Unit] = []  # units completed by the last line fed, in order

    # --- lines -------------------------------------------------------------------------------
    def feed(self, line: bytes) -> None:
        line = line.rstrip(b"\n")
        if self.statement_lines:
            self._statement_line(line)
            return
        if line.startswith(b"#"):
            self._comment(line)
            return
        if not line.strip():
            return
        delimiter = _DELIMITER.match(line)
        if delimiter:
            self.delimiter = delimiter.group(1)
            return
        self._statement_line(line)

    def _statement_line(self, line: bytes) -> None:
        if self.row_images is not None:
            self._row_image_line(line)
            return
        if (
            self.stream_bytes is not None and not self.statement_lines and self.tx is not None
            and self.event is not None and self.event.kind(*_ROW_EVENTS)
        ):
            fragment = _FRAGMENT_OPEN.match(line)
            if line == _BINLOG_OPEN or (fragment and fragment.group(1) == b"0"):
                self.row_images = _RowImages(fragments=line != _BINLOG_OPEN)
                self.statement_lines = [line]  # keeps feed() routing here until the statement ends
                return
        self.statement_lines.append(line)
        if not line.endswith(self.delimiter):
            return
        text = b"\n".join(self.statement_lines)[: -len(self.delimiter)]
        self.statement_lines = []
        text = text[:-1] if text.endswith(b"\n") else text
        self._statement(text)

    def _comment(self, line: bytes) -> None:
        # By the second byte first: most comment lines are "# at N", event headers ("#YYMMDD ...")
        # or ones we ignore ("#Q> ...", "# Number of rows"), and a regex per line cost.
        second = line[1:2]
        if second.isdigit():
            header = _HEADER.match(line)
            if header:
                self._close_event()
                self.event = _Event(at=self.last_at, end_pos=int(header.group(2)), text=header.group(3).strip())
        elif second == b" ":
            if line.startswith(b"# at "):
                at = _AT.match(line)
                if at:
                    self.last_at = int(at.group(1))
            elif line.startswith(FOOTER):
                self._close_event()
                self.footer_seen = True

    def _statement(self, sql: bytes) -> None:
        if self.event is not None and _ADDED_BY_TOOL in sql:
            # MySQL's tool ends its output with "SET @@SESSION.GTID_NEXT= 'AUTOMATIC' /* added by
            # mysqlbinlog */" after the last event, with no header of its own: it must not become that
            # event's statement (a DDL would turn into a session statement). The tool prints it only once
            # it has printed the last whole event, so that event is complete.
            self._close_event()
        if self.event is not None:
            self.event.statements.append(sql)
            return
        # Outside any event: the tool's preamble and trailer (PSEUDO_SLAVE_MODE, COMPLETION_TYPE).
        if _keyword(sql).startswith(b"ROLLBACK"):
            return
        self._session(sql)

    def _row_image_line(self, line: bytes) -> None:
        images = self.row_images
        assert images is not None and self.stream_bytes is not None
        if images.between_fragments:
            if _FRAGMENT_OPEN.match(line):
                images.between_fragments = False
            elif _FRAGMENTS_APPLY.match(line) and line.endswith(self.delimiter):
                self._row_images_end(images)
            else:
                raise BinlogParseError(f"unexpected line between BINLOG fragments: {line[:80]!r}")
            return
        if line.endswith(self.delimiter):  # "'/*!*/;": the statement (or a fragment) ends
            if line[: -len(self.delimiter)].strip() != b"'":
                raise BinlogParseError(f"unexpected end of a BINLOG statement: {line[:80]!r}")
            if images.fragments:
                images.between_fragments = True
            else:
                self._row_images_end(images)
            return
        images.add(line)
        tx = self.tx
        if images.bytes >= self.stream_bytes and tx is not None and tx.xid is None and not tx.is_ddl:
            chunk = images.cut()
            assert chunk is not None
            tx.statements.append(Statement(chunk))
            self._stream(len(chunk))

    def _row_images_end(self, images: _RowImages) -> None:
        if not images.complete():
            raise BinlogParseError("a BINLOG statement ends inside a row image")
        self.row_images, self.statement_lines = None, []
        rest = images.cut()
        if rest is not None:
            self._statement(rest)

    def _session(self, sql: bytes) -> None:
        kept = session_sql(sql)
        if kept is not None:
            self.out.append(SessionStatement(kept))

    def finish(self) -> None:
        self._drop_transaction()  # the output ended inside a transaction (always so without a footer)
        if self.footer_seen:
            return
        # No footer: the tool stopped mid-output; the last event may be half printed. Drop it.
        self.event = None
        self.statement_lines = []
        self.row_images = None

    # --- events ------------------------------------------------------------------------------
    def _close_event(self) -> None:
        event, self.event = self.event, None
        if event is None:
            return
        if event.kind(b"Start:", b"Format_desc"):
            self._format_description(event)
        elif event.kind(b"GTID", b"Anonymous_GTID"):
            self._gtid(event)
        elif event.kind(b"Query"):
            self._query(event)
        elif event.kind(b"Xid", b"XID", b"XA PREPARE", b"XA_prepare"):
            if self.tx is not None:
                # MariaDB prints an XA PREPARE as "XID = X'..'" with the statement "XA PREPARE X'..'",
                # MySQL as "XA PREPARE X'..'" (or "XA COMMIT X'..' ONE PHASE": an ordinary commit).
                xa = next((x for x in map(_xa, event.statements) if x is not None), None)
                prepared = xa is not None and xa[0] == b"PREPARE"
                tx, self.tx = self.tx, None
                self.out.append(tx.close(event.end_pos, xa_prepared=prepared and tx.xid is not None))
        elif event.kind(b"Table_map"):
            match = _TABLE_MAP.search(event.text)
            if match is None:
                raise BinlogParseError(f"unreadable Table_map header at {event.at}: {event.text[:200]!r}")
            if self.tx is not None:
                self.tx.tables.add((_unquote(match.group(1)), _unquote(match.group(2))))
        elif event.kind(*_ROW_EVENTS):
            if event.statements:
                if self.tx is None:
                    raise BinlogParseError(f"row event outside a transaction at {event.at}")
                self.tx.statements.extend(Statement(s) for s in event.statements)
                if self.stream_bytes is not None:
                    self._stream(sum(len(s) for s in event.statements))
        elif event.kind(b"Annotate_rows"):
            return
        elif event.kind(*_CONTEXT_EVENTS):
            self._context(event.statements)
        elif event.kind(b"Incident"):
            self.out.append(Incident(event.end_pos, event.text.decode("utf-8", "replace")))
        elif event.kind(*_MARKER_EVENTS):
            if self.tx is None:
                name = next(m for m in _MARKER_EVENTS if event.text.startswith(m))
                self.out.append(PositionMarker(event.end_pos, name.decode("ascii")))
        elif event.statements:
            raise BinlogParseError(
                f"event {event.text[:80]!r} at {event.at} has statements this parser cannot replay"
            )

    def _stream(self, added: int) -> None:
        """Yield what a large transaction holds so far, keeping only its tables and positions. Not for a
        transaction that may commit implicitly (DDL, applied by a protocol of its own) nor for the prepared
        part of an XA transaction (the applier reads that back at its XA COMMIT)."""
        tx = self.tx
        assert tx is not None and self.stream_bytes is not None
        tx.held_bytes += added
        if tx.held_bytes >= self.stream_bytes and tx.xid is None and not tx.is_ddl:
            self.out.append(tx.part())

    def _context(self, statements: list[bytes]) -> None:
        """SETs that precede a statement (user variables, INSERT_ID): inside a transaction or before a DDL."""
        for sql in statements:
            if self.tx is not None:
                self._in_transaction(sql)
            else:
                self._session(sql)

    def _in_transaction(self, sql: bytes) -> None:
        """Session state printed inside a transaction (a statement-based event's prefix): interpreted too."""
        assert self.tx is not None
        kept = session_sql(sql)
        if kept is not None:
            self.tx.statements.append(Statement(kept))

    def _drop_transaction(self) -> None:
        """The open transaction never completes here: forget it (and undo its parts, if any were yielded)."""
        if self.tx is not None and self.tx.streamed:
            self.out.append(TransactionAbandoned(self.tx.start_pos))
        self.tx = None

    def _format_description(self, event: _Event) -> None:
        # A new file (or the tool's reprint of the file's header): a transaction still open came
        # from a source that crashed mid-write and was rolled back there.
        self._drop_transaction()
        self.pending_gtid = None
        for sql in event.statements:
            if _keyword(sql).startswith(b"ROLLBACK"):
                continue
            if sql.lstrip().upper().startswith(b"BINLOG"):
                self.out.append(SessionStatement(sql, is_format_description=True))
            else:
                self._session(sql)
        self.out.append(PositionMarker(event.end_pos, "Format_desc"))

    def _gtid(self, event: _Event) -> None:
        self._drop_transaction()  # a GTID while a transaction is open: the previous one never committed
        match = _GTID_MARIADB.match(event.text)
        gtid = match.group(1).decode("ascii") if match else None
        starts_transaction = False
        xid: str | None = None
        for sql in event.statements:
            if _keyword(sql) in (b"START TRANSACTION", b"BEGIN"):
                starts_transaction = True
                continue
            xa = _xa(sql)
            if xa is not None and xa[0] == b"START":  # MariaDB prints XA START with the GTID event
                starts_transaction, xid = True, xa[1]
                continue
            next_gtid = _GTID_NEXT.search(sql)  # MySQL prints its GTID as SET GTID_NEXT
            if next_gtid and next_gtid.group(1).upper() not in (b"AUTOMATIC", b"ANONYMOUS"):
                gtid = next_gtid.group(1).decode("ascii")
            self._session(sql)
        flagged_ddl = bool(match and b"ddl" in match.group(2).split())
        if starts_transaction:
            self.tx = _OpenTransaction(event.at, gtid, flagged_ddl, xid=xid)
            self.pending_gtid = None
        else:
            self.pending_gtid = _PendingGtid(gtid, event.at, flagged_ddl)

    def _query_parts(self, event: _Event) -> tuple[list[bytes], bytes | None]:
        """A Query event prints ``use``, session SETs, then its text last."""
        prefix: list[bytes] = []
        for sql in event.statements:
            use = _USE.match(sql)
            if use:
                self.default_db = _unquote(use.group(1) if use.group(1) is not None else use.group(2))
                continue
            charset = _CHARSET_COMMAND.match(sql)
            prefix.append(b"SET NAMES " + charset.group(1) if charset else sql)
        if not prefix:
            return [], None
        return prefix[:-1], prefix[-1]

    def _query(self, event: _Event) -> None:
        prefix, text = self._query_parts(event)
        if text is None:
            return
        keyword = _keyword(text)
        if self.tx is not None:
            for sql in prefix:
                self._in_transaction(sql)
            xa = _xa(text)
            if xa is not None and xa[0] == b"END":
                return  # XA END: the prepare (or a one-phase commit) follows as its own event
            if xa is not None and xa[0] == b"PREPARE":
                tx, self.tx = self.tx, None
                self.out.append(tx.close(event.end_pos, xa_prepared=tx.xid is not None))
            elif keyword == b"COMMIT" or (xa is not None and xa[0] == b"COMMIT" and xa[2]):  # ONE PHASE
                tx, self.tx = self.tx, None
                self.out.append(tx.close(event.end_pos))
            elif keyword == b"ROLLBACK":
                tx, self.tx = self.tx, None
                self.out.append(tx.close(event.end_pos, rolled_back=True))
            else:
                self.tx.statements.append(Statement(text, self.default_db, is_query=True))
            return
        for sql in prefix:
            self._session(sql)
        pending, self.pending_gtid = self.pending_gtid, None
        start_pos = pending.start_pos if pending else event.at
        gtid = pending.gtid if pending else None
        if keyword in (b"BEGIN", b"START TRANSACTION"):
            self.tx = _OpenTransaction(start_pos, gtid, pending.flagged_ddl if pending else False)
            return
        xa = _xa(text)
        if xa is not None and xa[0] == b"START":  # MySQL logs XA START as a Query event
            self.tx = _OpenTransaction(start_pos, gtid, False, xid=xa[1])
            return
        if xa is not None and xa[0] in (b"COMMIT", b"ROLLBACK"):
            self.out.append(XaOutcome(start_pos, event.end_pos, xa[1], commit=xa[0] == b"COMMIT", gtid=gtid))
            return
        if keyword in (b"COMMIT", b"ROLLBACK"):
            return  # a stray end (the stream started inside a transaction): nothing to replay
        self.out.append(
            Transaction(
                start_pos=start_pos,
                end_pos=event.end_pos,
                statements=(Statement(text, self.default_db, is_query=True),),
                gtid=gtid,
                is_ddl=(pending.flagged_ddl if pending else False) or not is_dml(text),
            )
        )


def parse(lines: Iterable[bytes], *, stream_bytes: int | None = None) -> Iterator[Unit]:
    """Units in stream order from the tool's output lines (bytes, with or without trailing newlines).

    With ``stream_bytes``, a transaction holding more than that many bytes of row events is yielded in
    TransactionParts as it is read, so a transaction of any size is never held whole in memory.
    """
    parser = _Parser(stream_bytes)
    out = parser.out
    # Units are appended to one list rather than yielded through nested generators: most lines
    # complete nothing, and a generator per line cost a sixth of the parsing time.
    for line in lines:
        parser.feed(line)
        if out:
            yield from out
            out.clear()
    parser.finish()
    yield from out


# --- what a statement's text touches (statement-based events and DDL; row events name their tables) ------
_ID = rb"(?:`(?:[^`]|``)+`|[A-Za-z0-9_$\x80-\xff]+)"
_QNAME = _ID + rb"(?:\s*\.\s*" + _ID + rb")?"
_QNAME_LIST = rb"(" + _QNAME + rb"(?:\s*,\s*" + _QNAME + rb")*)"
_IF_EXISTS = rb"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
_TABLE_CONTEXTS = re.compile(
    rb"(?:\b(?:TABLES?|INTO|FROM|JOIN|VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT|SEQUENCE|REFERENCES|LIKE|TO|"
    rb"(?<!KEY )UPDATE(?:\s+LOW_PRIORITY)?(?:\s+IGNORE)?)"
    rb"|\bINDEX\s+" + _ID + rb"\s+ON"
    rb"|\b(?:BEFORE|AFTER)\s+(?:INSERT|UPDATE|DELETE)\s+ON)\s+" + _IF_EXISTS + _QNAME_LIST,
    re.IGNORECASE,
)
_SCHEMA_CONTEXT = re.compile(rb"\b(?:DATABASE|SCHEMA)\s+" + _IF_EXISTS + rb"(" + _ID + rb")", re.IGNORECASE)
_NAME_PART = re.compile(_ID)
_LITERALS_AND_COMMENTS = re.compile(
    rb"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\""  # string literals
    rb"|/\*(?![!M])[\s\S]*?\*/|/\*M?!\d*|\*/|--[ \t][^\n]*|#[^\n]*"  # comments; executable ones kept
)
_NOT_NAMES = frozenset({b"SELECT", b"SET", b"WHERE", b"VALUES", b"VALUE", b"ON", b"AS", b"IGNORE", b"QUICK",
                        b"LOW_PRIORITY", b"DELAYED", b"HIGH_PRIORITY", b"IF", b"TEMPORARY", b"DEFAULT"})
_ACCOUNT = re.compile(
    rb"^\s*(?:(?:CREATE(?:\s+OR\s+REPLACE)?|ALTER|DROP|RENAME)\s+(USER|ROLE)\b|(GRANT|REVOKE)\b"
    rb"|SET\s+(PASSWORD|DEFAULT\s+ROLE)\b)",
    re.IGNORECASE,
)


def _strip_literals(sql: bytes) -> bytes:
    def repl(match: re.Match[bytes]) -> bytes:
        token = match.group(0)
        return b" ? " if token[:1] in (b"'", b'"') else b" "

    return _LITERALS_AND_COMMENTS.sub(repl, sql)


def _name(raw: bytes) -> str:
    raw = raw.strip()
    return _unquote(raw[1:-1]) if raw.startswith(b"`") else raw.decode("utf-8", "surrogateescape")


def statement_tables(sql: bytes, default_db: str | None) -> frozenset[tuple[str | None, str | None]]:
    """(schema, table) pairs a statement names, unqualified names resolved to ``default_db``.

    A schema-level statement (CREATE DATABASE d) gives (d, None). Heuristic, for filtering by schema:
    it reads the names after FROM/INTO/TABLE/JOIN/UPDATE/... with literals and comments removed.
    Under binlog_format=ROW only DDL reaches this; row events name their tables exactly.
    """
    text = _strip_literals(sql)
    found: set[tuple[str | None, str | None]] = set()
    for match in _SCHEMA_CONTEXT.finditer(text):
        found.add((_name(match.group(1)), None))
    for match in _TABLE_CONTEXTS.finditer(text):
        for qualified in re.split(rb"\s*,\s*", match.group(1)):
            parts = _NAME_PART.findall(qualified)
            if not parts or parts[0].upper() in _NOT_NAMES:
                continue
            if len(parts) >= 2:
                found.add((_name(parts[0]), _name(parts[1])))
            else:
                found.add((default_db, _name(parts[0])))
    return frozenset(found)


def account_statement_kind(sql: bytes) -> str | None:
    """'CREATE USER', 'GRANT', 'SET PASSWORD', ... for statements about accounts, else None."""
    match = _ACCOUNT.match(_strip_literals(sql))
    if match is None:
        return None
    words = match.group(0).split()
    return b" ".join(w.upper() for w in words if w.upper() not in (b"OR", b"REPLACE")).decode("ascii")


_ADMIN = re.compile(rb"^\s*(FLUSH|ANALYZE|OPTIMIZE|REPAIR|CHECK|CHECKSUM|PURGE|RESET|KILL|INSTALL|UNINSTALL)\b",
                    re.IGNORECASE)


def admin_statement_kind(sql: bytes) -> str | None:
    """'FLUSH', 'ANALYZE', ... for administrative statements: they change no migrated row, so the applier
    skips them (a replayed FLUSH needs RELOAD; an OPTIMIZE rebuilds a table) and no proof depends on them."""
    match = _ADMIN.match(_strip_literals(sql))
    return match.group(1).upper().decode("ascii") if match else None


_STATEMENT_DML = re.compile(rb"^\s*(INSERT|UPDATE|DELETE|REPLACE|LOAD)\b", re.IGNORECASE)


def statement_dml_kind(sql: bytes) -> str | None:
    """'INSERT', 'UPDATE', ... for a Query event's text that changes rows as a statement (binlog_format
    STATEMENT/MIXED), else None. Under ROW every row change is a row event; such a text means a source
    session still logs statements (a pooled connection opened before binlog_format became ROW)."""
    match = _STATEMENT_DML.match(_strip_literals(sql))
    return match.group(1).upper().decode("ascii") if match else None
