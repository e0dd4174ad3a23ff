"""What `migrator rollback`, `migrator finish` and `migrator status` do after the cut-over.

Each command owns the journal while it runs (the same lock as `migrator run`), so a rollback can never
race a run or a finish.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from migrator import rollback as window
from migrator import source_watch
from migrator.clock import SystemClock, poll_until
from migrator.config import Config
from migrator.errors import BadInput, StepFailed
from migrator.journal import Journal
from migrator.mysql.flavour import Flavour, detect
from migrator.mysql.positions import position_key, source_head
from migrator.mysql.session import MySQLSession
from migrator.services import STREAMER, ServiceSupervisor
from migrator.tools.binlog_streamer import list_archive


@contextmanager
def _owned_journal(config: Config) -> Iterator[Journal]:
    if not config.journal_path.exists():
        raise BadInput(f"no journal at {config.journal_path}: this migration has not run")
    journal = Journal.open(config.journal_path)
    try:
        journal.acquire()
        yield journal
    finally:
        if journal._lock_fd is not None:
            journal.release_owner()
        journal.close()


def _flavour(endpoint: Any) -> Flavour:
    with MySQLSession(endpoint) as s:
        return detect(str(s.value("SELECT VERSION()")))


def stray_writes_now(
    config: Config, facts: dict[str, Any], *, from_source: bool = False
) -> list[source_watch.StrayWrite]:
    """Scan the archive (or, ``from_source``, the source's own binlog) past the final position; no journal writes."""
    final = facts.get("final_position")
    if final is None or (facts.get(window.WINDOW) or {}).get("state") == "rolled_back":
        return []  # before step 10 nothing is stray; after a rollback the source is the primary again
    with MySQLSession(config.target) as t:
        target_id = int(t.value("SELECT @@server_id"))
    since = (str(final[0]), int(final[1]))
    if from_source:
        return source_watch.scan_source(
            config.source, _flavour(config.source), since, config.migration.schemas,
            secrets_dir=config.secrets_dir, ignore_server_ids=frozenset({target_id}),
        )
    return source_watch.scan(
        config.archive_dir, _flavour(config.source), since, config.migration.schemas,
        ignore_server_ids=frozenset({target_id}),
    )


def run_rollback(config: Config, *, log: Any, crash_points: frozenset[str] = frozenset()) -> dict[str, Any]:
    from migrator.runtime import make_dns, make_platform

    with _owned_journal(config) as journal:
        return window.rollback(
            config, journal, make_platform(config, log=log), make_dns(config), SystemClock(),  # type: ignore[arg-type]
            log=log, crash=window.Crash(crash_points, log),
        )


def _catch_up_archive(config: Config, services: ServiceSupervisor, timeout: float = 120.0) -> None:
    """Restart the streamer and wait until the archive holds the source's head (the watch is current)."""
    services.resume()
    with MySQLSession(config.source) as s:
        head = source_head(s, detect(str(s.value("SELECT VERSION()"))))

    def holds_head() -> bool:
        services.check()
        files = list_archive(config.archive_dir)
        return bool(files) and position_key((files[-1].name, files[-1].size)) >= position_key(head)

    if not poll_until(SystemClock(), holds_head, deadline=time.time() + timeout, interval=0.2):
        raise StepFailed(
            f"the binlog archive did not reach the source's head {head} within {timeout:.0f} s: the stray-write "
            "watch cannot be completed",
            hint="check the streamer's log (binlogs/streamer.log under the workdir), then `migrator finish` again",
        )


def run_finish(config: Config, *, log: Any, accept_stray_writes: bool = False) -> list[str]:
    from migrator.runtime import make_platform

    with _owned_journal(config) as journal:
        facts = journal.facts()
        if journal.step(14).status != "done":
            raise BadInput(
                "the migration has not finished step 14: there is no rollback window to end",
                hint="`migrator run` first; to give up on a migration use `migrator cleanup --abandon`",
            )
        lines: list[str] = []
        services = ServiceSupervisor(config, journal, log=log)
        try:
            if journal.services().get(STREAMER, ("stopped", None))[0] == "running":
                _catch_up_archive(config, services)
                found = stray_writes_now(config, journal.facts())
                source_watch.record(journal, found, log=log)
            alarms = [source_watch.from_fact(w) for w in journal.fact("stray_writes") or []]
            rolled_back = (facts.get(window.WINDOW) or {}).get("state") == "rolled_back"
            if alarms and not accept_stray_writes and not rolled_back:
                raise StepFailed(
                    f"{len(alarms)} write(s) reached the source after the final position and are not on the target: "
                    + "; ".join(a.describe() for a in alarms[:5]),
                    hint="find and stop what wrote them, carry the rows over by hand if they matter, then "
                    "`migrator finish --accept-stray-writes`; `migrator rollback` is still possible",
                )
            services.stop(STREAMER)
            lines.append("stopped the source watch (the binlog streamer)")
        finally:
            services.shutdown()
        lines += window.finish(config, journal, make_platform(config, log=log), log=log, now=time.time())  # type: ignore[arg-type]
        if alarms:
            lines.append(f"{len(alarms)} stray write(s) accepted: " + "; ".join(a.describe() for a in alarms[:5]))
        return lines


def window_report(config: Config, facts: dict[str, Any]) -> dict[str, Any] | None:
    """The rollback window for `status`: its state, and the reverse replication's lag when it is open."""
    state = facts.get(window.WINDOW)
    if not state:
        return None
    report: dict[str, Any] = dict(state)
    if state.get("state") == "open":
        try:
            report.update(window.window_status(config))
        except Exception as exc:  # status must answer even when a server is down
            report["error"] = f"{type(exc).__name__}: {exc}"
    return report
