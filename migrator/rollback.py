"""The rollback window: from step 14 until `migrator finish`, the old source follows the target.

At the switch (step 13, writes still paused, the target still read-only) the target's binlog head is
noted. Step 14 makes the source a replica of the target from that position: server-side
replication (CHANGE MASTER locally, ``mysql.rds_set_external_master`` / ``_source`` on RDS), so the
window does not depend on this process and survives its restart. The journal records it.

``rollback`` pauses writes on the target, waits until the source has applied the target's head,
proves the tables written on the target since the switch equal on both sides, points DNS back,
stops the reverse replication and makes the source writable. Every phase is idempotent and the
progress is journaled, so after a crash `migrator rollback` again finishes it.

``finish`` ends the window: stops the reverse replication and the source watch, restores the
source's read_only and binlog retention, drops the ``_migrator`` schema from both servers.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable
from typing import Any, Protocol

from migrator import source_sessions
from migrator.clock import Clock, poll_until
from migrator.config import Config
from migrator.endpoint import Endpoint
from migrator.errors import BadInput, StepFailed, VerificationFailed
from migrator.hooks import run_hook
from migrator.journal import Journal
from migrator.mysql.checksum import compare_tables
from migrator.mysql.flavour import Flavour, detect
from migrator.mysql.heartbeat import SCHEMA as MIGRATOR_SCHEMA
from migrator.mysql.positions import (
    BinlogPosition,
    binary_logs,
    binlog_sequence,
    lag_bytes,
    position_key,
    source_head,
)
from migrator.mysql.replication import replication_status
from migrator.mysql.schema import base_tables
from migrator.mysql.session import MySQLSession, error_code, quote_identifier
from migrator.ports import DnsProvider, DnsRecord
from migrator.tools import client_tools
from migrator.tools.binlog_text import (
    Transaction,
    account_statement_kind,
    admin_statement_kind,
    parse,
    statement_tables,
)
from migrator.tools.defaults_file import DefaultsFile

REVERSE_START = "reverse_start"  # fact: the target's head at the switch
WINDOW = "rollback_window"  # fact: {"state": "open" | "rolled_back" | "finished" | "disabled", ...}
ROLLBACK = "rollback"  # fact: the rollback's progress and report
FINISHED = "finished"  # fact: `migrator finish` is done; cleanup may run


class ReversePlatform(Protocol):
    def set_source_read_only(self, read_only: bool) -> None: ...

    def restore_source_read_only(self, setting: dict[str, Any]) -> None: ...

    def start_reverse_replication(
        self, *, host: str, port: int, user: str, password: str, log_file: str, log_pos: int, ssl: bool
    ) -> None: ...

    def ensure_reverse_replication_running(self) -> None: ...

    def stop_reverse_replication(self) -> None: ...

    def set_binlog_retention_hours(self, hours: int) -> None: ...


def _flavour(session: MySQLSession) -> Flavour:
    return detect(str(session.value("SELECT VERSION()")))


# --- at the switch (step 13) and after it (step 14) ------------------------------------------------
def replication_account(config: Config) -> tuple[str, str]:
    r = config.rollback
    if r.user:
        return r.user, r.password.reveal()
    return config.target.user, config.target.password.reveal()


def ensure_replication_account(config: Config) -> None:
    """The account the source reads the target's binlog with: created on the target when configured."""
    r = config.rollback
    if not r.user:
        return
    with MySQLSession(config.target) as t:
        t.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (r.user, r.user_host, r.password.reveal()))
        t.execute("GRANT REPLICATION SLAVE ON *.* TO %s@%s", (r.user, r.user_host))


def note_reverse_start(config: Config) -> BinlogPosition:
    """The target's binlog head now; must be read while the target is still read-only (before step 14)."""
    with MySQLSession(config.target) as t:
        flavour = _flavour(t)
        rows = t.dicts(flavour.binary_log_status_sql)
        if not rows:
            raise StepFailed(
                f"the target {config.target.describe()} has binary logging off: the rollback window (the source "
                "following the target after the switch) needs the target's binlog",
                hint="enable log_bin on the target (and restart it), or set [rollback] enabled = false to cut over "
                "without a way back",
            )
        return BinlogPosition(str(rows[0]["File"]), int(rows[0]["Position"]))


