"""Steps 2 and 3 wait for the replica and the promotion with their own budgets (review C5).

A 4 TB RDS replica takes hours to be created; sync.timeout_seconds (lag waits, default an hour) failed
step 2 half-way. A fake platform whose replica never catches up (or is never promoted), a fake clock
that makes hours pass at once, and one real server for the sessions the steps open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from migrator.config import Config, load
from migrator.errors import StepFailed
from migrator.journal import Journal
from migrator.mysql import heartbeat
from migrator.mysql.session import MySQLSession
from migrator.ports import ReplicaHandle, ReplicaState, SnapshotCoordinates
from migrator.step import StepContext
from steps import s02_replica, s03_snapshot
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, MakeServer, admin_endpoint
from tests.fakes.clock import FakeClock
from tests.harness import write_config


class SlowPlatform:
    """An RDS-like platform that is still creating the replica, and then still promoting it."""

    name = "fake"

    def __init__(self, replica: ReplicaHandle) -> None:
        self.replica = replica

    def binlog_retention_hours(self) -> int | None:
        return 48

    def set_binlog_retention_hours(self, hours: int) -> None:
        pass

    def create_replica(self, identifier: str) -> ReplicaHandle:
        return self.replica

    def replica_state(self, identifier: str) -> ReplicaState:
        return ReplicaState(exists=True, available=False, replicating=False, lag_seconds=None, promoted=False)

    def replica_handle(self, identifier: str) -> ReplicaHandle:
        return self.replica

    def stop_replication(self, identifier: str) -> SnapshotCoordinates:
        return SnapshotCoordinates("mysql-bin.000001", 4)

    def promote(self, identifier: str) -> None:
        pass


class Services:
    def start(self, name: str) -> None:
        pass

    def check(self) -> None:
        pass


def config(tmp_path: Path, port: int) -> Config:
    endpoint = {"host": "127.0.0.1", "port": port, "user": ADMIN_USER, "password": ADMIN_PASSWORD}
    return load(
        write_config(
            tmp_path / "c.toml",
            {
                "migration": {"workdir": str(tmp_path / "work"), "schemas": ["shop"]},
                "source": endpoint,
                "target": endpoint,
                "sync": {"timeout_seconds": 60, "replica_timeout_seconds": 50_000, "promote_timeout_seconds": 9_000},
                "dns": {"provider": "local", "record": "db", "target_value": "127.0.0.1:1"},
            },
        )
    )


def context(cfg: Config, journal: Journal, clock: FakeClock, step: int) -> StepContext:
    handle = ReplicaHandle("replica", cfg.source)  # the one server stands in for the replica's sessions
    platform: Any = SlowPlatform(handle)
    services: Any = Services()
    return StepContext(
        config=cfg,
        journal=journal,
        platform=platform,
        dns=None,  # type: ignore[arg-type]
        clock=clock,  # type: ignore[arg-type]
        services=services,
        log=structlog.get_logger(),
        step_number=step,
    )


def test_replica_and_promotion_waits_use_their_own_timeouts(make_server: MakeServer, tmp_path: Path) -> None:
    server = make_server("source", 1)
    cfg = config(tmp_path, server.port)
    journal = Journal.open(tmp_path / "journal.sqlite")
    clock = FakeClock()
    try:
        started = clock.now()
        with pytest.raises(StepFailed, match=r"wait 'replica-in-sync', 50000 s"):
            s02_replica.run(context(cfg, journal, clock, 2))
        assert clock.now() - started >= 50_000  # not the 60 s of sync.timeout_seconds

        journal.put_fact("replica_id", "replica")
        with MySQLSession(admin_endpoint(server)) as s:
            heartbeat.beat(s)  # the replicated beat step 3 records before the stop
        started = clock.now()
        with pytest.raises(StepFailed, match=r"wait 'promoted', 9000 s"):
            s03_snapshot.run(context(cfg, journal, clock, 3))
        assert clock.now() - started >= 9_000
    finally:
        journal.close()
