"""The write pause's way out: give the application its writes back on the source, and what to check first.

``abort_cutover`` undoes the freeze of step 9 (read_only restored to the value journaled before it,
the resume hook run), puts the services the pause stopped back to running and the pause's steps back
to pending, so the next `migrator run` starts the cut-over again from step 9. The engine calls it when
a step inside the pause fails (``cutover.on_failure = "resume"``), `migrator abort-cutover` on demand.
Once step 13 has switched DNS the application may already write to the target: then it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrator.config import Config
from migrator.errors import BadInput, StepFailed
from migrator.hooks import run_hook
from migrator.journal import Journal
from migrator.mysql.session import MySQLSession
from migrator.ports import Platform

PAUSE_STEPS = (9, 10, 11, 13, 14)  # in execution order; 12 runs before the pause
READ_ONLY_BEFORE = "source_read_only_before"  # fact: the source's read_only setting before step 9


def writes_paused(journal: Journal) -> bool:
    return journal.fact("paused_at") is not None


def dns_switched(journal: Journal) -> bool:
    return journal.fact("dns_switch_change") is not None


class DnsAlreadySwitched(BadInput):
    pass


def abort_cutover(
    config: Config, journal: Journal, platform: Platform, *, log: Any, who: str, why: str, automatic: bool
) -> list[str]:
    """Unfreeze the source and reset the pause's steps; idempotent. Returns what was done, line by line."""
    if dns_switched(journal):
        raise DnsAlreadySwitched(
            f"step 13 already pointed {config.dns.record} at the target: the application may be writing there, "
            "so giving the source its writes back now would split them between two servers",
            hint="to go back to the source, point DNS back first and move the target's writes over "
            "(`migrator rollback`, where available); to go on, fix the failure and `migrator run`",
        )
    done: list[str] = []
    paused = writes_paused(journal)
    before = journal.fact(READ_ONLY_BEFORE)
    if before is not None:
        platform.restore_source_read_only(before)
        done.append(f"source read_only restored to its value before the pause ({describe_setting(before)})")
    elif config.cutover.read_only and paused:
        platform.set_source_read_only(False)  # a freeze journaled before the original value was
        done.append("source read_only set OFF")
    if paused or before is not None:
        context = {
            "source_host": config.source.host,
            "source_port": str(config.source.port),
            "event": "abort",
        }
        run_hook(config.cutover.resume_hook, context, timeout=config.cutover.hook_timeout_seconds)
        if config.cutover.resume_hook:
            done.append(f"resume hook {' '.join(config.cutover.resume_hook)!r} run")
    else:
        done.append("writes were not paused: nothing to unfreeze")
    services = journal.services()
    for name in ("heartbeat", "streamer", "applier"):  # stopped by steps 9 and 11; the next run restarts them
        if services.get(name, ("running", None))[0] == "stopped":
            journal.set_service(name, "running")
            done.append(f"service {name} set to run again")
    for number in PAUSE_STEPS:
        if journal.step(number).status != "pending":
            journal.reset_step(number, who=who, why=f"cut-over aborted: {why}")
    journal.put_fact("paused_at", None)
    journal.put_fact(READ_ONLY_BEFORE, None)
    journal.put_fact("cutover_approved", None)  # a new cut-over needs a new approval
    journal.event("cutover.aborted", None, who=who, why=why, automatic=automatic, done=done)
    log.warning("cutover.aborted", who=who, why=why, automatic=automatic, done=done)
    return done


def describe_setting(setting: dict[str, Any]) -> str:
    if setting.get("platform") == "rds":
        value = setting.get("value")
        return (
            f"parameter group {setting.get('parameter_group')}: read_only "
            + (f"= {value!r} ({setting.get('source')})" if setting.get("source") == "user" else "at its default")
        )
    return f"read_only={'ON' if setting.get('read_only') else 'OFF'}"


# --- before freezing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Writer:
    thread_id: int
    user: str
    host: str
    seconds: int
    rows_modified: int
    query: str

    def describe(self) -> str:
        what = f": {self.query}" if self.query else ""
        return (
            f"connection {self.thread_id} ({self.user}@{self.host}), open {self.seconds} s, "
            f"{self.rows_modified} rows changed{what}"
        )