def source_to_target(config: Config) -> tuple[str, int]:
    r = config.rollback
    return r.target_host or config.target.host, r.target_port or config.target.port


def _wait_replicating(config: Config, clock: Clock) -> None:
    """START SLAVE returns before the IO thread connects: a window that cannot connect must not be called open."""
    last: list[str] = []

    def running() -> bool:
        with MySQLSession(config.source) as s:
            flavour = _flavour(s)
            rows = s.dicts(flavour.replica_status_sql)
        if not rows:
            last[:] = ["no replication configured"]
            return False
        io, sql = flavour.replica_threads_running(rows[0])
        last[:] = [flavour.replica_error(rows[0]) or f"IO running {io}, SQL running {sql}"]
        if not sql and flavour.replica_error(rows[0]):
            raise StepFailed(f"the reverse replication (target -> source) stopped: {last[0]}")
        return io and sql

    if not poll_until(clock, running, deadline=clock.now() + config.rollback.start_timeout_seconds, interval=0.2):
        host, port = source_to_target(config)
        raise StepFailed(
            f"writes run on the target, but the rollback window did not open: the source could not replicate "
            f"from the target at {host}:{port} within {config.rollback.start_timeout_seconds} s ({last[0] if last else '?'})",
            hint="let the source reach the target ([rollback] target_host/target_port, security groups) with an "
            "account that has REPLICATION SLAVE, then `migrator run`; or [rollback] enabled = false",
        )


def open_window(
    config: Config, journal: Journal, platform: ReversePlatform, *, clock: Clock, log: Any
) -> dict[str, Any]:
    """Start the reverse replication from the position noted at the switch (idempotent)."""
    now = clock.now()
    window = journal.fact(WINDOW)
    if not config.rollback.enabled:
        window = window or {"state": "disabled"}
        journal.put_fact(WINDOW, window, step=14)
        return dict(window)
    if window and window.get("state") != "disabled":
        if window.get("state") == "open":
            platform.ensure_reverse_replication_running()
        return dict(window)
    start = journal.fact(REVERSE_START)
    if start is None:
        raise StepFailed("no target position was noted at the switch (fact reverse_start): step 13 records it")
    host, port = source_to_target(config)
    user, password = replication_account(config)
    platform.start_reverse_replication(
        host=host, port=port, user=user, password=password, log_file=str(start[0]), log_pos=int(start[1]),
        ssl=config.rollback.ssl,
    )
    _wait_replicating(config, clock)
    window = {"state": "open", "opened_at": now, "from": list(start), "via": f"{user}@{host}:{port}"}
    journal.put_fact(WINDOW, window, step=14)
    journal.event("rollback_window.opened", 14, start=list(start), via=window["via"])
    log.info("rollback_window.opened", start=list(start), via=window["via"])
    return window


def window_status(config: Config) -> dict[str, Any]:
    """The reverse replication as the source sees it, and how far behind the target's head it is."""
    with MySQLSession(config.source) as s:
        status = replication_status(s, "source (rollback window)")
    with MySQLSession(config.target) as t:
        flavour = _flavour(t)
        head = source_head(t, flavour)
        files = binary_logs(t)
    if status is None:
        return {"replicating": False, "configured": False, "target_head": list(head)}
    applied = (status.coordinates.file, status.coordinates.position)
    return {
        "configured": True,
        "replicating": status.replicating,
        "lag_seconds": status.lag_seconds,
        "applied": list(applied),
        "target_head": list(head),
        "lag_bytes": lag_bytes(files, applied, head),
    }


# --- which tables the target wrote since the switch ------------------------------------------------
_EVENT_DDL = re.compile(rb"^\s*ALTER\s+(?:DEFINER\s*=\s*\S+\s+)?EVENT\b", re.IGNORECASE)


def _changes_no_row(sql: bytes) -> bool:
    return bool(account_statement_kind(sql) or admin_statement_kind(sql) or _EVENT_DDL.match(sql))


