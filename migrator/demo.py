"""`migrator demo`: the whole 14-step migration between throwaway local servers, under live writes.

It builds a source with a sample dataset and an empty target, points a local DNS record at the
source, runs a write workload that resolves that record on every connect, runs the same engine
`migrator run` uses, and reports what happened, including whether every acknowledged write
reached the target.

It also holds one pooled connection to the source from before the cut-over (migrator/sandbox/pool.py):
the report shows it ended after the grace period and back on the target. With ``rollback=True`` it
then rolls back after writes on the target and checks every acknowledged write is on the source.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from migrator import log as logsetup
from migrator.after_cutover import run_rollback
from migrator.config import Config, load
from migrator.dns import local as local_dns
from migrator.errors import MigratorError
from migrator.journal import Journal
from migrator.platforms.local import LocalPlatform
from migrator.platforms.local_server import LocalServer, build_template
from migrator.ports import DnsRecord
from migrator.runtime import run_migration
from migrator.sandbox.dataset import APP_USER, create_sample_dataset
from migrator.sandbox.pool import PooledReader
from migrator.sandbox.workload import WriteWorkload
from migrator.secrets import Secret


@dataclass
class DemoReport:
    ok: bool = False
    seconds: float = 0.0
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    binlog_bytes: int = 0
    workload: dict[str, Any] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)
    rollback: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "facts": self.facts,
            "binlog_bytes": self.binlog_bytes,
            "workload": self.workload,
            "pool": self.pool,
            "rollback": self.rollback,
        }

    def render(self) -> str:
        f = self.facts
        lines = [f"demo {'PASSED' if self.ok else 'FAILED'} in {self.seconds:.1f} s"]
        if self.error:
            lines.append(f"  error: {self.error}")
        copy = f.get("copy") or {}
        if copy:
            secs = copy.get("seconds") or 0
            mb = copy.get("bytes", 0) / 1e6
            lines.append(
                f"  copy:      {copy.get('rows', 0)} rows, {mb:.1f} MB in {secs} s"
                + (f" ({mb / secs:.1f} MB/s)" if secs else "")
                + f", {copy.get('chunks', 0)} chunks"
            )
        lines.append(f"  binlogs:   {self.binlog_bytes / 1e6:.2f} MB streamed and applied")
        approx = f.get("approx_sync") or {}
        if approx:
            lines.append(
                f"  lag:       {approx.get('lag_bytes')} bytes, {approx.get('lag_seconds')} s when cut-over began"
            )
        if "write_pause_seconds" in f:
            lines.append(
                f"  pause:     {f['write_pause_seconds']:.2f} s between step 9 and step 14"
                f" (the app saw a longest gap of {self.workload.get('longest_gap_seconds', 0):.2f} s)"
            )
        if "dns_switch_seconds" in f:
            lines.append(f"  DNS:       {f['dns_switch_seconds']:.2f} s to switch the record (UPSERT until in sync)")
        tail = f.get("connection_tail") or {}
        if tail:
            at_switch = ", ".join(f"{a} x{n}" for a, n in tail.get("at_switch", {}).items()) or "none"
            lines.append(
                f"  tail:      {tail['tail_seconds']:.2f} s from the switch until the last application session left "
                f"the source (grace {tail['grace_seconds']} s; at the switch: {at_switch}; "
                f"ended by force: {tail['ended_by_force']})"
            )
        if self.pool:
            p = self.pool
            path = " -> ".join(p["path"])
            lines.append(
                f"  pool:      one pooled connection, opened before the cut-over and kept: {path}; ended "
                f"{p['ended']} time(s) by the migrator, each time it reconnected through DNS "
                f"(queries per server: {p['queries_by_server']})"
            )
        v = f.get("verification") or {}
        if v:
            lines.append(
                f"  verified:  {v.get('tables')} tables equal: {v.get('proven_before_pause')} proven before the "
                f"pause, {v.get('checked_during_pause')} checked during it ({v.get('rows_checked')} rows, "
                f"{v.get('seconds')} s)"
            )
        if self.workload:
            w = self.workload
            lines.append(
                f"  workload:  {w.get('ok_ops')} acknowledged writes, {w.get('missing')} missing, "
                f"{w.get('off')} counters off, last writes served by {w.get('last_server')}"
            )
        if self.rollback:
            r = self.rollback
            back = (f.get("rollback") or {}).get("connection_tail") or {}
            lines.append(
                f"  back:      DNS back to the source in {(f.get('rollback') or {}).get('dns_seconds', 0):.2f} s; "
                f"{back.get('ended_by_force', 0)} pooled session(s) left on the target ended after the grace"
            )
            lines.append(
                f"  rollback:  writes paused {r.get('write_pause_seconds', 0):.2f} s; the table(s) written on the target "
                f"since the switch ({', '.join(r.get('verified_tables', []))}: {r.get('verified_rows')} rows compared) "
                "equal on the source; "
                f"{r.get('acknowledged')} acknowledged writes ({r.get('on_target')} of them on the target) all on "
                f"the source afterwards: {r.get('verdict')}"
            )
        for w in f.get("stray_writes") or []:
            lines.append(f"  ALARM:     stray write on the source: {w}")
        return "\n".join(lines)


def _server(root: Path, name: str, server_id: int, template: Path) -> LocalServer:
    server = LocalServer(root / name, server_id=server_id)
    server.initialise_from(template)
    server.start()
    return server


APP_PASSWORD = "sandbox-app-Pw2"  # noqa: S105 - a throwaway sandbox account


def _add_account(server: LocalServer, user: str, password: str, grant: str, *, admin: bool = False) -> None:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
            cur.execute(f"GRANT {grant} TO %s@'%%'" + (" WITH GRANT OPTION" if admin else ""), (user,))
    finally:
        conn.close()


def prepare_sandbox(config: Config, *, scale: int) -> tuple[Config, LocalServer, LocalServer]:
    """Fresh servers and DNS under the config's workdir; returns the config with real ports filled in."""
    workdir = config.workdir
    old = LocalPlatform(config, log=logsetup.get_logger())
    old.stop_all()
    for name in ("source", "target"):
        LocalServer(workdir / "servers" / name, server_id=1).stop()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    template = build_template(workdir / "template")
    source = _server(workdir / "servers", "source", 1, template)
    target = _server(workdir / "servers", "target", 2, template)
    for server in (source, target):
        _add_account(
            server, config.source.user, config.source.password.reveal(), "ALL PRIVILEGES ON *.*", admin=True
        )
    # Accounts are not migrated: as on a real EC2 target, the operator creates the app's account first.
    _add_account(target, APP_USER, APP_PASSWORD, "SELECT, INSERT, UPDATE, DELETE, EXECUTE ON *.*")
    src_ep = config.source.with_address("127.0.0.1", source.port)
    tgt_ep = config.target.with_address("127.0.0.1", target.port)
    create_sample_dataset(src_ep, scale=scale, app_password=Secret(APP_PASSWORD))
    config = replace(
        config.with_endpoints(source=src_ep, target=tgt_ep),
        dns=replace(config.dns, target_value=f"127.0.0.1:{target.port}"),
    )
    assert config.dns.file is not None
    local_dns.create(config.dns.file, DnsRecord(config.dns.record, f"127.0.0.1:{source.port}", ttl=2))
    return config, source, target


