"""Every session times out instead of hanging on a black-holed connection (review B12)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from migrator.mysql.session import MySQLSession, Timeouts, default_timeouts, error_code, set_default_timeouts
from tests.conftest import MakeServer, admin_endpoint
from tests.faults.proxy import FaultProxy


@pytest.fixture
def short_timeouts() -> Iterator[Timeouts]:
    before = default_timeouts()
    set_default_timeouts(Timeouts(read=2, write=2))  # what sync.read_timeout_seconds = 2 sets for a run
    yield default_timeouts()
    set_default_timeouts(before)


def test_a_stalled_connection_times_out(make_server: MakeServer, short_timeouts: Timeouts) -> None:
    server = make_server("source", 1)
    proxy = FaultProxy("127.0.0.1", server.port).start()
    outcome: list[BaseException | None] = []
    try:
        session = MySQLSession(admin_endpoint(server).with_address("127.0.0.1", proxy.port))
        assert session.value("SELECT 1") == 1
        proxy.stall(True)  # bytes stop moving; no reset reaches either side (a black hole)

        def query() -> None:
            try:
                session.value("SELECT 1")
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        started = time.monotonic()
        worker = threading.Thread(target=query, daemon=True)
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "the session hung on the stalled connection"
        assert outcome and outcome[0] is not None
        assert error_code(outcome[0]) == 2013  # Lost connection: transient, so callers reconnect and retry
        assert time.monotonic() - started < 10
        session.close()
    finally:
        proxy.stall(False)
        proxy.stop()


def test_long_statement_gets_its_own_timeout(make_server: MakeServer, short_timeouts: Timeouts) -> None:
    server = make_server("source", 1)
    with MySQLSession(admin_endpoint(server)) as session:
        with pytest.raises(Exception) as timed_out:
            session.value("SELECT SLEEP(4)")
        assert error_code(timed_out.value) == 2013
    with MySQLSession(admin_endpoint(server)) as session:
        with session.long_statement(30):
            assert session.value("SELECT SLEEP(4)") == 0
        assert session.conn._read_timeout == 2  # back to the default afterwards
