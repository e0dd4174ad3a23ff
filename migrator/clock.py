"""The one source of time. Steps and services take a Clock so tests can run hours in milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch: for journaled deadlines that survive a restart."""
        ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class DeadlineExpired(TimeoutError):
    pass


def poll_until(
    clock: Clock,
    condition: Callable[[], bool],
    *,
    deadline: float,
    interval: float = 0.5,
    on_tick: Callable[[], None] | None = None,
) -> bool:
    """Poll ``condition`` until true or the wall-clock ``deadline`` passes; returns the last result.

    ``on_tick`` runs between polls (the engine uses it to supervise services while a step waits).
    """
    while True:
        if condition():
            return True
        if clock.now() >= deadline:
            return False
        if on_tick is not None:
            on_tick()
        clock.sleep(min(interval, max(0.0, deadline - clock.now())))
