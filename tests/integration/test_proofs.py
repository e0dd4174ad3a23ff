"""Live proofs (migrator/proofs.py) through the CLI on real servers: what the pass, the rounds and the
pause compare, that a difference no write explains stops the run, and that a kill never leaves a
false "equal" behind."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest
import structlog

from migrator import proofs
from migrator.config import load
from migrator.errors import EXIT_OK, EXIT_STEP_FAILED, EXIT_WAITING_ON_OPERATOR, VerificationFailed
from migrator.journal import Journal
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.positions import source_head
from migrator.mysql.session import MySQLSession
from migrator.ports import SnapshotCoordinates
from migrator.step import StepContext
from migrator.tools.binlog_applier import BinlogApplier
from migrator.tools.binlog_changes import ChangeSet
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, LocalServer, MakeServer, admin_endpoint
from tests.fakes.clock import FakeClock
from tests.faults.harness import sigkill, world
from tests.harness import Sandbox, make_sandbox, stop_local_replicas, write_config

EMPLOYEE = 10_007  # a row of hr.employees, a table the writer never touches


def _steps(box: Sandbox) -> dict[int, str]:
    conn = sqlite3.connect(f"file:{box.workdir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        return {int(n): str(s) for n, s in conn.execute("SELECT number, status FROM step")}
    finally:
        conn.close()


def _facts(box: Sandbox) -> dict[str, object]:
    ro = Journal.open_readonly(box.workdir / "journal.sqlite")
    try:
        return ro.facts()
    finally:
        ro.close()


def _event_count(box: Sandbox, kind: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{box.workdir / 'journal.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM event WHERE kind = ?", (kind,)).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def _employee_exists(box: Sandbox) -> int:
    conn = box.source.root()
    with conn.cursor() as cur:
        cur.execute("SELECT MIN(emp_no) FROM hr.employees WHERE emp_no >= %s", (EMPLOYEE,))
        found = int(cur.fetchone()[0])
    conn.close()
    return found


def _change_then_corrupt_script(tmp_path: Path, box: Sandbox, emp_no: int) -> Path:
    """A pause hook (it runs after the last round, before the freeze): change a row on the source, wait
    until the applier has copied it, then corrupt the target's copy behind the applier's back."""
    script = tmp_path / "change_then_corrupt.py"
    script.write_text(
        f"""
import time, pymysql
def conn(port):
    return pymysql.connect(host="127.0.0.1", port=port, user={ADMIN_USER!r}, password={ADMIN_PASSWORD!r},
                           autocommit=True)
src, dst = conn({box.source.port}), conn({box.target.port})
with src.cursor() as cur:
    cur.execute("UPDATE hr.employees SET first_name = 'Changed' WHERE emp_no = {emp_no}")
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with dst.cursor() as cur:
        cur.execute("SELECT first_name FROM hr.employees WHERE emp_no = {emp_no}")
        if cur.fetchone()[0] == "Changed":
            break
    time.sleep(0.02)
else:
    raise SystemExit("the applier never copied the change")
with dst.cursor() as cur:
    cur.execute("UPDATE hr.employees SET last_name = 'Corrupted' WHERE emp_no = {emp_no}")
