"""Progress of long operations (the copy, catching up): a bar with ETA on a terminal, events in logs."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol


class Progress(Protocol):
    def update(
        self, task: str, done: float, total: float, *, eta_seconds: float | None, detail: str
    ) -> None: ...

    def finish(self, task: str) -> None: ...


class LogProgress:
    """A structlog event at most every ``every`` seconds per task."""

    def __init__(self, log: Any, every: float = 2.0) -> None:
        self.log = log
        self.every = every
        self._last: dict[str, float] = {}

    def update(self, task: str, done: float, total: float, *, eta_seconds: float | None, detail: str) -> None:
        now = time.monotonic()
        if now - self._last.get(task, 0.0) < self.every:
            return
        self._last[task] = now
        percent = round(100.0 * done / total, 1) if total else 100.0
        eta = None if eta_seconds is None else round(eta_seconds, 1)
        self.log.info("progress", task=task, percent=percent, eta_seconds=eta, detail=detail)

    def finish(self, task: str) -> None:
        self._last.pop(task, None)


class TerminalProgress:
    """rich's progress bar on stderr, for an operator watching `migrator run`."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def update(self, task: str, done: float, total: float, *, eta_seconds: float | None, detail: str) -> None:
        if task not in self._tasks:
            if not self._tasks:
                self._progress.start()
            self._tasks[task] = self._progress.add_task(task, total=total, detail=detail)
        self._progress.update(self._tasks[task], completed=done, total=total, detail=detail)

    def finish(self, task: str) -> None:
        if task in self._tasks:
            self._progress.remove_task(self._tasks.pop(task))
        if not self._tasks:
            self._progress.stop()


def for_terminal(log: Any) -> Progress:
    return TerminalProgress() if sys.stderr.isatty() else LogProgress(log)
