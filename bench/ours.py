"""Our side of each comparison, run in a child process so its peak RSS is its own.

Each ``run_*`` function does what the product does at that step (the same calls as steps 6, 7 and
10) and returns seconds measured around the work only, plus the child's peak RSS.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.copy import ChunkCopier
from migrator.copy.planning import plan_copy
from migrator.endpoint import Endpoint
from migrator.journal import Journal
from migrator.mysql.checksum import compare_tables
from migrator.mysql.chunking import Chunk
from migrator.mysql.flavour import MARIADB_10_11, detect
from migrator.mysql.schema import base_tables, copy_schema
from migrator.mysql.session import MySQLSession
from migrator.ports import SnapshotCoordinates
from migrator.tools.binlog_applier import BinlogApplier
from steps.s06_copy import JournalChunkLedger


@dataclass(frozen=True)
class Outcome:
    seconds: float
    rss_mb: float  # peak RSS of the child (the orchestrator)
    tools_rss_mb: float  # peak RSS of the largest tool process it ran (mariadb-dump, mariadb, ...)
    detail: dict[str, Any]


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # KiB on Linux


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return round(usage.ru_utime + usage.ru_stime, 2)


def _outcome(seconds: float, detail: dict[str, Any]) -> Outcome:
    detail = {**detail, "cpu_self": _cpu(resource.RUSAGE_SELF), "cpu_tools": _cpu(resource.RUSAGE_CHILDREN)}
    return Outcome(seconds, _peak_mb(resource.RUSAGE_SELF), _peak_mb(resource.RUSAGE_CHILDREN), detail)


def run_copy(
    snapshot: Endpoint,
    target: Endpoint,
    schemas: list[str],
    *,
    journal_path: Path,
    secrets_dir: Path,
    workers: int,
    chunk_mb: int,
    options: dict[str, Any],
) -> Outcome:
    """Step 6's code path: copy_schema, plan_chunks (once, journaled), ChunkCopier with the journal ledger."""
    started = time.monotonic()
    journal = Journal.open(journal_path)
    try:
        with MySQLSession(snapshot) as snap, MySQLSession(target) as tgt:
            copy_schema(snap, tgt, schemas)
            if not journal.chunk_plan():
                chunks = plan_copy(snap, base_tables(snap, schemas), chunk_mb * 1024 * 1024, workers=workers,
                                   connect=lambda: MySQLSession(snapshot))
                journal.save_chunk_plan([(c.chunk_id(), c.schema, c.table, c.to_json()) for c in chunks])
        plan = [Chunk.from_json(spec) for _, spec in journal.chunk_plan()]
        copier = ChunkCopier(
            snapshot,
            target,
            MARIADB_10_11,
            workers=workers,
            ledger=JournalChunkLedger(journal),
            secrets_dir=secrets_dir,
            **options,
        )
        report = copier.copy(plan)
        progress = journal.copy_progress()
    finally:
        journal.close()
    return _outcome(
        time.monotonic() - started,
        {**progress, "rows": report.rows, "chunks": len(plan), "chunks_done_now": report.chunks_done},
    )


def run_apply(
    target: Endpoint, archive_dir: Path, start: tuple[str, int], *, secrets_dir: Path, schemas: list[str]
) -> Outcome:
    """Step 7's applier, one synchronous pass over the archive from ``start``."""
    applier = BinlogApplier(
        target,
        archive_dir,
        MARIADB_10_11,
        schemas=frozenset(schemas),
        start=SnapshotCoordinates(file=start[0], position=start[1], gtid=None),
        secrets_dir=secrets_dir,
    )
    applier.ensure_position_table()
    started = time.monotonic()
    progress = applier.apply_available()
    seconds = time.monotonic() - started
    applier.close()
    return _outcome(seconds, {"transactions": progress.transactions, "position": list(progress.position)})


def run_verify(source: Endpoint, target: Endpoint, schemas: list[str], *, workers: int) -> Outcome:
    """Step 10's comparison: compare_tables over every base table, CHECKSUM TABLE first as step 10
    does when both servers run the same version (cutover.whole_table_checksums, the default)."""
    with MySQLSession(source) as s, MySQLSession(target) as t:
        tables = base_tables(s, schemas)
        same_version = detect(str(s.value("SELECT VERSION()"))) == detect(str(t.value("SELECT VERSION()")))
    started = time.monotonic()
    report = compare_tables(source, target, tables, workers=workers, whole_tables=same_version)
    seconds = time.monotonic() - started
    return _outcome(
        seconds,
        {
            "rows": report.rows,
            "chunks": report.chunks,
            "whole_tables": report.whole_tables,
            "ok": report.ok,
            "mismatches": len(report.mismatches),
        },
    )


def _child(queue: Any, fn: Callable[..., Outcome], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        queue.put(("ok", fn(*args, **kwargs)))
    except BaseException as exc:  # reported to the parent, which raises it
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


class ChildFailed(RuntimeError):
    pass


def start_child(fn: Callable[..., Outcome], *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """Start ``fn`` in a fresh interpreter (spawn: no inherited threads or RSS); returns (process, queue)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, fn, args, kwargs), daemon=False)
    process.start()
    return process, queue


def finish_child(process: Any, queue: Any) -> Outcome:
    status, value = queue.get()
    process.join()
    if status != "ok":
        raise ChildFailed(value)
    assert isinstance(value, Outcome)
    return value


def in_child(fn: Callable[..., Outcome], *args: Any, **kwargs: Any) -> Outcome:
    return finish_child(*start_child(fn, *args, **kwargs))
