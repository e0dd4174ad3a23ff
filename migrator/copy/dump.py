"""The dump pipe: ``mariadb-dump --where=<range> | mariadb``, for targets that refuse LOAD DATA LOCAL.

Each chunk is one target transaction (``--no-autocommit`` wraps the dump in ``autocommit=0 ...
COMMIT``), loaded straight from one process's stdout into the other's stdin: no files, no Python
relay. Tables whose text form loses a value never come here (see columns.text_form_is_lossy).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from migrator.copy.columns import enum_zeros_sql, has_enum_columns
from migrator.copy.context import CopyContext
from migrator.copy.procs import MAX_ALLOWED_PACKET, stderr_tail, wait_unreaped, written_bytes
from migrator.copy.types import ChunkCopyFailed, Copied, DefaultsFiles
from migrator.mysql.chunking import Chunk

# What `mariadb --show-warnings` prints for each warning of a statement (not notes), except 1906:
# mariadb-dump writes generated columns' values too, which the server ignores (and recomputes).
_WARNING = re.compile(r"^Warning \(Code (?!1906\))\d+\): ")
# The most warnings a statement keeps for SHOW WARNINGS (the server's maximum of max_error_count).
MAX_ERROR_COUNT = 65535


class DumpPath:
    """``mariadb-dump`` on the snapshot piped into the ``mariadb`` client on the target; a CopyPath."""

    name = "dump"

    def __init__(self, context: CopyContext) -> None:
        self.context = context

    def dump_argv(self, defaults: Path, chunk: Chunk) -> list[str]:
        return [
            *self.context.prefix,
            self.context.dump_tool,
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
            *self.context.tools.dump.dump_options(),  # Oracle's: --set-gtid-purged=OFF
            f"--where={chunk.where_sql()}",
            chunk.schema,
            chunk.table,
        ]

    def load_argv(self, defaults: Path, chunk: Chunk) -> list[str]:
        # The dump sets its own non-strict sql_mode: the client prints every warning (up to
        # max_error_count per statement) and _check_warnings accounts for each.
        init = f"SET SESSION max_error_count = {MAX_ERROR_COUNT}"
        if self.context.binlog_off:
            init += ", SESSION sql_log_bin = 0"
        return [*self.context.client_argv(defaults), "--show-warnings", f"--init-command={init}", chunk.schema]

    def copy(self, chunk: Chunk, files: DefaultsFiles) -> Copied:
        """Run dump | load for one chunk, then count the range. Raises ChunkCopyFailed."""
        written = self._pipe(chunk, files.snapshot, files.target)
        return Copied(self.context.count_range(chunk), written)

    def _pipe(self, chunk: Chunk, dump_cnf: Path, load_cnf: Path) -> int:
        """Run dump | load for one chunk; returns the dump's written bytes. Raises ChunkCopyFailed."""
        deadline = self.context.deadline()
        first, second = self.dump_argv(dump_cnf, chunk), self.load_argv(load_cnf, chunk)
        first_name, second_name = Path(self.context.dump_tool).name, Path(self.context.client_tool).name
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
                wait_unreaped(dump, deadline, self.context.monotonic)
                written = written_bytes(dump.pid)
                dump_rc = dump.wait()
                wait_unreaped(load, deadline, self.context.monotonic)
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
        self.context.raise_for_tools(
            chunk, timed_out, (first_name, dump_rc, dump_text), (second_name, load_rc, load_text)
        )
        if warnings:
            self._check_warnings(chunk, warnings)
        if dump_text or load_text:
            # Both exited 0, so the chunk committed; what they said is kept for the operator.
            self.context.log.warning("copy.tool_stderr", chunk=chunk.chunk_id(), dump=dump_text, load=load_text)
        return written if written is not None else 0

    def _check_warnings(self, chunk: Chunk, warnings: list[str]) -> None:
        """Fail the chunk unless each warning of the dump's load is one of an index-0 ENUM value.

        The dump commits itself, so the rows stay until the next attempt (or run) clears the range.
        """
        table = self.context.table(chunk)
        zeros = 0
        if has_enum_columns(table):
            zeros = int(
                self.context.target_session().value(
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