def long_writers(session: MySQLSession, older_than_seconds: int) -> list[Writer]:
    """Transactions older than the limit that changed or locked something (needs PROCESS)."""
    rows = session.rows(
        "SELECT t.trx_mysql_thread_id, COALESCE(p.USER, ''), COALESCE(p.HOST, ''), "
        "TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), t.trx_rows_modified, "
        "LEFT(COALESCE(t.trx_query, p.INFO, ''), 200) "
        "FROM information_schema.INNODB_TRX t "
        "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
        "WHERE t.trx_started <= NOW() - INTERVAL %s SECOND "
        "AND (t.trx_rows_modified > 0 OR t.trx_tables_locked > 0) "
        "AND t.trx_mysql_thread_id <> CONNECTION_ID() ORDER BY t.trx_started",
        (older_than_seconds,),
    )
    return [Writer(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), str(r[5])) for r in rows]


def refuse_long_writers(config: Config, session: MySQLSession) -> None:
    limit = config.cutover.long_writer_seconds
    if limit <= 0:
        return
    writers = long_writers(session, limit)
    if writers:
        raise StepFailed(
            f"not pausing writes: {len(writers)} transaction(s) on the source have been writing for more than "
            f"{limit} s, and read_only would wait for them while blocking every other write: "
            + "; ".join(w.describe() for w in writers[:5]),
            hint="let them finish (or stop them), then `migrator run`; cutover.long_writer_seconds sets the limit",
        )


# --- the application's accounts ----------------------------------------------------------------------
SEEN = "accounts_seen"  # fact: user@client-host of every session seen on the source during the migration


def record_connected(journal: Journal, source: MySQLSession, step: int | None) -> set[str]:
    """Sample the source's processlist; journal the sessions' accounts not seen before."""
    from migrator.mysql.accounts import connected

    now = connected(source)
    known = set(journal.fact(SEEN) or [])
    new = now - known
    if new:
        journal.put_fact(SEEN, sorted(known | new), step=step)
        journal.event("accounts.seen", step, new=sorted(new))
    return now


def refuse_missing_accounts(config: Config, journal: Journal, target: MySQLSession) -> None:
    """Writes must not resume on a target the application cannot log in to (review D2)."""
    from migrator.mysql.accounts import missing_for, target_accounts

    missing = missing_for(
        journal.fact(SEEN) or [],
        target_accounts(target),
        skip=(config.source.user, config.target.user),
        exclude=config.accounts.exclude,
    )
    if missing:
        raise StepFailed(
            f"{len(missing)} account(s) seen connected to the source during the migration cannot log in to the "
            f"target (no matching user@host there): {', '.join(missing[:10])}",
            hint="copy them (accounts.include), create them on the target by hand, or list them in "
            "accounts.exclude if the application does not need them there; then `migrator run`",
        )


def check_account_plugins(config: Config) -> list[str]:
    """Preflight (before step 1): every account step 12 will copy must use a plugin the target can load.

    Raises PreflightFailed naming each such account; returns the accounts checked."""
    from migrator.errors import PreflightFailed
    from migrator.mysql import accounts
    from migrator.mysql.flavour import detect

    schemas = list(config.migration.schemas)
    marks = ", ".join(["%s"] * len(schemas))
    with MySQLSession(config.source) as s, MySQLSession(config.target) as t:
        flavour = detect(str(s.value("SELECT VERSION()")))
        definers = {
            accounts.Account.parse(str(d))
            for (d,) in s.rows(
                f"SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({marks}) UNION "
                f"SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({marks}) UNION "
                f"SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN ({marks}) UNION "
                f"SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA IN ({marks})",
                schemas * 4,
            )
        }
        chosen = accounts.select_accounts(
            s, flavour, schemas=schemas, include=config.accounts.include, exclude=config.accounts.exclude,
            own=(config.source.user, config.target.user), definers=definers,
        )
        loadable = accounts.auth_plugins(t)
    bad = [f"{a.account} ({a.plugin})" for a in chosen.accounts if not a.is_role and a.plugin not in loadable]
    if bad:
        raise PreflightFailed(
            f"the target cannot load the authentication plugin of {len(bad)} account(s) the migration copies: "
            + ", ".join(bad),
            hint="install the plugin on the target (it has: " + ", ".join(sorted(loadable)) + "), change the "
            "accounts' plugin on the source, or list them in accounts.exclude",
        )
    return [str(a.account) for a in chosen.accounts]
