"""Step 3 never takes its snapshot between an XA PREPARE and its XA COMMIT.

Real servers, the local platform, the CLI as an operator runs it. An application's XA transaction is
prepared on the source (its session kept open) and replicated: a replica stopped there holds it
prepared, so the copy would miss its row and the applier would meet its XA COMMIT without the prepared
part. Step 3 starts replication again and stops once more after the source committed it; an XA
transaction that stays prepared fails the step with its xid, the replica left replicating, unpromoted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from migrator.errors import EXIT_OK, EXIT_STEP_FAILED
from migrator.journal import Journal
from migrator.platforms.local_server import LocalServer
from steps.s03_snapshot import XA_STOP_ATTEMPTS
from tests.conftest import MakeServer
from tests.harness import Sandbox, make_sandbox, stop_local_replicas
from tests.integration.test_snapshot_proof import replica, sql, step_status

XA_ROW = 250  # an hr.departments id the dataset does not use


@pytest.fixture
def sandbox(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(make_server, tmp_path)
    yield box
    stop_local_replicas(box)


def wait_for(condition: Any, *, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class PreparedXa:
    """An application's XA transaction on the source, prepared and held by its own open session."""

    def __init__(self, source: LocalServer, name: str) -> None:
        self.name = name
        self.conn = source.root()
        with self.conn.cursor() as cur:
            cur.execute(f"XA START '{name}'")
            cur.execute(f"INSERT INTO hr.departments (id, name) VALUES ({XA_ROW}, 'prepared at the stop')")
            cur.execute(f"XA END '{name}'")
            cur.execute(f"XA PREPARE '{name}'")

    def finish(self, verb: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(f"XA {verb} '{self.name}'")

    def close(self) -> None:
        self.conn.close()


def journal_facts(box: Sandbox) -> dict[str, Any]:
    journal = Journal.open_readonly(box.workdir / "journal.sqlite")
    try:
        return journal.facts()
    finally:
        journal.close()


def xa_events(box: Sandbox) -> list[dict[str, Any]]:
    journal = Journal.open_readonly(box.workdir / "journal.sqlite")
    try:
        return [e for e in journal.events(limit=10_000) if e["kind"] == "snapshot.prepared_xa"]
    finally:
        journal.close()


def xa_commit_end(source: LocalServer, name: str) -> tuple[str, int]:
    """Where the source's binlog event group of ``XA COMMIT 'name'`` ends."""
    binlogs = [str(row[0]) for row in sql(source, "SHOW BINARY LOGS")]
    hex_name = name.encode().hex()
    for file in binlogs:
        for row in sql(source, f"SHOW BINLOG EVENTS IN '{file}'"):
            info = str(row[5])
            if info.startswith("XA COMMIT") and hex_name in info:
                return file, int(row[4])
    raise AssertionError(f"no XA COMMIT of {name!r} in the source's binlogs")


def replica_holds(server: LocalServer, name: str) -> bool:
    return any(bytes(row[3]).startswith(name.encode()) for row in sql(server, "XA RECOVER"))


def test_stop_between_prepare_and_commit_is_retried_until_the_xa_is_committed(sandbox: Sandbox) -> None:
    assert sandbox.cli("run", "--until", "2").returncode == EXIT_OK
    snapshot = replica(sandbox)
    xa = PreparedXa(sandbox.source, "app-xa")
    wait_for(lambda: replica_holds(snapshot, "app-xa"), what="the prepared XA to reach the replica")

    # The application commits once step 3 has stopped the replica and found its transaction prepared there.
    step3_done = threading.Event()
    committed = threading.Event()

    def commit_after_first_refused_stop() -> None:
        while not step3_done.is_set():
            if (sandbox.workdir / "journal.sqlite").exists() and xa_events(sandbox):
                xa.finish("COMMIT")
                committed.set()
                return
            time.sleep(0.05)

    committer = threading.Thread(target=commit_after_first_refused_stop)
    committer.start()
    try:
        result = sandbox.cli("run", "--until", "3")
    finally:
        step3_done.set()
        committer.join()
        if not committed.is_set():
            xa.finish("ROLLBACK")  # the bug: step 3 did not look; end it so the servers can stop
        xa.close()

    assert result.returncode == EXIT_OK, result.stderr[-2000:]
    # The snapshot holds no prepared XA transaction, and has the row the XA COMMIT made visible.
    assert sql(snapshot, "XA RECOVER") == []
    assert sql(snapshot, f"SELECT name FROM hr.departments WHERE id = {XA_ROW}") == [("prepared at the stop",)]
    # Its coordinates are at or after the XA COMMIT, not between the XA PREPARE and it.
    coords = journal_facts(sandbox)["snapshot"]
    commit_file, commit_end = xa_commit_end(sandbox.source, "app-xa")
    assert (coords["file"], coords["position"]) >= (commit_file, commit_end)
    first = xa_events(sandbox)[0]["detail"]
    assert first["attempt"] == 1 and first["xids"] == 1
    assert first["prepared"] == [f"X'{b'app-xa'.hex()}',X'',1 ('app-xa')"]
    assert committed.is_set()

    # Copied and applied: the target has the XA's row exactly once, and nothing prepared.
    finished = sandbox.cli("run", "--until", "8")
    assert finished.returncode == EXIT_OK, finished.stderr[-2000:]
    assert sql(sandbox.target, f"SELECT COUNT(*) FROM hr.departments WHERE id = {XA_ROW}") == [(1,)]
    assert sql(sandbox.target, "XA RECOVER") == []


def test_an_xa_left_prepared_fails_step_3_and_promotes_nothing(sandbox: Sandbox) -> None:
    assert sandbox.cli("run", "--until", "2").returncode == EXIT_OK
    snapshot = replica(sandbox)
    xa = PreparedXa(sandbox.source, "left-behind")
    try:
        wait_for(lambda: replica_holds(snapshot, "left-behind"), what="the prepared XA to reach the replica")

        refused = sandbox.cli("run", "--until", "3")
        assert refused.returncode == EXIT_STEP_FAILED, refused.stderr[-2000:]
        assert f"X'{b'left-behind'.hex()}',X'',1 ('left-behind')" in refused.stderr
        assert "XA ROLLBACK" in refused.stderr and "on the source" in refused.stderr
        assert step_status(sandbox)[3] == "failed"
        assert "snapshot" not in journal_facts(sandbox)
        assert len(xa_events(sandbox)) == XA_STOP_ATTEMPTS
        # Nothing irreversible: the replica still follows the source, unpromoted, and keeps up.
        status = snapshot.root().cursor()
        status.execute("SHOW SLAVE STATUS")
        row = dict(zip([d[0] for d in status.description], status.fetchone(), strict=True))
        status.connection.close()
        assert (row["Slave_IO_Running"], row["Slave_SQL_Running"]) == ("Yes", "Yes")

        # The operator ends the transaction left behind: step 3 now succeeds, without its row.
        xa.finish("ROLLBACK")
    finally:
        xa.close()
    assert sandbox.cli("run", "--until", "3").returncode == EXIT_OK
    assert sql(snapshot, "XA RECOVER") == []
    assert sql(snapshot, f"SELECT COUNT(*) FROM hr.departments WHERE id = {XA_ROW}") == [(0,)]
