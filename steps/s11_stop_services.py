"""Step 11: stop the applier; the target now holds the source's final position.

The streamer keeps copying the source's binlog until `migrator finish`: anything written to a
migrated schema there from now on is a stray write, raised as an alarm (migrator/source_watch.py).
"""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.services import APPLIER
from migrator.step import Check, StepContext

NUMBER = 11
NAME = "stop-services"
NEEDS: tuple[str, ...] = ("final_position",)


def describe(config: Config) -> str:
    return (
        "stop the binlog applier; the streamer keeps reading the source until `migrator finish`, so a write "
        "to a migrated schema after the final position raises an alarm (status, journal)"
    )


def check(ctx: StepContext) -> Check:
    services = ctx.journal.services()
    if services.get(APPLIER, ("stopped", None))[0] == "running":
        return Check(False, "the applier is still running")
    return Check(True, "applier stopped", {"services_stopped": True})


def run(ctx: StepContext) -> dict[str, Any]:
    ctx.services.stop(APPLIER)
    return {"services_stopped": True}
