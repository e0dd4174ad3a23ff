"""The snapshot proof's flavour contract (MySQL 8.0/8.4 from the manual; MariaDB runs in the integration tests)."""

from __future__ import annotations

from migrator.mysql.flavour import MARIADB_10_11, MYSQL_8_0, MYSQL_8_4
from migrator.mysql.snapshot_proof import SnapshotState, differences


def test_mysql_parallel_applier_without_commit_order_is_a_gap_risk() -> None:
    # 8.0.27+ defaults to 4 workers; preserve_commit_order defaults ON from 8.0.27, OFF before.
    assert MYSQL_8_0.parallel_replication_gaps(4, 0) is not None
    assert "replica_preserve_commit_order=OFF" in (MYSQL_8_4.parallel_replication_gaps("4", "OFF") or "")
    assert MYSQL_8_4.parallel_replication_gaps(4, 1) is None
    assert MYSQL_8_0.parallel_replication_gaps(0, 0) is None
    assert MYSQL_8_0.parallel_replication_gaps(None, None) is not None  # unreadable: not proven
    # 8.0 answers to the slave_* names (replica_* only from 8.0.26); 8.4 to replica_* only.
    assert "slave_parallel_workers" in MYSQL_8_0.parallel_replication_sql
    assert "replica_preserve_commit_order" in MYSQL_8_4.parallel_replication_sql


def test_mariadb_parallel_modes() -> None:
    assert MARIADB_10_11.parallel_replication_gaps(0, "optimistic") is None  # no parallel threads
    assert MARIADB_10_11.parallel_replication_gaps(4, "conservative") is None
    assert MARIADB_10_11.parallel_replication_gaps(4, "optimistic") is not None
    assert MARIADB_10_11.parallel_replication_gaps(4, "aggressive") is not None


def test_gtid_state_sql_per_flavour() -> None:
    assert "gtid_binlog_pos" in MARIADB_10_11.gtid_state_sql and "gtid_slave_pos" in MARIADB_10_11.gtid_state_sql
    # gtid_mode=OFF gives NULL: the heartbeat is the proof then.
    assert "gtid_mode" in MYSQL_8_4.gtid_state_sql and "gtid_executed" in MYSQL_8_4.gtid_state_sql


def test_differences_name_what_moved() -> None:
    at_stop = SnapshotState(gtid="3e11fa47-71ca-11e1-9e33-c80aa9429562:1-77", replicated_gtid=None, heartbeat=41)
    assert differences(at_stop, at_stop) == []
    grew = SnapshotState(gtid="3e11fa47-71ca-11e1-9e33-c80aa9429562:1-78", replicated_gtid=None, heartbeat=41)
    assert "executed GTIDs" in differences(at_stop, grew)[0]
    beat = SnapshotState(gtid=None, replicated_gtid=None, heartbeat=42)
    no_gtid = SnapshotState(gtid=None, replicated_gtid=None, heartbeat=41)
    assert "heartbeat row went from beat 41 to 42" in differences(no_gtid, beat)[0]


def test_replicas_listing_per_flavour() -> None:
    assert MARIADB_10_11.replicas_sql == "SHOW SLAVE HOSTS"
    assert MYSQL_8_0.replicas_sql == "SHOW SLAVE HOSTS"  # deprecated on 8.0, still there
    assert MYSQL_8_4.replicas_sql == "SHOW REPLICAS"  # the only name on 8.4
