"""Step 13: point the application's DNS record at the target and wait until the change is in effect.

Before the switch, while writes are still paused and the target read-only, the target's binlog head is
noted: the rollback window (step 14 until `migrator finish`) replicates the target into the source
from there. Right after it, the application's sessions still on the source are counted by account.
"""

from __future__ import annotations

from typing import Any

from migrator import rollback, source_sessions
from migrator.config import Config
from migrator.errors import StepFailed
from migrator.ports import DnsRecord
from migrator.step import Check, StepContext

NUMBER = 13
NAME = "dns-switch"
NEEDS: tuple[str, ...] = ("paused_at", "final_position")


def describe(config: Config) -> str:
    how = (
        "UPSERT in Route53 and GetChange until INSYNC"
        if config.dns.provider == "route53"
        else "rewrite the local record"
    )
    confirm = f"; confirm through resolvers {', '.join(config.dns.resolvers)}" if config.dns.resolvers else ""
    window = ""
    if config.rollback.enabled:
        user = config.rollback.user or config.target.user
        host, port = rollback.source_to_target(config)
        window = (
            "; first note the target's binlog head for the rollback window"
            + (f" and create {user}@{config.rollback.user_host} with REPLICATION SLAVE on the target"
               if config.rollback.user else f" (the source will replicate as {user}, which needs REPLICATION SLAVE)")
            + f"; the source must reach the target at {host}:{port}"
            + ("; RDS for MySQL 8.4's caching_sha2_password replication needs [rollback] ssl = true"
               if config.rds and not config.rollback.ssl else "")
        )
    return (
        f"point {config.dns.record} at {config.dns.target_value} (TTL {config.dns.ttl} s): {how}{confirm}{window}; "
        "then count the application's sessions still on the source (PROCESS on the source)"
    )


def check(ctx: StepContext) -> Check:
    record = ctx.dns.read(ctx.config.dns.record)
    change = ctx.journal.fact("dns_switch_change")
    switched = ctx.journal.fact("switched_at")
    if (
        record.value == ctx.config.dns.target_value
        and change is not None
        and switched is not None
        and ctx.dns.in_sync(change)
    ):
        return Check(True, f"{record.name} already points at {record.value}", {"dns_switch_change": change})
    return Check(False, f"{record.name} points at {record.value}")


def _note_reverse_start(ctx: StepContext) -> None:
    if not ctx.config.rollback.enabled or ctx.journal.fact(rollback.REVERSE_START) is not None:
        return
    with ctx.source() as s, ctx.target() as t:
        ids = int(s.value("SELECT @@server_id")), int(t.value("SELECT @@server_id"))
    if ids[0] == ids[1]:
        # A replica skips events carrying its own server id: the window would silently replicate nothing.
        raise StepFailed(
            f"the source and the target both have server_id {ids[0]}: the rollback window's replication would "
            "skip every write made on the target",
            hint="give the target its own server_id (my.cnf, then restart it), or [rollback] enabled = false",
        )
    rollback.ensure_replication_account(ctx.config)
    head = rollback.note_reverse_start(ctx.config)  # the target is read-only until step 14: nothing moves it
    ctx.put_fact(rollback.REVERSE_START, head.as_list())
    ctx.log.info("rollback_window.start_noted", target_head=str(head))


def run(ctx: StepContext) -> dict[str, Any]:
    cfg = ctx.config.dns
    _note_reverse_start(ctx)
    change = ctx.journal.fact("dns_switch_change")
    record = ctx.dns.read(cfg.record)
    if ctx.journal.fact("dns_switch_started_at") is None:
        ctx.put_fact("dns_switch_started_at", ctx.clock.now())
    if change is None or record.value != cfg.target_value:
        change = ctx.dns.upsert(DnsRecord(cfg.record, cfg.target_value, cfg.ttl, record.record_type))
        ctx.put_fact("dns_switch_change", change)  # a resume re-polls this change instead of writing again
    ctx.wait(
        "in-sync",
        lambda: ctx.dns.in_sync(change),
        timeout=600,
        interval=1.0,
        what=f"the DNS change {change} to be in sync",
    )
    if cfg.resolvers:
        from migrator.dns.resolvers import disagreeing

        last: list[dict[str, set[str]]] = []

        def resolvers_agree() -> bool:
            last[:] = [disagreeing(cfg.resolvers, cfg.record, cfg.record_type, cfg.target_value)]
            return not last[0]

        ctx.wait(
            "resolvers",
            resolvers_agree,
            timeout=max(60, 2 * cfg.ttl + 30),
            interval=1.0,
            what=f"the resolvers {', '.join(cfg.resolvers)} to answer {cfg.target_value} for {cfg.record}",
        )
    switched_at = ctx.clock.now()
    dns_seconds = round(switched_at - float(ctx.fact("dns_switch_started_at")), 3)
    ours = frozenset({ctx.config.source.user})
    with ctx.source() as s:
        left = source_sessions.application_sessions(s, migration_users=ours)
        shared = source_sessions.migration_account_sessions(s, migration_users=ours)
    at_switch = source_sessions.by_account(left)
    ctx.log.info("dns.switched", record=cfg.record, value=cfg.target_value, seconds=dns_seconds,
                 source_sessions=at_switch)
    return {
        "dns_switch_change": change,
        "switched_at": switched_at,
        "dns_switch_seconds": dns_seconds,
        "sessions_at_switch": at_switch,
        # Not ended: the migration account's other sessions (an application sharing it cannot be told apart).
        "migration_account_sessions_at_switch": source_sessions.by_account(shared),
    }
