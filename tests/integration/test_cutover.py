"""The cut-over against real local servers: what runs before the write pause, and what the pause holds."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator.dns import local as local_dns
from migrator.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_STEP_FAILED, EXIT_WAITING_ON_OPERATOR
from migrator.journal import Journal
from migrator.platforms.local_server import LocalServer
from migrator.ports import SnapshotCoordinates
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, MakeServer
from tests.harness import RECORD, Sandbox, make_sandbox, stop_local_replicas
from tests.integration.test_binlog_applier import copy_binlogs, make_applier, master_status, rows
from tests.integration.test_snapshot_xa import XA_ROW, PreparedXa

MIG_USER, MIG_PASSWORD = "mig", "mig-Secret#1"


@pytest.fixture
def boxes() -> Iterator[list[Sandbox]]:
    made: list[Sandbox] = []
    yield made
    for box in made:
        stop_local_replicas(box)


def steps_status(box: Sandbox) -> dict[int, str]:
    conn = sqlite3.connect(f"file:{box.workdir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        return {int(n): str(s) for n, s in conn.execute("SELECT number, status FROM step")}
    finally:
        conn.close()


def value(server: LocalServer, sql: str) -> Any:
    return rows(server, sql)[0][0]


def events(box: Sandbox) -> list[dict[str, Any]]:
    ro = Journal.open_readonly(box.workdir / "journal.sqlite")
    try:
        return ro.events(500)
    finally:
        ro.close()


def test_a_routine_the_target_would_refuse_stops_the_run_before_anything_changes(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    """Target with binary logging, log_bin_trust_function_creators=OFF, a migration account without SUPER:
    creating the source's trigger would fail with 1419 (before this work: in step 12, after the pause began).
    Preflight names it before step 1; with the remedy, step 12 runs while the application still writes."""
    box = make_sandbox(
        make_server, tmp_path, target={"user": MIG_USER, "password": MIG_PASSWORD}, definers={"fallback": "mig@%"}
    )
    boxes.append(box)
    box.target.execute(
        f"CREATE USER '{MIG_USER}'@'%' IDENTIFIED BY '{MIG_PASSWORD}'",
        f"GRANT ALL PRIVILEGES ON *.* TO '{MIG_USER}'@'%' WITH GRANT OPTION",  # it copies accounts
        f"REVOKE SUPER ON *.* FROM '{MIG_USER}'@'%'",
    )
    assert value(box.target, "SELECT @@global.log_bin_trust_function_creators") == 0
    result = box.cli("run")
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-3000:]
    assert "SUPER" in result.stderr and "log_bin_trust_function_creators = ON" in result.stderr
    assert "1419" in result.stderr and "nothing was changed" in result.stderr
    journal = box.workdir / "journal.sqlite"
    assert not journal.exists() or all(state != "done" for state in steps_status(box).values())
    assert value(box.source, "SELECT @@global.read_only") == 0
    # The remedy the message names, then the same command runs step 12 before the pause and finishes.
    box.target.execute("SET GLOBAL log_bin_trust_function_creators = ON")
    again = box.cli("run")
    assert again.returncode == EXIT_OK, again.stderr[-3000:]
    order = [e["step"] for e in events(box) if e["kind"] == "step.running"]
    assert order.index(12) < order.index(9)


def test_replayed_row_events_do_not_fire_a_target_trigger(make_server: MakeServer, tmp_path: Path) -> None:
    """Triggers exist on the target while the applier runs (step 12 before step 9): its BINLOG statements
    must not fire them, or every trigger's effect would happen twice (once logged on the source, once here)."""
    source = make_server("source", 1)
    target = make_server("target", 2, extra_args=("--gtid-strict-mode=ON",))
    for server in (source, target):
        server.execute(
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id INT PRIMARY KEY, v INT)",
            "CREATE TABLE app.audit (id INT AUTO_INCREMENT PRIMARY KEY, t_id INT, what VARCHAR(10))",
        )
    # The source's trigger writes app.audit: on the source, in the same transaction (logged as rows too).
    for server in (source, target):
        server.execute(
            "CREATE TRIGGER app.t_ins AFTER INSERT ON app.t FOR EACH ROW "
            "INSERT INTO app.audit (t_id, what) VALUES (NEW.id, 'ins')",
            "CREATE TRIGGER app.t_upd BEFORE UPDATE ON app.t FOR EACH ROW SET NEW.v = NEW.v + 1000",
        )
    start = master_status(source)
    source.execute(
        "INSERT INTO app.t VALUES (1, 1), (2, 2), (3, 3)",
        "UPDATE app.t SET v = v + 1 WHERE id = 2",
        "DELETE FROM app.t WHERE id = 3",
    )
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)  # from ``start``: the tables and triggers already exist on the target
    applier = make_applier(target, archive, SnapshotCoordinates(*start), tmp_path)
    try:
        applier.apply_available()
    finally:
        applier.close()
    assert rows(target, "SELECT id, v FROM app.t ORDER BY id") == rows(source, "SELECT id, v FROM app.t ORDER BY id")
    assert rows(target, "SELECT id, v FROM app.t ORDER BY id") == [(1, 1), (2, 1003)]
    # Three audit rows, as on the source: the replayed inserts did not add three more.
    assert rows(target, "SELECT id, t_id, what FROM app.audit ORDER BY id") == rows(
        source, "SELECT id, t_id, what FROM app.audit ORDER BY id"
    )
    assert value(target, "SELECT COUNT(*) FROM app.audit") == 3


