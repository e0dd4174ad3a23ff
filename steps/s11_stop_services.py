"""Step 11: stop streaming and applying; the target now holds the source's final position."""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.services import APPLIER, STREAMER
from migrator.step import Check, StepContext

NUMBER = 11
NAME = "stop-services"
NEEDS: tuple[str, ...] = ("final_position",)


def describe(config: Config) -> str:
    return "stop the binlog applier and the streamer (the archive stays on disk)"


def check(ctx: StepContext) -> Check:
    services = ctx.journal.services()
    running = [n for n in (APPLIER, STREAMER) if services.get(n, ("stopped", None))[0] == "running"]
    if running:
        return Check(False, f"still running: {', '.join(running)}")
    return Check(True, "streamer and applier stopped", {"services_stopped": True})


def run(ctx: StepContext) -> dict[str, Any]:
    ctx.services.stop(APPLIER)
    ctx.services.stop(STREAMER)
    return {"services_stopped": True}
