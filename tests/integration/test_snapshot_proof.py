"""The snapshot is proven equal to its coordinates before anything is copied (review A3).

Real servers, the local platform, the CLI as an operator runs it: a replica whose parallel applier
may stop with gaps, or whose event scheduler can fire the migrated schemas' events, is refused with
the reason; a write to the promoted snapshot after its coordinates is found before step 6 copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migrator.errors import EXIT_OK, EXIT_STEP_FAILED
from migrator.journal import Journal
from migrator.log import get_logger
from migrator.platforms.local import LocalPlatform
from migrator.platforms.local_server import LocalServer
from tests.conftest import MakeServer
from tests.harness import Sandbox, make_sandbox, stop_local_replicas


@pytest.fixture
def sandbox(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(make_server, tmp_path)
    yield box
    stop_local_replicas(box)


def replica(box: Sandbox) -> LocalServer:
    """The local platform's snapshot replica, as the platform itself finds it."""
    handle = LocalPlatform(box.config(), log=get_logger()).replica_handle("test-snapshot")
    return LocalServer(box.workdir / "replicas" / "test-snapshot", server_id=3, port=handle.endpoint.port)


def sql(server: LocalServer, *statements: str) -> list[tuple[object, ...]]:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return list(cur.fetchall())
    finally:
        conn.close()


def step_status(box: Sandbox) -> dict[int, str]:
    journal = Journal.open_readonly(box.workdir / "journal.sqlite")
    try:
        return {row.number: row.status for row in journal.steps()}
    finally:
        journal.close()


def chunks_planned(box: Sandbox) -> int:
    journal = Journal.open_readonly(box.workdir / "journal.sqlite")
    try:
        return journal.copy_progress()["chunks"]
    finally:
        journal.close()


def test_replica_that_can_change_after_its_coordinates_is_refused(sandbox: Sandbox) -> None:
    assert sandbox.cli("run", "--until", "2").returncode == EXIT_OK
    snapshot = replica(sandbox)

    # A parallel applier in optimistic mode may have applied past the stop position.
    sql(
        snapshot,
        "STOP SLAVE",
        "SET GLOBAL slave_parallel_threads = 4",
        "SET GLOBAL slave_parallel_mode = 'optimistic'",
        "START SLAVE",
    )
    refused = sandbox.cli("run", "--until", "3")
    assert refused.returncode == EXIT_STEP_FAILED, refused.stderr[-2000:]
    assert "slave_parallel_threads=4 in slave_parallel_mode=optimistic" in refused.stderr
    assert "slave_parallel_mode=conservative" in refused.stderr  # the remedy
    assert Journal.open_readonly(sandbox.workdir / "journal.sqlite").fact("snapshot") is None  # not stopped
    sql(snapshot, "STOP SLAVE", "SET GLOBAL slave_parallel_threads = 0", "START SLAVE")

    # The dataset's event is ENABLED on the replica; with the scheduler on it can fire there.
    sql(snapshot, "SET GLOBAL event_scheduler = ON")
    refused = sandbox.cli("run", "--until", "3")
    assert refused.returncode == EXIT_STEP_FAILED
    assert "event scheduler is ON on the replica" in refused.stderr
    assert "shop.purge_old_page_views" in refused.stderr
    assert Journal.open_readonly(sandbox.workdir / "journal.sqlite").fact("snapshot") is None
    sql(snapshot, "SET GLOBAL event_scheduler = OFF")

    assert sandbox.cli("run", "--until", "5").returncode == EXIT_OK  # stopped, promoted, proven
    # Someone turns the scheduler on on the promoted snapshot: refused before step 6 copies anything.
    sql(snapshot, "SET GLOBAL event_scheduler = ON")
    refused = sandbox.cli("run", "--until", "6")
    assert refused.returncode == EXIT_STEP_FAILED
    assert "event scheduler is ON on the snapshot (before the copy)" in refused.stderr
    assert step_status(sandbox)[6] == "failed"
    assert chunks_planned(sandbox) == 0


def test_write_to_the_snapshot_after_its_coordinates_is_detected(sandbox: Sandbox) -> None:
    assert sandbox.cli("run", "--until", "5").returncode == EXIT_OK
    snapshot = replica(sandbox)
    facts = Journal.open_readonly(sandbox.workdir / "journal.sqlite").facts()
    assert facts["snapshot_state"]["heartbeat"] is not None  # the replicated beat was recorded at the stop
    # A write on the promoted instance, after the coordinates (as an event or a person would make).
    sql(snapshot, "UPDATE shop.customers SET email = CONCAT('x', email) WHERE id = 1")
    refused = sandbox.cli("run", "--until", "6")
    assert refused.returncode == EXIT_STEP_FAILED
    assert "the snapshot changed after its coordinates (before the copy)" in refused.stderr
    assert "executed GTIDs went from" in refused.stderr
    assert chunks_planned(sandbox) == 0
    # The target got nothing of the changed snapshot.
    target_tables = sql(
        sandbox.target, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'shop'"
    )
    assert target_tables == [(0,)]
