"""The command line: argv -> Config (validated once) -> engine; rendering of plan, status and verify.

Exit codes: 0 done, 1 a step failed, 2 bad input (nothing changed), 3 waiting on an operator gate.
This is the only module that reads the environment (MIGRATOR_CRASH_AT for fault tests).
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from migrator import log as logsetup
from migrator.config import Config, load
from migrator.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_STEP_FAILED, MigratorError
from migrator.journal import Journal
from migrator.mysql.positions import position_key
from migrator.progress import for_terminal

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SANDBOX = REPO_ROOT / "configs" / "sandbox.toml"


def _fail(exc: MigratorError) -> NoReturn:
    click.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"  hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def _load(path: str, *, allow_nonempty_target: bool = False) -> Config:
    config = load(path)
    if allow_nonempty_target:
        from dataclasses import replace

        config = replace(config, migration=replace(config.migration, allow_nonempty_target=True))
    return config


def _emit(data: Any, as_json: bool, render: Any) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str, sort_keys=True))
    else:
        render(data)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MigratorError as exc:
            _fail(exc)


@click.group(cls=_Group)
@click.version_option(package_name="migrator")
def main() -> None:
    """Move a live MySQL database off RDS onto self-managed MySQL, resumably."""


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="the migration's TOML config",
)


@main.command()
@config_option
def plan(config_path: str) -> None:
    """Print the 14 steps, the grant table and the compatibility report for these servers. No effects."""
    from steps import STEPS

    config = _load(config_path)
    click.echo(
        f"migration {config.migration.name!r} on platform {config.migration.platform}: "
        f"{config.source.describe()} -> {config.target.describe()}, schemas {', '.join(config.migration.schemas)}"
    )
    click.echo(f"journal: {config.journal_path}")
    state: dict[int, str] = {}
    if config.journal_path.exists():
        ro = Journal.open_readonly(config.journal_path)
        state = {row.number: row.status for row in ro.steps()}
        ro.close()
    from migrator.engine import in_execution_order

    for step in in_execution_order(STEPS):  # 12 runs before the pause (9): listed where it runs
        status = state.get(step.NUMBER, "pending")
        click.echo(f"{step.NUMBER:>2}. {step.NAME:<16} [{status}] {step.describe(config)}")
    if config.rds is not None:
        from migrator.platforms.rds import describe_aws_calls

        click.echo("\nAWS calls this plan makes:")
        for line in describe_aws_calls(config):
            click.echo(f"  - {line}")
    _plan_preflight(config)


def _plan_preflight(config: Config) -> None:
    """What `run` checks before step 1, for these servers: the grant table, the compatibility report and
    the client tools; exit 2 after printing them all when any of them refuses."""
    from migrator import doctor
    from migrator.preflight import check_doctor, check_grants, check_tools, grant_rows

    logsetup.configure()  # a missing optional grant is a warning on stderr
    evaluated = grant_rows(config)
    click.echo("\ngrants (migrator/grants.py; n/a: does not apply to this migration):")
    for row in evaluated[0]:
        fix = f"  -> {'; '.join(row.grant_sql)}" if row.grant_sql else ""
        if row.need.or_setting and row.status == "missing":
            fix += f" (or {row.need.or_setting})"
        held = f" ({row.held})" if row.held else ""
        click.echo(
            f"  {row.status:<7} step {row.need.step:<19} {row.need.server:<8} {row.account:<18} "
            f"{row.need.statements}{held}{fix}"
        )
    findings = doctor.diagnose(config)
    click.echo("\ncompatibility (migrator doctor):")
    for line in doctor.render(findings):
        click.echo(f"  {line}")
    failures: list[MigratorError] = []
    try:
        tools = check_tools(evaluated[1]["source"])
        click.echo(f"\nclient tools ({tools.product}, found by --version):")
        for tool in tools.tools():
            click.echo(f"  {tool.role:<7} {tool.describe()}")
    except MigratorError as exc:
        failures.append(exc)
    try:
        check_grants(config, log=logsetup.get_logger(), evaluated=evaluated)
    except MigratorError as missing:
        failures.append(missing)
    try:
        check_doctor(config, rows=findings)
    except MigratorError as blocked:
        failures.append(blocked)
    if failures:
        for failure in failures[1:]:
            click.echo(f"error: {failure.message}", err=True)
        raise failures[0]


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def doctor(config_path: str, as_json: bool) -> None:
    """Source vs target settings: OK, warning or blocking, each with its remedy. Exit 2 when any blocks."""
    from migrator import doctor as compat

    config = _load(config_path)
    logsetup.configure(quiet=as_json)
    findings = compat.diagnose(config)
    _emit(
        {"rows": [f.as_dict() for f in findings], "blocking": len(compat.blocking(findings))},
        as_json,
        lambda _d: click.echo("\n".join(compat.render(findings))),
    )
    sys.exit(EXIT_BAD_INPUT if compat.blocking(findings) else EXIT_OK)


@main.command()
@config_option
@click.option("--until", type=int, default=None, help="stop after this step number")
@click.option(
    "--approve-cutover", is_flag=True, help="approve the write pause (step 9) when require_approval is set"
)
@click.option(
    "--allow-nonempty-target", is_flag=True, help="copy into a target whose schemas already hold data"
)
@click.option("-v", "--verbose", is_flag=True)
def run(
    config_path: str, until: int | None, approve_cutover: bool, allow_nonempty_target: bool, verbose: bool
) -> None:
    """Run the migration from wherever the journal says; the same command resumes."""
    from migrator.runtime import run_migration

    config = _load(config_path, allow_nonempty_target=allow_nonempty_target)
    logsetup.configure(log_file=config.workdir / "migrator.log", verbose=verbose)
    log = logsetup.get_logger(migration=config.migration.name)
    crash = frozenset(filter(None, os.environ.get("MIGRATOR_CRASH_AT", "").split(",")))
    # SIGTERM (systemd, a CI timeout) unwinds like Ctrl-C: services stop, the journal lock is released,
    # and the step in progress stays 'running' for the next run to re-enter through its check.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_migration(
            config,
            log=log,
            argv=sys.argv,
            until=until,
            approvals=frozenset({"cutover"}) if approve_cutover else frozenset(),
            crash_points=crash,
            progress=for_terminal(log),
        )
    except KeyboardInterrupt:
        click.echo("interrupted: `migrator run` resumes from here", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if result.stopped_before is not None:
        click.echo(f"stopped before step {result.stopped_before} as asked (--until {until})")
    else:
        _print_report(config)
    sys.exit(EXIT_OK)


EXIT_INTERRUPTED = 130


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _print_report(config: Config) -> None:
    ro = Journal.open_readonly(config.journal_path)
    facts = ro.facts()
    ro.close()
    copy = facts.get("copy", {})
    click.echo("migration complete")
    if copy:
        seconds = copy.get("seconds") or 0
        mb = copy.get("bytes", 0) / 1e6
        rate = f", {mb / seconds:.1f} MB/s" if seconds else ""
        click.echo(f"  copied: {copy.get('rows', 0)} rows, {mb:.1f} MB in {seconds} s{rate}")
    if "verification" in facts:
        v = facts["verification"]
        click.echo(
            f"  verified: {v['tables']} tables equal ({v['proven_before_pause']} proven before the pause, "
            f"{v['checked_during_pause']} checked during it in {v['seconds']} s)"
        )
    if "write_pause_seconds" in facts:
        click.echo(f"  write pause: {facts['write_pause_seconds']:.2f} s")
    for line in _after_cutover_lines(facts):
        click.echo(f"  {line}")


def _after_cutover_lines(facts: dict[str, Any]) -> list[str]:
    """DNS switch time, connection tail, sessions ended, the rollback window and stray-write alarms."""
    lines = []
    if facts.get("dns_switch_seconds") is not None:
        lines.append(f"DNS switch: {facts['dns_switch_seconds']:.2f} s (UPSERT until in sync)")
    tail = facts.get("connection_tail")
    if tail:
        at_switch = ", ".join(f"{a} x{n}" for a, n in tail["at_switch"].items()) or "none"
        ended = ", ".join(f"{a} x{n}" for a, n in tail["ended_by_account"].items())
        lines.append(
            "connection tail: "
            + (f"{tail['tail_seconds']:.2f} s" if tail["tail_seconds"] is not None else "not over")
            + f" (switch until the last application session left the source; grace {tail['grace_seconds']} s); "
            f"sessions on the source at the switch: {at_switch}; ended by force: {tail['ended_by_force']}"
            + (f" ({ended})" if ended else "")
        )
        if tail.get("remaining"):
            lines.append(f"STILL ON THE SOURCE: {tail['remaining']}")
    shared = facts.get("migration_account_sessions_at_switch")
    if shared:
        lines.append(
            f"not ended: sessions of the migration's own account on the source at the switch ({shared}); if the "
            "application shares that account, end them yourself"
        )
    window = facts.get("rollback_window") or {}
    if window.get("state") == "open":
        lines.append(f"rollback window: open since the switch (source follows the target via {window.get('via')}); "
                     "`migrator rollback` goes back, `migrator finish` ends it")
    elif window.get("state"):
        lines.append(f"rollback window: {window['state']}")
    done = facts.get("rollback") or {}
    if done.get("phase") == "done":
        lines.append(
            f"rollback: writes paused {done['write_pause_seconds']:.2f} s; the {len(done.get('verified_tables', []))} "
            f"table(s) written on the target since the switch ({done.get('verified_rows', 0)} rows compared) verified "
            "equal on the source"
        )
    for w in facts.get("stray_writes") or []:
        from migrator.source_watch import from_fact

        lines.append(f"ALARM stray write on the source: {from_fact(w).describe()}")
    return lines


def status_data(config: Config) -> dict[str, Any]:
    from migrator.engine import execution_rank

    ro = Journal.open_readonly(config.journal_path)
    try:
        facts = ro.facts()
        owner = ro.owner()
        steps = [
            {
                "number": r.number,
                "name": r.name,
                "status": r.status,
                "attempts": r.attempts,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "last_error": r.last_error,
            }
            for r in sorted(ro.steps(), key=lambda r: execution_rank(r.number))
        ]
        copy: dict[str, Any] = dict(ro.copy_progress())
        copy["eta_seconds"] = _copy_eta(ro)
        services = {name: {"desired": d, "position": p} for name, (d, p) in ro.services().items()}
        binlogs = ro.binlog_files()
        events = ro.events(10)
    finally:
        ro.close()
    done = sum(1 for s in steps if s["status"] in ("done", "skipped"))
    applied = services.get("applier", {}).get("position")
    archive_lag = None
    if applied and binlogs:
        from migrator.mysql.positions import lag_bytes

        head = max(binlogs, key=lambda f: position_key((f[0], 0)))
        archive_lag = lag_bytes(binlogs, (applied[0], int(applied[1])), head)
    return {
        "migration": config.migration.name,
        "fingerprint": config.fingerprint(),
        "owner_pid": owner[0] if owner else None,
        "steps_done": done,
        "steps": steps,
        "copy": copy,
        "services": services,
        "binlog_files": len(binlogs),
        "binlog_bytes": sum(size for _, size in binlogs),
        "apply_lag_bytes": archive_lag,
        "snapshot": facts.get("snapshot"),
        "write_pause_seconds": facts.get("write_pause_seconds"),
        "dns_switch_seconds": facts.get("dns_switch_seconds"),
        "connection_tail": facts.get("connection_tail"),
        "stray_writes": _stray_writes(config, facts),
        "rollback_window": _window(config, facts),
        "rollback": facts.get("rollback"),
        "finished": facts.get("finished"),
        "after_cutover": _after_cutover_lines(facts),
        "recent_events": events,
    }


def _stray_writes(config: Config, facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Journaled alarms plus what the archive shows now (the streamer may have copied more since)."""
    known = list(facts.get("stray_writes") or [])
    if facts.get("final_position") is None or facts.get("finished"):
        return known
    from migrator.after_cutover import stray_writes_now

    seen = {(w["file"], int(w["position"])) for w in known}
    try:
        fresh = stray_writes_now(config, facts, from_source=True)
    except Exception as exc:  # status answers even with a server down; say what could not be checked
        return [*known, {"error": f"stray-write scan failed: {type(exc).__name__}: {exc}"}]
    return known + [w.as_fact() for w in fresh if (w.file, w.position) not in seen]


