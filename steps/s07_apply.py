"""Step 7: apply the streamed binlogs to the target from the snapshot's coordinates, continuously.

The applied position lives in the target (`_migrator.apply_position`) and commits in the same
transaction as the rows it covers: a crash at any byte neither skips nor repeats a transaction.
"""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.services import APPLIER
from migrator.step import Check, StepContext

NUMBER = 7
NAME = "apply-binlogs"
NEEDS: tuple[str, ...] = ("snapshot", "copy")


def describe(config: Config) -> str:
    return (
        "start the applier: mysqlbinlog on the archived files from the snapshot's coordinates, each source "
        f"transaction (grouped up to {config.sync.group_commit}) committed on the target together with "
        "_migrator.apply_position; RDS heartbeat writes and other schemas skipped"
    )


def check(ctx: StepContext) -> Check:
    desired = ctx.journal.services().get(APPLIER, ("stopped", None))[0]
    thread = ctx.services._applier_thread
    if desired == "running" and thread is not None and thread.is_alive():
        # A resume restarts the applier before this check: the fact step 8 needs must come from here too.
        started = ctx.journal.fact("apply_started_at")
        if started is None:
            started = list(ctx.services.applied_position())
        return Check(True, "applier running", {"apply_started_at": started})
    return Check(False, "applier not running")


def run(ctx: StepContext) -> dict[str, Any]:
    ctx.services.start(APPLIER)
    file, pos = ctx.services.applied_position()
    ctx.log.info("apply.started", file=file, position=pos)
    return {"apply_started_at": [file, pos]}
