"""Copy chunks from the frozen snapshot to the target: ``mariadb-dump --where=<range> | mariadb``.

The paths, each exact for every type (tests/integration/test_copy_types.py forces each one):

- LOAD DATA LOCAL fed by a select (migrator-select-tsv, else the mariadb client), where the target
  allows local_infile: values travel as stored bytes; FLOAT as DOUBLE text, BIT as a number, ENUM
  by index and SET by bitmask.
- The dump pipe otherwise. Tables with a column whose text form loses data (FLOAT: mariadb-dump
  prints 6 significant digits, so 16777216 arrives as 16777200; an ENUM or SET with a member '')
  take the row path instead: the snapshot renders each row as a SQL tuple itself (FLOAT widened
  to DOUBLE, which is exact and rounds back to the same FLOAT on insert; character values as hex
  with their character set; binary as hex; ENUM/SET by number) and the rows go to the target as
  multi-row INSERTs over pymysql, in one transaction per chunk as well.

ENUM's index-0 value ('' stored under a permissive sql_mode) is refused by strict mode (review
B9), so loads of tables with ENUM columns run non-strict and fail on any warning those values do
not explain.

Each chunk is one target transaction (``--no-autocommit`` wraps the dump in ``autocommit=0 ...
COMMIT``), loaded straight from one process's stdout into the other's stdin: no files, no Python
relay. The ledger (the journal) hears ``mark_done`` only after the target committed, so a crash in
between leaves committed rows; that is why every attempt first deletes the chunk's key range.

Ledger calls are made from the calling thread only, so the journal's SQLite connection never
crosses threads; workers only run the pipes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
import structlog

from migrator.copy.columns import (
    LOSSY_TEXT_TYPES,
    ORDINAL_TYPES,
    enum_members,
    enum_zeros_sql,
    has_enum_columns,
    has_lossy_columns,
)
from migrator.copy.ledger import ChunkLedger, MemoryLedger
from migrator.copy.procs import (
    MAX_ALLOWED_PACKET,
    STDERR_LIMIT,
    TRANSIENT_TOOL_ERRORS,
    pdeathsig_prefix,
    raise_for_tools,
    read_until,
    stderr_tail,
    wait_unreaped,
    written_bytes,
)
from migrator.copy.types import ChunkCopyFailed, ChunkResult, CopyProgress, CopyReport
from migrator.endpoint import Endpoint
from migrator.errors import StepFailed
from migrator.mysql.binlog_readers import binlog_readers
from migrator.mysql.chunking import SESSION_TIME_ZONE, Chunk, chunk_rows_source
from migrator.mysql.flavour import Flavour
from migrator.mysql.schema import (
    SCHEMA_SQL_MODE,
    ColumnInfo,
    TableInfo,
    deferred_indexes,
    missing_indexes,
    table_info,
)
from migrator.mysql.session import (
    MySQLSession,
    error_code,
    is_transient,
    qualified,
    quote_identifier,
    scaled_read_timeout,
)
from migrator.tools import client_tools
from migrator.tools.defaults_file import DefaultsFile

# Moving into migrator.copy; importers may still name these here.
__all__ = [
    "SELECT_TSV",
    "ChunkCopier",
    "ChunkCopyFailed",
    "ChunkLedger",
    "ChunkResult",
    "CopyProgress",
    "CopyReport",
    "MemoryLedger",
    "enum_members",
    "find_select_tsv",
    "has_lossy_columns",
]

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
# What `mariadb --show-warnings` prints for each warning of a statement (not notes), except 1906:
# mariadb-dump writes generated columns' values too, which the server ignores (and recomputes).
_WARNING = re.compile(r"^Warning \(Code (?!1906\))\d+\): ")
# The most warnings a statement keeps for SHOW WARNINGS (the server's maximum of max_error_count).
MAX_ERROR_COUNT = 65535
# How chunks are copied: see ChunkCopier.method_for.
METHODS = ("auto", "load-data", "dump", "rows")
# Multi-row INSERTs of the row path are sent at about this size (capped by the target's packet).
ROW_BATCH_BYTES = 1 << 20
ROW_FETCH = 2000
# The LOAD DATA path's select tool when installed (migrator/tools/select_tsv.c), else `mariadb --batch`.
SELECT_TSV = "migrator-select-tsv"


def find_select_tsv() -> str | None:
    """The copy's fast select (``select_tsv.c``, built into the virtualenv by scripts/bootstrap.sh), or None."""
    beside = Path(sys.executable).with_name(SELECT_TSV)
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(SELECT_TSV)


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


