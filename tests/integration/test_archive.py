"""The archive against real servers: pruned behind every reader, and a run that stops before the disk fills (review C4)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from migrator.errors import EXIT_OK, EXIT_STEP_FAILED
from migrator.journal import Journal
from migrator.log import get_logger
from migrator.services import ServiceSupervisor
from migrator.tools.archive import RETAIN_FROM_FACT, free_mb
from migrator.tools.binlog_streamer import list_archive
from tests.conftest import MakeServer
from tests.harness import Sandbox, make_sandbox, stop_local_replicas


@pytest.fixture
def sandbox(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    box = make_sandbox(make_server, tmp_path)
    yield box
    stop_local_replicas(box)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def new_binlogs(box: Sandbox, count: int) -> None:
    """Some writes in each of ``count`` new source binlog files."""
    for i in range(count):
        box.source.execute(
            f"UPDATE shop.customers SET email = CONCAT('r{i}', email) WHERE id <= 5", "FLUSH BINARY LOGS"
        )


def source_head_file(box: Sandbox) -> str:
    conn = box.source.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def test_archive_is_pruned_behind_the_applier_and_kept_for_a_reader(sandbox: Sandbox) -> None:
    assert sandbox.cli("run", "--until", "7").returncode == EXIT_OK
    config = sandbox.config()
    journal = Journal.open(config.journal_path)
    services = ServiceSupervisor(config, journal, log=get_logger())
    archive = config.archive_dir
    try:
        services.resume()  # streamer, applier and heartbeat, as a resumed run restarts them

        def applied_to_head() -> bool:
            services.check()
            position = journal.services()["applier"][1]
            return position is not None and position[0] == source_head_file(sandbox)

        wait_for(applied_to_head, "the applier to reach the source's newest file")
        # A verification reader starts here and asks the archive to keep it (as verification code does).
        reader = journal.services()["applier"][1]
        journal.put_fact(RETAIN_FROM_FACT, reader)
        new_binlogs(sandbox, 3)
        wait_for(applied_to_head, "the applier to apply the new files")
        names = [f.name for f in list_archive(archive)]
        assert names[0] == reader[0] and len(names) == 4  # the reader's file and the 3 new ones: none pruned
        # The reader moves on: everything before the applier's file goes, the applier's file stays.
        journal.put_fact(RETAIN_FROM_FACT, None)
        services.check()
        assert [f.name for f in list_archive(archive)] == [source_head_file(sandbox)]
        assert any(e["kind"] == "archive.pruned" for e in journal.events(200))
        # The applier keeps applying from what is left.
        new_binlogs(sandbox, 1)
        wait_for(applied_to_head, "the applier to go on after pruning")
    finally:
        services.shutdown()
        journal.close()


def set_min_free(box: Sandbox, mb: int) -> None:
    text = re.sub(r"\n\[binlog\]\nmin_free_mb = \d+\n", "\n", box.config_path.read_text())
    box.config_path.write_text(text + f"\n[binlog]\nmin_free_mb = {mb}\n")


def test_run_stops_before_the_disk_fills_and_resumes_after_space_is_freed(sandbox: Sandbox) -> None:
    assert sandbox.cli("run", "--until", "5").returncode == EXIT_OK
    # Less free space than asked for: as a disk that filled up with archived binlogs would have.
    set_min_free(sandbox, int(free_mb(sandbox.workdir)) + 50_000)
    stopped = sandbox.cli("run", "--until", "7")
    assert stopped.returncode == EXIT_STEP_FAILED
    assert "below binlog.min_free_mb" in stopped.stderr and "before the disk fills" in stopped.stderr
    journal = Journal.open_readonly(sandbox.workdir / "journal.sqlite")
    assert journal.step(7).status != "done"
    journal.close()
    set_min_free(sandbox, 1)  # space freed
    resumed = sandbox.cli("run", "--until", "7")
    assert resumed.returncode == EXIT_OK, resumed.stderr[-2000:]
