"""The sessions left on the old source after the DNS switch: counted by account, given a grace period, ended.

DNS moves new connections only: pools keep theirs (Go's database/sql forever by default, HikariCP 30
minutes) and keep reading, or writing, the old primary. After the switch the application's sessions
on the source are counted by user and host; they get ``cutover.connection_grace_seconds`` to leave on
their own, then each one still there is ended (KILL locally, ``CALL mysql.rds_kill`` on RDS), and its
client's next connect follows DNS to the target.

Never ended: the migration's own sessions (the migration account: this process, the binlog streamer),
replication (Binlog Dump threads of the source's replicas, the reverse replication's threads, which
run as 'system user'), and the server's and RDS's own accounts. The "connection tail" is the time
from the switch until the last application session left the source.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from migrator.mysql.session import MySQLSession

# Server and RDS accounts: background threads, the event scheduler, RDS's agent and replication user.
NEVER_ENDED_USERS = frozenset(
    {"system user", "event_scheduler", "rdsadmin", "rdsrepladmin", "rdsproxyadmin", "unauthenticated user", ""}
)
# Commands that are not application sessions: replicas reading the binlog, server daemons.
NEVER_ENDED_COMMANDS = frozenset({"Binlog Dump", "Binlog Dump GTID", "Daemon", "Slave_IO", "Slave_SQL",
                                  "Slave_worker", "Killed"})


class SessionKiller(Protocol):
    def kill_session(self, thread_id: int) -> None: ...


@dataclass(frozen=True)
class SourceSession:
    id: int
    user: str
    host: str  # without the client port
    command: str
    seconds: int
    db: str | None

    @property
    def account(self) -> str:
        return f"{self.user}@{self.host}"


def _host(raw: str | None) -> str:
    host = str(raw or "")
    if host.startswith("["):  # [::1]:port
        return host.split("]", maxsplit=1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def application_sessions(session: MySQLSession, *, migration_users: frozenset[str]) -> list[SourceSession]:
    """Sessions on the source that belong to the application (needs PROCESS to see other users')."""
    return _sessions(session, migration_users=migration_users, ours=False)


def migration_account_sessions(session: MySQLSession, *, migration_users: frozenset[str]) -> list[SourceSession]:
    """Client sessions of the migration's own account other than this one and the binlog streamer: never
    ended, but counted, because an application that shares the account cannot be told apart from us."""
    return _sessions(session, migration_users=migration_users, ours=True)


def _sessions(session: MySQLSession, *, migration_users: frozenset[str], ours: bool) -> list[SourceSession]:
    own = int(session.value("SELECT CONNECTION_ID()"))
    rows = session.dicts(
        "SELECT ID, USER, HOST, COMMAND, TIME, DB FROM information_schema.PROCESSLIST ORDER BY ID"
    )
    found = []
    for r in rows:
        user = str(r["USER"] or "")
        command = str(r["COMMAND"] or "")
        if int(r["ID"]) == own or user in NEVER_ENDED_USERS or (user in migration_users) != ours:
            continue
        if command in NEVER_ENDED_COMMANDS:
            continue
        found.append(
            SourceSession(
                id=int(r["ID"]),
                user=user,
                host=_host(r["HOST"]),
                command=command,
                seconds=int(r["TIME"] or 0),
                db=r["DB"],
            )
        )
    return found


def by_account(sessions: list[SourceSession]) -> dict[str, int]:
    return dict(sorted(Counter(s.account for s in sessions).items()))


@dataclass
class ConnectionTail:
    """What happened to the application's sessions on the source after the switch (a journal fact)."""

    switched_at: float
    grace_seconds: float
    at_switch: dict[str, int] = field(default_factory=dict)  # account -> sessions when DNS switched
    ended_by_force: int = 0
    ended_by_account: dict[str, int] = field(default_factory=dict)
    last_left_at: float | None = None
    remaining: dict[str, int] = field(default_factory=dict)  # still there when we gave up

    @property
    def tail_seconds(self) -> float | None:
        return None if self.last_left_at is None else round(max(0.0, self.last_left_at - self.switched_at), 3)

    def as_fact(self) -> dict[str, Any]:
        return {
            "switched_at": self.switched_at,
            "grace_seconds": self.grace_seconds,
            "at_switch": self.at_switch,
            "sessions_at_switch": sum(self.at_switch.values()),
            "ended_by_force": self.ended_by_force,
            "ended_by_account": self.ended_by_account,
            "last_left_at": self.last_left_at,
            "tail_seconds": self.tail_seconds,
            "remaining": self.remaining,
        }


def drain(
    list_sessions: Callable[[], list[SourceSession]],
    killer: SessionKiller,
    tail: ConnectionTail,
    *,
    now: Callable[[], float],
    sleep: Callable[[float], None],
    give_up_after: float = 60.0,
    interval: float = 0.2,
    on_poll: Callable[[], None] | None = None,
    log: Any = None,
) -> ConnectionTail:
    """Wait for the application's sessions to leave the source; after the grace period, end them.

    Clients with a stale DNS cache may connect to the source again after a kill: those are ended too,
    until ``give_up_after`` seconds past the grace period; what is left then is reported, not hidden.
    """
    deadline = tail.switched_at + tail.grace_seconds
    ended: Counter[str] = Counter(tail.ended_by_account)
    seen_any = bool(tail.at_switch) or bool(ended)
    while True:
        if on_poll is not None:
            on_poll()
        sessions = list_sessions()
        current = now()
        if not sessions:
            # None at the switch and none since: there was no tail (not the time until our first look).
            tail.last_left_at = current if seen_any else tail.switched_at
            tail.remaining = {}
            break
        seen_any = True
        if current >= deadline + give_up_after:
            tail.remaining = by_account(sessions)
            if log is not None:
                log.warning("sessions.remaining", sessions=tail.remaining)
            break
        if current >= deadline:
            for s in sessions:
                killer.kill_session(s.id)
                ended[s.account] += 1
                if log is not None:
                    log.info("session.ended", id=s.id, account=s.account, command=s.command, idle=s.seconds)
            tail.ended_by_account = dict(sorted(ended.items()))
            tail.ended_by_force = sum(ended.values())
        sleep(interval)
    return tail
