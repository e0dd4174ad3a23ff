"""Every bad input: a clear error naming what is wrong, exit code 2, and nothing changed anywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator.errors import EXIT_BAD_INPUT
from migrator.platforms.local_server import LocalServer, free_port
from tests.conftest import MakeServer
from tests.harness import Sandbox, add_account, make_sandbox, stop_local_replicas, write_config


@pytest.fixture
def sandbox(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(make_server, tmp_path)
    yield box
    stop_local_replicas(box)


def snapshot_of_world(box: Sandbox) -> dict[str, Any]:
    """What a failed run must leave exactly as it was."""
    conn = box.source.root()
    with conn.cursor() as cur:
        cur.execute("SELECT @@global.binlog_expire_logs_seconds, @@global.read_only")
        expire, read_only = cur.fetchone()
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '_migrator'")
        heartbeat = cur.fetchone()[0]
    conn.close()
    conn = box.target.root()
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ('shop', 'hr', '_migrator')")
        target_schemas = cur.fetchone()[0]
    conn.close()
    return {
        "expire": expire, "read_only": read_only, "heartbeat_schema": heartbeat, "target_schemas": target_schemas,
        "dns": box.dns_file.read_text(), "journal": (box.workdir / "journal.sqlite").exists(),
        "replicas": (box.workdir / "replicas").exists(),
    }


def rewrite(box: Sandbox, edit: Callable[[str], str]) -> None:
    box.config_path.write_text(edit(box.config_path.read_text()))


def run_and_expect(box: Sandbox, *needles: str) -> None:
    before = snapshot_of_world(box)
    result = box.cli("run")
    assert result.returncode == EXIT_BAD_INPUT, (result.returncode, result.stderr[-2000:])
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert snapshot_of_world(box) == before


def test_missing_config_file(sandbox: Sandbox) -> None:
    sandbox.config_path.unlink()
    result = sandbox.cli("run")
    assert result.returncode == EXIT_BAD_INPUT and "does not exist" in result.stderr


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t + "\n[copy\n", "invalid TOML"),
        (lambda t: t.replace("[copy]", "[copy]\nworkerz = 3"), "unknown key(s) in [copy]: workerz"),
        (lambda t: t.replace("workers = 2", 'workers = "two"'), "copy.workers must be int, got str"),
        (lambda t: t.replace('schemas = ["shop", "hr"]', 'schemas = ["shop", "nosuch"]'), "nosuch do not exist on the source"),
    ],
)
def test_config_errors(sandbox: Sandbox, edit: Callable[[str], str], needle: str) -> None:
    rewrite(sandbox, edit)
    run_and_expect(sandbox, needle)


def test_unreachable_source(sandbox: Sandbox) -> None:
    port = free_port()
    rewrite(sandbox, lambda t: t.replace(f"port = {sandbox.source.port}", f"port = {port}", 1))
    run_and_expect(sandbox, f"cannot connect to the source at admin@127.0.0.1:{port}", "hint:")


def test_wrong_password(sandbox: Sandbox) -> None:
    rewrite(sandbox, lambda t: t.replace('password = "admin-Secret#1"', 'password = "wrong"', 1))
    run_and_expect(sandbox, "source admin@127.0.0.1", "access denied")


def test_password_never_echoed(sandbox: Sandbox) -> None:
    rewrite(sandbox, lambda t: t.replace('password = "admin-Secret#1"', 'password = "canary-PW-7731"', 1))
    result = sandbox.cli("run")
    assert result.returncode == EXIT_BAD_INPUT
    assert "canary-PW-7731" not in result.stderr + result.stdout


def test_source_without_binary_log(make_server: MakeServer, tmp_path: Path) -> None:
    box = make_sandbox(make_server, tmp_path)
    nolog = make_server("nolog", 7, log_bin=False)
    nolog.execute("CREATE DATABASE shop", "CREATE DATABASE hr")
    rewrite(box, lambda t: t.replace(f"port = {box.source.port}", f"port = {nolog.port}", 1))
    result = box.cli("run")
    assert result.returncode == EXIT_BAD_INPUT and "binary logging off" in result.stderr
    assert not (box.workdir / "journal.sqlite").exists()


def test_statement_based_binlog(sandbox: Sandbox) -> None:
    sandbox.source.execute("SET GLOBAL binlog_format = 'STATEMENT'")
    run_and_expect(sandbox, "binlog_format is STATEMENT", "binlog_format=ROW")


def test_target_not_empty(sandbox: Sandbox) -> None:
    sandbox.target.execute("CREATE DATABASE shop", "CREATE TABLE shop.leftover (id INT PRIMARY KEY)",
                           "INSERT INTO shop.leftover VALUES (1)")
    before = snapshot_of_world(sandbox)
    result = sandbox.cli("run")
    assert result.returncode == EXIT_BAD_INPUT
    assert "already has data in shop.leftover" in result.stderr and "--allow-nonempty-target" in result.stderr
    assert snapshot_of_world(sandbox) == before


def test_missing_privileges_are_named(sandbox: Sandbox) -> None:
    add_account(sandbox.source, "weak", "weak-Pw1", "SELECT, REPLICATION CLIENT ON *.*")
    rewrite(sandbox, lambda t: t.replace('user = "admin"\npassword = "admin-Secret#1"',
                                         'user = "weak"\npassword = "weak-Pw1"', 1))
    run_and_expect(sandbox, "source account weak@127.0.0.1", "REPLICATION SLAVE for the source account weak@%",
                   "step 5 runs mysqlbinlog", "GRANT REPLICATION SLAVE ON *.* TO 'weak'@'%'", "GRANT RELOAD ON *.*")


def test_missing_dns_record(sandbox: Sandbox) -> None:
    rewrite(sandbox, lambda t: t.replace('record = "db.test.internal"', 'record = "db.nosuch.internal"'))
    run_and_expect(sandbox, "db.nosuch.internal")


def test_myisam_table_refused(sandbox: Sandbox) -> None:
    sandbox.source.execute("CREATE TABLE shop.legacy (id INT PRIMARY KEY) ENGINE=MyISAM")
    run_and_expect(sandbox, "shop.legacy (MyISAM)", "ENGINE=InnoDB")


def test_resume_with_another_target_refused(sandbox: Sandbox, make_server: MakeServer) -> None:
    assert sandbox.cli("run", "--until", "1").returncode == 0
    other = make_server("other-target", 9)
    rewrite(sandbox, lambda t: t.replace(f"port = {sandbox.target.port}", f"port = {other.port}", 1))
    result = sandbox.cli("run")
    assert result.returncode == EXIT_BAD_INPUT
    assert "another source, target or schema list" in result.stderr


def test_no_journal_for_status(tmp_path: Path, make_server: MakeServer) -> None:
    server: LocalServer = make_server("s", 1)
    cfg = write_config(tmp_path / "c.toml", {
        "migration": {"schemas": ["shop"], "workdir": str(tmp_path / "w")},
        "source": {"host": "127.0.0.1", "port": server.port, "user": "admin"},
        "target": {"host": "127.0.0.1", "port": server.port, "user": "admin"},
        "dns": {"record": "x", "target_value": "127.0.0.1:1"},
    })
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "migrator.cli", "status", "-c", str(cfg)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == EXIT_BAD_INPUT and "no journal" in result.stderr
