"""structlog setup: key/value events on stderr (console on a TTY) and JSON lines in the work directory.

A redaction processor drops any field whose name looks like a secret, as a second line of defence
behind Secret's own repr.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential")


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "***"
    return event


class _Tee:
    """Console renderer for humans plus a JSON line per event in the log file."""

    def __init__(self, file: TextIO | None, console: bool) -> None:
        self.file = file
        self.console = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()) if console else None

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        if self.file is not None:
            self.file.write(json.dumps(dict(event), default=str) + "\n")
            self.file.flush()
        if self.console is None:
            raise structlog.DropEvent
        return str(self.console(logger, name, dict(event)))


def configure(*, log_file: Path | None = None, verbose: bool = False, quiet: bool = False) -> None:
    file = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file = open(log_file, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    level = logging.DEBUG if verbose else logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            _Tee(file, console=not quiet),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**fields: Any) -> Any:
    return structlog.get_logger().bind(**fields)