def _tsv_value_sql(col: ColumnInfo) -> str:
    name = quote_identifier(col.name)
    if col.data_type in LOSSY_TEXT_TYPES:
        return f"CAST({name} AS DOUBLE)"  # every digit of the stored float; it rounds back exactly
    if col.data_type == "bit":
        return f"CAST({name} AS UNSIGNED)"
    if col.data_type in ORDINAL_TYPES:
        return f"{name} + 0"
    return name  # text and bytes alike: the select sends them unconverted (binary results)


def tsv_select_columns(table: TableInfo, *, null_flags: bool = True) -> list[str]:
    """SELECT list for the LOAD DATA path: each value, plus (``null_flags``) an IS NULL flag after nullable ones.

    Values travel as the bytes the column stores (character_set_results is binary on the select,
    CHARACTER SET binary on the load), escaped by the select tool (``\\t \\n \\\\ \\0``), so
    neither text in any character set nor raw bytes are converted. ``mariadb --batch`` prints NULL as
    the word NULL, which a text column may also hold: the flag column says which it is. The
    migrator-select-tsv tool prints ``\\N`` instead, which LOAD DATA reads as NULL: no flags.
    """
    out = []
    for col in table.columns:
        if col.generated:
            continue
        out.append(_tsv_value_sql(col))
        if col.nullable and null_flags:
            out.append(f"{quote_identifier(col.name)} IS NULL")
    return out


def tsv_load_columns(table: TableInfo, *, null_flags: bool = True) -> tuple[list[str], list[str]]:
    """LOAD DATA's column/variable list and SET assignments matching tsv_select_columns."""
    targets: list[str] = []
    sets: list[str] = []
    for i, col in enumerate(c for c in table.columns if not c.generated):
        name = quote_identifier(col.name)
        flagged = col.nullable and null_flags
        if not (flagged or col.data_type in ("bit", "json") or col.data_type in ORDINAL_TYPES):
            targets.append(name)
            continue
        value = f"@v{i}"
        targets.append(value)
        expr = value
        if col.data_type == "bit" or col.data_type in ORDINAL_TYPES:
            # A number stores an ENUM by index, a SET by bitmask; the string '2' would be a member '2'.
            expr = f"CAST({value} AS UNSIGNED)"
        elif col.data_type == "json":  # MySQL refuses JSON from a binary string; its text is utf8mb4
            expr = f"CONVERT({value} USING utf8mb4)"
        if flagged:
            targets.append(f"@n{i}")
            expr = f"IF(@n{i} = 1, NULL, {expr})"
        sets.append(f"{name} = {expr}")
    return targets, sets


def insert_prefix(table: TableInfo) -> bytes:
    cols = ", ".join(quote_identifier(c.name) for c in table.columns if not c.generated)
    return f"INSERT INTO {table.sql_name} ({cols}) VALUES ".encode()