"""
    )
    return script


def test_step_8_stops_on_a_difference_no_write_explains(make_server: MakeServer, tmp_path: Path) -> None:
    """Before: step 8 logged the differing rows and completed; step 10 then failed with writes paused."""
    box = make_sandbox(make_server, tmp_path)
    try:
        assert box.cli("run", "--until", "7").returncode == EXIT_OK
        emp_no = _employee_exists(box)
        box.target.execute(f"UPDATE hr.employees SET last_name = 'Corrupted' WHERE emp_no = {emp_no}")
        result = box.cli("run", "--until", "8")
        assert result.returncode == EXIT_STEP_FAILED, result.stderr[-2000:]
        assert "no write since" in result.stderr and "hr.employees (emp_no) = (" + str(emp_no) in result.stderr
        assert _steps(box)[8] == "failed" and _steps(box)[9] == "pending"
        # The operator repairs the row; a retry compares that table again and goes on.
        conn = box.source.root()
        with conn.cursor() as cur:
            cur.execute(f"SELECT last_name FROM hr.employees WHERE emp_no = {emp_no}")
            name = cur.fetchone()[0]
        conn.close()
        box.target.execute(f"UPDATE hr.employees SET last_name = '{name}' WHERE emp_no = {emp_no}")
        again = box.cli("run", "--until", "8")
        assert again.returncode == EXIT_OK, again.stderr[-2000:]
        facts = _facts(box)
        assert facts["proof_state"]["basis"] and facts["preverify"]["tables"] >= 8  # type: ignore[index]
    finally:
        stop_local_replicas(box)


def test_a_row_changed_right_after_the_last_round_is_compared_in_the_pause(
    make_server: MakeServer, tmp_path: Path
) -> None:
    box = make_sandbox(make_server, tmp_path)
    try:
        assert box.cli("run", "--until", "8").returncode == EXIT_OK
        emp_no = _employee_exists(box)
        script = _change_then_corrupt_script(tmp_path, box, emp_no)
        text = box.config_path.read_text().replace(
            "[cutover]\n", f"[cutover]\non_failure = \"hold\"\npause_hook = [\"{sys.executable}\", \"{script}\"]\n"
        )
        box.config_path.write_text(text)
        result = box.cli("run")
        assert result.returncode == EXIT_STEP_FAILED, result.stderr[-3000:]
        assert _steps(box)[9] == "done" and _steps(box)[10] == "failed"
        assert "differ between source and target" in result.stderr
        assert f"hr.employees: keys ({emp_no},)" in result.stderr
        assert _facts(box)["before_freeze"]["rounds"] >= 1  # type: ignore[index]
    finally:
        stop_local_replicas(box)


def test_the_source_head_moving_outside_the_migrated_schemas_does_not_fail_step_10(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """RDS rotates binlogs and writes mysql.rds_heartbeat2 whatever read_only says: before, step 10 failed
    whenever the head moved during its verification."""
    box = make_sandbox(make_server, tmp_path)
    stop = threading.Event()
    writes = [0]

    def rds_like() -> None:
        conn = box.source.root()  # root has SUPER: read_only does not stop it, as it does not stop rdsadmin
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS rdsish")
            cur.execute("CREATE TABLE IF NOT EXISTS rdsish.heartbeat (id INT PRIMARY KEY, at DOUBLE)")
            while not stop.is_set():
                try:
                    cur.execute("REPLACE INTO rdsish.heartbeat VALUES (1, %s)", (time.time(),))
                except pymysql.err.OperationalError:
                    return  # step 14 ended this session, still on the source after the grace (2 s here)
                writes[0] += 1
                if writes[0] % 10 == 0:
                    cur.execute("FLUSH BINARY LOGS")
                time.sleep(0.15)
        conn.close()

    try:
        assert box.cli("run", "--until", "9").returncode == EXIT_OK
        thread = threading.Thread(target=rds_like, daemon=True)
        thread.start()
        while writes[0] < 3:
            time.sleep(0.05)
        result = box.cli("run")
        stop.set()
        thread.join()
        assert result.returncode == EXIT_OK, result.stderr[-3000:]
        assert _facts(box)["verification"]["ok"] is True  # type: ignore[index]
    finally:
        stop.set()
        stop_local_replicas(box)


def _kill_when(box: Sandbox, proc: subprocess.Popen[str], kind: str, before: int, timeout: float = 120) -> str:
    """SIGKILL the run as soon as the journal has one more ``kind`` event than ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _event_count(box, kind) > before:
            sigkill(proc)
            return f"killed at {kind}"
        time.sleep(0.002)
    return ""


def _target_has_change(box: Sandbox, emp_no: int) -> bool:
    conn = box.target.root()
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT first_name FROM hr.employees WHERE emp_no = {emp_no}")
            return bool(cur.fetchone()[0] == "Changed")
    finally:
        conn.close()


