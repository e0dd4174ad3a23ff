"""Step 6: copy schema, then data, from the frozen snapshot to the target in primary-key chunks."""

from __future__ import annotations

import time
from typing import Any

from migrator.config import Config
from migrator.errors import PreflightFailed
from migrator.journal import Journal
from migrator.mysql.chunking import Chunk, plan_copy
from migrator.mysql.heartbeat import SCHEMA as HEARTBEAT_SCHEMA
from migrator.mysql.schema import base_tables, copy_schema, target_is_empty
from migrator.step import Check, StepContext
from migrator.tools.dump_pipe import ChunkCopier, CopyProgress

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


def check(ctx: StepContext) -> Check:
    progress = ctx.journal.copy_progress()
    if progress["chunks"] and progress["chunks_done"] == progress["chunks"]:
        return Check(True, f"all {progress['chunks']} chunks copied", {"copy": progress})
    return Check(False, f"{progress['chunks_done']}/{progress['chunks']} chunks copied")


def run(ctx: StepContext) -> dict[str, Any]:
    cfg = ctx.config
    schemas = [*cfg.migration.schemas, HEARTBEAT_SCHEMA]
    started = time.monotonic()
    with ctx.target() as target:
        if not ctx.journal.chunk_plan() and not cfg.migration.allow_nonempty_target:
            non_empty = target_is_empty(target, cfg.migration.schemas)
            if non_empty:
                raise PreflightFailed(
                    f"the target already has data in {', '.join(non_empty[:10])}",
                    hint="migrate into an empty target, or pass --allow-nonempty-target if you know why",
                )
        for sql in ctx.target_flavour.read_only_statements(True):
            target.execute(sql)  # applications must not write to the target before the cut-over
        with ctx.snapshot() as snapshot:
            copy_schema(snapshot, target, schemas)
            if not ctx.journal.chunk_plan():
                chunks = plan_copy(
                    snapshot,
                    base_tables(snapshot, schemas),
                    cfg.copy.chunk_mb * 1024 * 1024,
                    workers=cfg.copy.workers,
                    connect=ctx.snapshot,
                )
                ctx.journal.save_chunk_plan([(c.chunk_id(), c.schema, c.table, c.to_json()) for c in chunks])
    plan = [Chunk.from_json(spec) for _, spec in ctx.journal.chunk_plan()]

    def on_progress(progress: CopyProgress) -> None:
        detail = f"{progress.rows:,} rows, {progress.bytes / 1e6:,.1f} MB"
        ctx.report("copy", progress.fraction, 1.0, eta_seconds=progress.eta_seconds, detail=detail)
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
        # stop with a message instead of hanging; the resume reloads the chunk.
        chunk_timeout=max(300.0, cfg.copy.chunk_mb * 30.0),
    )
    report = copier.copy(plan)
    progress: dict[str, float] = dict(ctx.journal.copy_progress())
    progress["seconds"] = round(time.monotonic() - started, 2)
    ctx.log.info("copy.done", rows=report.rows, bytes=report.bytes, seconds=report.seconds)
    return {"copy": progress}
