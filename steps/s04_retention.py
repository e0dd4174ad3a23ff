"""Step 4: the source retains binlogs long enough, and still has the snapshot's file."""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.errors import BinlogGap
from migrator.mysql.positions import binary_logs
from migrator.step import Check, StepContext

NUMBER = 4
NAME = "binlog-retention"
NEEDS: tuple[str, ...] = ("snapshot",)


def describe(config: Config) -> str:
    how = (
        "mysql.rds_set_configuration('binlog retention hours', N)"
        if config.rds
        else "binlog_expire_logs_seconds"
    )
    return (
        f"confirm binlog retention >= {config.binlog.retention_hours} h ({how}), confirm SHOW BINARY LOGS still "
        f"lists the snapshot's file, then wait {config.binlog.wait_seconds} s (journaled)"
    )


def _snapshot_file_present(ctx: StepContext) -> None:
    wanted = ctx.fact("snapshot")["file"]
    with ctx.source() as s:
        names = [name for name, _ in binary_logs(s)]
    if wanted not in names:
        raise BinlogGap(
            f"the source no longer has binlog {wanted}, where the snapshot starts (first kept: "
            f"{names[0] if names else 'none'})",
            hint="the snapshot can no longer be caught up: raise binlog retention, then start over from "
            "step 2 (`migrator cleanup --confirm` and a new migration.workdir)",
        )


def check(ctx: StepContext) -> Check:
    _snapshot_file_present(ctx)
    hours = ctx.platform.binlog_retention_hours()
    if hours is None or hours < ctx.config.binlog.retention_hours:
        return Check(False, f"retention is {hours} h")
    if ctx.config.binlog.wait_seconds > 0:
        return Check(False, "the configured retention wait has not been waited")
    return Check(True, f"retention is {hours} h", {"binlog_retention_hours": hours})


def run(ctx: StepContext) -> dict[str, Any]:
    hours = ctx.platform.binlog_retention_hours()
    if hours is None or hours < ctx.config.binlog.retention_hours:
        ctx.platform.set_binlog_retention_hours(ctx.config.binlog.retention_hours)
        hours = ctx.platform.binlog_retention_hours()
    _snapshot_file_present(ctx)
    ctx.wait_out("retention-wait", ctx.config.binlog.wait_seconds, why="configured binlog.wait_seconds")
    _snapshot_file_present(ctx)
    return {"binlog_retention_hours": hours}
