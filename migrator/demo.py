"""`migrator demo`: the whole 14-step migration between throwaway local servers, under live writes.

It builds a source with a sample dataset and an empty target, points a local DNS record at the
source, runs a write workload that resolves that record on every connect, runs the same engine
`migrator run` uses, and reports what happened, including whether every acknowledged write
reached the target.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from migrator import log as logsetup
from migrator.config import Config, load
from migrator.dns import local as local_dns
from migrator.errors import MigratorError
from migrator.journal import Journal
from migrator.platforms.local import LocalPlatform
from migrator.platforms.local_server import LocalServer, build_template
from migrator.ports import DnsRecord
from migrator.runtime import run_migration
from migrator.sandbox.dataset import APP_USER, create_sample_dataset
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "error": self.error,
            "facts": self.facts,
            "binlog_bytes": self.binlog_bytes,
            "workload": self.workload,
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


def run_demo(config_path: Path, *, scale: int = 1, rate: float = 50.0, keep: bool = False) -> DemoReport:
    started = time.monotonic()
    config = load(config_path)
    logsetup.configure(log_file=config.workdir.parent / "demo.log")
    log = logsetup.get_logger(migration=config.migration.name)
    report = DemoReport()
    config, source, target = prepare_sandbox(config, scale=scale)
    assert config.dns.file is not None
    workload = WriteWorkload(
        config.dns.file, config.dns.record, APP_USER, Secret(APP_PASSWORD), rate_per_s=rate, seed=7
    )
    try:
        workload.start()
        try:
            run_migration(config, log=log, argv=["migrator", "demo"])
        except MigratorError as exc:
            report.error = str(exc)
        # Keep writing after the cut-over until the target has acknowledged some writes: those must land
        # on the target (the verdict below checks them). Bounded, in case the cut-over did not happen.
        if report.error is None:
            served = workload.stats().ok_by_server
            before = served.get(config.dns.target_value, 0)
            deadline = time.monotonic() + 10
            while workload.stats().ok_by_server.get(config.dns.target_value, 0) < before + 50:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        workload.stop()
        ro = Journal.open_readonly(config.journal_path)
        report.facts = ro.facts()
        report.binlog_bytes = sum(size for _, size in ro.binlog_files())
        ro.close()
        if report.error is None:
            verdict = workload.verify(config.target)
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
            report.ok = (
                verdict.ok and stats.last_server == config.dns.target_value and "verification" in report.facts
            )
    finally:
        workload.stop()
        if not keep:
            LocalPlatform(config, log=log).stop_all()
            source.stop()
            target.stop()
    report.seconds = time.monotonic() - started
    return report
