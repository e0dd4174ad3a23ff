"""Step 2: a read replica of the source exists and has caught up.

Binlog retention is raised first (a preflight of step 4): RDS keeps no binlogs by default, and the
file at the coordinates step 3 notes must still exist when streaming starts.
"""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.mysql import heartbeat
from migrator.services import HEARTBEAT
from migrator.step import Check, StepContext

NUMBER = 2
NAME = "replica"
NEEDS: tuple[str, ...] = ()


def replica_id(config: Config) -> str:
    return config.rds.replica_instance if config.rds else f"{config.migration.name}-snapshot"


def describe(config: Config) -> str:
    where = "an RDS read replica (CreateDBInstanceReadReplica)" if config.rds else "a local mariadbd replica"
    return (
        f"raise the source's binlog retention to {config.binlog.retention_hours} h (recording the old value), "
        f"create {where} named {replica_id(config)!r} and wait until it is available and has no lag "
        f"(up to {config.sync.replica_timeout_seconds} s, sync.replica_timeout_seconds)"
    )


def _caught_up(ctx: StepContext, identifier: str) -> bool:
    state = ctx.platform.replica_state(identifier)
    return state.available and state.replicating and state.lag_seconds is not None and state.lag_seconds == 0


def check(ctx: StepContext) -> Check:
    identifier = replica_id(ctx.config)
    state = ctx.platform.replica_state(identifier)
    if not state.exists:
        return Check(False, f"replica {identifier!r} does not exist yet")
    if ctx.journal.fact("binlog_retention_previous") is None:
        return Check(False, "binlog retention not yet raised")
    if _caught_up(ctx, identifier):
        return Check(True, f"replica {identifier!r} is replicating with no lag", {"replica_id": identifier})
    return Check(False, f"replica {identifier!r} exists but has not caught up")


def run(ctx: StepContext) -> dict[str, Any]:
    cfg = ctx.config
    if ctx.journal.fact("binlog_retention_previous") is None:
        previous = ctx.platform.binlog_retention_hours()
        # JSON null is "RDS default: not retained"; record it as a fact before changing anything.
        ctx.put_fact("binlog_retention_previous", {"hours": previous})
    current = ctx.platform.binlog_retention_hours()
    if current is None or current < cfg.binlog.retention_hours:
        ctx.platform.set_binlog_retention_hours(cfg.binlog.retention_hours)
        ctx.log.info("binlog.retention_raised", hours=cfg.binlog.retention_hours, previous=current)
    with ctx.source() as source:
        heartbeat.ensure_table(source)  # in the snapshot, so the target gets the table by the copy
    # Beating before the replica stops: step 3 records the replicated beat, and a beat that moves
    # after the stop proves replication ran past the coordinates (review A3).
    ctx.services.start(HEARTBEAT)
    identifier = replica_id(cfg)
    ctx.put_fact("replica_id", identifier)  # before creating: a resume adopts instead of creating another
    ctx.platform.create_replica(identifier)
    ctx.wait(
        "replica-in-sync",
        lambda: _caught_up(ctx, identifier),
        # Its own budget (review C5): an RDS replica of 4 TB takes hours to be created and catch up.
        timeout=cfg.sync.replica_timeout_seconds,
        interval=1.0,
        what=f"replica {identifier!r} to become available and catch up",
    )
    return {"replica_id": identifier}
