"""All 14 steps through the CLI, as separate processes, against real local servers under live writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_WAITING_ON_OPERATOR
from migrator.journal import Journal
from migrator.platforms.local_server import LocalServer
from tests.conftest import MakeServer
from tests.harness import Sandbox, make_sandbox, stop_local_replicas

WORKLOAD_TABLE = "shop.ledger"


@pytest.fixture
def sandbox(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(make_server, tmp_path)
    yield box
    stop_local_replicas(box)


def table_checksums(server: LocalServer, tables: list[str]) -> dict[str, int]:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute("CHECKSUM TABLE " + ", ".join(tables) + " EXTENDED")
            return {str(name): int(value) for name, value in cur.fetchall()}
    finally:
        conn.close()


def all_rows(server: LocalServer, table: str) -> list[tuple[object, ...]]:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table}")
            return sorted(cur.fetchall(), key=repr)
    finally:
        conn.close()


def command_lines_mentioning(text: str) -> list[bytes]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        if text.encode() in cmdline:
            found.append(cmdline)
    return found


def steps_status(journal_path: Path) -> dict[int, str]:
    conn = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
    try:
        return {int(n): str(s) for n, s in conn.execute("SELECT number, status FROM step")}
    finally:
        conn.close()


def assert_migrated(box: Sandbox) -> None:
    """Every table equal (CHECKSUM TABLE, independent of our verifier), the workload's writes all on the target."""
    tables = [t for t in box.dataset.tables if t != WORKLOAD_TABLE]
    assert table_checksums(box.source, tables) == table_checksums(box.target, tables)
    facts = Journal.open_readonly(box.workdir / "journal.sqlite").facts()
    assert facts["verification"]["ok"] is True
    assert facts["write_pause_seconds"] > 0
    assert set(steps_status(box.workdir / "journal.sqlite").values()) == {"done"}


def test_full_migration_under_live_writes(sandbox: Sandbox) -> None:
    shutil.rmtree(sandbox.workdir / "template")  # this run's step 2 builds its own (see make_sandbox)
    workload = sandbox.workload(rate=40)
    workload.start()
    result = sandbox.cli("run")
    deadline = time.monotonic() + 10
    while workload.stats().last_server != f"127.0.0.1:{sandbox.target.port}" and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = workload.stop()
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert "migration complete" in result.stdout
    assert_migrated(sandbox)
    # In the pause, only the rows written since the last live round were compared, by key: no table whole.
    verification = Journal.open_readonly(sandbox.workdir / "journal.sqlite").facts()["verification"]
    assert verification["whole_tables"] == 0 and verification["checked_during_pause"] <= 1
    # Every acknowledged write, before and after the cut-over, is on the target exactly once.
    from tests.conftest import admin_endpoint

    verdict = workload.verify(admin_endpoint(sandbox.target))
    assert verdict.ok, verdict.describe()
    # Row by row, independent of any checksum: every other table identical.
    for table in sandbox.dataset.tables:
        if table != WORKLOAD_TABLE:
            assert all_rows(sandbox.source, table) == all_rows(sandbox.target, table), table
    assert stats.last_server == f"127.0.0.1:{sandbox.target.port}"
    assert stats.ops_ok > 0
    # Routines, views, triggers and events exist on the target; their DEFINER account was copied there.
    conn = sandbox.target.root()
    with conn.cursor() as cur:
        cur.execute("SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'shop'")
        definers = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'shop'")
        triggers = cur.fetchone()[0]
        cur.execute("SELECT @@global.read_only")
        read_only = cur.fetchone()[0]
    conn.close()
    assert definers == {"app_owner@%"}
    assert triggers == len(sandbox.dataset.triggers)
    assert read_only == 0
    # The source stays paused: the application must not write there any more.
    conn = sandbox.source.root()
    with conn.cursor() as cur:
        cur.execute("SELECT @@global.read_only")
        assert cur.fetchone()[0] == 1
    conn.close()
    status = json.loads(sandbox.cli("status", "--json").stdout)
    assert status["steps_done"] == 14 and status["copy"]["chunks_done"] == status["copy"]["chunks"]
    assert status["apply_lag_bytes"] == 0 and status["services"]["applier"]["desired"] == "stopped"
    assert json.loads(sandbox.cli("status", "--json").stdout)["owner_pid"] is None
    # Cleanup is never automatic: a dry run changes nothing, --confirm removes the snapshot replica.
    replica_dir = sandbox.workdir / "replicas" / "test-snapshot"
    # The rollback window stays open until `migrator finish`; cleanup needs it closed.
    assert sandbox.cli("cleanup", "--confirm").returncode == EXIT_BAD_INPUT
    assert sandbox.cli("finish").returncode == EXIT_OK
    dry = sandbox.cli("cleanup")
    assert dry.returncode == EXIT_OK and "would delete local replica test-snapshot" in dry.stdout
    assert replica_dir.exists()
    assert sandbox.cli("cleanup", "--confirm").returncode == EXIT_OK
    assert not replica_dir.exists()