def _window(config: Config, facts: dict[str, Any]) -> dict[str, Any] | None:
    from migrator.after_cutover import window_report

    return window_report(config, facts)


def _copy_eta(journal: Journal) -> float | None:
    """Remaining chunks at the rate chunks have been finishing (chunks are sized alike, by bytes)."""
    row = journal.conn.execute(
        "SELECT COUNT(*), MIN(updated_at), MAX(updated_at), "
        "(SELECT COUNT(*) FROM copy_chunk WHERE status != 'done') FROM copy_chunk WHERE status = 'done'"
    ).fetchone()
    done, first, last, remaining = int(row[0]), row[1], row[2], int(row[3])
    if remaining == 0:
        return 0.0
    if done < 2 or last is None or last <= first:
        return None
    return round(remaining * (float(last) - float(first)) / (done - 1), 1)


def _render_status(data: dict[str, Any]) -> None:
    click.echo(
        f"migration {data['migration']}: {data['steps_done']}/14 steps done"
        + (f" (run in progress, pid {data['owner_pid']})" if data["owner_pid"] else "")
    )
    for s in data["steps"]:
        line = f"{s['number']:>2}. {s['name']:<16} {s['status']:<8} attempts={s['attempts']}"
        if s["last_error"]:
            line += f"  error: {s['last_error'].splitlines()[0][:160]}"
        click.echo(line)
    c = data["copy"]
    if c["chunks"]:
        pct = 100.0 * c["chunks_done"] / c["chunks"]
        eta = f", ETA {c['eta_seconds']:.0f} s" if c.get("eta_seconds") else ""
        click.echo(
            f"copy: {c['chunks_done']}/{c['chunks']} chunks ({pct:.0f}%), {c['rows']} rows, "
            f"{c['bytes'] / 1e6:.1f} MB{eta}"
        )
    for name, svc in sorted(data["services"].items()):
        pos = f" at {svc['position'][0]}:{svc['position'][1]}" if svc["position"] else ""
        click.echo(f"service {name}: {svc['desired']}{pos}")
    if data["binlog_files"]:
        click.echo(f"binlog archive: {data['binlog_files']} files, {data['binlog_bytes'] / 1e6:.1f} MB")
    if data["apply_lag_bytes"] is not None:
        click.echo(
            f"applier: {data['apply_lag_bytes']} bytes behind the archive (`migrator verify` measures the source)"
        )
    if data["write_pause_seconds"] is not None:
        click.echo(f"write pause: {data['write_pause_seconds']:.2f} s")
    for line in data["after_cutover"]:
        if not line.startswith("ALARM"):
            click.echo(line)
    window = data.get("rollback_window") or {}
    if window.get("state") == "open":
        if window.get("error"):
            click.echo(f"reverse replication: unknown ({window['error']})")
        elif window.get("configured"):
            click.echo(
                f"reverse replication (target -> source): {'running' if window['replicating'] else 'STOPPED'}, "
                f"{window['lag_bytes']} bytes / {window['lag_seconds']} s behind the target's head "
                f"{window['target_head'][0]}:{window['target_head'][1]}"
            )
        else:
            click.echo("reverse replication (target -> source): NOT CONFIGURED on the source")
    for w in data["stray_writes"]:
        if "error" in w:
            click.echo(f"ALARM {w['error']}")
        else:
            from migrator.source_watch import from_fact

            click.echo(f"ALARM stray write on the source: {from_fact(w).describe()}")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(config_path: str, as_json: bool) -> None:
    """Steps, copy progress, services (reads the journal only; safe while run is going)."""
    config = _load(config_path)
    logsetup.configure(quiet=as_json)  # logs on stderr, never in the answer on stdout
    _emit(status_data(config), as_json, _render_status)


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--no-checksums", is_flag=True, help="positions, lag and row counts only")
def verify(config_path: str, as_json: bool, no_checksums: bool) -> None:
    """Sync status now: positions, lag, row counts and chunk checksums. Exit 0 only when equal."""
    from migrator.verification import verify_now

    config = _load(config_path)
    # Unconfigured structlog prints to stdout, which must carry nothing but the answer (--json).
    logsetup.configure(quiet=as_json)
    data = verify_now(config, checksums=not no_checksums)

    def render(d: dict[str, Any]) -> None:
        click.echo(
            f"source head {d['source_head']}, applied {d['applied']}, lag {d['lag_bytes']} bytes, "
            f"{d['lag_seconds']} s"
        )
        for table, counts in sorted(d["row_counts"].items()):
            mark = "" if counts["source"] == counts["target"] else "  <- differs"
            click.echo(f"  {table}: source {counts['source']} rows, target {counts['target']}{mark}")
        if d.get("checksums") is not None:
            cs = d["checksums"]
            click.echo(f"checksums: {cs['chunks']} chunks, {len(cs['mismatches'])} differ")
            for m in cs["mismatches"][:20]:
                click.echo(f"  {m}")
        for difference in d.get("sequence_differences") or []:
            click.echo(f"  {difference}  <- differs")
        if d["in_sync"]:
            click.echo("IN SYNC")
        elif not d["at_head"]:
            click.echo(
                "NOT IN SYNC: the target is behind the source (differences in tables written meanwhile "
                "may be only that lag)"
            )
        else:
            click.echo("NOT IN SYNC")

    _emit(data, as_json, render)
    sys.exit(EXIT_OK if data["in_sync"] else EXIT_STEP_FAILED)


