"""Preflight proves every grant of migrator/grants.py before step 1, with real MariaDB accounts.

The accounts get exactly what the README's (generated) grant table lists for this migration; then
each single grant is taken away and preflight must stop with exit 2 naming it, the account, the
step and the GRANT to run, with nothing changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner

from migrator.cli import main as cli_main
from migrator.errors import EXIT_BAD_INPUT, EXIT_OK
from migrator.grants import Conditions, grant_statements
from tests.conftest import MakeServer
from tests.harness import Sandbox, make_sandbox, stop_local_replicas
from tests.integration.test_bad_input import rewrite, run_and_expect, snapshot_of_world

USER, PASSWORD = "mig", "mig-Grants#7"
ACCOUNT = f"'{USER}'@'%'"
SCHEMAS = ("shop", "hr")
# The sandbox: platform local, cutover.read_only, a target with binary logging and a dataset with a
# trigger and routines (so log_bin_trust_function_creators or SUPER), definers mapped to this account.
SANDBOX = Conditions(platform="local", read_only=True, target_binlog_untrusted=True, foreign_definers=True)

# What the README said before this change (the grants a user following it had).
OLD_README_SOURCE = [
    f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {ACCOUNT}",
    f"GRANT CREATE, INSERT, UPDATE, DELETE ON `_migrator`.* TO {ACCOUNT}",
]
OLD_README_TARGET = [
    f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, CREATE VIEW, CREATE ROUTINE, "
    f"ALTER ROUTINE, TRIGGER, EVENT, BINLOG REPLAY, READ_ONLY ADMIN ON *.* TO {ACCOUNT}",
]


def _account(box: Sandbox, source_grants: list[str], target_grants: list[str]) -> None:
    for server, statements in ((box.source, source_grants), (box.target, target_grants)):
        server.execute(f"DROP USER IF EXISTS {ACCOUNT}", f"CREATE USER {ACCOUNT} IDENTIFIED BY '{PASSWORD}'",
                       *statements)
    rewrite(box, lambda t: t.replace('user = "admin"\npassword = "admin-Secret#1"',
                                     f'user = "{USER}"\npassword = "{PASSWORD}"'))
    rewrite(box, lambda t: t.replace('fallback = "admin@%"', f'fallback = "{USER}@%"'))


def readme_grants(server: str) -> list[str]:
    servers = ("source", "snapshot") if server == "source" else ("target",)
    return grant_statements(servers, True, SANDBOX, ACCOUNT, SCHEMAS)


@pytest.fixture
def box(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    sandbox = make_sandbox(make_server, tmp_path)
    # The README's alternative to SUPER for creating triggers and routines on a logging target.
    sandbox.target.execute("SET GLOBAL log_bin_trust_function_creators = ON")
    yield sandbox
    stop_local_replicas(sandbox)


def test_readme_grants_pass_and_schema_grants_suffice(box: Sandbox) -> None:
    source, target = readme_grants("source"), readme_grants("target")
    assert any("ON `shop`.*" in g for g in source) and any("ON `hr`.*" in g for g in target)
    _account(box, source, target)
    result = box.cli("plan")
    assert result.returncode == EXIT_OK, result.stdout[-3000:] + result.stderr[-3000:]
    table = [line.split()[0] for line in result.stdout.splitlines() if re.match(r"^  (ok|n/a|missing|warning) ", line)]
    assert len(table) >= 25 and set(table) <= {"ok", "n/a"}, result.stdout
    assert not (box.workdir / "journal.sqlite").exists()


def _privileges(statement: str) -> tuple[list[str], str]:
    match = re.match(r"GRANT (.+) ON (.+) TO ", statement)
    assert match
    return [p.strip() for p in match.group(1).split(",")], match.group(2)


def _plan_in_process(box: Sandbox) -> tuple[int, str]:
    """`migrator plan` in this process: the same command, without a Python start per grant (115 of them).

    structlog is configured by the command to write to the runner's stderr; restored afterwards so later
    tests in this worker do not log into a closed stream."""
    saved = structlog.get_config()
    try:
        result = CliRunner().invoke(cli_main, ["plan", "-c", str(box.config_path)])
    finally:
        structlog.configure(**saved)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def test_each_single_grant_removed_is_named(box: Sandbox) -> None:
    source, target = readme_grants("source"), readme_grants("target")
    _account(box, source, target)
    cases = [("source", g) for g in source] + [("target", g) for g in target]
    required = {("source", g) for g in grant_statements(("source", "snapshot"), True, SANDBOX, ACCOUNT, SCHEMAS,
                                                         include_optional=False)}
    required |= {("target", g) for g in grant_statements(("target",), True, SANDBOX, ACCOUNT, SCHEMAS,
                                                          include_optional=False)}
    checked = 0
    for server_name, statement in cases:
        server = box.source if server_name == "source" else box.target
        privileges, on = _privileges(statement)
        for privilege in privileges:
            server.execute(f"REVOKE {privilege} ON {on} FROM {ACCOUNT}")
            try:
                before = snapshot_of_world(box)
                returncode, err = _plan_in_process(box)
                if (server_name, statement) not in required:  # optional: the copy falls back, preflight warns
                    assert returncode == EXIT_OK and "optional_grant_missing" in err
                    assert f"GRANT {privilege}" in err
                    continue
                assert returncode == EXIT_BAD_INPUT, (server_name, privilege, on, err[-1500:])
                assert f"GRANT {privilege}" in err and "TO 'mig'@'%'" in err, (privilege, on, err[-1500:])
                assert f"{server_name} account mig@%" in err and "step " in err, err[-1500:]
                assert "Traceback" not in err
                assert snapshot_of_world(box) == before
                checked += 1
            finally:
                server.execute(f"GRANT {privilege} ON {on} TO {ACCOUNT}")
    assert checked >= 25


def test_a_role_based_account_passes(box: Sandbox) -> None:
    for server, name in ((box.source, "source"), (box.target, "target")):
        role_grants = [g.replace(f"TO {ACCOUNT}", "TO migrator_role") for g in readme_grants(name)]
        server.execute("CREATE ROLE IF NOT EXISTS migrator_role", *role_grants)
    _account(box, ["GRANT migrator_role TO 'mig'@'%'", "SET DEFAULT ROLE migrator_role FOR 'mig'@'%'"],
             ["GRANT migrator_role TO 'mig'@'%'", "SET DEFAULT ROLE migrator_role FOR 'mig'@'%'"])
    result = box.cli("plan")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    # A role granted but not active in the migrator's sessions does not count.
    box.target.execute("SET DEFAULT ROLE NONE FOR 'mig'@'%'")
    result = box.cli("plan")
    assert result.returncode == EXIT_BAD_INPUT and "target account mig@%" in result.stderr
    assert "roles `migrator_role` are granted but not active at login" in result.stderr


def test_old_readme_grants_failed_inside_the_pause_now_stop_before_step_1(box: Sandbox) -> None:
    """The reported failures: step 9 lacked READ_ONLY ADMIN on the source, step 12 hit 1419 on the target."""
    box.target.execute("SET GLOBAL log_bin_trust_function_creators = OFF")
    _account(box, OLD_README_SOURCE, OLD_README_TARGET)
    import pymysql

    def as_mig(port: int, sql: str) -> int | None:
        conn = pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        except pymysql.err.MySQLError as exc:
            return int(exc.args[0])
        finally:
            conn.close()
        return None

    box.target.execute("CREATE DATABASE probe", "CREATE TABLE probe.t (id INT PRIMARY KEY)")
    assert as_mig(box.source.port, "SET GLOBAL read_only = ON") == 1227  # what step 9 ran
    assert as_mig(box.target.port, "CREATE TRIGGER probe.tr BEFORE INSERT ON probe.t FOR EACH ROW "
                                   "SET NEW.id = NEW.id") == 1419  # what step 12 ran
    box.target.execute("DROP DATABASE probe")
    run_and_expect(box, "READ_ONLY ADMIN", "source account mig@%", "step 9, 10",
                   "GRANT READ_ONLY ADMIN ON *.* TO 'mig'@'%'", "log_bin_trust_function_creators = ON",
                   "GRANT SUPER ON *.* TO 'mig'@'%'", "target account mig@%")


def test_a_run_with_exactly_the_readme_grants_completes(box: Sandbox) -> None:
    """Every step, with nothing but the table's grants (and the setting it offers instead of SUPER)."""
    _account(box, readme_grants("source"), readme_grants("target"))
    workload = box.workload(rate=20)
    workload.start()
    try:
        result = box.cli("run", timeout=600)
    finally:
        workload.stop()
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert "migration complete" in result.stdout
