"""Client tools by what `--version` says, each with its own options (review B3).

Oracle's tools cannot run here: fake scripts print the `--version` lines of real Oracle builds
(MySQL Reference Manual, "mysqlbinlog"/"mysqldump"/"mysql" --version; Ubuntu's mysql-client-8.0), and
their option sets are the manual's. MariaDB's are the real tools installed on this machine.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator.endpoint import Endpoint, Tls
from migrator.errors import EnvironmentProblem
from migrator.mysql.flavour import MARIADB_10_11, MYSQL_8_0, MYSQL_8_4, Flavour
from migrator.platforms.local_server import LocalServer, find_binary
from migrator.ports import SnapshotCoordinates
from migrator.secrets import Secret
from migrator.tools import client_tools
from migrator.tools.binlog_applier import BinlogApplier
from migrator.tools.binlog_changes import tables_changed
from migrator.tools.client_tools import MARIADB, MYSQL, parse_version
from migrator.tools.defaults_file import DefaultsFile
from tests.conftest import MakeServer, admin_endpoint

ORACLE_80 = "{name}  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"
ORACLE_84 = "{name}  Ver 8.4.3 for Linux on x86_64 (MySQL Community Server - GPL)"
ORACLE_8019 = "{name}  Ver 8.0.19 for Linux on x86_64 (MySQL Community Server - GPL)"
UBUNTU_80 = "{name}  Ver 8.0.36-0ubuntu0.22.04.1 for Linux on x86_64 ((Ubuntu))"
MARIADB_11 = "{name} from 11.4.5-MariaDB, client 10.19 for debian-linux-gnu (x86_64)"
MARIADB_1011_OLD = "{name}  Ver 10.19 Distrib 10.11.10-MariaDB, for debian-linux-gnu (x86_64)"
MARIADB_BINLOG = "{name} Ver 3.5 for debian-linux-gnu at x86_64"


def test_version_lines() -> None:
    assert parse_version(ORACLE_80.format(name="mysqlbinlog")) == (MYSQL, (8, 0, 36))
    assert parse_version(UBUNTU_80.format(name="mysqldump")) == (MYSQL, (8, 0, 36))
    assert parse_version(ORACLE_84.format(name="mysql")) == (MYSQL, (8, 4, 3))
    assert parse_version(MARIADB_11.format(name="mariadb-dump")) == (MARIADB, (11, 4, 5))
    assert parse_version(MARIADB_1011_OLD.format(name="mysqldump")) == (MARIADB, (10, 11, 10))
    assert parse_version(MARIADB_BINLOG.format(name="mysqlbinlog")) is None  # needs --help and a sibling


def fake_tools(folder: Path, lines: dict[str, str], help_text: str = "", otherwise: str = "exit 0") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, line in lines.items():
        script = folder / name
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = "--version" ]; then echo "{line.format(name=name)}"; exit 0; fi\n'
            f'if [ "$1" = "--help" ]; then echo "{help_text}"; exit 0; fi\n{otherwise}\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def oracle(folder: Path, line: str = ORACLE_84) -> str:
    return fake_tools(folder, {"mysqlbinlog": line, "mysqldump": line, "mysql": line})


def test_mysql_84_source_gets_oracle_tools_with_their_options(tmp_path: Path) -> None:
    tools = client_tools.choose(MYSQL_8_4, search_path=oracle(tmp_path / "oracle"))
    assert tools.product == MYSQL and tools.binlog.version == (8, 4, 3)
    assert tools.binlog.server_id_option(42) == "--connection-server-id=42"
    assert tools.dump.dump_options() == ["--set-gtid-purged=OFF"]


def test_debian_mysqlbinlog_is_mariadb_and_cannot_read_mysql_84() -> None:
    real = str(Path(find_binary("mysqlbinlog")).parent)
    with pytest.raises(EnvironmentProblem) as refused:
        client_tools.choose(MYSQL_8_4, search_path=real)
    assert "no MariaDB release is documented to read MySQL 8.4 binlogs" in refused.value.message
    assert "install Oracle's MySQL client" in refused.value.hint


def test_oracle_preferred_for_mysql_80_and_mariadb_version_bound(tmp_path: Path) -> None:
    both = oracle(tmp_path / "oracle", ORACLE_80) + ":" + str(Path(find_binary("mariadb-binlog")).parent)
    assert client_tools.choose(MYSQL_8_0, search_path=both).product == MYSQL
    # MariaDB's tools read MySQL 8.0 binlogs from 10.11.11 on: the installed 10.11.19 passes, 10.11.10 not.
    assert client_tools.choose(MYSQL_8_0, search_path=str(Path(find_binary("mariadb-binlog")).parent)).product == MARIADB
    old = fake_tools(tmp_path / "old-mariadb", {n: MARIADB_1011_OLD for n in ("mariadb-binlog", "mariadb-dump", "mariadb")})
    with pytest.raises(EnvironmentProblem, match=r"10.11.10 cannot read MySQL 8.0 binlogs \(10.11.11\+ or 11.4.5\+"):
        client_tools.choose(MYSQL_8_0, search_path=old)
    with pytest.raises(EnvironmentProblem, match=r"predates 8\.0\.20"):
        client_tools.choose(MYSQL_8_0, search_path=oracle(tmp_path / "o19", ORACLE_8019))


def test_mariadb_source_refuses_oracle_tools(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem) as refused:
        client_tools.choose(MARIADB_10_11, search_path=oracle(tmp_path / "oracle"))
    assert "does not read MariaDB binlogs" in refused.value.message or "no MariaDB tool" in refused.value.message
    assert "mariadb-client" in refused.value.hint


def test_real_mariadb_tools_detected_by_version_not_name() -> None:
    tools = client_tools.choose(MARIADB_10_11)
    assert tools.product == MARIADB and tools.binlog.version >= (10, 5, 0)
    # The real tool takes its own server-id option and refuses Oracle's (what step 5 hit, review B3).
    ok = subprocess.run([tools.binlog.path, "--no-defaults", tools.binlog.server_id_option(5), "--version"],
                        capture_output=True, check=False)
    oracle_option = subprocess.run([tools.binlog.path, "--no-defaults", "--connection-server-id=5", "--version"],
                                   capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and oracle_option.returncode != 0 and "unknown variable" in oracle_option.stderr


@pytest.mark.parametrize(
    ("tls", "mysql_lines", "mariadb_lines"),
    [
        (None, ["ssl-mode=DISABLED"], []),
        (Tls(Path("/ca.pem"), True), ["ssl-mode=VERIFY_IDENTITY", "ssl-ca=/ca.pem"],
         ["ssl", "ssl-ca=/ca.pem", "ssl-verify-server-cert"]),
        (Tls(Path("/ca.pem"), False), ["ssl-mode=VERIFY_CA", "ssl-ca=/ca.pem"], ["ssl", "ssl-ca=/ca.pem"]),
        (Tls(None, False), ["ssl-mode=REQUIRED"], ["ssl"]),
    ],
)
def test_credentials_file_tls_per_product(tmp_path: Path, tls: Tls | None, mysql_lines: list[str],
                                          mariadb_lines: list[str]) -> None:
    endpoint = Endpoint(host="db", port=3306, user="u", password=Secret("p"), tls=tls)
    for product, expected in ((MYSQL, mysql_lines), (MARIADB, mariadb_lines)):
        with DefaultsFile(endpoint, parent=tmp_path, product=product) as path:
            lines = path.read_text().splitlines()
        tls_part = [line for line in lines if line.startswith("ssl")]
        assert tls_part == expected, product
        if product == MYSQL:  # Oracle 8.0 removed these (WL#9091); an unknown option is fatal
            assert "ssl" not in lines and "ssl-verify-server-cert" not in lines


def test_real_mariadb_binlog_rejects_oracle_credentials_file(tmp_path: Path) -> None:
    """Why the file is written per product: mariadb-binlog refuses ssl-mode (exit 7)."""
    endpoint = Endpoint(host="db", port=3306, user="u", password=Secret("p"), tls=Tls(None, False))
    binlog = find_binary("mariadb-binlog")
    for product, accepted in ((MARIADB, True), (MYSQL, False)):
        with DefaultsFile(endpoint, parent=tmp_path, product=product) as path:
            done = subprocess.run([binlog, f"--defaults-extra-file={path}", "--version"], capture_output=True,
                                  check=False)
        assert (done.returncode == 0) is accepted, product


@pytest.fixture
def fresh_tool_choice() -> Iterator[None]:
    client_tools.for_flavour.cache_clear()
    yield
    client_tools.for_flavour.cache_clear()


def test_every_binlog_reader_uses_the_detected_tool_not_the_name(
    make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_tool_choice: None
) -> None:
    """An old Oracle client first on PATH: for a MySQL 8.0 source it cannot read compressed transactions, so
    the MariaDB 10.11.19 set is chosen; the applier and the change reader must run that one, not whatever
    answers to `mysqlbinlog` (which here rejects every option, as Oracle's does MariaDB's)."""
    old = fake_tools(tmp_path / "old-oracle", {n: ORACLE_8019 for n in ("mysqlbinlog", "mysqldump", "mysql")},
                     otherwise='echo "$0: [ERROR] unknown option \'$1\'" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{old}{os.pathsep}{os.environ.get('PATH', '')}")
    chosen = client_tools.binlog_tool(MYSQL_8_0)
    assert chosen.product == MARIADB and not chosen.path.startswith(old)
    assert chosen == client_tools.for_flavour(MYSQL_8_0).binlog

    server = make_server("src", 1)
    server.execute("CREATE DATABASE d", "CREATE TABLE d.a (id INT PRIMARY KEY)")
    p0 = _head(server)
    server.execute("INSERT INTO d.a VALUES (1)")
    assert tables_changed(server.datadir, MYSQL_8_0, p0, _head(server)) == {("d", "a")}
    applier = BinlogApplier(admin_endpoint(server), server.datadir, MYSQL_8_0, schemas=frozenset({"d"}),
                            start=SnapshotCoordinates(*p0), secrets_dir=tmp_path / "secrets")
    assert applier._tool == chosen.path


def test_a_combination_that_cannot_read_the_source_surfaces(tmp_path: Path, fresh_tool_choice: None) -> None:
    """Only MariaDB's tools here, a MySQL 8.4 source: the readers raise what to install, never fall back to
    whatever answers to `mysqlbinlog`."""
    with pytest.raises(EnvironmentProblem, match=r"no MariaDB release is documented to read MySQL 8\.4") as refused:
        tables_changed(tmp_path, MYSQL_8_4, ("mysql-bin.000001", 4), ("mysql-bin.000001", 400))
    assert "install Oracle's MySQL client" in refused.value.hint


def _head(server: LocalServer) -> tuple[str, int]:
    conn = server.root()
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    conn.close()
    return str(file), int(pos)


def test_unknown_tool_is_refused(tmp_path: Path) -> None:
    folder = fake_tools(tmp_path / "odd", {"mysqlbinlog": "something else 1.0"})
    with pytest.raises(EnvironmentProblem, match="neither MariaDB's nor MySQL's"):
        client_tools.choose(Flavour("mysql", 8, 0), search_path=folder)
