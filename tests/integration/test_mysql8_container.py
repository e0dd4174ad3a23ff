"""The MySQL 8 dialect against a real MySQL 8.0, when a Docker engine answers (testcontainers).

Skipped here (no Docker engine in this sandbox); runs wherever one is reachable. The MariaDB side of
the same statements runs in every other integration test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from migrator.endpoint import Endpoint
from migrator.mysql.flavour import detect
from migrator.mysql.positions import source_head
from migrator.mysql.session import MySQLSession
from migrator.secrets import Secret


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=1).ping()
        return True
    except Exception:
        return False


pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not docker_available(), reason="no Docker engine reachable: MySQL 8 container tests skipped"),
]


@pytest.fixture(scope="module")
def mysql8() -> Iterator[Endpoint]:
    from testcontainers.mysql import MySqlContainer

    container = MySqlContainer("mysql:8.0", username="root", password="root-Pw1").with_command(
        "--log-bin=binlog --binlog-format=ROW --server-id=11 --gtid-mode=ON --enforce-gtid-consistency=ON"
    )
    with container:
        yield Endpoint(
            host=container.get_container_host_ip(),
            port=int(container.get_exposed_port(3306)),
            user="root",
            password=Secret("root-Pw1"),
        )


def test_flavour_statements_run_on_mysql8(mysql8: Endpoint) -> None:
    with MySQLSession(mysql8) as s:
        flavour = detect(str(s.value("SELECT VERSION()")))
        assert flavour.name == "mysql" and flavour.major == 8
        head = source_head(s, flavour)
        assert head.file.startswith("binlog.") and head.position > 0
        assert s.dicts(flavour.replica_status_sql) == []  # not a replica: no rows, no syntax error
        for sql in flavour.read_only_statements(True) + flavour.read_only_statements(False):
            s.execute(sql)
        assert str(s.variable("read_only")).upper() in ("OFF", "0")
