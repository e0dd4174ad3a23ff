"""Session state that mysqlbinlog prints between transactions never commits the applier's open group.

MySQL 8 prints a ``BEGIN`` Query event per transaction, and with it ``SET @@session.autocommit=0|1``
whenever consecutive transactions come from sessions with different autocommit (review A1): replayed
inside the applier's group, ``autocommit=1`` commits the group early, without its position.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.ports import SnapshotCoordinates
from tests.conftest import MakeServer
from tests.integration.binlog_text_tool import as_mysql_begin_queries, install_text_tool, mariadb_text
from tests.integration.test_binlog_applier import make_applier, master_status, rows


class Crash(Exception):
    """Stands for the orchestrator dying between the group's statements and its position update."""


def crash_once_at(point: str):  # type: ignore[no-untyped-def]
    state = {"done": False}

    def hook(name: str) -> None:
        if name == point and not state["done"]:
            state["done"] = True
            raise Crash(name)

    return hook


def test_autocommit_lines_between_transactions_never_commit_a_group_early(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", 1)
    target = make_server("target", 2)
    for server in (source, target):
        server.execute("CREATE DATABASE app", "CREATE TABLE app.t (id INT PRIMARY KEY, v INT)")
    file, start_pos = master_status(source)
    for i in range(1, 13):
        source.execute(f"INSERT INTO app.t VALUES ({i}, {i})")
    archive = tmp_path / "archive"
    archive.mkdir()
    # JDBC-style sessions (autocommit=0) interleaved with single statements (autocommit=1).
    (archive / file).write_bytes(as_mysql_begin_queries(mariadb_text(source, file), [0, 0, 1, 0, 1, 1]))
    assert b"@@session.autocommit=0" in (archive / file).read_bytes()
    start = SnapshotCoordinates(file, start_pos)

    crashing = make_applier(target, archive, start, tmp_path, group_commit=50,
                            fault_hook=crash_once_at("apply.before_commit"))
    install_text_tool(crashing, tmp_path)
    with pytest.raises(Crash):
        crashing.apply_available()
    crashing.close()
    # The group never reached its position update: nothing of it may be committed.
    assert rows(target, "SELECT COUNT(*) FROM app.t") == [(0,)]
    assert crashing.applied_position() == (file, start_pos)

    resumed = make_applier(target, archive, start, tmp_path, group_commit=50)
    install_text_tool(resumed, tmp_path)
    resumed.apply_available()
    assert rows(target, "SELECT id, v FROM app.t ORDER BY id") == [(i, i) for i in range(1, 13)]
    assert resumed.applied_position() == master_status(source)
    assert rows(target, "SELECT @@autocommit") == [(1,)]
