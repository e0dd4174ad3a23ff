"""The binlog streamer against a real source: byte-identical archive, kill -9, source restart, purge."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from migrator.errors import BinlogGap
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.session import MySQLSession
from migrator.mysql.source_identity import SourceChanged, read_identity
from migrator.platforms.local_server import LocalServer
from migrator.tools.binlog_streamer import BinlogStreamer, check_source_has
from tests.conftest import MakeServer, add_admin, admin_endpoint

FLAGS_OFFSET = 4 + 17  # magic, then the first event header's flags: the in-use bit differs while open


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def source_logs(server: LocalServer) -> list[tuple[str, int]]:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            return [(str(r[0]), int(r[1])) for r in cur.fetchall()]
    finally:
        conn.close()


def archive_matches(server: LocalServer, archive: Path) -> bool:
    """Every source file is archived with the same size."""
    for name, size in source_logs(server):
        path = archive / name
        if not path.exists() or path.stat().st_size != size:
            return False
    return True


def assert_identical(server: LocalServer, archive: Path) -> None:
    for name, _ in source_logs(server):
        ours = bytearray((archive / name).read_bytes())
        theirs = bytearray((server.datadir / name).read_bytes())
        assert len(ours) == len(theirs), name
        ours[FLAGS_OFFSET] &= ~1
        theirs[FLAGS_OFFSET] &= ~1
        assert ours == theirs, f"{name} differs from the source's"


def write_rows(server: LocalServer, first: int, count: int, payload: int = 200) -> None:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS app")
            cur.execute("CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY, v LONGBLOB)")
            for i in range(first, first + count):
                cur.execute("INSERT INTO app.t VALUES (%s, %s)", (i, os.urandom(payload)))
    finally:
        conn.close()


def make_streamer(source: LocalServer, tmp_path: Path, *, stall_seconds: float = 60.0) -> BinlogStreamer:
    """As the service supervisor makes it: with the source's identity, as step 3 records it."""
    with MySQLSession(admin_endpoint(source)) as session:
        identity = read_identity(session, MARIADB_10_11)
    return BinlogStreamer(
        admin_endpoint(source),
        tmp_path / "archive",
        MARIADB_10_11,
        4242,
        secrets_dir=tmp_path / "secrets",
        identity=identity,
        stall_seconds=stall_seconds,
    )


def credentials_left(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "secrets").rglob("*.cnf"))


def test_stream_while_writing_is_byte_identical(make_server: MakeServer, tmp_path: Path) -> None:
    source = make_server("source", 1)
    first = source_logs(source)[0][0]
    streamer = make_streamer(source, tmp_path)
    streamer.start(first)
    try:
        assert streamer.is_running()
        assert credentials_left(tmp_path) == [], "the defaults file must go once the tool has connected"
        write_rows(source, 1, 200)
        source.execute("FLUSH BINARY LOGS")
        write_rows(source, 1000, 200)
        source.execute("FLUSH BINARY LOGS")
        write_rows(source, 2000, 50)
        wait_for(lambda: archive_matches(source, tmp_path / "archive"), "the archive to catch up")
        names = [f.name for f in streamer.archived_files()]
        assert names == [name for name, _ in source_logs(source)]
        assert not streamer.ensure_running()
    finally:
        streamer.stop()
    assert not streamer.is_running()
    assert_identical(source, tmp_path / "archive")


