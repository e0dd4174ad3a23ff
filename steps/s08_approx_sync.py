"""Step 8: the target is approximately in sync: lag in bytes and seconds under the thresholds."""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.mysql.checksum import row_counts
from migrator.mysql.schema import base_tables
from migrator.step import Check, StepContext
from migrator.sync_status import SyncStatus, measure

NUMBER = 8
NAME = "approx-sync"
NEEDS: tuple[str, ...] = ("snapshot", "apply_started_at")


def describe(config: Config) -> str:
    return (
        f"wait until lag <= {config.sync.max_lag_bytes} bytes and <= {config.sync.max_lag_seconds:g} s "
        f"(heartbeat), up to {config.sync.timeout_seconds} s; compare row counts per table"
    )


def _status(ctx: StepContext) -> SyncStatus:
    with ctx.source() as s, ctx.target() as t:
        return measure(s, t, ctx.source_flavour)


def _close_enough(ctx: StepContext, status: SyncStatus) -> bool:
    cfg = ctx.config.sync
    return (
        status.lag_bytes is not None
        and status.lag_bytes <= cfg.max_lag_bytes
        and status.lag_seconds is not None
        and status.lag_seconds <= cfg.max_lag_seconds
    )


def check(ctx: StepContext) -> Check:
    return Check(False, "lag is measured afresh on every run")


def run(ctx: StepContext) -> dict[str, Any]:
    last: list[SyncStatus] = []

    def close_enough() -> bool:
        status = _status(ctx)
        last[:] = [status]
        ctx.log.info("sync.lag", **status.as_dict())
        return _close_enough(ctx, status)

    ctx.wait(
        "lag",
        close_enough,
        timeout=ctx.config.sync.timeout_seconds,
        interval=1.0,
        what="the target to be within the lag thresholds",
    )
    schemas = list(ctx.config.migration.schemas)
    with ctx.source() as s, ctx.target() as t:
        tables = base_tables(s, schemas)
        src, tgt = row_counts(s, tables), row_counts(t, tables)
    diff = {k: src[k] - tgt.get(k, 0) for k in src if src[k] != tgt.get(k, 0)}
    ctx.log.info("sync.row_counts", tables=len(src), rows=sum(src.values()), differing=diff)
    return {"approx_sync": {**last[0].as_dict(), "rows_source": sum(src.values()), "count_diff": diff}}
