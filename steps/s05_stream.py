"""Step 5: the source's binlogs stream to local disk from the snapshot's file, as a supervised service."""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.services import HEARTBEAT, STREAMER
from migrator.step import Check, StepContext
from migrator.tools.binlog_streamer import check_source_has

NUMBER = 5
NAME = "stream-binlogs"
NEEDS: tuple[str, ...] = ("snapshot",)


def describe(config: Config) -> str:
    return (
        "start mysqlbinlog --read-from-remote-server --raw --stop-never (server id "
        f"{config.binlog.streamer_server_id}) into {config.archive_dir}, from the snapshot's file; "
        f"start the heartbeat writer (_migrator.heartbeat every {config.sync.heartbeat_seconds:g} s)"
    )


def _archived(ctx: StepContext) -> bool:
    snapshot = ctx.fact("snapshot")
    streamer = ctx.services.streamer
    if streamer is None:
        return False
    return any(
        f.name == snapshot["file"] and f.size >= int(snapshot["position"]) for f in streamer.archived_files()
    )


def check(ctx: StepContext) -> Check:
    services = ctx.journal.services()
    desired = services.get(STREAMER, ("stopped", None))[0]
    # The heartbeat too: a kill between the two starts left it unrecorded, so no resume restarts it and
    # step 8 would wait forever for a heartbeat lag (found by the fault suite's kill-in-step trials).
    heartbeat = services.get(HEARTBEAT, ("stopped", None))[0]
    streaming = ctx.services.streamer is not None and ctx.services.streamer.is_running()
    if desired == "running" and heartbeat == "running" and streaming and _archived(ctx):
        return Check(
            True,
            "streamer running and the snapshot's file is archived",
            {"streamer_server_id": ctx.config.binlog.streamer_server_id},
        )
    return Check(False, "streamer not running")


def run(ctx: StepContext) -> dict[str, Any]:
    snapshot = ctx.fact("snapshot")
    with ctx.source() as s:
        check_source_has(s, snapshot["file"])
    ctx.services.start(STREAMER)
    ctx.services.start(HEARTBEAT)
    ctx.wait(
        "first-file",
        lambda: _archived(ctx),
        timeout=120,
        interval=0.2,
        what=f"binlog {snapshot['file']} to arrive in {ctx.config.archive_dir}",
    )
    return {"streamer_server_id": ctx.config.binlog.streamer_server_id}