def _wait_for_writes_on(workload: WriteWorkload, server: str, count: int, seconds: float = 10.0) -> None:
    """Bounded: in case the cut-over (or the rollback) did not happen, the report says so."""
    before = workload.stats().ok_by_server.get(server, 0)
    deadline = time.monotonic() + seconds
    while workload.stats().ok_by_server.get(server, 0) < before + count and time.monotonic() < deadline:
        time.sleep(0.05)


DEMO_GRACE_SECONDS = 3  # the sandbox shows the end of a pooled session in seconds, not after the default 30


def run_demo(
    config_path: Path, *, scale: int = 1, rate: float = 50.0, keep: bool = False, rollback: bool = False
) -> DemoReport:
    started = time.monotonic()
    config = load(config_path)
    config = replace(config, cutover=replace(config.cutover, connection_grace_seconds=DEMO_GRACE_SECONDS))
    logsetup.configure(log_file=config.workdir.parent / "demo.log")
    log = logsetup.get_logger(migration=config.migration.name)
    report = DemoReport()
    config, source, target = prepare_sandbox(config, scale=scale)
    assert config.dns.file is not None
    workload = WriteWorkload(
        config.dns.file, config.dns.record, APP_USER, Secret(APP_PASSWORD), rate_per_s=rate, seed=7
    )
    pool = PooledReader(config.dns.file, config.dns.record, APP_USER, Secret(APP_PASSWORD))
    source_address = f"127.0.0.1:{source.port}"
    roles = {source_address: "source", config.dns.target_value: "target"}
    try:
        workload.start()
        pool.start()
        try:
            run_migration(config, log=log, argv=["migrator", "demo"])
        except MigratorError as exc:
            report.error = str(exc)
        # Keep writing after the cut-over until the target has acknowledged some writes: those must land
        # on the target (the verdict below checks them).
        if report.error is None:
            _wait_for_writes_on(workload, config.dns.target_value, 50)
        if report.error is None and rollback:
            try:
                done = run_rollback(config, log=log)
            except MigratorError as exc:
                report.error = f"rollback: {exc}"
            else:
                report.rollback = {k: done.get(k) for k in ("write_pause_seconds", "verified_rows", "verified_tables")}
                _wait_for_writes_on(workload, source_address, 50)
        workload.stop()
        pool_stats = pool.stop()
        report.pool = {
            "first_server": pool_stats.first_server,
            "last_server": pool_stats.last_server,
            "ended": pool_stats.ended,
            "ended_after_s": None if pool_stats.ended_after_s is None else round(pool_stats.ended_after_s, 1),
            "queries_by_server": {roles.get(k, k): v for k, v in pool_stats.queries_by_server.items()},
            "path": [f"{roles.get(k, k)} ({k})" for k in pool_stats.servers],
        }
        ro = Journal.open_readonly(config.journal_path)
        report.facts = ro.facts()
        report.binlog_bytes = sum(size for _, size in ro.binlog_files())
        ro.close()
        if report.error is None:
            # After a rollback every acknowledged write, on either server, must be on the source.
            final_server = config.source if report.rollback else config.target
            final_address = source_address if report.rollback else config.dns.target_value
            verdict = workload.verify(final_server)
            stats = workload.stats()
            report.workload = {
                "ok_ops": stats.ops_ok,
                "failed_ops": stats.ops_failed_total,
                "longest_gap_seconds": stats.longest_gap_s,
                "last_server": stats.last_server,
                "missing": len(verdict.missing_ids),
                "off": len(verdict.duplicated_ids) + len(verdict.lost_update_ids),
                "unexpected": len(verdict.unexpected_ids),
                "ok": verdict.ok,
            }
            if report.rollback:
                report.rollback.update(
                    acknowledged=stats.ops_ok,
                    on_target=stats.ok_by_server.get(config.dns.target_value, 0),
                    verdict=verdict.describe(),
                    ok=verdict.ok,
                )
            report.ok = (
                verdict.ok
                and stats.last_server == final_address
                and "verification" in report.facts
                and pool_stats.ended >= 1
                and pool_stats.last_server == final_address
            )
    finally:
        workload.stop()
        pool.stop()
        if not keep:
            LocalPlatform(config, log=log).stop_all()
            source.stop()
            target.stop()
    report.seconds = time.monotonic() - started
    return report
