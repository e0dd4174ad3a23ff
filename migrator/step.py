"""What a step is, and what it is given.

A step module declares NUMBER, NAME, NEEDS (facts earlier steps must have recorded),
``describe(config)`` (one sentence for `plan`, no effects), ``check(ctx)`` (does the effect already
hold?) and ``run(ctx)`` (make it hold; idempotent; returns facts). The engine owns ordering,
retries and journaling; a step owns nothing but its effect and its polling waits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from migrator.clock import Clock, poll_until
from migrator.config import Config
from migrator.errors import StepFailed
from migrator.journal import Journal
from migrator.mysql.flavour import Flavour, detect
from migrator.mysql.session import MySQLSession
from migrator.ports import DnsProvider, Platform
from migrator.progress import LogProgress, Progress

if TYPE_CHECKING:
    from migrator.services import ServiceSupervisor


@dataclass(frozen=True)
class Check:
    holds: bool
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)


class StepModule(Protocol):
    NUMBER: int
    NAME: str
    NEEDS: tuple[str, ...]

    def describe(self, config: Config) -> str: ...

    def check(self, ctx: StepContext) -> Check: ...

    def run(self, ctx: StepContext) -> dict[str, Any]: ...


@dataclass
class StepContext:
    config: Config
    journal: Journal
    platform: Platform
    dns: DnsProvider
    clock: Clock
    services: ServiceSupervisor
    log: Any
    step_number: int = 0
    approvals: frozenset[str] = frozenset()
    progress: Progress | None = None

    def report(self, task: str, done: float, total: float, *, eta_seconds: float | None, detail: str) -> None:
        if self.progress is None:
            self.progress = LogProgress(self.log)
        self.progress.update(task, done, total, eta_seconds=eta_seconds, detail=detail)

    def fact(self, key: str) -> Any:
        value = self.journal.fact(key)
        if value is None:
            raise StepFailed(f"step {self.step_number} needs fact {key!r}, which no earlier step recorded")
        return value

    def put_fact(self, key: str, value: Any) -> None:
        self.journal.put_fact(key, value, step=self.step_number)

    def source(self) -> MySQLSession:
        return MySQLSession(self.config.source)

    def target(self) -> MySQLSession:
        return MySQLSession(self.config.target)

    def snapshot(self) -> MySQLSession:
        handle = self.platform.replica_handle(self.fact("replica_id"))
        return MySQLSession(handle.endpoint)

    @cached_property
    def source_flavour(self) -> Flavour:
        with self.source() as s:
            return detect(str(s.value("SELECT VERSION()")))

    @cached_property
    def target_flavour(self) -> Flavour:
        with self.target() as s:
            return detect(str(s.value("SELECT VERSION()")))

    def _tick(self) -> None:
        """Between polls: supervise services, and watch the platform's storage where it can (RDS)."""
        self.services.check()
        check_storage = getattr(self.platform, "check_storage", None)
        if check_storage is not None:
            check_storage()

    def wait(
        self, name: str, condition: Callable[[], bool], *, timeout: float, interval: float = 0.5, what: str
    ) -> None:
        """Poll until ``condition`` holds; the deadline is journaled so a restart keeps the clock."""
        deadline = self.journal.deadline(f"step{self.step_number}.{name}", timeout, now=self.clock.now())
        self.log.info("wait.start", wait=name, deadline_in=round(deadline - self.clock.now(), 1))
        if self.config is not None:  # None only in the engine's unit tests, as in engine.py
            interval = min(interval, self.config.sync.poll_seconds)
        if not poll_until(
            self.clock, condition, deadline=deadline, interval=interval, on_tick=self._tick
        ):
            raise StepFailed(
                f"timed out waiting for {what} (wait {name!r}, {timeout:.0f} s)",
                hint=f"`migrator status` shows progress; `migrator retry-step {self.step_number}` "
                "starts a fresh wait",
            )
        self.journal.clear_deadline(f"step{self.step_number}.{name}")

    def wait_out(self, name: str, seconds: float, *, why: str) -> None:
        """Let ``seconds`` pass (journaled: a restart waits only what is left), supervising services."""
        key = f"step{self.step_number}.{name}"
        deadline = self.journal.deadline(key, seconds, now=self.clock.now())
        self.log.info(
            "wait.out", wait=name, why=why, seconds_left=round(max(0.0, deadline - self.clock.now()), 1)
        )
        while self.clock.now() < deadline:
            self._tick()
            self.clock.sleep(min(1.0, deadline - self.clock.now()))