def definition_of(server: LocalServer, kind: str, name: str) -> str:
    column = {"PROCEDURE": 2, "TRIGGER": 2, "VIEW": 1, "EVENT": 3}[kind]
    return str(rows(server, f"SHOW CREATE {kind} {name}")[0][column])


def test_definitions_changed_after_step_12_reach_the_target(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    box = make_sandbox(make_server, tmp_path)
    boxes.append(box)
    first = box.cli("run", "--until", "12")
    assert first.returncode == EXIT_OK, first.stderr[-3000:]
    status = steps_status(box)
    assert status[12] == "done" and status[9] == "pending"
    assert value(box.source, "SELECT @@global.read_only") == 0
    # Created ahead of the pause; the event is DISABLED on the target until writes resume there.
    assert value(box.target, "SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_NAME = 'purge_old_page_views'") == (
        "DISABLED"
    )
    # While the application still writes: change, add and drop definitions on the source.
    box.source.execute(
        "CREATE OR REPLACE DEFINER=`app_owner`@`%` PROCEDURE shop.place_order(IN p INT) SELECT p * 2",
        "CREATE DEFINER=`app_owner`@`%` TRIGGER shop.products_touch BEFORE UPDATE ON shop.products "
        "FOR EACH ROW SET NEW.title = CONCAT(NEW.title, '')",
        "DROP VIEW shop.customer_order_totals",
    )
    result = box.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert "SELECT p * 2" in definition_of(box.target, "PROCEDURE", "shop.place_order")
    assert "products_touch" in definition_of(box.target, "TRIGGER", "shop.products_touch")
    assert rows(box.target, "SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'shop'") == [(0,)]
    # Every definer on the target exists there (the applier's replay carried the source's missing one).
    definers = {
        str(r[0])
        for r in rows(
            box.target,
            "SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'shop' UNION "
            "SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop'",
        )
    }
    accounts = {f"{u}@{h}" for u, h in rows(box.target, "SELECT User, Host FROM mysql.user")}
    assert definers <= accounts, definers - accounts
    # Writes resumed on the target: the event the source has enabled is enabled there too.
    assert value(box.target, "SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_NAME = 'purge_old_page_views'") == (
        "ENABLED"
    )


def journal_facts(box: Sandbox) -> dict[str, Any]:
    ro = Journal.open_readonly(box.workdir / "journal.sqlite")
    try:
        return ro.facts()
    finally:
        ro.close()


def test_a_failure_inside_the_pause_gives_the_source_its_writes_back(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    box = make_sandbox(make_server, tmp_path, cutover={"verify_all_in_pause": True})
    boxes.append(box)
    assert box.cli("run", "--until", "9").returncode == EXIT_OK
    assert value(box.source, "SELECT @@global.read_only") == 1
    assert journal_facts(box)["source_read_only_before"] == {
        "platform": "local", "read_only": False, "super_read_only": None
    }
    # Step 10 fails: the target differs from the source (root bypasses read_only).
    box.target.execute("UPDATE hr.employees SET last_name = CONCAT(last_name, 'x') WHERE emp_no = 10001")
    result = box.cli("run")
    assert result.returncode == EXIT_STEP_FAILED
    assert "differ between source and target" in result.stderr
    assert value(box.source, "SELECT @@global.read_only") == 0  # the application writes again
    assert "writes resumed on the source" in result.stderr
    aborted = [e for e in events(box) if e["kind"] == "cutover.aborted"]
    assert len(aborted) == 1 and aborted[0]["detail"]["automatic"] is True
    assert "step 10" in aborted[0]["detail"]["why"]
    status = steps_status(box)
    assert status[9] == status[10] == "pending" and status[12] == "done"
    assert journal_facts(box)["paused_at"] is None
    # Repaired, the same command starts the cut-over again from step 9 and finishes.
    box.target.execute("UPDATE hr.employees SET last_name = LEFT(last_name, CHAR_LENGTH(last_name) - 1) "
                       "WHERE emp_no = 10001")
    again = box.cli("run")
    assert again.returncode == EXIT_OK, again.stderr[-3000:]
    assert set(steps_status(box).values()) == {"done"}


def test_hold_keeps_the_pause_for_the_operator(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    box = make_sandbox(make_server, tmp_path, cutover={"verify_all_in_pause": True, "on_failure": "hold"})
    boxes.append(box)
    assert box.cli("run", "--until", "9").returncode == EXIT_OK
    box.target.execute("UPDATE hr.employees SET last_name = CONCAT(last_name, 'x') WHERE emp_no = 10001")
    result = box.cli("run")
    assert result.returncode == EXIT_STEP_FAILED and "abort-cutover" in result.stderr
    assert value(box.source, "SELECT @@global.read_only") == 1
    assert [e["kind"] for e in events(box) if e["kind"].startswith("cutover.")] == ["cutover.held"]
    # The operator gives the writes back.
    aborted = box.cli("abort-cutover", "--reason", "target differs, investigating")
    assert aborted.returncode == EXIT_OK, aborted.stderr[-2000:]
    assert "read_only restored" in aborted.stdout
    assert value(box.source, "SELECT @@global.read_only") == 0
    event = [e for e in events(box) if e["kind"] == "cutover.aborted"][-1]
    assert event["detail"]["why"] == "target differs, investigating" and "@" in event["detail"]["who"]
    assert event["detail"]["automatic"] is False


def test_abort_cutover_after_the_approval_gate_and_while_paused(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    box = make_sandbox(make_server, tmp_path, cutover={"require_approval": True})
    boxes.append(box)
    gated = box.cli("run")
    assert gated.returncode == 3, gated.stderr[-2000:]
    for _ in range(2):  # idempotent
        aborted = box.cli("abort-cutover", "--reason", "not tonight")
        assert aborted.returncode == EXIT_OK, aborted.stderr[-2000:]
        assert "nothing to unfreeze" in aborted.stdout
    assert value(box.source, "SELECT @@global.read_only") == 0
    assert [e["detail"]["why"] for e in events(box) if e["kind"] == "cutover.aborted"] == ["not tonight"] * 2
    assert steps_status(box)[9] == "pending"
    # Approved and paused, then aborted by hand: read_only back to its journaled value, the pause's steps reset.
    assert box.cli("run", "--until", "9", "--approve-cutover").returncode == EXIT_OK
    assert value(box.source, "SELECT @@global.read_only") == 1
    aborted = box.cli("abort-cutover")
    assert aborted.returncode == EXIT_OK and "read_only restored" in aborted.stdout
    assert value(box.source, "SELECT @@global.read_only") == 0
    assert steps_status(box)[9] == "pending"
    # A new cut-over needs a new approval, then runs to the end.
    assert box.cli("run").returncode == 3
    done = box.cli("run", "--approve-cutover")
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    # After the DNS switch, abort-cutover refuses and says why.
    late = box.cli("abort-cutover")
    assert late.returncode == 2 and "rollback" in late.stderr
    assert value(box.source, "SELECT @@global.read_only") == 1


def test_a_long_running_writer_stops_the_freeze_before_it_starts(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    box = make_sandbox(make_server, tmp_path, cutover={"long_writer_seconds": 1})
    boxes.append(box)
    assert box.cli("run", "--until", "12").returncode == EXIT_OK
    batch = box.source.root()
    try:
        with batch.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            batch_id = cur.fetchone()[0]
            cur.execute("BEGIN")
            cur.execute("UPDATE shop.customers SET notes = 'batch' WHERE id <= 10")
        aged = "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_started <= NOW() - INTERVAL 2 SECOND"
        end = time.monotonic() + 30
        while value(box.source, aged) == 0 and time.monotonic() < end:
            time.sleep(0.1)  # polling the condition (the transaction's age), not standing in for it
        result = box.cli("run")
        assert result.returncode == EXIT_STEP_FAILED
        assert "not pausing writes" in result.stderr and f"connection {batch_id} (root@localhost)" in result.stderr
        assert "10 rows changed" in result.stderr
        assert value(box.source, "SELECT @@global.read_only") == 0
        assert steps_status(box)[9] == "failed"
        facts = journal_facts(box)
        assert facts.get("paused_at") is None and facts.get("source_read_only_before") is None
    finally:
        batch.rollback()
        batch.close()


def next_id(server: LocalServer, table: str) -> int:
    schema, name = table.split(".")
    return int(value(server, f"SELECT AUTO_INCREMENT FROM information_schema.TABLES "
                             f"WHERE TABLE_SCHEMA = '{schema}' AND TABLE_NAME = '{name}'"))


def test_ids_burned_on_the_source_are_not_reused_on_the_target(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    box = make_sandbox(make_server, tmp_path)
    boxes.append(box)
    assert box.cli("run", "--until", "8").returncode == EXIT_OK
    conn = box.source.root()
    try:
        with conn.cursor() as cur:  # rolled back: nothing in the binlog, but the ids are gone on the source
            cur.execute("BEGIN")
            for i in range(25):
                cur.execute("INSERT INTO shop.customers (email, full_name, country, created_at) "
                            "VALUES (%s, 'burned', 'DE', NOW(6))", (f"burned{i}@example.com",))
            cur.execute("ROLLBACK")
    finally:
        conn.close()
    assert next_id(box.source, "shop.customers") > next_id(box.target, "shop.customers")
    result = box.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert next_id(box.target, "shop.customers") == next_id(box.source, "shop.customers")
    # The application's next row on the target gets the id the source would have given it.
    expected = next_id(box.source, "shop.customers")
    box.target.execute("INSERT INTO shop.customers (email, full_name, country, created_at) "
                       "VALUES ('after@example.com', 'after', 'DE', NOW(6))")
    assert value(box.target, "SELECT MAX(id) FROM shop.customers") == expected
    raised = journal_facts(box)["auto_increment_raised"]
    assert raised["shop.customers"][1] == expected


# A pause hook that, once, prepares an XA transaction the way an application would between step 9's look at
# XA RECOVER and the freeze; its session ends (MariaDB 10.5+ keeps the transaction prepared).
PREPARE_XA_HOOK = """import os, pathlib, sys, pymysql
marker = pathlib.Path(sys.argv[1])
if marker.exists():
    marker.unlink()
    conn = pymysql.connect(host=os.environ["MIGRATOR_SOURCE_HOST"], port=int(os.environ["MIGRATOR_SOURCE_PORT"]),
                           user=sys.argv[2], password=sys.argv[3], autocommit=True)
    for sql in ("XA START 'in-pause'", "INSERT INTO hr.departments (id, name) VALUES (%d, 'in pause')",
                "XA END 'in-pause'", "XA PREPARE 'in-pause'"):
        conn.cursor().execute(sql)
    conn.close()
"""

def test_a_prepared_xa_transaction_is_never_carried_across_the_dns_switch(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    hook, marker = tmp_path / "prepare_xa.py", tmp_path / "prepare-once"
    hook.write_text(PREPARE_XA_HOOK % (XA_ROW + 1))
    pause_hook = [sys.executable, str(hook), str(marker), ADMIN_USER, ADMIN_PASSWORD]
    box = make_sandbox(
        make_server, tmp_path, cutover={"xa_wait_seconds": 1, "pause_hook": pause_hook, "require_approval": True}
    )
    boxes.append(box)
    dns = box.workdir / "dns.json"
    assert box.cli("run", "--until", "12").returncode == EXIT_OK
    xa = PreparedXa(box.source, "app-xa")  # the application's session stays open
    try:
        gate = box.cli("run")  # the approval gate already names it
        assert gate.returncode == EXIT_WAITING_ON_OPERATOR and "('app-xa')" in gate.stderr, gate.stderr[-3000:]
        # Before the freeze: step 9 waits xa_wait_seconds, then refuses naming the XID; nothing paused.
        refused = box.cli("run", "--approve-cutover")
        assert refused.returncode == EXIT_STEP_FAILED, refused.stderr[-3000:]
        assert "not pausing writes" in refused.stderr and "('app-xa')" in refused.stderr
        assert "XA COMMIT" in refused.stderr and "migrator run" in refused.stderr
        assert steps_status(box)[9] == "failed" and journal_facts(box).get("paused_at") is None
        xa.finish("COMMIT")
    finally:
        xa.close()

    # One prepared between that look and the freeze: step 10 refuses at once (read_only blocks its XA COMMIT)
    # though the committed rows are equal; the failure path gives the source its writes back, DNS unmoved.
    marker.touch()
    in_pause = box.cli("run", "--approve-cutover")
    assert in_pause.returncode == EXIT_STEP_FAILED, in_pause.stderr[-3000:]
    assert "not cutting over" in in_pause.stderr and "('in-pause')" in in_pause.stderr
    assert "writes resumed on the source" in in_pause.stderr
    refusals = {e["detail"]["when"]: e["detail"]["source"] for e in events(box) if e["kind"] == "cutover.prepared_xa"}
    assert refusals == {
        "before freeze": [f"X'{b'app-xa'.hex()}',X'',1 ('app-xa')"],
        "in pause": [f"X'{b'in-pause'.hex()}',X'',1 ('in-pause')"],
    }
    assert value(box.source, "SELECT @@global.read_only") == 0
    assert local_dns.resolve(dns, RECORD) == ("127.0.0.1", box.source.port)
    assert {steps_status(box)[n] for n in (9, 10, 11, 13, 14)} == {"pending"}

    # The remedy the message names: the application commits it on the writable source; the next run switches.
    box.source.execute("XA COMMIT 'in-pause'")
    done = box.cli("run", "--approve-cutover")
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert local_dns.resolve(dns, RECORD) == ("127.0.0.1", box.target.port)
    assert rows(box.target, f"SELECT id FROM hr.departments WHERE id IN ({XA_ROW}, {XA_ROW + 1}) ORDER BY id") == [
        (XA_ROW,), (XA_ROW + 1,)
    ]
    assert rows(box.target, "XA RECOVER") == [] and rows(box.target, "SELECT * FROM _migrator.apply_xa") == []


def test_a_hook_only_pause_waits_for_a_prepared_xa_and_applies_its_commit(
    make_server: MakeServer, tmp_path: Path, boxes: list[Sandbox]
) -> None:
    """Without read_only the application can still end it in the pause: step 10 waits, then catches up."""
    hook, marker = tmp_path / "prepare_xa.py", tmp_path / "prepare-once"
    hook.write_text(PREPARE_XA_HOOK % XA_ROW)
    marker.touch()
    pause_hook = [sys.executable, str(hook), str(marker), ADMIN_USER, ADMIN_PASSWORD]
    box = make_sandbox(make_server, tmp_path, cutover={"read_only": False, "pause_hook": pause_hook,
                                                       "xa_wait_seconds": 60})
    boxes.append(box)
    finished = threading.Event()

    def commit_once_step_10_waits() -> None:  # the application's transaction manager, a little late
        while not finished.is_set():
            if (box.workdir / "journal.sqlite").exists() and any(
                e["kind"] == "cutover.prepared_xa_wait" and e["step"] == 10 for e in events(box)
            ):
                box.source.execute("XA COMMIT 'in-pause'")
                return
            time.sleep(0.05)

    committer = threading.Thread(target=commit_once_step_10_waits)
    committer.start()
    try:
        result = box.cli("run")
    finally:
        finished.set()
        committer.join()
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert rows(box.target, f"SELECT COUNT(*) FROM hr.departments WHERE id = {XA_ROW}") == [(1,)]
    assert rows(box.source, "XA RECOVER") == [] and rows(box.target, "SELECT * FROM _migrator.apply_xa") == []