class ChunkCopier:
    """Copies chunks with ``workers`` pipes in parallel; skips chunks the ledger says are done."""

    def __init__(
        self,
        snapshot: Endpoint,
        target: Endpoint,
        flavour: Flavour,
        *,
        workers: int,
        ledger: ChunkLedger,
        secrets_dir: Path,
        on_progress: Callable[[CopyProgress], None] | None = None,
        log: Any = None,
        attempts: int = 2,
        chunk_timeout: float | None = None,
        method: str = "auto",
        skip_target_binlog: bool = True,
        fast_select: bool = True,
        select_tool: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        self.snapshot = snapshot
        self.target = target
        self.flavour = flavour
        self.workers = workers
        self.ledger = ledger
        self.secrets_dir = secrets_dir
        self.on_progress = on_progress
        self.log = log if log is not None else structlog.get_logger()
        self.attempts = max(1, attempts)
        self.chunk_timeout = chunk_timeout
        self.monotonic = monotonic
        # "auto": LOAD DATA where the target allows LOCAL INFILE, else the dump pipe (and the row
        # path for tables with lossy columns). The others force one path (tests, diagnosis).
        self.method = method
        self._local_infile = False
        # The copied rows need not be in the target's binlog (nothing replicates from the target
        # yet, and a bulk load would write every row twice): sql_log_bin=0 where the user may set it.
        self.skip_target_binlog = skip_target_binlog
        self._binlog_off = False
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self._tools = client_tools.for_flavour(flavour)  # by --version, one product (review B3)
        self._dump_tool = self._tools.dump.path
        self._client_tool = self._tools.client.path
        # The LOAD DATA path's select: migrator-select-tsv where built (a fifth of the CPU of
        # `mariadb --batch`, whose byte-by-byte escaping cost 5.4 CPU-s of a 31 CPU-s bench copy).
        # ``select_tool`` names another build of it (tests build the checkout's source).
        self._select_tsv = (select_tool or find_select_tsv()) if fast_select else None
        self._prefix = pdeathsig_prefix()
        self._local = threading.local()
        self._sessions: list[MySQLSession] = []
        self._sessions_lock = threading.Lock()

    # --- argv --------------------------------------------------------------------------------
    def dump_argv(self, defaults: Path, chunk: Chunk) -> list[str]:
        return [
            *self._prefix,
            self._dump_tool,
            f"--defaults-extra-file={defaults}",
            "--no-create-info",
            "--skip-triggers",
            "--no-autocommit",
            "--skip-lock-tables",
            "--skip-add-locks",
            "--skip-disable-keys",
            "--hex-blob",
            "--skip-comments",
            "--no-tablespaces",
            "--default-character-set=utf8mb4",
            f"--max-allowed-packet={MAX_ALLOWED_PACKET}",
            # --compact is deliberately absent: it drops the SET TIME_ZONE='+00:00' header.
            *self._tools.dump.dump_options(),  # Oracle's: --set-gtid-purged=OFF
            f"--where={chunk.where_sql()}",
            chunk.schema,
            chunk.table,
        ]

    def _client_argv(self, defaults: Path) -> list[str]:
        """The mysql client with credentials from the defaults file (first option), batch mode."""
        return [
            *self._prefix,
            self._client_tool,
            f"--defaults-extra-file={defaults}",
            "--default-character-set=utf8mb4",
            f"--max-allowed-packet={MAX_ALLOWED_PACKET}",
            "--batch",
        ]

    def load_argv(self, defaults: Path, chunk: Chunk) -> list[str]:
        # The dump sets its own non-strict sql_mode: the client prints every warning (up to
        # max_error_count per statement) and _check_dump_warnings accounts for each.
        init = f"SET SESSION max_error_count = {MAX_ERROR_COUNT}"
        if self._binlog_off:
            init += ", SESSION sql_log_bin = 0"
        return [*self._client_argv(defaults), "--show-warnings", f"--init-command={init}", chunk.schema]

    # --- target session per worker thread ----------------------------------------------------
    def _target_session(self) -> MySQLSession:
        session: MySQLSession | None = getattr(self._local, "session", None)
        if session is None:
            session = MySQLSession(self.target)
            # UTC like the dump's own session; no FK actions while we clear a range we reload.
            session.execute("SET SESSION time_zone = %s", (SESSION_TIME_ZONE,))
            session.execute("SET SESSION foreign_key_checks = 0")
            if self.chunk_timeout is not None:
                # Bound waits for locks (a range DELETE behind a stuck load) as the pipe is bounded.
                session.execute("SET SESSION lock_wait_timeout = %s", (max(1, int(self.chunk_timeout)),))
            if self._binlog_off:
                session.execute("SET SESSION sql_log_bin = 0")
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _probe_binlog_off(self) -> bool:
        """Whether loads can run with sql_log_bin=0: the target logs, and this user may turn it off."""
        if not self.skip_target_binlog:
            return False
        with MySQLSession(self.target) as session:
            if str(session.value("SELECT @@log_bin")) not in ("1", "ON"):
                return False
            readers = binlog_readers(session)
            if readers:  # they would get the applier's changes but none of the copied rows (review A7)
                self.log.info("copy.target_binlog_kept", reason=f"the target's binlog is read by {readers}")
                return False
            try:
                session.execute("SET SESSION sql_log_bin = 0")
            except pymysql.err.MySQLError as exc:
                self.log.info("copy.target_binlog_kept", reason=str(exc))
                return False
        return True

    def _snapshot_session(self) -> MySQLSession:
        session: MySQLSession | None = getattr(self._local, "snapshot", None)
        if session is None:
            session = MySQLSession(self.snapshot)
            session.execute("SET SESSION time_zone = %s", (SESSION_TIME_ZONE,))
            self._local.snapshot = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _drop_target_session(self) -> None:
        for name in ("session", "snapshot"):
            session: MySQLSession | None = getattr(self._local, name, None)
            if session is not None:
                session.close()
                setattr(self._local, name, None)

    def use_tables(self, tables: Iterable[TableInfo]) -> None:
        """The layouts the plan was made from: chunks of these tables need no catalog read (review C2)."""
        with self._sessions_lock:
            self._tables.update({(t.schema, t.name): t for t in tables})

    def forget_tables(self, tables: Iterable[TableInfo]) -> None:
        """Drop layouts of tables whose chunks are all copied: memory stays flat in the number of tables."""
        with self._sessions_lock:
            for t in tables:
                self._tables.pop((t.schema, t.name), None)

    def _table(self, chunk: Chunk) -> TableInfo:
        key = (chunk.schema, chunk.table)
        with self._sessions_lock:
            found = self._tables.get(key)
        if found is None:
            found = table_info(self._snapshot_session(), chunk.schema, chunk.table)
            with self._sessions_lock:
                self._tables[key] = found
        return found

    def method_for(self, chunk: Chunk) -> str:
        """How ``chunk`` is copied: "load-data", "dump" or "rows" (after copy() probed the target).

        The dump pipe never takes a table whose text form loses a value (FLOAT, an ENUM or SET with
        a member ''; see text_form_is_lossy): those go by the row path, asked for or not.
        """
        wanted = self.method
        if wanted == "auto" or (wanted == "load-data" and not self._local_infile):
            # LOAD DATA (exact for every type: FLOAT travels as DOUBLE text, ENUM/SET by number)
            # costs the target a quarter less CPU than parsing INSERTs; without local_infile on the
            # target, the dump pipe.
            wanted = "load-data" if self._local_infile else "dump"
        if wanted == "dump" and has_lossy_columns(self._table(chunk)):
            return "rows"
        return wanted

    # --- the LOAD DATA path ------------------------------------------------------------------
    @property
    def _select_name(self) -> str:
        return Path(self._select_tsv or self._client_tool).name

    @property
    def _null_flags(self) -> bool:
        """Only `mariadb --batch` needs the IS NULL columns: migrator-select-tsv writes NULL as \\N."""
        return self._select_tsv is None

    def select_argv(self, defaults: Path, chunk: Chunk) -> list[str]:
        """The snapshot's rows of the chunk as tab-separated text with \\t \\n \\\\ \\0 escaped."""
        table = self._table(chunk)
        columns = ", ".join(tsv_select_columns(table, null_flags=self._null_flags))
        init = f"--init-command=SET SESSION time_zone='{SESSION_TIME_ZONE}', SESSION character_set_results=binary"
        sql = f"SELECT {columns} FROM {chunk_rows_source(table, chunk)} WHERE {chunk.where_sql()}"
        if self._select_tsv is not None:
            tls = ["--ssl"] if self.snapshot.tls is not None else []
            return [*self._prefix, self._select_tsv, f"--defaults-extra-file={defaults}", *tls, init, f"--execute={sql}"]
        return [*self._client_argv(defaults), "--skip-column-names", "--quick", init, "--execute", sql]

    def loader_argv(self, defaults: Path) -> list[str]:
        # --unbuffered: we read its "loaded" line before deciding on COMMIT; a pipe is block-buffered.
        return [*self._client_argv(defaults), "--local-infile=1", "--skip-column-names", "--unbuffered"]

    def load_data_sql(self, chunk: Chunk, path: str) -> str:
        targets, sets = tsv_load_columns(self._table(chunk), null_flags=self._null_flags)
        set_clause = f" SET {', '.join(sets)}" if sets else ""
        return (
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {self._table(chunk).sql_name} CHARACTER SET binary"
            f" FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
            f" ({', '.join(targets)}){set_clause}"
        )

    def load_script(self, chunk: Chunk, path: str) -> str:
        """What the loader client runs, up to (not including) the COMMIT we send once the select ended well.

        It ends with a line ``loaded <rows> <unexplained warnings>``, after the LOAD's first warnings.
        """
        table = self._table(chunk)
        enums = has_enum_columns(table)
        settings = [
            f"time_zone = '{SESSION_TIME_ZONE}'",
            # unique_checks stays on: with it off, MariaDB turns an INSERT into an empty table into a
            # "bulk insert" that locks the table for the transaction, and concurrent chunks of that
            # table then wait, or hang with a plain SELECT on it stuck in "Statistics" (seen here).
            "foreign_key_checks = 0",
            # Strict: a value the column would not take as it is fails the chunk instead of changing.
            # Not with ENUM columns: strict refuses their index-0 value (B9); there every warning
            # but one per index-0 value fails the chunk instead.
            f"sql_mode = '{SCHEMA_SQL_MODE}'" if enums else f"sql_mode = 'STRICT_ALL_TABLES,{SCHEMA_SQL_MODE}'",
        ]
        if self.chunk_timeout is not None:
            settings.append(f"lock_wait_timeout = {max(1, int(self.chunk_timeout))}")
        if self._binlog_off:
            settings.append("sql_log_bin = 0")
        explained = "0"
        if enums:
            # The loaded range is read again only when the LOAD warned (IF runs one branch).
            explained = (
                f"IF(@migrator_warnings = 0, 0, (SELECT COALESCE(SUM({enum_zeros_sql(table)}), 0)"
                f" FROM {table.sql_name} WHERE {chunk.where_sql()}))"
            )
        return (
            "SET SESSION " + ", SESSION ".join(settings) + ";\n"
            "START TRANSACTION;\n"
            f"{self.load_data_sql(chunk, path)};\n"
            # @@warning_count is the LOAD's here: a short line or a cut value only warns, even in
            # strict mode. A SET keeps the LOAD's warnings for SHOW WARNINGS.
            "SET @migrator_rows = ROW_COUNT(), @migrator_warnings = @@warning_count;\n"
            "SHOW WARNINGS LIMIT 5;\n"
            f"SELECT 'loaded', @migrator_rows, @migrator_warnings - {explained};\n"
        )

    def _load_data(self, chunk: Chunk, select_cnf: Path, load_cnf: Path) -> tuple[int, int]:
        """``mariadb -e SELECT`` (snapshot) piped into LOAD DATA LOCAL run by a second client (target).

        The loader's commands come from our pipe and its data from the select's stdout (an inherited
        fd), so no byte passes through Python. COMMIT is sent only after the select exited 0: an
        early EOF looks like the end of the data to LOAD DATA, and a loader that never gets COMMIT
        rolls back when it exits. Returns (rows loaded, bytes the select wrote). Raises ChunkCopyFailed.
        """
        deadline = None if self.chunk_timeout is None else self.monotonic() + self.chunk_timeout
        client = Path(self._client_tool).name
        with (
            tempfile.TemporaryFile() as select_err,
            tempfile.TemporaryFile() as load_err,
        ):
            data_r, data_w = os.pipe()
            try:
                select = subprocess.Popen(
                    self.select_argv(select_cnf, chunk),
                    stdin=subprocess.DEVNULL,
                    stdout=data_w,
                    stderr=select_err,
                )
            except BaseException:
                os.close(data_r)
                raise
            finally:
                os.close(data_w)
            try:
                loader = subprocess.Popen(
                    self.loader_argv(load_cnf),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=load_err,
                    pass_fds=(data_r,),
                )
            except BaseException:
                select.kill()
                select.wait()
                raise
            finally:
                os.close(data_r)  # the loader holds it now; if the loader dies, the select gets SIGPIPE
            assert loader.stdin is not None and loader.stdout is not None
            timed_out = False
            written: int | None = None
            loaded: list[bytes] = []  # the loader's "loaded <rows> <warnings>" line, once seen
            output = b""
            try:
                with contextlib.suppress(
                    BrokenPipeError
                ):  # the loader failed at once: its exit code says why
                    loader.stdin.write(self.load_script(chunk, f"/proc/self/fd/{data_r}").encode())
                    loader.stdin.flush()
                wait_unreaped(select, deadline, self.monotonic)
                written = written_bytes(select.pid)
                select_rc = select.wait()
                if select_rc == 0:
                    output = read_until(loader.stdout, b"loaded\t", deadline, self.monotonic)
                    loaded = next(
                        (ln.split(b"\t") for ln in output.splitlines() if ln.startswith(b"loaded\t")), []
                    )
                with contextlib.suppress(BrokenPipeError):
                    if len(loaded) == 3 and int(loaded[2]) == 0:
                        loader.stdin.write(b"COMMIT;\n")
                    # else a value was truncated, a field missing...: keep nothing (no COMMIT)
                    loader.stdin.close()
                output += read_until(loader.stdout, None, deadline, self.monotonic)
                wait_unreaped(loader, deadline, self.monotonic)
                load_rc = loader.wait()
            except TimeoutError:
                timed_out = True
                for proc in (select, loader):
                    proc.kill()
                select_rc, load_rc = select.wait(), loader.wait()
            except BaseException:
                for proc in (select, loader):
                    proc.kill()
                    proc.wait()
                raise
            finally:
                for fh in (loader.stdin, loader.stdout):
                    with contextlib.suppress(OSError):
                        fh.close()
            select_text, load_text = stderr_tail(select_err), stderr_tail(load_err)
        self._raise_for_tools(
            chunk,
            timed_out,
            (f"{self._select_name} (select)", select_rc, select_text),
            (f"{client} (LOAD DATA)", load_rc, load_text),
        )
        if len(loaded) != 3:
            raise ChunkCopyFailed(chunk, f"the loader printed no row count: {output[-500:]!r} {load_text}")
        if int(loaded[2]) != 0:
            warnings = output.decode("utf-8", "replace").split("loaded\t", 1)[0].strip()[-STDERR_LIMIT:]
            raise ChunkCopyFailed(
                chunk,
                f"LOAD DATA gave {int(loaded[2])} warning(s) beyond those of index-0 ENUM values, so nothing"
                f" of the chunk was kept: {warnings}",
            )
        if select_text or load_text:
            self.log.warning("copy.tool_stderr", chunk=chunk.chunk_id(), dump=select_text, load=load_text)
        return int(loaded[1]), written if written is not None else 0

    def _probe_local_infile(self) -> bool:
        if self.method not in ("auto", "load-data"):
            return False
        with MySQLSession(self.target) as session:
            allowed = str(session.value("SELECT @@local_infile")) in ("1", "ON")
        if not allowed:
            self.log.info(
                "copy.local_infile_off",
                hint="the copy uses the dump pipe instead of LOAD DATA; SET GLOBAL local_infile = ON on the "
                "target makes it faster",
            )
        return allowed

    def _copy_rows(self, chunk: Chunk) -> int:
        """The row path: snapshot-rendered tuples, multi-row INSERTs, one transaction. Returns bytes sent.

        The session is not strict (strict refuses ENUM's index-0 value, review B9), so any warning
        other than the one each index-0 value gives fails the chunk: no value is changed silently.
        """
        table = self._table(chunk)
        source, target = self._snapshot_session(), self._target_session()
        budget = min(ROW_BATCH_BYTES, self._target_packet(target) // 2)
        prefix = insert_prefix(table)
        sent = 0
        target.execute("SET SESSION sql_mode = %s", (SCHEMA_SQL_MODE,))
        target.conn.begin()
        try:
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
                            raise ChunkCopyFailed(
                                chunk,
                                "a row's text exceeds the snapshot's max_allowed_packet; raise it to the "
                                "size of the largest row x 2",
                            )
                        row = bytes(text)
                        batch.append(row)
                        size += len(row) + 1
                        zeros += int(row_zeros)
                        if size >= budget:
                            sent += self._send_rows(chunk, target, prefix, batch, zeros)
                            batch, size, zeros = [], 0, 0
            if batch:
                sent += self._send_rows(chunk, target, prefix, batch, zeros)
            target.conn.commit()
        except BaseException:
            with contextlib.suppress(pymysql.err.Error):
                target.conn.rollback()
            raise
        return sent

    @staticmethod
    def _send_rows(chunk: Chunk, target: MySQLSession, prefix: bytes, rows: list[bytes], zeros: int) -> int:
        sql = prefix + b",".join(rows)
        with target.conn.cursor() as cur:
            cur.execute(sql)  # bytes go to the server as they are
            warnings = cur.warning_count
            if warnings != zeros:
                cur.execute("SHOW WARNINGS LIMIT 5")
                said = "; ".join(f"{code} {message}" for _, code, message in cur.fetchall())
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

    # --- one chunk ---------------------------------------------------------------------------
    def clear_range(self, chunk: Chunk) -> int:
        """Delete what an earlier attempt may have committed in the chunk's range.

        Looked at first with a plain (non-locking) read: a DELETE takes next-key locks even on an
        empty range, which block and deadlock the loads of the neighbouring chunks (InnoDB's gap
        locks under REPEATABLE READ). Only a retried or resumed chunk finds rows and deletes them.
        """
        target = self._target_session()
        name = qualified(chunk.schema, chunk.table)
        if target.one(f"SELECT 1 FROM {name} WHERE {chunk.where_sql()} LIMIT 1") is None:
            return 0
        return target.execute(f"DELETE FROM {name} WHERE {chunk.where_sql()}")

    def count_range(self, chunk: Chunk) -> int:
        return int(
            self._target_session().value(
                f"SELECT COUNT(*) FROM {qualified(chunk.schema, chunk.table)} WHERE {chunk.where_sql()}"
            )
        )

    def _pipe(self, chunk: Chunk, dump_cnf: Path, load_cnf: Path) -> int:
        """Run dump | load for one chunk; returns the dump's written bytes. Raises ChunkCopyFailed."""
        deadline = None if self.chunk_timeout is None else self.monotonic() + self.chunk_timeout
        first, second = self.dump_argv(dump_cnf, chunk), self.load_argv(load_cnf, chunk)
        first_name, second_name = Path(self._dump_tool).name, Path(self._client_tool).name
        with (
            tempfile.TemporaryFile() as dump_err,
            tempfile.TemporaryFile() as load_err,
            tempfile.TemporaryFile() as load_out,
        ):
            dump = subprocess.Popen(
                first,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=dump_err,
            )
            try:
                load = subprocess.Popen(
                    second,
                    stdin=dump.stdout,
                    stdout=load_out,
                    stderr=load_err,
                )
            except BaseException:
                dump.kill()
                dump.wait()
                raise
            assert dump.stdout is not None
            dump.stdout.close()  # the loader owns the read end; if it dies the dump gets SIGPIPE
            timed_out = False
            try:
                wait_unreaped(dump, deadline, self.monotonic)
                written = written_bytes(dump.pid)
                dump_rc = dump.wait()
                wait_unreaped(load, deadline, self.monotonic)
                load_rc = load.wait()
            except TimeoutError:
                timed_out = True
                for proc in (dump, load):
                    proc.kill()
                dump_rc, load_rc, written = dump.wait(), load.wait(), None
            except BaseException:
                for proc in (dump, load):
                    proc.kill()
                    proc.wait()
                raise
            dump_text, load_text = stderr_tail(dump_err), stderr_tail(load_err)
            load_out.seek(0)
            warnings = [line for line in load_out.read().decode("utf-8", "replace").splitlines() if _WARNING.match(line)]
        self._raise_for_tools(
            chunk, timed_out, (first_name, dump_rc, dump_text), (second_name, load_rc, load_text)
        )
        if warnings:
            self._check_dump_warnings(chunk, warnings)
        if dump_text or load_text:
            # Both exited 0, so the chunk committed; what they said is kept for the operator.
            self.log.warning("copy.tool_stderr", chunk=chunk.chunk_id(), dump=dump_text, load=load_text)
        return written if written is not None else 0

    def _check_dump_warnings(self, chunk: Chunk, warnings: list[str]) -> None:
        """Fail the chunk unless each warning of the dump's load is one of an index-0 ENUM value.

        The dump commits itself, so the rows stay until the next attempt (or run) clears the range.
        """
        table = self._table(chunk)
        zeros = 0
        if has_enum_columns(table):
            zeros = int(
                self._target_session().value(
                    f"SELECT COALESCE(SUM({enum_zeros_sql(table)}), 0) FROM {table.sql_name} WHERE {chunk.where_sql()}"
                )
            )
        if len(warnings) != zeros:
            raise ChunkCopyFailed(
                chunk,
                f"the load gave {len(warnings) - zeros} warning(s) beyond those of index-0 ENUM values (a value"
                f" changed on the way; the range is cleared and reloaded when the copy runs again): "
                + "; ".join(warnings[:5]),
            )

    def _raise_for_tools(self, chunk: Chunk, timed_out: bool, *tools: tuple[str, int, str]) -> None:
        raise_for_tools(chunk, timed_out, self.chunk_timeout, *tools)

    def add_deferred_indexes(self, chunk: Chunk) -> int:
        """The table's deferred secondary indexes that the target lacks, in one ALTER; returns how many."""
        table = self._table(chunk)
        target = self._target_session()
        wanted = deferred_indexes(self._snapshot_session(), table)
        missing = missing_indexes(target, table, wanted)
        if missing:
            started = self.monotonic()
            try:
                # An index build of a big table runs for hours: not a dead connection (review B12).
                with target.long_statement(scaled_read_timeout(table.data_length + table.index_length)):
                    target.execute(f"ALTER TABLE {table.sql_name} " + ", ".join(f"ADD {d}" for d in missing))
            except pymysql.err.MySQLError as exc:
                # 1061: an ALTER of a killed earlier run was still finishing (the server completes it
                # after its client died, and we waited behind it): what it added is there now.
                if error_code(exc) != 1061 or missing_indexes(target, table, wanted):
                    raise
            self.log.info(
                "copy.indexes_added",
                table=table.qualified_name,
                indexes=len(missing),
                seconds=round(self.monotonic() - started, 3),
            )
        return len(missing)

    def copy_chunk(self, chunk: Chunk, dump_cnf: Path, load_cnf: Path) -> ChunkResult:
        """Clear the range, load it in one transaction, count it. Retries transient failures."""
        started = self.monotonic()
        for attempt in range(1, self.attempts + 1):
            try:
                if chunk.is_indexes:
                    self.add_deferred_indexes(chunk)
                    return ChunkResult(chunk, 0, 0, self.monotonic() - started, attempt)
                method = self.method_for(chunk)
                cleared = self.clear_range(chunk)
                if cleared:
                    self.log.info("copy.chunk_cleared", chunk=chunk.chunk_id(), rows=cleared)
                if method == "load-data":
                    rows, written = self._load_data(chunk, dump_cnf, load_cnf)
                else:
                    copy = (
                        self._copy_rows
                        if method == "rows"
                        else partial(self._pipe, dump_cnf=dump_cnf, load_cnf=load_cnf)
                    )
                    written = copy(chunk)
                    rows = self.count_range(chunk)
            except Exception as exc:
                transient = is_transient(exc) or (
                    isinstance(exc, ChunkCopyFailed)
                    and any(code in exc.message for code in TRANSIENT_TOOL_ERRORS)
                )
                self._drop_target_session()
                if transient and attempt < self.attempts:
                    self.log.warning(
                        "copy.chunk_retry", chunk=chunk.chunk_id(), attempt=attempt, error=str(exc)
                    )
                    continue
                if isinstance(exc, ChunkCopyFailed):
                    raise
                raise ChunkCopyFailed(chunk, f"{type(exc).__name__}: {exc}") from exc
            return ChunkResult(chunk, rows, written, self.monotonic() - started, attempt)
        raise AssertionError("unreachable")

    # --- many chunks -------------------------------------------------------------------------
    def copy(self, chunks: Sequence[Chunk]) -> CopyReport:
        started = self.monotonic()
        pending = [c for c in chunks if not self.ledger.is_done(c.chunk_id())]
        skipped = len(chunks) - len(pending)
        rows = written = done = 0
        if pending:
            self._binlog_off = self._probe_binlog_off()
            self._local_infile = self._probe_local_infile()
        self.log.info(
            "copy.start",
            chunks=len(chunks),
            skipped=skipped,
            workers=self.workers,
            target_binlog=not self._binlog_off,
            select=self._select_name,
        )

        def progress() -> None:
            if self.on_progress is None:
                return
            elapsed = self.monotonic() - started
            left = len(pending) - done
            eta = elapsed / done * left if done else None
            self.on_progress(CopyProgress(len(chunks), done, skipped, rows, written, elapsed, eta))

        progress()
        failure: BaseException | None = None
        with ExitStack() as stack:
            product = self._tools.product
            dump_cnf = stack.enter_context(DefaultsFile(self.snapshot, parent=self.secrets_dir, product=product))
            load_cnf = stack.enter_context(DefaultsFile(self.target, parent=self.secrets_dir, product=product))
            pool = stack.enter_context(
                ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="copy")
            )
            in_flight: set[Future[ChunkResult]] = set()
            queue = list(reversed(pending))
            # A table's index chunk waits until none of its rows chunks is left.
            rows_left = Counter((c.schema, c.table) for c in pending if not c.is_indexes)

            def runnable() -> int | None:
                for i in range(len(queue) - 1, -1, -1):
                    if not queue[i].is_indexes or rows_left[(queue[i].schema, queue[i].table)] == 0:
                        return i
                return None

            try:
                while (queue and failure is None) or in_flight:
                    while queue and failure is None and len(in_flight) < self.workers:
                        pick = runnable()
                        if pick is None:
                            break
                        chunk = queue.pop(pick)
                        self.ledger.mark_started(chunk)
                        in_flight.add(pool.submit(self.copy_chunk, chunk, dump_cnf, load_cnf))
                    if not in_flight:
                        break  # nothing runnable (after a failure): the loop below raises it
                    finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        try:
                            result = future.result()
                        except BaseException as exc:
                            # Let running chunks finish (and be recorded); start no new ones.
                            failure = failure or exc
                            continue
                        self.ledger.mark_done(result.chunk, result.rows, result.bytes)
                        if not result.chunk.is_indexes:
                            rows_left[(result.chunk.schema, result.chunk.table)] -= 1
                        rows += result.rows
                        written += result.bytes
                        done += 1
                        self.log.debug(
                            "copy.chunk_done",
                            chunk=result.chunk.chunk_id(),
                            rows=result.rows,
                            bytes=result.bytes,
                            seconds=round(result.seconds, 3),
                        )
                        progress()
            finally:
                pool.shutdown(wait=True)
                with self._sessions_lock:
                    for session in self._sessions:
                        session.close()
                    self._sessions.clear()
        seconds = self.monotonic() - started
        if failure is None and queue:  # cannot happen: an index chunk waits only on rows chunks
            failure = StepFailed(
                f"copy stopped with {len(queue)} chunks not runnable: {queue[-1].chunk_id()}"
            )
        if failure is not None:
            self.log.error("copy.failed", chunks_done=done, error=str(failure))
            raise failure
        report = CopyReport(
            rows=rows, bytes=written, seconds=seconds, chunks_done=done, chunks_skipped=skipped
        )
        self.log.info(
            "copy.done",
            rows=rows,
            bytes=written,
            seconds=round(seconds, 3),
            chunks_done=done,
            chunks_skipped=skipped,
            rows_per_second=round(report.rows_per_second),
        )
        return report