def test_resume_after_kill_at_step_boundary(sandbox: Sandbox) -> None:
    crashed = sandbox.cli("run", env={"MIGRATOR_CRASH_AT": "step.3.before_complete"})
    assert crashed.returncode == -signal.SIGKILL
    journal = sandbox.workdir / "journal.sqlite"
    status = steps_status(journal)
    assert status[2] == "done" and status[3] == "running" and status[4] == "pending"
    crashed = sandbox.cli("run", env={"MIGRATOR_CRASH_AT": "step.6.after_complete"})
    assert crashed.returncode == -signal.SIGKILL
    assert steps_status(journal)[6] == "done"
    result = sandbox.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert_migrated(sandbox)
    # Resumes adopted the replica instead of creating another.
    assert [p.name for p in (sandbox.workdir / "replicas").iterdir()] == ["test-snapshot"]
    conn = sqlite3.connect(journal)
    attempts = dict(conn.execute("SELECT number, attempts FROM step"))
    conn.close()
    assert attempts[3] == 2 and attempts[6] == 1


def test_resume_after_kill_mid_copy(make_server: MakeServer, tmp_path: Path) -> None:
    box = make_sandbox(make_server, tmp_path, scale=2, copy={"workers": 2, "chunk_mb": 1})
    try:
        proc = box.popen("run")
        journal = box.workdir / "journal.sqlite"
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists():
                try:
                    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
                    done, total = conn.execute(
                        "SELECT COALESCE(SUM(status = 'done'), 0), COUNT(*) FROM copy_chunk"
                    ).fetchone()
                    conn.close()
                except sqlite3.OperationalError:
                    done, total = 0, 0
                if done >= 2 and done < total:
                    break
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before the copy could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert steps_status(journal)[6] == "running"
        result = box.cli("run")
        assert result.returncode == EXIT_OK, result.stderr[-3000:]
        assert_migrated(box)
    finally:
        stop_local_replicas(box)


def test_second_run_on_a_locked_journal_refuses(sandbox: Sandbox) -> None:
    journal = Journal.open(sandbox.workdir / "journal.sqlite")
    journal.acquire()
    journal.register("test", sandbox.config().fingerprint(), [], ["test"])
    result = sandbox.cli("run")
    journal.close()
    assert result.returncode == EXIT_BAD_INPUT
    assert f"in use by pid {os.getpid()}" in result.stderr


