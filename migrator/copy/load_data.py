"""The LOAD DATA path: the snapshot's rows as tab-separated bytes, loaded by LOAD DATA LOCAL on the target.

A select (migrator-select-tsv, else ``mariadb --batch``) writes the chunk's rows into a pipe that a
second client, on the target, reads as its LOAD DATA LOCAL file. Values travel as stored bytes;
FLOAT as DOUBLE text, BIT as a number, ENUM by index and SET by bitmask: exact for every type.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from migrator.copy.columns import LOSSY_TEXT_TYPES, ORDINAL_TYPES, enum_zeros_sql, has_enum_columns
from migrator.copy.context import CopyContext
from migrator.copy.procs import STDERR_LIMIT, read_until, stderr_tail, wait_unreaped, written_bytes
from migrator.copy.types import ChunkCopyFailed, Copied, DefaultsFiles
from migrator.endpoint import Endpoint
from migrator.mysql.chunking import SESSION_TIME_ZONE, Chunk, chunk_rows_source
from migrator.mysql.schema import SCHEMA_SQL_MODE, ColumnInfo, TableInfo
from migrator.mysql.session import MySQLSession, quote_identifier

# The select tool when installed (migrator/tools/select_tsv.c), else `mariadb --batch`.
SELECT_TSV = "migrator-select-tsv"


def find_select_tsv() -> str | None:
    """The copy's fast select (``select_tsv.c``, built into the virtualenv by scripts/bootstrap.sh), or None."""
    beside = Path(sys.executable).with_name(SELECT_TSV)
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(SELECT_TSV)


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


def local_infile_allowed(target: Endpoint, log: Any) -> bool:
    """Whether the target takes LOAD DATA LOCAL (its local_infile); says so in the log when it does not."""
    with MySQLSession(target) as session:
        allowed = str(session.value("SELECT @@local_infile")) in ("1", "ON")
    if not allowed:
        log.info(
            "copy.local_infile_off",
            hint="the copy uses the dump pipe instead of LOAD DATA; SET GLOBAL local_infile = ON on the "
            "target makes it faster",
        )
    return allowed


class LoadDataPath:
    """``SELECT`` on the snapshot piped into ``LOAD DATA LOCAL`` on the target; a CopyPath."""

    name = "load-data"

    def __init__(self, context: CopyContext, *, select_tool: str | None) -> None:
        self.context = context
        # migrator-select-tsv (a fifth of the CPU of `mariadb --batch`, whose byte-by-byte escaping
        # cost 5.4 CPU-s of a 31 CPU-s bench copy); None: the mariadb client.
        self.select_tsv = select_tool

    @property
    def select_name(self) -> str:
        return Path(self.select_tsv or self.context.client_tool).name

    @property
    def null_flags(self) -> bool:
        """Only `mariadb --batch` needs the IS NULL columns: migrator-select-tsv writes NULL as \\N."""
        return self.select_tsv is None

    def select_argv(self, defaults: Path, chunk: Chunk) -> list[str]:
        """The snapshot's rows of the chunk as tab-separated text with \\t \\n \\\\ \\0 escaped."""
        table = self.context.table(chunk)
        columns = ", ".join(tsv_select_columns(table, null_flags=self.null_flags))
        init = f"--init-command=SET SESSION time_zone='{SESSION_TIME_ZONE}', SESSION character_set_results=binary"
        sql = f"SELECT {columns} FROM {chunk_rows_source(table, chunk)} WHERE {chunk.where_sql()}"
        if self.select_tsv is not None:
            tls = ["--ssl"] if self.context.snapshot.tls is not None else []
            return [*self.context.prefix, self.select_tsv, f"--defaults-extra-file={defaults}", *tls, init, f"--execute={sql}"]
        return [*self.context.client_argv(defaults), "--skip-column-names", "--quick", init, "--execute", sql]

    def loader_argv(self, defaults: Path) -> list[str]:
        # --unbuffered: we read its "loaded" line before deciding on COMMIT; a pipe is block-buffered.
        return [*self.context.client_argv(defaults), "--local-infile=1", "--skip-column-names", "--unbuffered"]

    def load_data_sql(self, chunk: Chunk, path: str) -> str:
        targets, sets = tsv_load_columns(self.context.table(chunk), null_flags=self.null_flags)
        set_clause = f" SET {', '.join(sets)}" if sets else ""
        return (
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {self.context.table(chunk).sql_name} CHARACTER SET binary"
            f" FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
            f" ({', '.join(targets)}){set_clause}"
        )

    def load_script(self, chunk: Chunk, path: str) -> str:
        """What the loader client runs, up to (not including) the COMMIT we send once the select ended well.

        It ends with a line ``loaded <rows> <unexplained warnings>``, after the LOAD's first warnings.
        """
        table = self.context.table(chunk)
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
        if self.context.chunk_timeout is not None:
            settings.append(f"lock_wait_timeout = {max(1, int(self.context.chunk_timeout))}")
        if self.context.binlog_off:
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

    def copy(self, chunk: Chunk, files: DefaultsFiles) -> Copied:
        """``mariadb -e SELECT`` (snapshot) piped into LOAD DATA LOCAL run by a second client (target).

        The loader's commands come from our pipe and its data from the select's stdout (an inherited
        fd), so no byte passes through Python. COMMIT is sent only after the select exited 0: an
        early EOF looks like the end of the data to LOAD DATA, and a loader that never gets COMMIT
        rolls back when it exits. Counts the rows loaded and the bytes the select wrote. Raises ChunkCopyFailed.
        """
        deadline = self.context.deadline()
        client = Path(self.context.client_tool).name
        with (
            tempfile.TemporaryFile() as select_err,
            tempfile.TemporaryFile() as load_err,
        ):
            data_r, data_w = os.pipe()
            try:
                select = subprocess.Popen(
                    self.select_argv(files.snapshot, chunk),
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
                    self.loader_argv(files.target),
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
                wait_unreaped(select, deadline, self.context.monotonic)
                written = written_bytes(select.pid)
                select_rc = select.wait()
                if select_rc == 0:
                    output = read_until(loader.stdout, b"loaded\t", deadline, self.context.monotonic)
                    loaded = next(
                        (ln.split(b"\t") for ln in output.splitlines() if ln.startswith(b"loaded\t")), []
                    )
                with contextlib.suppress(BrokenPipeError):
                    if len(loaded) == 3 and int(loaded[2]) == 0:
                        loader.stdin.write(b"COMMIT;\n")
                    # else a value was truncated, a field missing...: keep nothing (no COMMIT)
                    loader.stdin.close()
                output += read_until(loader.stdout, None, deadline, self.context.monotonic)
                wait_unreaped(loader, deadline, self.context.monotonic)
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
        self.context.raise_for_tools(
            chunk,
            timed_out,
            (f"{self.select_name} (select)", select_rc, select_text),
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
            self.context.log.warning("copy.tool_stderr", chunk=chunk.chunk_id(), dump=select_text, load=load_text)
        return Copied(int(loaded[1]), written if written is not None else 0)
