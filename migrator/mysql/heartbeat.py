"""A heartbeat row written on the source: lag in seconds measured on the source's own clock.

The row travels through the binlog like any write; lag = source's latest beat - target's latest
beat, both stamped by the source, so orchestrator clock skew cannot distort it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from migrator.endpoint import Endpoint
from migrator.mysql.session import MySQLSession, is_transient

SCHEMA = "_migrator"
CREATE_SCHEMA = f"CREATE DATABASE IF NOT EXISTS `{SCHEMA}`"
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS `{SCHEMA}`.heartbeat "
    "(id TINYINT PRIMARY KEY, beat BIGINT NOT NULL, ts DATETIME(6) NOT NULL) ENGINE=InnoDB"
)
BEAT = (
    f"INSERT INTO `{SCHEMA}`.heartbeat (id, beat, ts) VALUES (1, 1, UTC_TIMESTAMP(6)) "
    "ON DUPLICATE KEY UPDATE beat = beat + 1, ts = UTC_TIMESTAMP(6)"
)


def ensure_table(session: MySQLSession) -> None:
    session.execute(CREATE_SCHEMA)
    session.execute(CREATE_TABLE)


def beat(session: MySQLSession) -> None:
    session.execute(BEAT)


def latest(session: MySQLSession) -> tuple[int, Any] | None:
    row = session.one(f"SELECT beat, ts FROM `{SCHEMA}`.heartbeat WHERE id = 1")
    return None if row is None else (int(row[0]), row[1])


def lag_seconds(source: MySQLSession, target: MySQLSession) -> float | None:
    src, tgt = latest(source), latest(target)
    if src is None or tgt is None:
        return None
    return max(0.0, float((src[1] - tgt[1]).total_seconds()))


class HeartbeatWriter:
    """A service thread: one beat every ``interval`` seconds until stopped."""

    def __init__(
        self, source: Endpoint, interval: float, *, log: Any, wait: Callable[[float], bool] | None = None
    ):
        self.source = source
        self.interval = interval
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        session: MySQLSession | None = None
        while not self._stop.is_set():
            try:
                if session is None:
                    session = MySQLSession(self.source, connect_timeout=5, read_timeout=10)
                beat(session)
            except Exception as exc:  # a missed beat only delays the lag figure; keep beating
                if session is not None:
                    session.close()
                    session = None
                if not is_transient(exc):
                    self.log.warning("heartbeat.failed", error=str(exc))
            self._stop.wait(self.interval)
        if session is not None:
            session.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
