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