def tables_written_on_target(
    config: Config, flavour: Flavour, start: tuple[str, int], end: tuple[str, int]
) -> set[tuple[str, str]] | None:
    """Tables with row events in the target's binlog between ``start`` and ``end`` (read from the server);
    None when a DDL or an unreadable range means "compare everything"."""
    if position_key(end) <= position_key(start):
        return set()
    with MySQLSession(config.target) as t:
        names = [name for name, _size in binary_logs(t)]
    first, last = binlog_sequence(start[0]), binlog_sequence(end[0])
    wanted = [n for n in names if first <= binlog_sequence(n) <= last]
    if not wanted or wanted[0] != start[0]:
        return None  # the start file is gone: cannot name the tables
    changed: set[tuple[str, str]] = set()
    binlog = client_tools.binlog_tool(flavour)
    tool = binlog.path
    with DefaultsFile(config.target, parent=config.secrets_dir, product=binlog.product) as cnf:
        for name in wanted:
            argv = [tool, f"--defaults-extra-file={cnf}", "--read-from-remote-server"]
            if name == start[0]:
                argv.append(f"--start-position={start[1]}")
            if name == end[0]:
                argv.append(f"--stop-position={end[1]}")
            argv.append(name)
            proc = subprocess.run(argv, capture_output=True, check=False, timeout=600)
            if proc.returncode != 0 or b"ERROR" in proc.stderr:
                return None
            for unit in parse(proc.stdout.splitlines()):
                if not isinstance(unit, Transaction):
                    continue
                if unit.queries and all(_changes_no_row(q.sql) for q in unit.queries):
                    continue  # step 14's ALTER EVENT ... ENABLE, account and admin statements
                if unit.is_ddl:
                    return None
                changed.update(unit.tables)
                for statement in unit.queries:
                    for schema, table in statement_tables(statement.sql, statement.db):
                        if schema is None or table is None:
                            return None
                        changed.add((schema, table))
    return changed


# --- rollback --------------------------------------------------------------------------------------
class Crash:
    """Fault tests name points where the rollback dies as if by kill -9 (MIGRATOR_CRASH_AT)."""

    def __init__(self, points: frozenset[str], log: Any) -> None:
        self.points = points
        self.log = log

    def __call__(self, name: str) -> None:
        if name in self.points:
            self.log.warning("crash_point", point=name)
            os.kill(os.getpid(), signal.SIGKILL)


SOURCE_READ_ONLY_BEFORE = "source_read_only_before"  # fact: the source's read_only before step 9 set it


def restore_source_read_only(config: Config, journal: Journal, platform: ReversePlatform) -> str | None:
    """Give the source back the read_only it had before step 9 (journaled by step 9: a dict whose
    "effective"/"read_only" says what it was; on RDS the parameter group's own value is put back)."""
    if not config.cutover.read_only:
        return None
    before = journal.fact(SOURCE_READ_ONLY_BEFORE)
    if isinstance(before, dict):
        platform.restore_source_read_only(before)
        return str(before.get("value", before.get("read_only")))
    platform.set_source_read_only(False)  # a journal from before the setting was recorded: it took writes
    return "OFF"


def _set_read_only(endpoint: Endpoint, on: bool) -> None:
    with MySQLSession(endpoint) as s:
        for sql in _flavour(s).read_only_statements(on):
            s.execute(sql)


def _read_only(endpoint: Endpoint) -> bool:
    with MySQLSession(endpoint) as s:
        return str(s.variable("read_only")).upper() in ("ON", "1")


_PHASES = ("pausing", "catching-up", "verified", "dns-back", "source-writable", "done")


def _reached(progress: dict[str, Any], phase: str) -> bool:
    current = progress.get("phase")
    return current in _PHASES and _PHASES.index(current) >= _PHASES.index(phase)