def test_kill_9_mid_stream_then_ensure_running_heals_the_partial_file(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", 1)
    first = source_logs(source)[0][0]
    streamer = make_streamer(source, tmp_path)
    streamer.start(first)
    try:
        write_rows(source, 1, 300, payload=2000)
        wait_for(lambda: archive_matches(source, tmp_path / "archive"), "the first rows")
        pid = streamer.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not streamer.is_running(), "the streamer to die")
        # A kill mid-write leaves a partial last file: cut it to simulate exactly that.
        last = tmp_path / "archive" / first
        with open(last, "r+b") as fh:
            fh.truncate(last.stat().st_size // 2)
        write_rows(source, 1000, 100, payload=2000)
        wait_for(streamer.ensure_running, "ensure_running to restart the streamer")
        assert streamer.restarts == 1
        source.execute("FLUSH BINARY LOGS")
        write_rows(source, 2000, 20)
        wait_for(lambda: archive_matches(source, tmp_path / "archive"), "the archive to heal and catch up")
        assert not streamer.ensure_running()
        assert credentials_left(tmp_path) == [], "released once the restarted tool connected"
    finally:
        streamer.stop()
    assert_identical(source, tmp_path / "archive")
    assert credentials_left(tmp_path) == []


def test_source_restart_is_resumed_and_the_new_file_picked_up(
    make_server: MakeServer, tmp_path: Path
) -> None:
    source = make_server("source", 1)
    first = source_logs(source)[0][0]
    streamer = make_streamer(source, tmp_path)
    streamer.start(first)
    try:
        write_rows(source, 1, 100)
        wait_for(lambda: archive_matches(source, tmp_path / "archive"), "rows before the restart")
        port = source.port
        source.stop()
        wait_for(lambda: not streamer.is_running(), "the streamer to notice the shutdown")
        streamer.ensure_running()  # the source is down: the restart attempt fails, backoff grows
        source.start()
        assert source.port == port
        write_rows(source, 1000, 100)
        wait_for(lambda: streamer.ensure_running() or streamer.is_running(), "a restart", timeout=30)
        wait_for(
            lambda: (streamer.ensure_running() or True) and archive_matches(source, tmp_path / "archive"),
            "the new file after the restart",
            timeout=30,
        )
        assert len(source_logs(source)) == 2
        assert streamer.restarts >= 1
    finally:
        streamer.stop()
    assert_identical(source, tmp_path / "archive")


def test_purged_binlog_is_a_gap_naming_the_file(make_server: MakeServer, tmp_path: Path) -> None:
    source = make_server("source", 1)
    first = source_logs(source)[0][0]
    source.execute("FLUSH BINARY LOGS")
    second = source_logs(source)[1][0]

    def purged() -> bool:
        # MariaDB keeps a file until its binlog checkpoint moved on (InnoDB flushed its commits).
        source.execute(f"PURGE BINARY LOGS TO '{second}'")
        return source_logs(source)[0][0] == second

    wait_for(purged, f"the source to purge {first}")
    with pytest.raises(BinlogGap) as gap:
        check_source_has(admin_endpoint(source), first)
    assert first in str(gap.value)
    assert "step 2" in str(gap.value)
    check_source_has(admin_endpoint(source), second)  # present: no error

    streamer = make_streamer(source, tmp_path)
    with pytest.raises(BinlogGap) as streamed:
        streamer.start(first)
    assert first in str(streamed.value)
    assert not streamer.is_running()
    assert credentials_left(tmp_path) == []


CHILD_SCRIPT = """
import sys, time
from pathlib import Path
from migrator.endpoint import Endpoint
from migrator.mysql.flavour import MARIADB_10_11
from migrator.secrets import Secret
from migrator.tools.binlog_streamer import BinlogStreamer
s = BinlogStreamer(Endpoint("127.0.0.1", int(sys.argv[1]), "admin", Secret(sys.argv[2])), Path(sys.argv[3]),
                   MARIADB_10_11, 4343, secrets_dir=Path(sys.argv[4]))
s.start(sys.argv[5])
print("PID", s.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_streamer_dies_with_its_parent(make_server: MakeServer, tmp_path: Path) -> None:
    from tests.conftest import ADMIN_PASSWORD

    source = make_server("source", 1)
    first = source_logs(source)[0][0]
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, str(source.port), ADMIN_PASSWORD, str(tmp_path / "archive"),
         str(tmp_path / "secrets"), first],
        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    line = b""
    while not line.startswith(b"PID "):  # structlog's default output shares stdout
        line = parent.stdout.readline()
        assert line, "the parent exited before starting the streamer"
    child = int(line.split()[1])
    assert _alive(child)
    parent.kill()
    parent.wait()
    wait_for(lambda: not _alive(child), "the streamer to die with its parent", timeout=10)


def test_a_stuck_tool_is_restarted_when_the_source_moves_on(make_server: MakeServer, tmp_path: Path) -> None:
    """Alive is not enough (review B12): a tool that stops writing while the source's head moves is restarted."""
    source = make_server("source", 1)
    first = source_logs(source)[0][0]
    streamer = make_streamer(source, tmp_path, stall_seconds=1.0)
    streamer.start(first)
    try:
        write_rows(source, 1, 50)
        wait_for(lambda: archive_matches(source, tmp_path / "archive"), "the first rows")
        stuck = streamer.pid
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)  # as a tool blocked on a dead connection: alive, silent
        assert not streamer.ensure_running() and streamer.pid == stuck  # idle and alive: left alone
        write_rows(source, 1000, 50)
        wait_for(lambda: streamer.ensure_running() or False, "the stuck tool to be restarted", timeout=30)
        assert streamer.stall_restarts == 1 and streamer.restarts == 1
        assert streamer.pid != stuck and not _alive(stuck)
        wait_for(
            lambda: (streamer.ensure_running() or True) and archive_matches(source, tmp_path / "archive"),
            "the restarted tool to catch up",
        )
    finally:
        streamer.stop()
    assert_identical(source, tmp_path / "archive")


def test_a_source_replaced_on_the_same_port_stops_the_streamer(
    make_server: MakeServer, server_template: Path, tmp_path: Path
) -> None:
    """A failover to another server must never mix its binlog files into the archive (review A6)."""
    source = make_server("source", 1)
    first = source_logs(source)[0][0]
    streamer = make_streamer(source, tmp_path)
    streamer.start(first)
    other: LocalServer | None = None
    try:
        write_rows(source, 1, 60)
        wait_for(lambda: archive_matches(source, tmp_path / "archive"), "the rows of the first server")
        archived = {f.name: f.size for f in streamer.archived_files()}
        port = source.port
        source.kill()
        wait_for(lambda: not streamer.is_running(), "the streamer to notice")
        # Another server, even with the same server_id, answers on the same port with its own history.
        other = LocalServer(tmp_path / "servers" / "other", server_id=1, port=port)
        other.initialise_from(server_template)
        other.start()
        assert other.port == port
        add_admin(other)
        write_rows(other, 500, 90)
        with pytest.raises(SourceChanged) as changed:
            wait_for(lambda: streamer.ensure_running() and False, "the streamer to refuse", timeout=30)
        message = str(changed.value)
        assert f"127.0.0.1:{port}" in message and "do not continue the archive" in message
        assert "never be mixed" in changed.value.hint
        assert not streamer.is_running()
        assert {f.name: f.size for f in streamer.archived_files()} == archived  # nothing overwritten
    finally:
        streamer.stop()
        if other is not None:
            other.kill()
