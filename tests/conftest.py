"""Fixtures: throwaway MariaDB processes from a template datadir, one set per test that needs them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from migrator.endpoint import Endpoint
from migrator.platforms.local_server import LocalServer, build_template
from migrator.secrets import Secret

# A test's servers hold up to ~0.5 GB at once (passed tests' directories are removed, see
# pyproject's tmp_path_retention_policy); below this, servers fail half-way with "table is full".
MIN_FREE_BYTES = 2 * 1024**3

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-Secret#1"


def admin_endpoint(server: LocalServer) -> Endpoint:
    return Endpoint(host="127.0.0.1", port=server.port, user=ADMIN_USER, password=Secret(ADMIN_PASSWORD))


def add_admin(server: LocalServer) -> None:
    server.execute(
        f"CREATE USER IF NOT EXISTS '{ADMIN_USER}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}'",
        f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_USER}'@'%' WITH GRANT OPTION",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    base = session.config.option.basetemp or tempfile.gettempdir()
    free = shutil.disk_usage(Path(base) if Path(base).exists() else tempfile.gettempdir()).free
    if free < MIN_FREE_BYTES:
        pytest.exit(
            f"only {free / 1024**3:.1f} GiB free under {base}; the tests' throwaway servers need "
            f"{MIN_FREE_BYTES / 1024**3:.0f} GiB: free some space or point --basetemp (or TMPDIR) elsewhere",
            returncode=4,
        )


@pytest.fixture(scope="session")
def server_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("template") / "datadir")


MakeServer = Callable[..., LocalServer]


class ServerMaker:
    """``make_server``: starts servers from the session's template; kills them at teardown.

    ``replica_template`` is the same template: make_sandbox puts a copy where the local platform's
    step 2 would otherwise run mariadb-install-db again (~1.2 s of CPU per migration)."""

    def __init__(self, template: Path, root: Path) -> None:
        self.replica_template = template
        self.root = root
        self.started: list[LocalServer] = []

    def __call__(
        self, name: str, server_id: int, *, log_bin: bool = True, extra_args: tuple[str, ...] = ()
    ) -> LocalServer:
        server = LocalServer(self.root / name, server_id=server_id, log_bin=log_bin, extra_args=extra_args)
        server.datadir.parent.mkdir(parents=True, exist_ok=True)
        server.initialise_from(self.replica_template)
        server.start()
        add_admin(server)
        self.started.append(server)
        return server


@pytest.fixture
def make_server(server_template: Path, tmp_path: Path) -> Iterator[MakeServer]:
    """Start a server: ``make_server("source", server_id=1)``; killed and removed at teardown."""
    maker = ServerMaker(server_template, tmp_path / "servers")
    yield maker
    for server in maker.started:
        server.kill()
        server.socket_path.unlink(missing_ok=True)
