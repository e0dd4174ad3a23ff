"""Every MySQL-vs-MariaDB difference the tool depends on, in one place.

MariaDB 10.11 keeps the Master_* column names even under SHOW REPLICA STATUS; MySQL 8.0.22+
renamed them to Source_*, and 8.4 removed SHOW SLAVE STATUS, CHANGE MASTER and SHOW MASTER STATUS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrator.ports import SnapshotCoordinates


@dataclass(frozen=True)
class Flavour:
    name: str  # "mariadb" | "mysql"
    major: int
    minor: int

    @property
    def is_mariadb(self) -> bool:
        return self.name == "mariadb"

    @property
    def _modern_mysql(self) -> bool:
        return not self.is_mariadb and (self.major, self.minor) >= (8, 0)

    # --- client tools ------------------------------------------------------------------------
    # Candidate names only: which product a name really is, and so which options it takes, is read
    # from its --version by migrator/tools/client_tools.py (on Debian `mysqlbinlog` is MariaDB's).
    @property
    def binlog_tool(self) -> tuple[str, ...]:
        return ("mariadb-binlog", "mysqlbinlog") if self.is_mariadb else ("mysqlbinlog", "mariadb-binlog")

    @property
    def dump_tool(self) -> tuple[str, ...]:
        return ("mariadb-dump", "mysqldump") if self.is_mariadb else ("mysqldump", "mariadb-dump")

    @property
    def client_tool(self) -> tuple[str, ...]:
        return ("mariadb", "mysql") if self.is_mariadb else ("mysql", "mariadb")

    def streamer_server_id_option(self, server_id: int) -> str:
        # mysqlbinlog connects as server_id 1 unless told; MariaDB's option has another name.
        if self.is_mariadb:
            return f"--stop-never-slave-server-id={server_id}"
        return f"--connection-server-id={server_id}"

    # --- replication statements --------------------------------------------------------------
    @property
    def replica_status_sql(self) -> str:
        if self.is_mariadb:
            return "SHOW SLAVE STATUS"
        return "SHOW REPLICA STATUS" if (self.major, self.minor) >= (8, 0) else "SHOW SLAVE STATUS"

    @property
    def binary_log_status_sql(self) -> str:
        if not self.is_mariadb and (self.major, self.minor) >= (8, 2):
            return "SHOW BINARY LOG STATUS"
        return "SHOW MASTER STATUS"

    @property
    def start_replica_sql(self) -> str:
        return "START SLAVE" if self.is_mariadb or not self._modern_mysql else "START REPLICA"

    @property
    def stop_replica_sql(self) -> str:
        return "STOP SLAVE" if self.is_mariadb or not self._modern_mysql else "STOP REPLICA"

    @property
    def reset_replica_all_sql(self) -> str:
        return "RESET SLAVE ALL" if self.is_mariadb or not self._modern_mysql else "RESET REPLICA ALL"

    def change_source_sql(
        self, *, host: str, port: int, user: str, password: str, log_file: str, log_pos: int
    ) -> tuple[str, tuple[Any, ...]]:
        if self.is_mariadb or not self._modern_mysql:
            sql = (
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s, "
                "MASTER_LOG_FILE=%s, MASTER_LOG_POS=%s"
            )
            if self.is_mariadb:
                sql += ", MASTER_USE_GTID=no"
        else:
            sql = (
                "CHANGE REPLICATION SOURCE TO SOURCE_HOST=%s, SOURCE_PORT=%s, SOURCE_USER=%s, "
                "SOURCE_PASSWORD=%s, SOURCE_LOG_FILE=%s, SOURCE_LOG_POS=%s, GET_SOURCE_PUBLIC_KEY=1"
            )
        return sql, (host, port, user, password, log_file, log_pos)

    @property
    def replicas_sql(self) -> str:
        """The replicas registered with this server (SHOW SLAVE HOSTS is gone in MySQL 8.4)."""
        if not self.is_mariadb and (self.major, self.minor) > (8, 0):
            return "SHOW REPLICAS"
        return "SHOW SLAVE HOSTS"

    # --- reading replica status --------------------------------------------------------------
    def _col(self, row: dict[str, Any], master_name: str) -> Any:
        if master_name in row:
            return row[master_name]
        return row.get(master_name.replace("Master", "Source").replace("Slave", "Replica"))

    def replica_coordinates(self, row: dict[str, Any]) -> SnapshotCoordinates:
        """The applied source position: Relay_Master_Log_File pairs with Exec_Master_Log_Pos.

        (Master_Log_File is the IO thread's file; pairing it with Exec_ is a known AWS-doc error.)
        """
        gtid = row.get("Gtid_IO_Pos") if self.is_mariadb else (row.get("Executed_Gtid_Set") or None)
        return SnapshotCoordinates(
            file=str(self._col(row, "Relay_Master_Log_File")),
            position=int(self._col(row, "Exec_Master_Log_Pos")),
            gtid=gtid or None,
        )

    def replica_threads_running(self, row: dict[str, Any]) -> tuple[bool, bool]:
        io = str(self._col(row, "Slave_IO_Running")) == "Yes"
        sql = str(self._col(row, "Slave_SQL_Running")) == "Yes"
        return io, sql

    def replica_lag_seconds(self, row: dict[str, Any]) -> float | None:
        value = self._col(row, "Seconds_Behind_Master")
        return None if value is None else float(value)

    def replica_caught_up(self, row: dict[str, Any]) -> bool:
        """IO thread's read position equals the SQL thread's executed position."""
        read_file = self._col(row, "Master_Log_File")
        read_pos = int(self._col(row, "Read_Master_Log_Pos") or 0)
        coords = self.replica_coordinates(row)
        return bool(read_file == coords.file and read_pos == coords.position)

    def replica_error(self, row: dict[str, Any]) -> str:
        for key in ("Last_SQL_Error", "Last_IO_Error", "Last_Error"):
            if row.get(key):
                return str(row[key])
        return ""

    # --- proving the snapshot (review A3) ----------------------------------------------------
    @property
    def gtid_state_sql(self) -> str:
        """The executed-transaction state whose growth means "something ran here after the stop".

        MariaDB has GTIDs always: gtid_binlog_pos grows with the server's own binlogged writes and
        gtid_slave_pos with replicated ones (RESET SLAVE ALL keeps it). MySQL has them only with
        gtid_mode=ON: gtid_executed holds both (with log_bin off too, in mysql.gtid_executed).
        """
        if self.is_mariadb:
            return "SELECT @@GLOBAL.gtid_binlog_pos, @@GLOBAL.gtid_slave_pos"
        return "SELECT IF(@@GLOBAL.gtid_mode = 'ON', @@GLOBAL.gtid_executed, NULL), NULL"

    @property
    def parallel_replication_sql(self) -> str:
        """(worker threads, ordering setting) of the replica's applier."""
        if self.is_mariadb:
            return "SELECT @@GLOBAL.slave_parallel_threads, @@GLOBAL.slave_parallel_mode"
        if (self.major, self.minor) > (8, 0):
            # replica_* names exist from 8.0.26 on; every 8.0 answers to the deprecated slave_* ones.
            return "SELECT @@GLOBAL.replica_parallel_workers, @@GLOBAL.replica_preserve_commit_order"
        return "SELECT @@GLOBAL.slave_parallel_workers, @@GLOBAL.slave_preserve_commit_order"

    def parallel_replication_gaps(self, workers: object, ordering: object) -> str | None:
        """Why a replica stopped with this parallel setup may hold transactions past its coordinates, or None.

        MySQL: with workers > 0 and commit order not preserved, a stopped replica may have applied
        transactions after Exec_Source_Log_Pos and not some before it ("gaps"; the manual's remedy is
        START REPLICA UNTIL SQL_AFTER_MTS_GAPS, or replica_preserve_commit_order=ON). MariaDB commits
        in order in every mode, but only the "conservative" (and "minimal"/"none") modes apply no
        transaction speculatively out of its group; optimistic/aggressive are refused to stay on the
        documented side.
        """
        try:
            threads = int(str(workers))
        except ValueError:
            return f"the replica's parallel worker setting could not be read ({workers!r})"
        if threads <= 0:
            return None
        setting = str(ordering).strip().lower()
        if self.is_mariadb:
            if setting in ("conservative", "minimal", "none"):
                return None
            return (
                f"the replica applies with slave_parallel_threads={threads} in slave_parallel_mode={setting}: "
                "transactions past the stop position may already be applied"
            )
        if setting in ("1", "on"):
            return None
        return (
            f"the replica applies with replica_parallel_workers={threads} and replica_preserve_commit_order=OFF: "
            "a stopped replica can hold gaps (transactions applied past Exec_Source_Log_Pos)"
        )

    @property
    def parallel_replication_remedy(self) -> str:
        if self.is_mariadb:
            return "set slave_parallel_threads=0 or slave_parallel_mode=conservative on the replica, then retry"
        return (
            "set replica_preserve_commit_order=ON (or replica_parallel_workers=0) in the replica's parameter "
            "group, then retry"
        )

    # --- prepared XA transactions (a snapshot point must have none) -----------------------------
    @property
    def xa_recover_sql(self) -> str:
        """The prepared XA transactions, each row (formatID, gtrid_length, bqual_length, data).

        MySQL 8 returns ``data`` as hex on request (CONVERT XID; it needs XA_RECOVER_ADMIN, else error
        1397); MariaDB's parser refuses CONVERT XID and returns the raw bytes to any account.
        """
        return "XA RECOVER" if self.is_mariadb else "XA RECOVER CONVERT XID"

    def xa_data(self, value: object) -> bytes:
        """The gtrid+bqual bytes of one XA RECOVER row's ``data`` (hex "0x..." from CONVERT XID)."""
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
        if not self.is_mariadb and raw[:2].lower() == b"0x":
            return bytes.fromhex(raw[2:].decode("ascii"))
        return raw

    # --- the source's identity (review A6) ------------------------------------------------------
    @property
    def server_identity_sql(self) -> str:
        """(server_id, server_uuid or NULL): which server the binlogs come from.

        MySQL names each instance by @@server_uuid (auto.cnf), so a failover target differs.
        MariaDB has no server_uuid (@@server_uuid does not exist): @@server_id names the server, and
        because two servers may share an id, migrator.mysql.source_identity also requires the source's
        binlogs to continue the archive: same sizes for complete files, and the same Gtid_list event
        (the GTID state each MariaDB binlog file starts with, written by the server that created it)
        at the start of the file the streamer resumes. A server with another history cannot match
        both; a Multi-AZ failover (same volume, same files) does.
        """
        if self.is_mariadb:
            return "SELECT @@GLOBAL.server_id, NULL"
        return "SELECT @@GLOBAL.server_id, @@GLOBAL.server_uuid"

    # --- retention ---------------------------------------------------------------------------
    @property
    def binlog_expiry_variables(self) -> tuple[str, ...]:
        return ("binlog_expire_logs_seconds", "expire_logs_days")

    # --- freezing writes ---------------------------------------------------------------------
    def read_only_statements(self, on: bool) -> list[str]:
        """read_only only, never super_read_only (review B2).

        The migrator writes to a read_only target for days (copy, applier, step 12): on MySQL it may,
        holding CONNECTION_ADMIN or SUPER (preflight checks, migrator/grants.py), while
        super_read_only refuses every client session, SUPER included. On MariaDB 10.11 READ_ONLY
        ADMIN both sets read_only and writes through it. ``read_only = OFF`` also clears a
        super_read_only someone else set.
        """
        return [f"SET GLOBAL read_only = {'ON' if on else 'OFF'}"]


def detect(version: str) -> Flavour:
    """From ``SELECT VERSION()``: '10.11.19-MariaDB-0+deb12u1' or '8.0.36'."""
    numbers = version.split("-", maxsplit=1)[0].split(".")
    major, minor = int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 0
    return Flavour("mariadb" if "mariadb" in version.lower() else "mysql", major, minor)


MARIADB_10_11 = Flavour("mariadb", 10, 11)
MYSQL_8_0 = Flavour("mysql", 8, 0)
MYSQL_8_4 = Flavour("mysql", 8, 4)
