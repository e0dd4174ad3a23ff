"""Step 10: prove the target equals the paused source: same position, equal chunk checksums."""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.errors import VerificationFailed
from migrator.mysql.checksum import compare_tables
from migrator.mysql.heartbeat import SCHEMA as HEARTBEAT_SCHEMA
from migrator.mysql.schema import base_tables
from migrator.step import Check, StepContext
from migrator.sync_status import SyncStatus, measure

NUMBER = 10
NAME = "full-sync"
NEEDS: tuple[str, ...] = ("paused_at",)


def describe(config: Config) -> str:
    return (
        "wait until the applied position equals the paused source's binlog head "
        f"(up to {config.cutover.catchup_timeout_seconds} s), then compare COUNT + BIT_XOR(hash) per primary-key "
        "chunk of every table on source and target; any difference stops here, naming table and key range"
    )


def check(ctx: StepContext) -> Check:
    return Check(False, "equality is proven afresh on every run")


def run(ctx: StepContext) -> dict[str, Any]:
    last: list[SyncStatus] = []

    def at_head() -> bool:
        with ctx.source() as s, ctx.target() as t:
            status = measure(s, t, ctx.source_flavour)
        last[:] = [status]
        return status.at_head

    ctx.wait(
        "catch-up",
        at_head,
        timeout=ctx.config.cutover.catchup_timeout_seconds,
        interval=0.1,
        what="the applier to reach the paused source's final position",
    )
    final = last[0].source_head
    ctx.put_fact("final_position", final.as_list())
    schemas = [s for s in ctx.config.migration.schemas if s != HEARTBEAT_SCHEMA]
    with ctx.source() as s:
        tables = base_tables(s, schemas)
    report = compare_tables(
        ctx.config.source, ctx.config.target, tables, workers=ctx.config.sync.checksum_workers
    )
    with ctx.source() as s, ctx.target() as t:
        after = measure(s, t, ctx.source_flavour)
    if after.source_head != final:
        raise VerificationFailed(
            f"the source's binlog moved from {final} to {after.source_head} while writes were paused",
            hint="something still writes to the source (an event, a SUPER user, a missed app): stop it, then "
            "`migrator run` verifies again",
        )
    if not report.ok:
        first = report.mismatches[:5]
        detail = "; ".join(
            f"{m.schema}.{m.table} keys [{m.lower}, {m.upper}) source {m.source_count} rows vs target "
            f"{m.target_count}, differing keys {list(m.differing_keys)[:10]}"
            for m in first
        )
        raise VerificationFailed(
            f"{len(report.mismatches)} chunk(s) differ between source and target: {detail}",
            hint="the target is not a faithful copy; do not cut over. `migrator verify` shows the same detail",
        )
    ctx.log.info(
        "verify.equal", tables=len(tables), rows=report.rows, chunks=report.chunks, seconds=report.seconds
    )
    return {
        "final_position": final.as_list(),
        "verification": {
            "tables": len(tables),
            "rows": report.rows,
            "chunks": report.chunks,
            "seconds": round(report.seconds, 2),
            "ok": True,
        },
    }
