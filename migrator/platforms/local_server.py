"""Throwaway MariaDB/MySQL server processes on loopback, for the sandbox, the local platform and tests.

A server is a datadir plus a process started with ``--no-defaults`` and every path of its own,
so nothing here reads or touches a system-wide server (one may listen on 3306).
Datadirs are copied from a template built once by ``mariadb-install-db`` (0.1 s instead of 0.9 s).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from migrator.errors import EnvironmentProblem


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(*names: str) -> str:
    for name in names:
        for prefix in ("", "/usr/sbin/", "/usr/bin/", "/usr/local/mysql/bin/"):
            found = (
                shutil.which(prefix + name)
                if prefix == ""
                else (prefix + name if os.access(prefix + name, os.X_OK) else None)
            )
            if found:
                return found
    raise EnvironmentProblem(
        f"none of {', '.join(names)} is installed",
        hint="install the MariaDB server and client (apt-get install mariadb-server mariadb-client), "
        "or run the README's set-up command, which does it for you",
    )


def build_template(path: Path) -> Path:
    """Initialise a datadir once; servers copy it. Idempotent: a finished template has a marker."""
    marker = path / ".template-ready"
    if marker.exists():
        return path
    # Build aside and rename into place: a build killed half-way (kill -9 of the orchestrator) leaves its
    # mariadb-install-db still writing into its directory, which can then be neither reused nor removed.
    final, path = path, path.parent / f"{path.name}.build-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    install_db = find_binary("mariadb-install-db", "mysql_install_db")
    tmp = path.parent / (path.name + ".tmp")
    tmp.mkdir(exist_ok=True)
    cmd = [
        install_db,
        "--no-defaults",
        f"--datadir={path}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        f"--tmpdir={tmp}",
        "--innodb-log-file-size=16M",
    ]
    if os.geteuid() == 0:
        cmd.append("--user=root")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise EnvironmentProblem(f"mariadb-install-db failed: {proc.stderr.strip()[-800:]}")
    (path / marker.name).write_text("ok\n")
    if final.exists():  # an unfinished build from a dead process: set it aside, never reuse it
        final.rename(final.parent / f"{final.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
    path.rename(final)
    shutil.rmtree(tmp, ignore_errors=True)
    return final


@dataclass
class LocalServer:
    """One mariadbd process with its own datadir, socket and loopback port."""

    datadir: Path
    server_id: int
    port: int = 0
    extra_args: tuple[str, ...] = ()
    log_bin: bool = True
    detached: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket_path(self) -> Path:
        # Unix socket paths are limited to ~107 bytes; datadirs under pytest's tmp can be long.
        # Derived from the datadir alone, so every process (a resumed run too) finds the same socket.
        digest = hashlib.sha256(str(self.datadir.resolve()).encode()).hexdigest()[:20]
        return Path(tempfile.gettempdir()) / f"migrator-{digest}.sock"

    @property
    def pid_file(self) -> Path:
        return self.datadir / "server.pid"

    @property
    def error_log(self) -> Path:
        return self.datadir / "error.log"

    def initialise_from(self, template: Path) -> None:
        if (self.datadir / "mysql").exists():
            return
        shutil.copytree(template, self.datadir, dirs_exist_ok=True)
        (self.datadir / ".template-ready").unlink(missing_ok=True)

    def args(self) -> list[str]:
        tmp = self.datadir / "tmp"
        tmp.mkdir(exist_ok=True)
        args = [
            find_binary("mariadbd", "mysqld"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket_path}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.pid_file}",
            f"--tmpdir={tmp}",
            f"--log-error={self.error_log}",
            f"--server-id={self.server_id}",
            "--skip-name-resolve",
            "--skip-slave-start",
            "--relay-log=relay-bin",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--innodb-buffer-pool-dump-at-shutdown=0",
            "--innodb-buffer-pool-load-at-startup=0",
            "--max-connections=200",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
        ]
        if self.log_bin:
            args += ["--log-bin=mysql-bin", "--binlog-format=ROW", "--binlog-row-image=FULL"]
        if os.geteuid() == 0:
            args.append("--user=root")
        args += list(self.extra_args)
        return args

    def start(self, timeout: float = 30.0) -> None:
        if self.is_running():
            return
        for attempt in range(5):
            if self.port == 0 or attempt > 0:
                self.port = free_port()
            self.socket_path.unlink(missing_ok=True)
            with open(self.datadir / "stdout.log", "ab") as out:
                self.process = subprocess.Popen(
                    self.args(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            if self._wait_ready(timeout):
                (self.datadir / "port").write_text(str(self.port))
                return
            log = self.error_log.read_text(errors="replace") if self.error_log.exists() else ""
            self.kill()
            if "Address already in use" in log or "Do you already have another" in log:
                continue
            raise EnvironmentProblem(f"mariadbd on port {self.port} did not start: {log[-1500:]}")
        raise EnvironmentProblem("mariadbd could not find a free port after 5 tries")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                conn = pymysql.connect(unix_socket=str(self.socket_path), user="root", connect_timeout=2)
                conn.close()
                return True
            except pymysql.err.OperationalError:
                time.sleep(0.05)
        return False

    def pid(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            return self.process.pid
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def is_running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        port_file = self.datadir / "port"
        if self.process is None and port_file.exists():
            self.port = int(port_file.read_text())
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Clean shutdown (SIGTERM), escalating to SIGKILL."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 5)

    def kill(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_exit(pid, 10)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.pid == pid:
                if self.process.poll() is not None:
                    return True
            else:
                # A child started by another LocalServer object of this process lingers as a zombie
                # (os.kill(pid, 0) succeeds on zombies) until someone reaps it.
                with contextlib.suppress(ChildProcessError):
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        return True
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return True
            time.sleep(0.02)
        return False

    def root(self, database: str | None = None) -> Any:
        """An administrative connection over the unix socket (tests and the sandbox only)."""
        return pymysql.connect(
            unix_socket=str(self.socket_path),
            user="root",
            database=database,
            autocommit=True,
            charset="utf8mb4",
        )

    def execute(self, *statements: str) -> None:
        conn = self.root()
        try:
            with conn.cursor() as cur:
                for sql in statements:
                    cur.execute(sql)
        finally:
            conn.close()
