"""Wiring: from a Config to the adapters, the journal and the engine. Used by the CLI, the demo and tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from migrator.clock import Clock, SystemClock
from migrator.config import Config
from migrator.engine import Engine, RetryBudget, RunResult
from migrator.journal import Journal
from migrator.ports import DnsProvider, Platform
from migrator.preflight import run_preflight
from migrator.progress import Progress
from migrator.services import ServiceSupervisor
from migrator.step import StepContext


def make_platform(config: Config, *, log: Any) -> Platform:
    if config.migration.platform == "rds":
        from migrator.platforms.rds import RdsPlatform

        return RdsPlatform(config, log=log)
    from migrator.platforms.local import LocalPlatform

    return LocalPlatform(config, log=log)


def make_dns(config: Config) -> DnsProvider:
    if config.dns.provider == "route53":
        from migrator.dns.route53 import Route53Dns

        return Route53Dns(config)
    from migrator.dns.local import LocalDns

    assert config.dns.file is not None
    return LocalDns(config.dns.file)


@dataclass
class Runtime:
    config: Config
    journal: Journal
    engine: Engine
    services: ServiceSupervisor


@contextmanager
def open_run(
    config: Config,
    *,
    log: Any,
    argv: list[str],
    clock: Clock | None = None,
    approvals: frozenset[str] = frozenset(),
    crash_points: frozenset[str] = frozenset(),
    retry: RetryBudget | None = None,
    progress: Progress | None = None,
) -> Iterator[Runtime]:
    """Own the journal for the duration: preflight, lock, register, and always release on the way out."""
    from steps import STEPS

    dns = make_dns(config)
    fresh = not config.journal_path.exists()
    if fresh:
        # Bad input must change nothing: check before the journal (or anything else) exists.
        run_preflight(config, None, dns, log=log)
    config.workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(config.workdir, 0o700)
    journal = Journal.open(config.journal_path)
    services: ServiceSupervisor | None = None
    try:
        journal.acquire()
        journal.register(
            config.migration.name, config.fingerprint(), [(s.NUMBER, s.NAME) for s in STEPS], argv
        )
        if not fresh:
            run_preflight(config, journal, dns, log=log)
        services = ServiceSupervisor(config, journal, log=log, crash_points=crash_points)
        ctx = StepContext(
            config=config,
            journal=journal,
            platform=make_platform(config, log=log),
            dns=dns,
            clock=clock or SystemClock(),
            services=services,
            log=log,
            approvals=approvals,
            progress=progress,
        )
        yield Runtime(
            config,
            journal,
            Engine(ctx, STEPS, retry=retry or RetryBudget(), crash_points=crash_points),
            services,
        )
    finally:
        if services is not None:
            services.shutdown()
        if journal._lock_fd is not None:
            journal.release_owner()
        journal.close()


def run_migration(
    config: Config, *, log: Any, argv: list[str], until: int | None = None, **kwargs: Any
) -> RunResult:
    with open_run(config, log=log, argv=argv, **kwargs) as rt:
        return rt.engine.run(until=until)
