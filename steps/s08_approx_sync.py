"""Step 8: the target is approximately in sync, and every table is proven equal while writes still flow.

Lag in bytes and seconds (heartbeat) under the thresholds, then a checksum pass over every table
from a position P0 the applier has reached. A table with no binlog events after P0 is frozen on
both sides, so its comparison is exact; step 10 (writes paused) re-checks only the tables that
differed or changed since. The write pause then scales with the recent writes, not the database.
"""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.cutover import record_connected
from migrator.mysql.checksum import compare_tables
from migrator.mysql.positions import position_key, source_head
from migrator.mysql.schema import base_tables
from migrator.step import Check, StepContext
from migrator.sync_status import SyncStatus, applied_position, measure
from migrator.tools.binlog_changes import tables_changed

NUMBER = 8
NAME = "approx-sync"
NEEDS: tuple[str, ...] = ("snapshot", "apply_started_at")


def describe(config: Config) -> str:
    return (
        f"wait until lag <= {config.sync.max_lag_bytes} bytes and <= {config.sync.max_lag_seconds:g} s "
        f"(heartbeat), up to {config.sync.timeout_seconds} s; then compare chunk checksums of every table while "
        "writes continue, so that step 10 re-checks only tables changed since"
    )


def check(ctx: StepContext) -> Check:
    return Check(False, "lag is measured afresh on every run")


def run(ctx: StepContext) -> dict[str, Any]:
    sync = ctx.config.sync
    last: list[SyncStatus] = []

    def close_enough() -> bool:
        with ctx.source() as s, ctx.target() as t:
            status = measure(s, t, ctx.source_flavour)
            record_connected(ctx.journal, s, NUMBER)  # who uses the source: step 14 checks they can log in
        last[:] = [status]
        ctx.log.info("sync.lag", **status.as_dict())
        return (
            status.lag_bytes is not None
            and status.lag_bytes <= sync.max_lag_bytes
            and status.lag_seconds is not None
            and status.lag_seconds <= sync.max_lag_seconds
        )

    ctx.wait(
        "lag",
        close_enough,
        timeout=sync.timeout_seconds,
        interval=1.0,
        what="the target to be within the lag thresholds",
    )
    lag = last[0].as_dict()

    with ctx.source() as s:
        p0 = source_head(s, ctx.source_flavour)
        tables = base_tables(s, list(ctx.config.migration.schemas))

    def applied_p0() -> bool:
        with ctx.target() as t:
            applied = applied_position(t)
        return applied is not None and position_key(applied) >= position_key(p0)

    ctx.wait(
        "reach-p0",
        applied_p0,
        timeout=sync.timeout_seconds,
        interval=0.2,
        what=f"the applier to reach {p0} before the live checksum pass",
    )
    report = compare_tables(ctx.config.source, ctx.config.target, tables, workers=sync.checksum_workers)
    with ctx.target() as t:
        p1 = applied_position(t)
    assert p1 is not None
    changed = tables_changed(ctx.config.archive_dir, ctx.source_flavour, p0, p1)
    differing = {(m.schema, m.table) for m in report.mismatches}
    proven = (
        []
        if changed is None
        else [[t.schema, t.name] for t in tables if (t.schema, t.name) not in differing | changed]
    )
    ctx.log.info(
        "sync.preverified",
        tables=len(tables),
        proven=len(proven),
        differing=len(differing),
        changed=None if changed is None else len(changed),
        seconds=round(report.seconds, 2),
    )
    return {
        "approx_sync": {**lag, "rows_source": report.rows, "rows_target": report.target_rows},
        "preverify": {
            "from": p0.as_list(),
            "until": list(p1),
            "proven": proven,
            "tables": len(tables),
            "seconds": round(report.seconds, 2),
        },
    }