def _operator_change(config_path: str, number: int, action: str, reason: str) -> None:
    from migrator.engine import execution_rank
    from steps import STEPS

    if number not in {s.NUMBER for s in STEPS}:
        raise click.BadParameter(f"step must be 1-14, got {number}")
    config = _load(config_path)
    journal = Journal.open(config.journal_path) if config.journal_path.exists() else None
    if journal is None:
        click.echo(f"error: no journal at {config.journal_path}; nothing to change", err=True)
        sys.exit(EXIT_BAD_INPUT)
    try:
        journal.acquire()
        who = f"{getpass.getuser()}@{os.uname().nodename}"
        if action == "retry":
            journal.reset_step(number, who=who, why=reason)
            from migrator.engine import runs_after

            for later in sorted((s.NUMBER for s in STEPS), key=execution_rank):
                if runs_after(number, later) and journal.step(later).status == "failed":
                    journal.reset_step(later, who=who, why=f"after retry of step {number}")
        else:
            journal.skip_step(number, who=who, why=reason)
    finally:
        journal.close()
    click.echo(
        f"step {number}: {'will run again on the next `migrator run`' if action == 'retry' else 'skipped'}"
    )


@main.command()
@config_option
@click.option("--confirm", is_flag=True, help="really do it (without it: print what would be done)")
@click.option("--abandon", is_flag=True, help="clean up a migration that did not finish")
def cleanup(config_path: str, confirm: bool, abandon: bool) -> None:
    """Delete the snapshot replica and restore the source's binlog retention."""
    from migrator.cleanup import cleanup as run_cleanup

    config = _load(config_path)
    logsetup.configure(log_file=config.workdir / "migrator.log")
    for line in run_cleanup(config, confirm=confirm, abandon=abandon, log=logsetup.get_logger()):
        click.echo(line)
    if not confirm:
        click.echo("nothing changed: pass --confirm to do this")


