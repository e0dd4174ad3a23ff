"""Step 13: point the application's DNS record at the target and wait until the change is in effect."""

from __future__ import annotations

from typing import Any

from migrator.config import Config
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
    return f"point {config.dns.record} at {config.dns.target_value} (TTL {config.dns.ttl} s): {how}{confirm}"


def check(ctx: StepContext) -> Check:
    record = ctx.dns.read(ctx.config.dns.record)
    change = ctx.journal.fact("dns_switch_change")
    if record.value == ctx.config.dns.target_value and change is not None and ctx.dns.in_sync(change):
        return Check(True, f"{record.name} already points at {record.value}", {"dns_switch_change": change})
    return Check(False, f"{record.name} points at {record.value}")


def run(ctx: StepContext) -> dict[str, Any]:
    cfg = ctx.config.dns
    change = ctx.journal.fact("dns_switch_change")
    record = ctx.dns.read(cfg.record)
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
    ctx.log.info("dns.switched", record=cfg.record, value=cfg.target_value)
    return {"dns_switch_change": change, "switched_at": ctx.clock.now()}
