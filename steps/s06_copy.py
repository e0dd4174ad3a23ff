"""Step 6: copy schema, then data, from the frozen snapshot to the target in primary-key chunks."""

from __future__ import annotations

import time
from typing import Any

from migrator.config import Config
from migrator.copy import ChunkCopier, CopyProgress
from migrator.copy.planning import MIN_CHUNK_TIMEOUT, LazyPlanner, chunk_timeout, copy_order
from migrator.errors import PreflightFailed
from migrator.journal import Journal
from migrator.mysql.chunking import Chunk
from migrator.mysql.heartbeat import SCHEMA as HEARTBEAT_SCHEMA
from migrator.mysql.schema import TableInfo, copy_schema, target_is_empty
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
        f"{config.copy.workers} parallel mysqldump|mysql pipes, one target transaction and one journal row per chunk"
    )


class JournalChunkLedger:
    """The journal as the copier's ledger: a chunk is done only after the target committed it."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def is_done(self, chunk_id: str) -> bool:
        return self.journal.chunk_status(chunk_id) == "done"

    def mark_started(self, chunk: Chunk) -> None:
        self.journal.mark_chunk(chunk.chunk_id(), "started")

    def mark_done(self, chunk: Chunk, rows: int, bytes: int) -> None:
        self.journal.mark_chunk(chunk.chunk_id(), "done", rows, bytes)


PLAN_COMPLETE = "copy_plan_complete"


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
        with ctx.snapshot() as snapshot:
            # One catalog read for every table; the plan and the copier use these layouts (review C2).
            tables = copy_order(copy_schema(snapshot, target, schemas))
    total_tables = max(1, len(tables))
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
        ctx.services.check()

    copier = ChunkCopier(
        ctx.platform.replica_handle(ctx.fact("replica_id")).endpoint,
        cfg.target,
        ctx.source_flavour,
        workers=cfg.copy.workers,
        ledger=JournalChunkLedger(ctx.journal),
        secrets_dir=cfg.secrets_dir,
        on_progress=on_progress,
        log=ctx.log,
        # Each attempt deletes and reloads the chunk: cheap. Two were too few for a network that
        # resets twice within a minute (the fault suite's net-cut trials).
        attempts=5,
        # A chunk that takes this long is stuck, not slow (a target out of disk waits forever for space):
        # stop with a message instead of hanging; the resume reloads the chunk. Set per batch below.
        chunk_timeout=max(MIN_CHUNK_TIMEOUT, cfg.copy.chunk_mb * 30.0),
    )
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
        copier.chunk_timeout = max(
            chunk_timeout(t, by_table.get((t.schema, t.name), []), cfg.copy.chunk_mb * 1024 * 1024) for t in batch
        )
        copier.use_tables(batch)
        report = copier.copy(chunks)
        copier.forget_tables(batch)
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