@main.command("abort-cutover")
@config_option
@click.option("--reason", default="operator abort", help="recorded in the journal")
def abort_cutover(config_path: str, reason: str) -> None:
    """Give the application its writes back on the source: undo step 9's freeze, reset the pause's steps.

    Idempotent; refused once step 13 has pointed DNS at the target.
    """
    from migrator.cutover import abort_cutover as do_abort
    from migrator.runtime import make_platform

    config = _load(config_path)
    if not config.journal_path.exists():
        click.echo(f"error: no journal at {config.journal_path}; nothing to abort", err=True)
        sys.exit(EXIT_BAD_INPUT)
    logsetup.configure(log_file=config.workdir / "migrator.log")
    log = logsetup.get_logger(migration=config.migration.name)
    journal = Journal.open(config.journal_path)
    try:
        journal.acquire()  # refuses while a `run` owns the journal: stop it first (Ctrl-C / SIGTERM)
        who = f"{getpass.getuser()}@{os.uname().nodename}"
        done = do_abort(
            config, journal, make_platform(config, log=log), log=log, who=who, why=reason, automatic=False
        )
    finally:
        journal.close()
    for line in done:
        click.echo(line)
    click.echo("cut-over aborted: the application writes to the source; `migrator run` starts the cut-over again")
    sys.exit(EXIT_OK)


