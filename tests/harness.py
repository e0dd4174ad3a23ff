"""Shared test scaffolding: a sandbox (source with data, empty target, DNS record) and its config file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrator.config import Config, load
from migrator.dns import local as local_dns
from migrator.platforms.local_server import LocalServer
from migrator.ports import DnsRecord
from migrator.sandbox.dataset import APP_USER, SampleDataset, create_sample_dataset
from migrator.sandbox.workload import WriteWorkload
from migrator.secrets import Secret
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, MakeServer, ServerMaker

APP_PASSWORD = "test-app-Pw9"
RECORD = "db.test.internal"
REPO = Path(__file__).resolve().parent.parent


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass
class Sandbox:
    source: LocalServer
    target: LocalServer
    workdir: Path
    config_path: Path
    dataset: SampleDataset

    @property
    def dns_file(self) -> Path:
        return self.workdir / "dns.json"

    def config(self) -> Config:
        return load(self.config_path)

    def workload(self, rate: float = 40.0, seed: int = 1) -> WriteWorkload:
        return WriteWorkload(self.dns_file, RECORD, APP_USER, Secret(APP_PASSWORD), rate_per_s=rate, seed=seed)

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`migrator ARGS -c CONFIG` as a separate process, as an operator would run it."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "migrator.cli", *args, "-c", str(self.config_path)],
            capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO, check=False,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.Popen(
            [sys.executable, "-m", "migrator.cli", *args, "-c", str(self.config_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=REPO,
        )


def add_account(server: LocalServer, user: str, password: str, grant: str) -> None:
    server.execute(
        f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'",
        f"GRANT {grant} TO '{user}'@'%'",
    )


def make_sandbox(
    make_server: MakeServer, tmp_path: Path, *, scale: int = 1, build_replica_template: bool = False,
    **overrides: dict[str, Any],
) -> Sandbox:
    """Source with the sample dataset, an empty target (with the app's account), a DNS record on the source.

    Step 2 of the local platform builds a datadir template in the workdir (mariadb-install-db, ~1.2 s of
    CPU); the sandbox puts a copy of the session's identical template there unless
    ``build_replica_template`` (tests of that build keep it) or the servers come from outside pytest.
    """
    source = make_server("source", 1)
    target = make_server("target", 2)
    add_account(target, APP_USER, APP_PASSWORD, "SELECT, INSERT, UPDATE, DELETE, EXECUTE ON *.*")
    from tests.conftest import admin_endpoint

    dataset = create_sample_dataset(admin_endpoint(source), scale=scale, app_password=Secret(APP_PASSWORD))
    workdir = tmp_path / "work"
    workdir.mkdir()
    if isinstance(make_server, ServerMaker) and not build_replica_template:
        shutil.copytree(make_server.replica_template, workdir / "template")
    local_dns.create(workdir / "dns.json", DnsRecord(RECORD, f"127.0.0.1:{source.port}", ttl=1))
    sections: dict[str, dict[str, Any]] = {
        "migration": {"name": "test", "workdir": str(workdir), "platform": "local", "schemas": ["shop", "hr"]},
        "source": {"host": "127.0.0.1", "port": source.port, "user": ADMIN_USER, "password": ADMIN_PASSWORD},
        "target": {"host": "127.0.0.1", "port": target.port, "user": ADMIN_USER, "password": ADMIN_PASSWORD},
        "replica": {"port": 0, "server_id": 3},
        "copy": {"workers": 2, "chunk_mb": 2},
        "sync": {"max_lag_bytes": 200_000, "max_lag_seconds": 3, "timeout_seconds": 120, "heartbeat_seconds": 0.3,
                 "poll_seconds": 0.1},
        # Grace 2 s, not the production 30 s: a session held on the source (an idle client, a pool) is
        # ended by force after it; tests of the grace itself set their own.
        "cutover": {"freeze_timeout_seconds": 10, "catchup_timeout_seconds": 60, "connection_grace_seconds": 2},
        "dns": {"provider": "local", "record": RECORD, "target_value": f"127.0.0.1:{target.port}", "ttl": 0,
                "file": str(workdir / "dns.json")},
        "definers": {"fallback": f"{ADMIN_USER}@%"},
    }
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    config_path = write_config(tmp_path / "migration.toml", sections)
    return Sandbox(source, target, workdir, config_path, dataset)


def stop_local_replicas(sandbox: Sandbox) -> None:
    """The local platform's replica is a detached process: tests stop it explicitly."""
    replicas = sandbox.workdir / "replicas"
    if replicas.exists():
        for datadir in replicas.iterdir():
            if datadir.is_dir():
                LocalServer(datadir, server_id=3).kill()
