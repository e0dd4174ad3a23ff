"""Step 14: writes resume, now on the target; report the write-pause window.

After the resume: the rollback window opens (the source replicates the target from the position noted
at the switch), and the application's sessions left on the source get the grace period, then are
ended; the connection tail (switch until the last one left) is journaled apart from the pause.
"""

from __future__ import annotations

from typing import Any

from migrator import cutover, rollback, source_sessions, source_watch
from migrator.config import Config
from migrator.hooks import run_hook
from migrator.mysql import routines
from migrator.step import Check, StepContext

NUMBER = 14
NAME = "resume-writes"
NEEDS: tuple[str, ...] = ("paused_at", "dns_switch_change")


def describe(config: Config) -> str:
    hook = (
        f"; run the resume hook {' '.join(config.cutover.resume_hook)!r}"
        if config.cutover.resume_hook
        else ""
    )
    window = (
        "; open the rollback window: the source replicates the target from the position noted at the switch "
        + ("(mysql.rds_set_external_master / rds_set_external_source on 8.4, mysql.rds_start_replication)"
           if config.rds else "(CHANGE MASTER TO + START SLAVE on the source: SUPER or REPLICATION SLAVE ADMIN)")
        + " until `migrator finish`"
        if config.rollback.enabled
        else "; no rollback window ([rollback] enabled = false)"
    )
    kill = "CALL mysql.rds_kill" if config.rds else "KILL CONNECTION (SUPER or CONNECTION ADMIN on the source)"
    return (
        f"refuse while an account seen connected to the source is missing on the target; "
        f"set the target writable (read_only=OFF); enable the events enabled on the source (created DISABLED by "
        f"step 12){hook}; report the write pause (step 9 to now){window}; "
        f"give the application's sessions on the source {config.cutover.connection_grace_seconds} s after the "
        f"switch, then end them ({kill}); report the connection tail"
    )


def _target_writable(ctx: StepContext) -> bool:
    with ctx.target() as t:
        return str(t.variable("read_only")).upper() in ("OFF", "0")


def check(ctx: StepContext) -> Check:
    resumed = ctx.journal.fact("resumed_at")
    if ctx.journal.fact("connection_tail") is None:
        return Check(False, "the application's sessions on the source are not settled yet")
    if resumed is not None and _target_writable(ctx):
        return Check(
            True,
            "target writable",
            {"resumed_at": resumed, "write_pause_seconds": ctx.journal.fact("write_pause_seconds")},
        )
    return Check(False, "target still read-only")


def run(ctx: StepContext) -> dict[str, Any]:
    if ctx.journal.fact("resumed_at") is not None and _target_writable(ctx):
        resumed = {"resumed_at": ctx.fact("resumed_at"), "write_pause_seconds": ctx.fact("write_pause_seconds")}
        return {**resumed, **_after_resume(ctx)}  # re-entered after a crash past the resume
    with ctx.target() as t:
        cutover.refuse_missing_accounts(ctx.config, ctx.journal, t)  # the application must be able to log in
        for sql in ctx.target_flavour.read_only_statements(False):
            t.execute(sql)
        schemas = list(ctx.config.migration.schemas)
        with ctx.source() as s:
            enabled = routines.enabled_events(s, schemas)
        for ref in enabled:
            routines.enable_event(t, ref)
    resumed_at = ctx.clock.now()
    pause = round(resumed_at - float(ctx.fact("paused_at")), 3)
    cut = ctx.config.cutover
    context = {
        "target_host": ctx.config.target.host,
        "target_port": str(ctx.config.target.port),
        "event": "resume",
    }
    run_hook(cut.resume_hook, context, timeout=cut.hook_timeout_seconds)
    ctx.log.info("writes.resumed", on=ctx.config.target.describe(), write_pause_seconds=pause)
    ctx.put_fact("resumed_at", resumed_at)  # journaled now: what follows must not stretch the pause
    ctx.put_fact("write_pause_seconds", pause)
    return {"resumed_at": resumed_at, "write_pause_seconds": pause, **_after_resume(ctx)}


def _after_resume(ctx: StepContext) -> dict[str, Any]:
    """Open the rollback window, then settle the sessions left on the source; watch it for stray writes."""
    window = rollback.open_window(ctx.config, ctx.journal, ctx.platform, clock=ctx.clock, log=ctx.log)  # type: ignore[arg-type]
    switched_at = float(ctx.fact("switched_at"))
    tail = source_sessions.ConnectionTail(
        switched_at=switched_at,
        grace_seconds=ctx.config.cutover.connection_grace_seconds,
        at_switch=dict(ctx.journal.fact("sessions_at_switch") or {}),
    )
    migration_users = frozenset({ctx.config.source.user})

    def listed() -> list[source_sessions.SourceSession]:
        with ctx.source() as s:
            return source_sessions.application_sessions(s, migration_users=migration_users)

    watch = _StrayWatch(ctx)
    source_sessions.drain(
        listed,
        ctx.platform,  # type: ignore[arg-type]
        tail,
        now=ctx.clock.now,
        sleep=ctx.clock.sleep,
        on_poll=watch.poll,
        log=ctx.log,
    )
    watch.poll(force=True)
    fact = tail.as_fact()
    ctx.put_fact("connection_tail", fact)
    ctx.log.info(
        "sessions.settled",
        tail_seconds=fact["tail_seconds"],
        ended_by_force=fact["ended_by_force"],
        remaining=fact["remaining"],
    )
    return {"connection_tail": fact, "rollback_window": window}


class _StrayWatch:
    """Every few seconds while the sessions drain: scan the archive past the final position for stray writes."""

    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.last = float("-inf")

    def poll(self, *, force: bool = False) -> None:
        ctx = self.ctx
        ctx.services.check()
        if not force and ctx.clock.monotonic() - self.last < 2.0:
            return
        self.last = ctx.clock.monotonic()
        final = ctx.journal.fact("final_position")
        if final is None:
            return
        with ctx.target() as t:
            target_id = int(t.value("SELECT @@server_id"))
        writes = source_watch.scan(
            ctx.config.archive_dir, ctx.source_flavour, (str(final[0]), int(final[1])),
            ctx.config.migration.schemas, ignore_server_ids=frozenset({target_id}),
        )
        source_watch.record(ctx.journal, writes, log=ctx.log)
