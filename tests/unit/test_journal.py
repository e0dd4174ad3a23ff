from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.errors import JournalLocked, JournalMismatch
from migrator.journal import Journal

STEPS = [(1, "one"), (2, "two")]


def test_new_journal_is_private_wal_and_full_sync(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "w" / "journal.sqlite")
    assert stat.S_IMODE(os.stat(j.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(j.path.parent).st_mode) == 0o700
    assert j.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    j.close()


def test_register_refuses_other_fingerprint(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "journal.sqlite")
    assert j.register("m", "fp1", STEPS, ["migrator", "run"]) is True
    assert j.register("m", "fp1", STEPS, ["migrator", "run"]) is False
    with pytest.raises(JournalMismatch, match="another source, target or schema"):
        j.register("m", "fp2", STEPS, ["migrator", "run"])
    j.close()


def test_step_facts_and_done_commit_together(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "journal.sqlite")
    j.register("m", "fp", STEPS, [])
    j.begin_step(1)
    assert j.step(1).status == "running" and j.step(1).attempts == 1
    j.complete_step(1, {"snapshot": {"file": "mysql-bin.000003", "position": 1234}}, how="ran")
    assert j.step(1).status == "done"
    assert j.fact("snapshot") == {"file": "mysql-bin.000003", "position": 1234}
    kinds = [e["kind"] for e in j.events()]
    assert kinds[-2:] == ["step.running", "step.done"]
    j.close()


def test_deadline_survives_reopen(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "journal.sqlite")
    wake = j.deadline("step1.old-ttl", 300, now=1000.0)
    j.close()
    j = Journal.open(tmp_path / "journal.sqlite")
    assert j.deadline("step1.old-ttl", 300, now=5000.0) == wake == 1300.0
    j.close()


def test_second_owner_refused_naming_pid_until_first_dies(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from pathlib import Path; from migrator.journal import Journal; "
            f"j=Journal.open(Path({str(path)!r})); j.acquire(); j.register('m','fp',[],[]); print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    j = Journal.open(path)
    with pytest.raises(JournalLocked) as info:
        j.acquire()
    assert f"pid {holder.pid}" in str(info.value)
    holder.kill()  # kill -9 releases the flock: the next run may take over
    holder.wait()
    j.acquire()
    j.close()


def test_readonly_reader_sees_committed_rows_while_writer_holds_lock(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    w = Journal.open(path)
    w.acquire()
    w.register("m", "fp", STEPS, [])
    w.begin_step(1)
    r = Journal.open_readonly(path)
    assert r.step(1).status == "running"
    with pytest.raises(Exception, match="readonly"):
        r.conn.execute("UPDATE step SET status = 'done'")
    r.close()
    w.close()


def test_chunk_ledger_round_trip(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "journal.sqlite")
    j.save_chunk_plan([("a#0", "s", "a", "{}"), ("a#1", "s", "a", "{}")])
    j.save_chunk_plan([("a#0", "s", "a", "{changed}")])  # a saved plan is never rewritten
    assert j.chunk_plan() == [("a#0", "{}"), ("a#1", "{}")]
    j.mark_chunk("a#0", "started")
    j.mark_chunk("a#0", "done", 10, 1000)
    assert j.copy_progress() == {"chunks": 2, "chunks_done": 1, "rows": 10, "bytes": 1000}
    j.close()
