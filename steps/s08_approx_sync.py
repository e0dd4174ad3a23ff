"""Step 8: the target is approximately in sync, and every table is proven equal while writes still flow.

Lag in bytes and seconds (heartbeat) under the thresholds, then the live proof's pass
(migrator/proofs.py): every table compared chunk by chunk from a position P0 the applier has
reached, and the archive read for the keys of the rows changed meanwhile. Those rows are pending
(re-verified by key in later rounds and in the pause); a difference the archive does not explain
stops the run here, naming the table and the keys. The write pause then scales with the rows
written since the last round, not with the size of the tables written to.
"""

from __future__ import annotations

from typing import Any

from migrator import proofs
from migrator.config import Config
from migrator.cutover import record_connected
from migrator.step import Check, StepContext
from migrator.sync_status import SyncStatus, measure

NUMBER = 8
NAME = "approx-sync"
NEEDS: tuple[str, ...] = ("snapshot", "apply_started_at")


def describe(config: Config) -> str:
    return (
        f"wait until lag <= {config.sync.max_lag_bytes} bytes and <= {config.sync.max_lag_seconds:g} s "
        f"(heartbeat), up to {config.sync.timeout_seconds} s; then compare chunk checksums of every table while "
        "writes continue and read from the archive the keys of the rows written meanwhile: those are re-verified "
        "by key later, any other difference stops here naming table and keys (a resumed comparison skips the "
        "tables it finished)"
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
    tables = proofs.migrated_tables(ctx)
    state = proofs.load_state(ctx, tables)
    if state is None:
        state, summary = proofs.full_pass(ctx, tables)
    else:  # a retried step 8 with its pass done: one round keeps the proof fresh
        state, compared = proofs.run_round(ctx, state, tables)
        summary = {"round": state.rounds, **compared.as_dict()}
    return {
        "approx_sync": {**lag, "rows_source": summary.get("rows", 0)},
        "preverify": {**summary, "pending_keys": state.pending.key_count(), "until": state.since.as_list()},
    }