@main.command()
@config_option
@click.option("-v", "--verbose", is_flag=True)
def rollback(config_path: str, verbose: bool) -> None:
    """Go back to the source: pause writes on the target, wait until the source has them all, verify, switch
    DNS back, resume writes on the source. Possible from step 14 until `migrator finish`; re-run to resume."""
    from migrator.after_cutover import run_rollback

    config = _load(config_path)
    logsetup.configure(log_file=config.workdir / "migrator.log", verbose=verbose)
    crash = frozenset(filter(None, os.environ.get("MIGRATOR_CRASH_AT", "").split(",")))
    done = run_rollback(config, log=logsetup.get_logger(migration=config.migration.name), crash_points=crash)
    click.echo(
        f"rolled back: the application's DNS points at the source again; writes paused {done['write_pause_seconds']:.2f} s; "
        f"the {len(done.get('verified_tables', []))} table(s) written on the target since the switch "
        f"({done.get('verified_rows', 0)} rows compared) verified equal on the source"
    )


@main.command()
@config_option
@click.option("--accept-stray-writes", is_flag=True, help="finish although writes reached the source after the switch")
def finish(config_path: str, accept_stray_writes: bool) -> None:
    """End the rollback window: stop the reverse replication and the source watch, restore the source's read_only
    and binlog retention, drop the _migrator schema on both servers. `cleanup` needs it."""
    from migrator.after_cutover import run_finish

    config = _load(config_path)
    logsetup.configure(log_file=config.workdir / "migrator.log")
    for line in run_finish(config, log=logsetup.get_logger(), accept_stray_writes=accept_stray_writes):
        click.echo(line)
    click.echo("finished: `migrator cleanup --confirm` removes the snapshot replica")