class _TargetKiller:
    """After a rollback the target is the old server: pooled sessions there are ended with KILL."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def kill_session(self, thread_id: int) -> None:
        with MySQLSession(self.endpoint) as s:
            try:
                s.execute("KILL CONNECTION %s", (int(thread_id),))
            except Exception as exc:
                if error_code(exc) != 1094:  # unknown thread: it left by itself meanwhile
                    raise


def rollback(
    config: Config,
    journal: Journal,
    platform: ReversePlatform,
    dns: DnsProvider,
    clock: Clock,
    *,
    log: Any,
    crash: Callable[[str], None] = lambda _name: None,
) -> dict[str, Any]:
    """Move the application back to the source without losing a write made on the target since the switch."""
    window = journal.fact(WINDOW) or {}
    state = window.get("state")
    progress: dict[str, Any] = dict(journal.fact(ROLLBACK) or {})
    if state == "rolled_back" and progress.get("phase") == "done":
        return progress
    if state not in ("open", "rolled_back"):
        raise BadInput(
            "there is no rollback window open"
            + (f" (it is {state})" if state else " (step 14 has not run)"),
            hint="the window opens when step 14 resumes writes on the target and closes at `migrator finish`",
        )

    def save(**changes: Any) -> None:
        progress.update(changes)
        journal.put_fact(ROLLBACK, progress)

    if not _reached(progress, "verified"):
        _pause_catch_up_verify(
            config, journal, platform=platform, clock=clock, progress=progress, save=save, log=log, crash=crash
        )
    if not _reached(progress, "dns-back"):
        _dns_back(config, journal, dns=dns, clock=clock, progress=progress, save=save)
        crash("rollback.after_dns")
    if not _reached(progress, "source-writable"):
        # The source stands alone again and takes the writes.
        platform.stop_reverse_replication()
        crash("rollback.after_replication_stopped")
        cut = config.cutover
        restore_source_read_only(config, journal, platform)
        run_hook(cut.resume_hook, {"source_host": config.source.host, "source_port": str(config.source.port),
                                   "event": "rollback-resume"}, timeout=cut.hook_timeout_seconds)
        resumed_at = clock.now()
        pause = round(resumed_at - float(progress["paused_at"]), 3)
        save(phase="source-writable", resumed_at=resumed_at, write_pause_seconds=pause)
        journal.put_fact(WINDOW, {**window, "state": "rolled_back", "closed_at": resumed_at})
        log.info("rollback.writes_resumed", on=config.source.describe(), write_pause_seconds=pause)
    # Pools still connected to the target would keep reading the paused target: the same grace, then KILL.
    migration_users = frozenset(u for u in (config.target.user, config.rollback.user) if u)

    def listed() -> list[source_sessions.SourceSession]:
        with MySQLSession(config.target) as t:
            return source_sessions.application_sessions(t, migration_users=migration_users)

    tail = source_sessions.drain(
        listed,
        _TargetKiller(config.target),
        source_sessions.ConnectionTail(
            switched_at=float(progress["dns_back_at"]), grace_seconds=config.cutover.connection_grace_seconds
        ),
        now=clock.now,
        sleep=clock.sleep,
        log=log,
    )
    save(phase="done", connection_tail=tail.as_fact())
    journal.event("rollback.done", None, write_pause_seconds=progress["write_pause_seconds"],
                  verified_rows=progress.get("verified_rows"))
    log.info("rollback.done", write_pause_seconds=progress["write_pause_seconds"],
             rows=progress.get("verified_rows"), target_sessions_ended=tail.ended_by_force)
    return progress


def _pause_catch_up_verify(
    config: Config,
    journal: Journal,
    *,
    platform: ReversePlatform,
    clock: Clock,
    progress: dict[str, Any],
    save: Callable[..., None],
    log: Any,
    crash: Callable[[str], None],
) -> None:
    cut = config.cutover
    # 1. Pause writes on the target.
    if progress.get("paused_at") is None:
        save(paused_at=clock.now(), phase="pausing")
        journal.event("rollback.begin", None)
        log.info("rollback.begin")
    run_hook(cut.pause_hook, {"target_host": config.target.host, "target_port": str(config.target.port),
                              "event": "rollback-pause"}, timeout=cut.hook_timeout_seconds)
    _set_read_only(config.target, True)
    crash("rollback.after_pause")
    # 2. Wait until the source has everything the target wrote.
    with MySQLSession(config.target) as t:
        target_flavour = _flavour(t)
        head = source_head(t, target_flavour)
    save(phase="catching-up", target_head=list(head))
    platform.ensure_reverse_replication_running()
    last: list[list[Any]] = []

    def caught_up() -> bool:
        with MySQLSession(config.source) as s:
            status = replication_status(s, "source (rollback window)")
        if status is None:
            raise StepFailed("the source no longer replicates from the target: the rollback window was closed")
        last[:] = [[status.coordinates.file, status.coordinates.position]]
        return position_key((status.coordinates.file, status.coordinates.position)) >= position_key(head)

    if not poll_until(clock, caught_up, deadline=clock.now() + config.rollback.catchup_timeout_seconds,
                      interval=0.1):
        raise StepFailed(
            f"the source did not reach the target's head {head} within {config.rollback.catchup_timeout_seconds} s "
            f"(it applied {last[0] if last else 'nothing'}); writes stay paused on the target",
            hint="see SHOW SLAVE STATUS on the source; `migrator rollback` again continues, or SET GLOBAL "
            "read_only=OFF on the target to stay on it",
        )
    crash("rollback.after_catchup")
    # 3. Prove the rows changed since the switch equal on both sides.
    window = journal.fact(WINDOW) or {}
    start = journal.fact(REVERSE_START) or window["from"]
    written = tables_written_on_target(config, target_flavour, (str(start[0]), int(start[1])), head)
    schemas = set(config.migration.schemas)
    with MySQLSession(config.source) as s:
        every = base_tables(s, list(config.migration.schemas))
    if written is None:
        tables = every
    else:
        names = {(sch, tab) for sch, tab in written if sch in schemas}
        tables = [t for t in every if (t.schema, t.name) in names]
    report = compare_tables(config.source, config.target, tables, workers=config.sync.checksum_workers)
    if not report.ok:
        detail = "; ".join(m.describe() for m in report.mismatches[:5])
        save(phase="verification-failed")
        raise VerificationFailed(
            f"after the source caught up, {len(report.mismatches)} range(s) differ between it and the target: "
            f"{detail}; DNS still points at the target, whose writes stay paused",
            hint="do not roll back onto this source; SET GLOBAL read_only=OFF on the target to stay on it",
        )
    save(phase="verified", verified_tables=[f"{t.schema}.{t.name}" for t in tables],
         verified_rows=report.rows, all_tables=written is None)
    crash("rollback.after_verify")


def _dns_back(
    config: Config,
    journal: Journal,
    *,
    dns: DnsProvider,
    clock: Clock,
    progress: dict[str, Any],
    save: Callable[..., None],
) -> None:
    original = journal.fact("dns_original") or {}
    back_to = str(original.get("value") or "")
    if not back_to:
        raise StepFailed("the DNS record's original value was not journaled (step 1): cannot point it back")
    started = clock.now()
    record = dns.read(config.dns.record)
    change = progress.get("dns_change")
    if record.value != back_to or change is None:
        change = dns.upsert(DnsRecord(config.dns.record, back_to, config.dns.ttl, record.record_type))
        save(dns_change=change)
    if not poll_until(clock, lambda: dns.in_sync(change), deadline=clock.now() + 600, interval=1.0):
        raise StepFailed(f"the DNS change {change} back to {back_to} did not get in sync within 600 s",
                         hint="`migrator rollback` again waits for it")
    save(phase="dns-back", dns_seconds=round(clock.now() - started, 3), dns_back_at=clock.now())


# --- finish ----------------------------------------------------------------------------------------
def finish(
    config: Config, journal: Journal, platform: ReversePlatform, *, log: Any, now: float
) -> list[str]:
    """End the rollback window and put the servers back as they were; returns what was done."""
    lines: list[str] = []
    window = journal.fact(WINDOW) or {}
    if window.get("state") == "open":
        platform.stop_reverse_replication()
        journal.put_fact(WINDOW, {**window, "state": "finished", "closed_at": now})
        lines.append("stopped the reverse replication (target -> source): the rollback window is closed")
    rolled_back = window.get("state") == "rolled_back"
    if not rolled_back:
        restored = restore_source_read_only(config, journal, platform)
        if restored is not None:
            lines.append(f"restored the source's read_only to its value before step 9 ({restored})")
    previous = (journal.fact("binlog_retention_previous") or {}).get("hours")
    if previous is not None and previous < 1_000_000:
        platform.set_binlog_retention_hours(int(previous))
        lines.append(f"restored the source's binlog retention to {previous} h")
    for name, endpoint in (("source", config.source), ("target", config.target)):
        try:
            with MySQLSession(endpoint) as s:
                s.execute(f"DROP DATABASE IF EXISTS {quote_identifier(MIGRATOR_SCHEMA)}")
            lines.append(f"dropped the {MIGRATOR_SCHEMA} schema on the {name}")
        except Exception as exc:  # a read-only target after a rollback refuses: say so, do not hide it
            lines.append(f"could not drop the {MIGRATOR_SCHEMA} schema on the {name}: {exc}")
    journal.put_fact(FINISHED, {"at": now, "rolled_back": rolled_back})
    journal.event("migration.finished", None)
    log.info("migration.finished", rolled_back=rolled_back)
    return lines