def test_operator_gate_before_the_write_pause(make_server: MakeServer, tmp_path: Path) -> None:
    box = make_sandbox(make_server, tmp_path, cutover={"require_approval": True})
    try:
        gated = box.cli("run")
        assert gated.returncode == EXIT_WAITING_ON_OPERATOR, gated.stderr[-2000:]
        assert "waiting for approval" in gated.stderr and "--approve-cutover" in gated.stderr
        status = steps_status(box.workdir / "journal.sqlite")
        assert status[8] == "done" and status[9] == "failed"
        conn = box.source.root()
        with conn.cursor() as cur:
            cur.execute("SELECT @@global.read_only")
            assert cur.fetchone()[0] == 0  # nothing paused before approval
        conn.close()
        result = box.cli("run", "--approve-cutover")
        assert result.returncode == EXIT_OK, result.stderr[-3000:]
        assert_migrated(box)
    finally:
        stop_local_replicas(box)


def test_retry_and_skip_are_journaled_with_who_and_why(sandbox: Sandbox) -> None:
    stopped = sandbox.cli("run", "--until", "1")
    assert stopped.returncode == EXIT_OK and "stopped before step 2" in stopped.stdout
    assert sandbox.cli("retry-step", "1", "--reason", "re-check the TTL").returncode == EXIT_OK
    skipped = sandbox.cli("skip-step", "1", "--reason", "TTL managed elsewhere")
    assert skipped.returncode == EXIT_OK
    events = Journal.open_readonly(sandbox.workdir / "journal.sqlite").events(20)
    operator = [e for e in events if e["kind"].startswith("operator.")]
    assert [e["kind"] for e in operator] == ["operator.retry_step", "operator.skip_step"]
    assert operator[1]["detail"]["why"] == "TTL managed elsewhere" and "@" in operator[1]["detail"]["who"]
    assert sandbox.cli("skip-step", "15", "--reason", "x").returncode == EXIT_BAD_INPUT
    unfinished = sandbox.cli("cleanup", "--confirm")
    assert unfinished.returncode == EXIT_BAD_INPUT and "has not finished" in unfinished.stderr


def test_plan_has_no_effects(sandbox: Sandbox) -> None:
    result = sandbox.cli("plan")
    assert result.returncode == EXIT_OK, result.stderr
    lines = [line for line in result.stdout.splitlines() if line[:3].strip().rstrip(".").isdigit()]
    assert len(lines) == 14 and "[pending]" in lines[0]
    assert not (sandbox.workdir / "journal.sqlite").exists()
    assert not (sandbox.workdir / "replicas").exists()


def test_difference_stops_the_run_naming_table_and_range(make_server: MakeServer, tmp_path: Path) -> None:
    # on_failure = "hold": the pause stays for the operator (the default gives the source its writes back).
    box = make_sandbox(make_server, tmp_path, cutover={"verify_all_in_pause": True, "on_failure": "hold"})
    try:
        assert box.cli("run", "--until", "9").returncode == EXIT_OK
        # Corrupt the target behind the applier's back (root bypasses read_only): step 10 must refuse.
        box.target.execute("UPDATE hr.employees SET last_name = CONCAT(last_name, 'x') ORDER BY emp_no LIMIT 1")
        result = box.cli("run")
        assert result.returncode == 1
        assert "differ between source and target" in result.stderr and "hr.employees" in result.stderr
        assert "do not cut over" in result.stderr
        status = steps_status(box.workdir / "journal.sqlite")
        assert status[10] == "failed" and status[13] == "pending"
        conn = box.source.root()
        with conn.cursor() as cur:
            cur.execute("SELECT @@global.read_only")
            assert cur.fetchone()[0] == 1  # still paused: the operator decides what happens next
        conn.close()
    finally:
        stop_local_replicas(box)


def test_sigterm_stops_cleanly_and_resumes(sandbox: Sandbox) -> None:
    proc = sandbox.popen("run")
    journal = sandbox.workdir / "journal.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists():
            try:
                if steps_status(journal).get(7) == "done":
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "resumes from here" in err
    assert "Traceback" not in err
    assert json.loads(sandbox.cli("status", "--json").stdout)["owner_pid"] is None
    assert command_lines_mentioning(str(sandbox.workdir / "binlogs")) == []  # mysqlbinlog went with the orchestrator
    result = sandbox.cli("run")
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert_migrated(sandbox)
