"""After the DNS switch: sessions left on the source, stray writes, and the rollback window (real local servers)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from migrator.dns.local import resolve
from migrator.errors import EXIT_OK, EXIT_STEP_FAILED
from migrator.journal import Journal
from migrator.platforms.local_server import LocalServer
from migrator.sandbox.dataset import APP_USER
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, MakeServer
from tests.harness import APP_PASSWORD, RECORD, Sandbox, make_sandbox, stop_local_replicas

GRACE = 2


@pytest.fixture
def sandbox(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(make_server, tmp_path, cutover={"connection_grace_seconds": GRACE})
    yield box
    stop_local_replicas(box)


def facts(sandbox: Sandbox) -> dict[str, Any]:
    journal = Journal.open_readonly(sandbox.workdir / "journal.sqlite")
    try:
        return journal.facts()
    finally:
        journal.close()


def pooled_connection(sandbox: Sandbox) -> Any:
    """What a pool holds: one connection opened through DNS, then kept for as long as it works."""
    host, port = resolve(sandbox.dns_file, RECORD)
    return pymysql.connect(host=host, port=port, user=APP_USER, password=APP_PASSWORD, autocommit=True)


def served_by(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT @@port")
        return int(cur.fetchone()[0])


def query_through_pool(sandbox: Sandbox, conn: Any) -> tuple[int, bool]:
    """The pool's next query: on a dead connection, reconnect through DNS (as every pool does); the port
    that answered, and whether the old connection had been ended."""
    try:
        return served_by(conn), False
    except pymysql.err.OperationalError as exc:
        assert exc.args[0] in (2006, 2013), exc
        fresh = pooled_connection(sandbox)
        try:
            return served_by(fresh), True
        finally:
            fresh.close()


def rows(server: LocalServer, sql: str) -> list[tuple[Any, ...]]:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def test_pooled_connection_is_ended_after_the_grace_period_and_reconnects_to_the_target(sandbox: Sandbox) -> None:
    pooled = pooled_connection(sandbox)
    assert served_by(pooled) == sandbox.source.port
    ours = pymysql.connect(host="127.0.0.1", port=sandbox.source.port, user=ADMIN_USER, password=ADMIN_PASSWORD)
    result = sandbox.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    # A session of the migration's own account is never ended, only counted.
    assert served_by(ours) == sandbox.source.port
    ours.close()
    assert facts(sandbox)["migration_account_sessions_at_switch"] == {f"{ADMIN_USER}@127.0.0.1": 1}
    assert "not ended: sessions of the migration's own account" in result.stdout
    port, was_ended = query_through_pool(sandbox, pooled)
    assert was_ended, "the pooled connection to the source was still alive after the cut-over"
    assert port == sandbox.target.port
    tail = facts(sandbox)["connection_tail"]
    assert tail["at_switch"] == {f"{APP_USER}@127.0.0.1": 1}
    assert tail["ended_by_force"] == 1 and tail["ended_by_account"] == {f"{APP_USER}@127.0.0.1": 1}
    assert tail["remaining"] == {}
    assert GRACE <= tail["tail_seconds"] < GRACE + 10
    # No application session is left on the source; the migration's own were not touched.
    left = rows(sandbox.source, "SELECT USER FROM information_schema.PROCESSLIST WHERE USER = 'app'")
    assert left == []
    assert "connection tail:" in result.stdout and "ended by force: 1" in result.stdout
    assert "DNS switch:" in result.stdout and "write pause:" in result.stdout
    status = json.loads(sandbox.cli("status", "--json").stdout)
    assert status["connection_tail"]["ended_by_force"] == 1
    assert status["dns_switch_seconds"] is not None


def test_a_write_to_the_source_after_the_switch_is_an_alarm_naming_the_table(sandbox: Sandbox) -> None:
    result = sandbox.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    quiet = json.loads(sandbox.cli("status", "--json").stdout)
    assert quiet["stray_writes"] == []
    # A SUPER account is not stopped by read_only: a forgotten cron job, say.
    sandbox.source.execute("UPDATE shop.customers SET notes = 'written after the switch' WHERE id = 1")
    status = sandbox.cli("status")
    assert "ALARM stray write on the source: write on shop.customers" in status.stdout, status.stdout
    data = json.loads(sandbox.cli("status", "--json").stdout)
    (alarm,) = data["stray_writes"]
    assert alarm["tables"] == ["shop.customers"] and alarm["server_id"] == 1 and alarm["when"]
    # finish refuses to close the window over it, and journals the alarm.
    refused = sandbox.cli("finish")
    assert refused.returncode == EXIT_STEP_FAILED and "shop.customers" in refused.stderr, refused.stderr
    journal = Journal.open_readonly(sandbox.workdir / "journal.sqlite")
    try:
        events = [e for e in journal.events(200) if e["kind"] == "source.stray_write"]
        assert journal.fact("stray_writes")[0]["tables"] == ["shop.customers"]
    finally:
        journal.close()
    assert len(events) == 1
    accepted = sandbox.cli("finish", "--accept-stray-writes")
    assert accepted.returncode == EXIT_OK, accepted.stderr
    assert "1 stray write(s) accepted" in accepted.stdout


def wait_for_writes_on(workload: Any, server: LocalServer, count: int, timeout: float = 30.0) -> None:
    address = f"127.0.0.1:{server.port}"
    before = workload.stats().ok_by_server.get(address, 0)
    deadline = time.monotonic() + timeout
    while workload.stats().ok_by_server.get(address, 0) < before + count:
        assert time.monotonic() < deadline, f"the workload did not write {count} times on {address}"
        time.sleep(0.05)


def ledger(server: LocalServer) -> dict[int, tuple[Any, ...]]:
    return {int(r[0]): tuple(r) for r in rows(server, "SELECT * FROM shop.ledger")}


def assert_rolled_back(sandbox: Sandbox, workload: Any, first_id: int, *, writes_after: bool) -> None:
    """Every row the target holds is on the source, row by row; every acknowledged write is on the source.

    ``writes_after``: the workload kept writing on the source after the rollback, so a row it updated
    there since may only be newer (a higher counter), never older or missing."""
    on_target, on_source = ledger(sandbox.target), ledger(sandbox.source)
    written_on_target = [i for i in on_target if i >= first_id]
    assert len(written_on_target) >= 20, "the workload wrote too little on the target"
    if writes_after:
        differing = [
            i for i, row in on_target.items()
            if i not in on_source or (on_source[i] != row and on_source[i][1] <= row[1])
        ]
    else:
        differing = [i for i, row in on_target.items() if on_source.get(i) != row]
        assert set(on_source) == set(on_target)
    assert differing == [], f"{len(differing)} target rows differ on the source, first ids {differing[:5]}"
    from tests.conftest import admin_endpoint

    verdict = workload.verify(admin_endpoint(sandbox.source))
    assert verdict.ok, verdict.describe()
    assert resolve(sandbox.dns_file, RECORD) == ("127.0.0.1", sandbox.source.port)
    assert rows(sandbox.source, "SELECT @@global.read_only") == [(0,)]
    assert rows(sandbox.target, "SELECT @@global.read_only") == [(1,)]
    assert rows(sandbox.source, "SHOW SLAVE STATUS") == []


def run_with_writes_on_target(sandbox: Sandbox) -> Any:
    workload = sandbox.workload(rate=40)
    workload.start()
    result = sandbox.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    wait_for_writes_on(workload, sandbox.target, 60)
    status = json.loads(sandbox.cli("status", "--json").stdout)
    window = status["rollback_window"]
    assert window["state"] == "open" and window["configured"] and window["replicating"], window
    assert window["lag_bytes"] is not None
    return workload


def test_rollback_brings_every_write_made_on_the_target_back_to_the_source(sandbox: Sandbox) -> None:
    workload = run_with_writes_on_target(sandbox)
    first_target_id = max(ledger(sandbox.target)) - 30
    done = sandbox.cli("rollback")
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert "rolled back" in done.stdout and "verified equal on the source" in done.stdout
    wait_for_writes_on(workload, sandbox.source, 20)
    workload.stop()
    assert_rolled_back(sandbox, workload, first_target_id, writes_after=True)
    rollback = facts(sandbox)["rollback"]
    assert rollback["phase"] == "done" and rollback["verified_tables"] == ["shop.ledger"]
    assert 0 < rollback["write_pause_seconds"] < 30
    # A second rollback is a no-op; finish then closes what is left and cleanup may run.
    assert sandbox.cli("rollback").returncode == EXIT_OK
    assert sandbox.cli("finish").returncode == EXIT_OK
    assert rows(sandbox.source, "SHOW DATABASES LIKE '\\_migrator'") == []


@pytest.mark.parametrize("point", ["rollback.after_catchup", "rollback.after_dns", "rollback.after_replication_stopped"])
def test_rollback_killed_mid_way_finishes_when_run_again(sandbox: Sandbox, point: str) -> None:
    workload = run_with_writes_on_target(sandbox)
    first_target_id = max(ledger(sandbox.target)) - 30
    workload.stop()  # the source must end up equal to the target, row for row
    crashed = sandbox.cli("rollback", env={"MIGRATOR_CRASH_AT": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert facts(sandbox)["rollback"]["phase"] != "done"
    done = sandbox.cli("rollback")
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert_rolled_back(sandbox, workload, first_target_id, writes_after=False)


def test_finish_closes_the_window_and_restores_the_source(sandbox: Sandbox) -> None:
    result = sandbox.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert len(rows(sandbox.source, "SHOW SLAVE STATUS")) == 1
    done = sandbox.cli("finish")
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert rows(sandbox.source, "SHOW SLAVE STATUS") == []
    assert rows(sandbox.source, "SELECT @@global.read_only") == [(0,)]
    for server in (sandbox.source, sandbox.target):
        assert rows(server, "SHOW DATABASES LIKE '\\_migrator'") == []
    after = json.loads(sandbox.cli("status", "--json").stdout)
    assert after["rollback_window"]["state"] == "finished" and after["finished"]
    refused = sandbox.cli("rollback")
    assert refused.returncode == 2 and "no rollback window open" in refused.stderr


def test_a_stray_write_during_the_grace_period_is_journaled_by_the_run_itself(
    make_server: MakeServer, tmp_path: Path
) -> None:
    sandbox = make_sandbox(make_server, tmp_path, cutover={"connection_grace_seconds": 4})
    try:
        pooled = pooled_connection(sandbox)  # holds step 14 in its grace period
        run = sandbox.popen("run")
        deadline = time.monotonic() + 120
        while resolve(sandbox.dns_file, RECORD) != ("127.0.0.1", sandbox.target.port):
            assert run.poll() is None and time.monotonic() < deadline, "the run ended before the switch"
            time.sleep(0.02)
        sandbox.source.execute("UPDATE shop.customers SET notes = 'during the grace' WHERE id = 2")
        _out, err = run.communicate(timeout=120)
        assert run.returncode == EXIT_OK, err[-3000:]
        (alarm,) = facts(sandbox)["stray_writes"]
        assert alarm["tables"] == ["shop.customers"] and alarm["server_id"] == 1
        assert "during the grace" in (alarm["statement"] or "")  # MariaDB's Annotate_rows event
        pooled.close()
    finally:
        stop_local_replicas(sandbox)


def test_plan_lists_what_the_window_and_the_session_tail_need(sandbox: Sandbox) -> None:
    result = sandbox.cli("plan")
    assert result.returncode == EXIT_OK, result.stderr
    text = result.stdout
    assert "REPLICATION SLAVE" in text and "CHANGE MASTER TO + START SLAVE on the source" in text
    assert f"must reach the target at 127.0.0.1:{sandbox.target.port}" in text
    assert f"give the application's sessions on the source {GRACE} s" in text and "KILL CONNECTION" in text
    assert "streamer keeps reading the source" in text


def test_a_target_without_binlog_stops_the_switch_with_a_way_out(make_server: MakeServer, tmp_path: Path) -> None:
    from migrator import rollback
    from migrator.errors import StepFailed

    sandbox = make_sandbox(make_server, tmp_path)
    no_binlog = make_server("target-nobinlog", 8, log_bin=False)
    config = sandbox.config()
    from dataclasses import replace

    from tests.conftest import admin_endpoint

    config = replace(config, target=admin_endpoint(no_binlog))
    with pytest.raises(StepFailed) as exc:
        rollback.note_reverse_start(config)
    assert "binary logging off" in exc.value.message and "enabled = false" in (exc.value.hint or "")


def test_events_replicated_back_from_the_target_are_not_stray(make_server: MakeServer) -> None:
    """With log_slave_updates (RDS MySQL's default) the target's events reach the source's binlog: they carry
    the target's server id and are skipped; the source's own write is the only alarm."""
    from migrator import source_watch
    from migrator.mysql.flavour import MARIADB_10_11
    from tests.conftest import admin_endpoint

    source = make_server("src", 11, extra_args=("--log-slave-updates",))
    target = make_server("tgt", 12)
    for server in (source, target):
        server.execute("CREATE DATABASE IF NOT EXISTS shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)")
    since = tuple(rows(source, "SHOW MASTER STATUS")[0][:2])
    head = rows(target, "SHOW MASTER STATUS")[0]
    source.execute(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={target.port}, MASTER_USER='admin', "
        f"MASTER_PASSWORD='admin-Secret#1', MASTER_LOG_FILE='{head[0]}', MASTER_LOG_POS={head[1]}, MASTER_USE_GTID=no",
        "START SLAVE",
    )
    target.execute("INSERT INTO shop.t VALUES (1, 1), (2, 2)")
    deadline = time.monotonic() + 30
    while rows(source, "SELECT COUNT(*) FROM shop.t") != [(2,)]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    source.execute("INSERT INTO shop.t VALUES (3, 3)")
    found = source_watch.scan_source(
        admin_endpoint(source), MARIADB_10_11, (str(since[0]), int(since[1])), ["shop"],
        secrets_dir=Path(source.datadir).parent / "run",
    )
    assert [w.server_id for w in found] == [12, 11]
    only = source_watch.scan_source(
        admin_endpoint(source), MARIADB_10_11, (str(since[0]), int(since[1])), ["shop"],
        secrets_dir=Path(source.datadir).parent / "run", ignore_server_ids=frozenset({12}),
    )
    assert [(w.server_id, w.tables) for w in only] == [(11, ("shop.t",))]
    assert "VALUES (3, 3)" in (only[0].statement or "")


def test_a_window_that_cannot_open_fails_step_14_loudly_and_a_fixed_config_resumes(
    make_server: MakeServer, tmp_path: Path
) -> None:
    from migrator.platforms.local_server import free_port

    closed = free_port()
    sandbox = make_sandbox(make_server, tmp_path, rollback={"target_port": closed, "start_timeout_seconds": 3})
    try:
        failed = sandbox.cli("run")
        assert failed.returncode == EXIT_STEP_FAILED
        assert "writes run on the target, but the rollback window did not open" in failed.stderr, failed.stderr
        assert f"127.0.0.1:{closed}" in failed.stderr
        assert rows(sandbox.target, "SELECT @@global.read_only") == [(0,)]  # the application is not held up
        text = sandbox.config_path.read_text().replace(f"target_port = {closed}\n", "")
        sandbox.config_path.write_text(text)
        done = sandbox.cli("run")
        assert done.returncode == EXIT_OK, done.stderr[-3000:]
        assert facts(sandbox)["rollback_window"]["state"] == "open"
        assert rows(sandbox.source, "SHOW SLAVE STATUS")[0][10:12] == ("Yes", "Yes")
    finally:
        stop_local_replicas(sandbox)


def test_a_target_with_the_source_server_id_is_refused_before_the_switch(
    make_server: MakeServer, tmp_path: Path
) -> None:
    sandbox = make_sandbox(make_server, tmp_path)
    try:
        sandbox.target.execute("SET GLOBAL server_id = 1")
        failed = sandbox.cli("run")
        assert failed.returncode == EXIT_STEP_FAILED
        assert "both have server_id 1" in failed.stderr, failed.stderr[-2000:]
        assert resolve(sandbox.dns_file, RECORD) == ("127.0.0.1", sandbox.source.port)  # not switched
    finally:
        stop_local_replicas(sandbox)


def test_a_kill_at_the_end_of_step_14_keeps_the_pause_figure_and_the_window(sandbox: Sandbox) -> None:
    pooled = pooled_connection(sandbox)
    crashed = sandbox.cli("run", env={"MIGRATOR_CRASH_AT": "step.14.before_complete"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    before = facts(sandbox)
    assert before["rollback_window"]["state"] == "open" and before["connection_tail"]["ended_by_force"] == 1
    done = sandbox.cli("run")
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    after = facts(sandbox)
    assert after["write_pause_seconds"] == before["write_pause_seconds"]
    assert after["rollback_window"] == before["rollback_window"]
    assert after["connection_tail"] == before["connection_tail"]
    assert rows(sandbox.source, "SHOW SLAVE STATUS")[0][10:12] == ("Yes", "Yes")
    pooled.close()
