"""Step 1: the application's DNS record has a TTL no higher than configured, and the old TTL has passed."""

from __future__ import annotations

from typing import Any

from migrator.config import Config
from migrator.ports import DnsRecord
from migrator.step import Check, StepContext

NUMBER = 1
NAME = "dns-ttl"
NEEDS: tuple[str, ...] = ()


def describe(config: Config) -> str:
    return (
        f"read {config.dns.record} from {config.dns.provider}; lower its TTL to {config.dns.ttl} s if higher, "
        "wait until the change is in sync, then wait out the old TTL (journaled deadline)"
    )


def check(ctx: StepContext) -> Check:
    record = ctx.dns.read(ctx.config.dns.record)
    if record.ttl > ctx.config.dns.ttl:
        return Check(False, f"TTL is {record.ttl} s, above {ctx.config.dns.ttl} s")
    original = ctx.journal.fact("dns_original")
    if original is None:
        return Check(True, f"TTL is already {record.ttl} s", {"dns_original": _as_fact(record)})
    return Check(False, "TTL was lowered by this migration; the old TTL must still be waited out")


def run(ctx: StepContext) -> dict[str, Any]:
    cfg = ctx.config.dns
    original = ctx.journal.fact("dns_original")
    if original is None:
        record = ctx.dns.read(cfg.record)
        original = _as_fact(record)
        ctx.put_fact("dns_original", original)  # before the UPSERT: the old TTL is what we must wait out
    record = ctx.dns.read(cfg.record)
    if record.ttl > cfg.ttl:
        change = ctx.dns.upsert(DnsRecord(record.name, record.value, cfg.ttl, record.record_type))
        ctx.put_fact("dns_ttl_change", change)
        ctx.wait(
            "ttl-change-in-sync",
            lambda: ctx.dns.in_sync(change),
            timeout=600,
            what="the TTL change to be in sync",
        )
    ctx.wait_out("old-ttl", int(original["ttl"]), why="clients may cache the record for its old TTL")
    return {"dns_original": original}


def _as_fact(record: DnsRecord) -> dict[str, Any]:
    return {"name": record.name, "value": record.value, "ttl": record.ttl, "type": record.record_type}
