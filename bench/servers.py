"""Throwaway servers for the bench: one template, identical settings for every server and every tool."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from migrator.endpoint import Endpoint
from migrator.platforms.local_server import LocalServer, build_template
from migrator.secrets import Secret

ADMIN_USER = "bench"
ADMIN_PASSWORD = "bench-Secret#1"  # noqa: S105 - throwaway servers on loopback


def server_args(buffer_pool_mb: int) -> tuple[str, ...]:
    """Every server (source and targets) runs these: durable defaults, a pool and redo log sized for a load."""
    return (
        f"--innodb-buffer-pool-size={buffer_pool_mb}M",
        "--innodb-log-file-size=512M",
        "--innodb-flush-log-at-trx-commit=1",
        "--sync-binlog=1",
        "--max-allowed-packet=256M",
        "--gtid-strict-mode=ON",
        "--log-slave-updates=OFF",
    )


class ServerFarm:
    """Starts servers from one template under ``root``; ``fresh(name)`` gives a new, empty one."""

    def __init__(self, root: Path, *, buffer_pool_mb: int) -> None:
        self.root = root
        self.buffer_pool_mb = buffer_pool_mb
        self.template = build_template(root / "template")
        self._ids = itertools.count(10)
        self.started: list[LocalServer] = []

    def start(self, name: str, *, log_bin: bool = True, reuse: bool = False) -> LocalServer:
        """A new empty server, or with ``reuse`` the one left in ``name``'s datadir by an earlier run."""
        datadir = self.root / "servers" / name
        if reuse and (datadir / "mysql").exists():
            server = LocalServer(
                datadir, server_id=next(self._ids), log_bin=log_bin, extra_args=server_args(self.buffer_pool_mb)
            )
            server.start(timeout=120)
            self.started.append(server)
            return server
        if datadir.exists():
            shutil.rmtree(datadir)
        datadir.parent.mkdir(parents=True, exist_ok=True)
        server = LocalServer(
            datadir, server_id=next(self._ids), log_bin=log_bin, extra_args=server_args(self.buffer_pool_mb)
        )
        server.initialise_from(self.template)
        server.start(timeout=120)
        server.execute(
            f"CREATE USER '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}'",
            f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION",
        )
        self.started.append(server)
        return server

    def discard(self, server: LocalServer) -> None:
        server.kill()
        server.socket_path.unlink(missing_ok=True)
        shutil.rmtree(server.datadir, ignore_errors=True)
        if server in self.started:
            self.started.remove(server)

    @contextmanager
    def fresh(self, name: str) -> Iterator[LocalServer]:
        server = self.start(name)
        try:
            yield server
        finally:
            self.discard(server)

    def close(self, keep: LocalServer | None = None) -> None:
        for server in list(self.started):
            if server is keep:
                server.kill()
                self.started.remove(server)
            else:
                self.discard(server)


def endpoint(server: LocalServer) -> Endpoint:
    return Endpoint(host="127.0.0.1", port=server.port, user=ADMIN_USER, password=Secret(ADMIN_PASSWORD))
