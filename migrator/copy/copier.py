"""The copy's orchestration: which path each chunk takes, retries, the worker pool, the ledger, progress."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pymysql
import structlog

from migrator.copy.columns import has_lossy_columns
from migrator.copy.context import CopyContext
from migrator.copy.dump import DumpPath
from migrator.copy.ledger import ChunkLedger
from migrator.copy.load_data import LoadDataPath, find_select_tsv, local_infile_allowed
from migrator.copy.procs import TRANSIENT_TOOL_ERRORS
from migrator.copy.rows import RowPath
from migrator.copy.types import (
    ChunkCopyFailed,
    ChunkResult,
    CopyPath,
    CopyProgress,
    CopyReport,
    DefaultsFiles,
)
from migrator.endpoint import Endpoint
from migrator.errors import StepFailed
from migrator.mysql.binlog_readers import binlog_readers
from migrator.mysql.chunking import Chunk
from migrator.mysql.flavour import Flavour
from migrator.mysql.schema import TableInfo, deferred_indexes, missing_indexes
from migrator.mysql.session import MySQLSession, error_code, is_transient, qualified, scaled_read_timeout
from migrator.tools.defaults_file import DefaultsFile

# How chunks are copied: see ChunkCopier.method_for.
METHODS = ("auto", "load-data", "dump", "rows")


class ChunkCopier:
    """Copies chunks with ``workers`` pipes in parallel; skips chunks the ledger says are done.

    Ledger calls are made from the calling thread only, so the journal's SQLite connection never
    crosses threads; workers only run the paths.
    """

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
        self.monotonic = monotonic
        # "auto": LOAD DATA where the target allows LOCAL INFILE, else the dump pipe (and the row
        # path for tables with lossy columns). The others force one path (tests, diagnosis).
        self.method = method
        self._local_infile = False
        # The copied rows need not be in the target's binlog (nothing replicates from the target
        # yet, and a bulk load would write every row twice): sql_log_bin=0 where the user may set it.
        self.skip_target_binlog = skip_target_binlog
        self.context = CopyContext(
            snapshot, target, flavour, log=self.log, chunk_timeout=chunk_timeout, monotonic=monotonic
        )
        # The LOAD DATA path's select: migrator-select-tsv where built, else `mariadb --batch`.
        # ``select_tool`` names another build of it (tests build the checkout's source).
        self.load_data_path = LoadDataPath(
            self.context, select_tool=(select_tool or find_select_tsv()) if fast_select else None
        )
        self.dump_path = DumpPath(self.context)
        self.row_path = RowPath(self.context)

    @property
    def paths(self) -> dict[str, CopyPath]:
        """The paths by method name (method_for's answers)."""
        return {path.name: path for path in (self.load_data_path, self.dump_path, self.row_path)}

    @property
    def chunk_timeout(self) -> float | None:
        """Seconds a chunk's attempt may take (None: unbounded); step 6 sets it per batch."""
        return self.context.chunk_timeout

    @chunk_timeout.setter
    def chunk_timeout(self, seconds: float | None) -> None:
        self.context.chunk_timeout = seconds

    def use_tables(self, tables: Iterable[TableInfo]) -> None:
        """The layouts the plan was made from: chunks of these tables need no catalog read (review C2)."""
        self.context.use_tables(tables)

    def forget_tables(self, tables: Iterable[TableInfo]) -> None:
        """Drop layouts of tables whose chunks are all copied: memory stays flat in the number of tables."""
        self.context.forget_tables(tables)

    # --- the target, probed once per copy ----------------------------------------------------
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

    def _probe_local_infile(self) -> bool:
        if self.method not in ("auto", "load-data"):
            return False
        return local_infile_allowed(self.target, self.log)

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
        if wanted == "dump" and has_lossy_columns(self.context.table(chunk)):
            return "rows"
        return wanted

    # --- one chunk ---------------------------------------------------------------------------
    def clear_range(self, chunk: Chunk) -> int:
        """Delete what an earlier attempt may have committed in the chunk's range.

        Looked at first with a plain (non-locking) read: a DELETE takes next-key locks even on an
        empty range, which block and deadlock the loads of the neighbouring chunks (InnoDB's gap
        locks under REPEATABLE READ). Only a retried or resumed chunk finds rows and deletes them.
        """
        target = self.context.target_session()
        name = qualified(chunk.schema, chunk.table)
        if target.one(f"SELECT 1 FROM {name} WHERE {chunk.where_sql()} LIMIT 1") is None:
            return 0
        return target.execute(f"DELETE FROM {name} WHERE {chunk.where_sql()}")

    def count_range(self, chunk: Chunk) -> int:
        return self.context.count_range(chunk)

    def add_deferred_indexes(self, chunk: Chunk) -> int:
        """The table's deferred secondary indexes that the target lacks, in one ALTER; returns how many."""
        table = self.context.table(chunk)
        target = self.context.target_session()
        wanted = deferred_indexes(self.context.snapshot_session(), table)
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
                copied = self.paths[method].copy(chunk, DefaultsFiles(dump_cnf, load_cnf))
            except Exception as exc:
                transient = is_transient(exc) or (
                    isinstance(exc, ChunkCopyFailed)
                    and any(code in exc.message for code in TRANSIENT_TOOL_ERRORS)
                )
                self.context.drop_sessions()
                if transient and attempt < self.attempts:
                    self.log.warning(
                        "copy.chunk_retry", chunk=chunk.chunk_id(), attempt=attempt, error=str(exc)
                    )
                    continue
                if isinstance(exc, ChunkCopyFailed):
                    raise
                raise ChunkCopyFailed(chunk, f"{type(exc).__name__}: {exc}") from exc
            return ChunkResult(chunk, copied.rows, copied.bytes, self.monotonic() - started, attempt)
        raise AssertionError("unreachable")

    # --- many chunks -------------------------------------------------------------------------
    def copy(self, chunks: Sequence[Chunk]) -> CopyReport:
        started = self.monotonic()
        pending = [c for c in chunks if not self.ledger.is_done(c.chunk_id())]
        skipped = len(chunks) - len(pending)
        rows = written = done = 0
        if pending:
            self.context.binlog_off = self._probe_binlog_off()
            self._local_infile = self._probe_local_infile()
        self.log.info(
            "copy.start",
            chunks=len(chunks),
            skipped=skipped,
            workers=self.workers,
            target_binlog=not self.context.binlog_off,
            select=self.load_data_path.select_name,
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
            product = self.context.tools.product
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
                self.context.close_sessions()
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