@main.command("retry-step")
@config_option
@click.argument("number", type=int)
@click.option("--reason", default="operator retry", help="recorded in the journal")
def retry_step(config_path: str, number: int, reason: str) -> None:
    """Mark step N to run again (check first, then run) on the next `migrator run`."""
    _operator_change(config_path, number, "retry", reason)


@main.command("skip-step")
@config_option
@click.argument("number", type=int)
@click.option("--reason", required=True, help="why it is safe to skip (recorded in the journal)")
def skip_step(config_path: str, number: int, reason: str) -> None:
    """Mark step N skipped, with who and why in the journal."""
    _operator_change(config_path, number, "skip", reason)


@main.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    default=str(DEFAULT_SANDBOX),
    show_default=True,
    type=click.Path(dir_okay=False),
    help="sandbox config",
)
@click.option("--scale", default=1, show_default=True, help="dataset size (1 is about 25 MB)")
@click.option("--rate", default=50.0, show_default=True, help="workload transactions per second")
@click.option("--keep", is_flag=True, help="leave the sandbox servers running")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--rollback", "with_rollback", is_flag=True, help="then roll back to the source after writes on the target")
def demo(  # noqa: PLR0917 - one parameter per click option
    config_path: str, scale: int, rate: float, keep: bool, as_json: bool, with_rollback: bool
) -> None:
    """The embedded default: a whole migration between local servers under a live write workload."""
    from migrator.demo import run_demo

    report = run_demo(Path(config_path), scale=scale, rate=rate, keep=keep, rollback=with_rollback)
    _emit(report.as_dict(), as_json, lambda _d: click.echo(report.render()))
    sys.exit(EXIT_OK if report.ok else EXIT_STEP_FAILED)


if __name__ == "__main__":  # pragma: no cover
    main()
