"""Step 6: copy schema, then data, from the frozen snapshot to the target in primary-key chunks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from migrator.config import Config
from migrator.copy import ChunkCopier, CopyProgress
from migrator.copy.planning import MIN_CHUNK_TIMEOUT, LazyPlanner, chunk_timeout, copy_order
from migrator.errors import PreflightFailed
from migrator.journal import Journal
from migrator.mysql.chunking import Chunk
from migrator.mysql.heartbeat import SCHEMA as HEARTBEAT_SCHEMA
from migrator.mysql.schema import TableInfo, base_tables, copy_schema, missing_tables, target_is_empty
from migrator.mysql.session import MySQLSession
from migrator.step import Check, StepContext
from steps.s03_snapshot import prove_snapshot

NUMBER = 6
NAME = "copy"
NEEDS: tuple[str, ...] = ("snapshot", "replica_id")


def describe(config: Config) -> str:
    return (
        f"copy the schemas {', '.join(config.migration.schemas)} from the snapshot to the target: sequences (with "
        f"their state) and tables first (no views/routines/triggers/events), then data in "
        f"~{config.copy.chunk_mb} MB primary-key chunks with "
        f"{config.copy.workers} parallel mysqldump|mysql pipes (tables up to 2 MB: one SELECT and one INSERT each),"
        " one target transaction and one journal row per chunk"
    )


class JournalChunkLedger:
    """The journal as the copier's ledger: a chunk is done only after the target committed it.

    Done chunks are journaled in groups (every ``FLUSH_CHUNKS`` chunks or ``FLUSH_SECONDS``, and by
    flush() when a copy ends or fails): one fsync per chunk in the dispatching thread cost 1 ms a
    chunk, 10 s at 10,000 tables. A crash loses at most the group's marks, and a resume reloads those
    chunks (each attempt clears its range first), so nothing is lost or doubled.
    """

    FLUSH_CHUNKS = 64
    FLUSH_SECONDS = 0.5

    def __init__(self, journal: Journal, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.journal = journal
        self.monotonic = monotonic
        self._pending: dict[str, tuple[int, int]] = {}
        self._since = 0.0

    def is_done(self, chunk_id: str) -> bool:
        return chunk_id in self._pending or self.journal.chunk_status(chunk_id) == "done"

    def mark_started(self, chunk: Chunk) -> None:
        # Not journaled: a resume reloads every chunk not done, started or not.
        pass

    def mark_done(self, chunk: Chunk, rows: int, bytes: int) -> None:
        if not self._pending:
            self._since = self.monotonic()
        self._pending[chunk.chunk_id()] = (rows, bytes)
        if len(self._pending) >= self.FLUSH_CHUNKS or self.monotonic() - self._since >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.journal.mark_chunks_done([(cid, rows, nbytes) for cid, (rows, nbytes) in self._pending.items()])
        self._pending.clear()


PLAN_COMPLETE = "copy_plan_complete"
# Tables at most this big (on the snapshot) are copied by the row path, and created with their indexes.
SMALL_TABLE_BYTES = 2 * 1024 * 1024
SERVICES_CHECK_SECONDS = 1.0


def is_small(table: TableInfo) -> bool:
    return table.size_estimate <= SMALL_TABLE_BYTES
SCHEMA_COPIED = "copy_schema_created"


def check(ctx: StepContext) -> Check:
    progress = ctx.journal.copy_progress()
    # Planned table by table: every chunk done means done only once the last table was planned.
    # (A journal from before lazy planning lacks the fact: run() then finds every table journaled.)
    planned = ctx.journal.fact(PLAN_COMPLETE) is not None
    if planned and progress["chunks"] and progress["chunks_done"] == progress["chunks"]:
        return Check(True, f"all {progress['chunks']} chunks copied", {"copy": progress})
    return Check(False, f"{progress['chunks_done']}/{progress['chunks']} chunks copied")


def _journaled_chunks(ctx: StepContext, table: TableInfo) -> list[Chunk] | None:
    specs = ctx.journal.table_chunk_plan(table.schema, table.name)
    return [Chunk.from_json(spec) for spec in specs] if specs else None


def run(ctx: StepContext) -> dict[str, Any]:
    cfg = ctx.config
    schemas = [*cfg.migration.schemas, HEARTBEAT_SCHEMA]
    started = time.monotonic()
    with ctx.target() as target:
        if not ctx.journal.copy_progress()["chunks"] and not cfg.migration.allow_nonempty_target:
            non_empty = target_is_empty(target, cfg.migration.schemas)
            if non_empty:
                raise PreflightFailed(
                    f"the target already has data in {', '.join(non_empty[:10])}",
                    hint="migrate into an empty target, or pass --allow-nonempty-target if you know why",
                )
        for sql in ctx.target_flavour.read_only_statements(True):
            target.execute(sql)  # applications must not write to the target before the cut-over
        # Copy only a snapshot still equal to its coordinates (review A3); again once the copy is done.
        prove_snapshot(ctx, when="before the copy")
        snapshot_endpoint = ctx.platform.replica_handle(ctx.fact("replica_id")).endpoint
        with MySQLSession(snapshot_endpoint) as snapshot:
            # One catalog read for every table; the plan and the copier use these layouts (review C2).
            tables: list[TableInfo] = []
            if ctx.journal.fact(SCHEMA_COPIED) is not None:
                # A resume: the snapshot is frozen and this run created every table already; unless one
                # is gone from the target since, no per-table catalog round trips (25 s per 1,000 tables).
                tables = copy_order(base_tables(snapshot, schemas))
                if missing_tables(target, tables):
                    tables = []
            if not tables:
                tables = copy_order(
                    copy_schema(
                        snapshot,
                        target,
                        schemas,
                        defer_min_bytes=SMALL_TABLE_BYTES,
                        workers=cfg.copy.workers,
                        connect_snapshot=lambda: MySQLSession(snapshot_endpoint),
                        connect_target=ctx.target,
                    )
                )
                ctx.put_fact(SCHEMA_COPIED, {"tables": len(tables)})
    total_tables = max(1, len(tables))
    checked = [0.0]
    tables_before = 0
    batch_size = 0

    def on_progress(progress: CopyProgress) -> None:
        # Over the whole copy: tables of finished batches, plus this batch's share.
        fraction = (tables_before + progress.fraction * batch_size) / total_tables
        detail = (
            f"{progress.rows:,} rows, {progress.bytes / 1e6:,.1f} MB in this batch; "
            f"table {tables_before + 1:,} of {len(tables):,}"
        )
        eta = None if fraction <= 0 else (time.monotonic() - started) * (1 - fraction) / fraction
        ctx.report("copy", fraction, 1.0, eta_seconds=eta, detail=detail)
        # Supervising the streamer writes the journal: once a second, not once a chunk.
        now = time.monotonic()
        if now - checked[0] >= SERVICES_CHECK_SECONDS:
            checked[0] = now
            ctx.services.check()

    ledger = JournalChunkLedger(ctx.journal)

    def make_copier(method: str) -> ChunkCopier:
        return ChunkCopier(
            snapshot_endpoint,
            cfg.target,
            ctx.source_flavour,
            workers=cfg.copy.workers,
            ledger=ledger,
            secrets_dir=cfg.secrets_dir,
            on_progress=on_progress,
            log=ctx.log,
            # Each attempt deletes and reloads the chunk: cheap. Two were too few for a network that
            # resets twice within a minute (the fault suite's net-cut trials).
            attempts=5,
            # A chunk that takes this long is stuck, not slow (a target out of disk waits forever for space):
            # stop with a message instead of hanging; the resume reloads the chunk. Set per batch below.
            chunk_timeout=max(MIN_CHUNK_TIMEOUT, cfg.copy.chunk_mb * 30.0),
            method=method,
        )

    # Small tables go by the row path (one SELECT and one INSERT in the worker's own sessions): two
    # client processes per chunk cost more than such a table's rows (about 50 ms a chunk, the
    # better part of step 6 at 1,000 small tables). Every chunk of a table goes the same way.
    copiers = {False: make_copier("auto"), True: make_copier("rows")}
    planner = LazyPlanner(
        ctx.snapshot,
        cfg.copy.chunk_mb * 1024 * 1024,
        workers=cfg.copy.workers,
        known=lambda table: _journaled_chunks(ctx, table),
    )
    rows = 0
    plan_seconds = 0.0
    mark = time.monotonic()
    for batch, chunks, new in planner.plan(tables):
        plan_seconds += time.monotonic() - mark
        if new:  # journaled before any of them is copied: a resume copies exactly these ranges
            ctx.journal.save_chunk_plan([(c.chunk_id(), c.schema, c.table, c.to_json()) for c in new])
        batch_size = len(batch)
        # Each batch's pipes may run as long as its biggest chunk needs (review B8): a table copied
        # whole, or hashed into buckets that each scan it, is not stuck at the old fixed budget.
        by_table: dict[tuple[str, str], list[Chunk]] = {}
        for chunk in chunks:
            by_table.setdefault((chunk.schema, chunk.table), []).append(chunk)
        for small, copier in copiers.items():
            share = [t for t in batch if is_small(t) == small]
            if not share:
                continue
            copier.chunk_timeout = max(
                chunk_timeout(t, by_table.get((t.schema, t.name), []), cfg.copy.chunk_mb * 1024 * 1024) for t in share
            )
            copier.use_tables(share)
            try:
                report = copier.copy([c for t in share for c in by_table.get((t.schema, t.name), [])])
            finally:
                ledger.flush()  # what was done is journaled, also when a chunk failed
            copier.forget_tables(share)
            rows += report.rows
        tables_before += len(batch)
        mark = time.monotonic()
    prove_snapshot(ctx, when="after the copy")
    ctx.put_fact(PLAN_COMPLETE, {"tables": len(tables)})
    progress: dict[str, float] = dict(ctx.journal.copy_progress())
    progress["seconds"] = round(time.monotonic() - started, 2)
    progress["planning_wait_seconds"] = round(plan_seconds, 2)
    progress["tables"] = len(tables)
    ctx.log.info("copy.done", rows=rows, tables=len(tables), seconds=progress["seconds"])
    return {"copy": progress}