def test_a_kill_inside_a_round_leaves_no_false_equal(make_server: MakeServer, tmp_path: Path) -> None:
    """The writer runs throughout. After the approval round a row changes on the source; the next run is
    killed inside its round once the applier has copied the change, and the target's copy is corrupted
    while nothing runs. An unfinished round is never journaled, so the resumed round still compares it."""
    with world(make_server, tmp_path, seed=11, cutover={"require_approval": True}) as w:
        gated = w.run()
        assert gated.rc == EXIT_WAITING_ON_OPERATOR, gated.error
        emp_no = _employee_exists(w.box)
        w.box.source.execute(f"UPDATE hr.employees SET first_name = 'Changed' WHERE emp_no = {emp_no}")
        before = _event_count(w.box, "proof.round_started")
        state_before = _facts(w.box)["proof_state"]
        proc = w.box.popen("run", "--approve-cutover")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _event_count(w.box, "proof.round_started") > before and _target_has_change(w.box, emp_no):
                sigkill(proc)
                break
            time.sleep(0.002)
        proc.communicate(timeout=60)
        assert proc.returncode == -9, "the round never started"
        assert _facts(w.box)["proof_state"] == state_before  # an unfinished round is never journaled
        w.box.target.execute(f"UPDATE hr.employees SET last_name = 'Corrupted' WHERE emp_no = {emp_no}")
        resumed = w.run(None, "--approve-cutover")
        assert resumed.rc == EXIT_STEP_FAILED, resumed.error
        assert "no write explains" in resumed.stderr_tail and f"hr.employees keys ({emp_no},)" in resumed.stderr_tail
        conn = w.box.source.root()
        with conn.cursor() as cur:
            cur.execute("SELECT @@global.read_only")
            assert cur.fetchone()[0] == 0  # stopped before the freeze: the application never paused
        conn.close()


def test_a_kill_inside_the_pause_comparison_leaves_no_false_equal(make_server: MakeServer, tmp_path: Path) -> None:
    """Corruption lands after the last round (pause hook); the run is killed inside step 10's comparison;
    the resumed step 10 compares again and refuses."""
    with world(make_server, tmp_path, seed=12) as w:
        assert w.run(None, "--until", "8").rc == EXIT_OK
        emp_no = _employee_exists(w.box)
        script = _change_then_corrupt_script(tmp_path, w.box, emp_no)
        text = w.box.config_path.read_text().replace(
            "[cutover]\n", f"[cutover]\non_failure = \"hold\"\npause_hook = [\"{sys.executable}\", \"{script}\"]\n"
        )
        w.box.config_path.write_text(text)
        proc = w.box.popen("run")
        killed = _kill_when(w.box, proc, "proof.pause_compare", 0)
        proc.communicate(timeout=60)
        assert killed and proc.returncode == -9, "step 10's comparison never started"
        assert "verification" not in _facts(w.box)
        resumed = w.run()
        assert resumed.rc == EXIT_STEP_FAILED, resumed.error
        assert f"hr.employees: keys ({emp_no},)" in resumed.stderr_tail
        assert _steps(w.box)[10] == "failed" and _steps(w.box)[13] == "pending"


# --- XA: the rows change at the XA COMMIT, a group of its own with no rows --------------------------
class _ApplyOnTick:
    """The services of a step context: each tick copies the source's binlogs to the archive and applies
    them; ``then`` runs once, after the first tick's apply (the applier has not seen what it does)."""

    def __init__(self, source: LocalServer, archive: Path, applier: BinlogApplier) -> None:
        self.source, self.archive, self.applier = source, archive, applier
        self.then: Callable[[], None] = lambda: None

    def start(self, name: str) -> None:
        pass

    def check(self) -> None:
        for path in self.source.datadir.glob("*-bin.[0-9]*"):
            shutil.copyfile(path, self.archive / path.name)
        self.applier.apply_available()
        then, self.then = self.then, lambda: None
        then()


def _xa_round(make_server: MakeServer, tmp_path: Path) -> tuple[StepContext, _ApplyOnTick, Any, proofs.ProofState]:
    """Source and target equal, the applier run by the context's ticks, and on the source an UPDATE of
    shop.ledger id=1152 prepared under XID 'x' (the cursor ends it); the state proves all before it."""
    source, target = make_server("src", 1), make_server("dst", 2)
    for server in (source, target):
        server.execute("CREATE DATABASE shop", "CREATE TABLE shop.ledger (id INT PRIMARY KEY, v INT)",
                       "INSERT INTO shop.ledger VALUES (1152, 0), (7, 0)")
    endpoint = {"host": "127.0.0.1", "user": ADMIN_USER, "password": ADMIN_PASSWORD}
    cfg = load(write_config(tmp_path / "c.toml", {
        "migration": {"workdir": str(tmp_path / "work"), "schemas": ["shop"]},
        "source": {**endpoint, "port": source.port}, "target": {**endpoint, "port": target.port},
        "sync": {"timeout_seconds": 60}, "dns": {"provider": "local", "record": "db", "target_value": "127.0.0.1:1"},
    }))
    cfg.archive_dir.mkdir(parents=True)
    with MySQLSession(admin_endpoint(source)) as s:
        start = source_head(s, MARIADB_10_11)
    applier = BinlogApplier(admin_endpoint(target), cfg.archive_dir, MARIADB_10_11, schemas=frozenset({"shop"}),
                            start=SnapshotCoordinates(*start), secrets_dir=tmp_path / "secrets")
    applier.ensure_position_table()
    xa = source.root().cursor()
    for sql in ("XA START 'x'", "UPDATE shop.ledger SET v = 1 WHERE id = 1152", "XA END 'x'", "XA PREPARE 'x'"):
        xa.execute(sql)
    services = _ApplyOnTick(source, cfg.archive_dir, applier)
    ctx = StepContext(config=cfg, journal=Journal.open(tmp_path / "journal.sqlite"), platform=None,  # type: ignore[arg-type]
                      dns=None, clock=FakeClock(), services=services,  # type: ignore[arg-type]
                      log=structlog.get_logger(), step_number=9)
    return ctx, services, xa, proofs.ProofState("b", start, ChangeSet())


def test_a_round_counts_an_xa_commit_whose_prepare_came_before_it(make_server: MakeServer, tmp_path: Path) -> None:
    """Found by the fault campaign: the round's start h fell right after an XA PREPARE of an UPDATE and its
    XA COMMIT came during the comparison, before the applier applied it. Before: the key differed and
    (h, e] "did not change" it: "rows differ between source and target that no write explains"."""
    ctx, services, xa, state = _xa_round(make_server, tmp_path)
    services.then = lambda: xa.execute("XA COMMIT 'x'")  # once the applier has passed the prepare: h is taken
    tables = proofs.migrated_tables(ctx)
    state, compared = proofs.run_round(ctx, state, tables)
    assert compared.differing == {("shop", "ledger"): {(1152,)}}  # the commit landed mid-comparison
    assert state.pending.keys == {("shop", "ledger"): {(1152,)}}  # pending again: compared next round
    state, compared = proofs.run_round(ctx, state, tables)
    assert compared.differing == {} and state.pending.key_count() == 0 and state.xa_open == {}
    ctx.journal.close()


def test_a_row_proven_while_its_xa_was_prepared_is_compared_again_after_its_commit(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """Before: the row compared equal while its XA was only prepared, the commit's window named no row,
    and a target that then lost or mis-applied the commit was never looked at again: a false "equal"."""
    ctx, services, xa, state = _xa_round(make_server, tmp_path)
    tables = proofs.migrated_tables(ctx)
    state, compared = proofs.run_round(ctx, state, tables)
    assert compared.keys == 1 and compared.differing == {} and state.pending.key_count() == 0
    assert list(state.xa_open) == ["X'78',X'',1"]  # still prepared at the boundary: journaled with it
    xa.execute("XA COMMIT 'x'")

    def misapplied() -> None:  # the applier has just applied the commit: the target's copy goes wrong
        with ctx.target() as t:
            t.execute("UPDATE shop.ledger SET v = 99 WHERE id = 1152")

    services.then = misapplied
    with pytest.raises(VerificationFailed, match=r"no write explains .*shop\.ledger keys \(1152,\)"):
        proofs.run_round(ctx, state, tables)
    ctx.journal.close()
