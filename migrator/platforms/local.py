"""The `local` platform: the source is a server we can reach; the snapshot replica is a mariadbd we start.

It does for a local source what RDS does for `CreateDBInstanceReadReplica`: a consistent copy of
the source with its binlog coordinates (in parallel, migrator.platforms.replica_seed), then real
replication from those coordinates. The replica process is detached (its own session) so it
outlives an orchestrator killed mid-step, as an RDS instance would.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pymysql

from migrator.config import Config
from migrator.errors import StepFailed
from migrator.mysql.flavour import Flavour, detect
from migrator.mysql.heartbeat import SCHEMA as HEARTBEAT_SCHEMA
from migrator.mysql.replication import replication_status
from migrator.mysql.session import MySQLSession, error_code, quote_identifier
from migrator.platforms.local_server import LocalServer, build_template
from migrator.platforms.replica_seed import seed_replica
from migrator.ports import ReplicaHandle, ReplicaState, SnapshotCoordinates

FOREVER_HOURS = 1_000_000  # expire_logs 0 means "never purge": report it as effectively unlimited
# The step-6 copy reads every table of the replica: with more tables than the defaults (400
# definitions, 2000 open tables), each chunk reopened its table's definition.
REPLICA_ARGS = ("--table-definition-cache=16384", "--table-open-cache=16384")
# How long the replica's creation waits for prepared XA transactions on the source to end.
XA_WAIT_SECONDS = 120.0


class LocalPlatform:
    name = "local"

    def __init__(self, config: Config, *, log: Any) -> None:
        self.config = config
        self.log = log
        self.root = config.workdir / "replicas"

    # --- source -------------------------------------------------------------------------------
    def _source(self) -> MySQLSession:
        return MySQLSession(self.config.source)

    def _flavour(self, session: MySQLSession) -> Flavour:
        return detect(str(session.value("SELECT VERSION()")))

    def binlog_retention_hours(self) -> int | None:
        with self._source() as s:
            seconds = int(s.variable("binlog_expire_logs_seconds") or 0)
            days = float(s.variable("expire_logs_days") or 0)
        if seconds == 0 and days == 0:
            return FOREVER_HOURS
        return int(seconds // 3600) if seconds else int(days * 24)

    def set_binlog_retention_hours(self, hours: int) -> None:
        with self._source() as s:
            s.execute("SET GLOBAL binlog_expire_logs_seconds = %s", (hours * 3600,))

    def set_source_read_only(self, read_only: bool) -> None:
        with self._source() as s:
            for sql in self._flavour(s).read_only_statements(read_only):
                s.execute(sql)

    def source_read_only_setting(self) -> dict[str, Any]:
        with self._source() as s:
            flavour = self._flavour(s)
            read_only = str(s.variable("read_only")).upper() in ("ON", "1")
            super_ro = None if flavour.is_mariadb else str(s.variable("super_read_only")).upper() in ("ON", "1")
        return {"platform": "local", "read_only": read_only, "super_read_only": super_ro}

    def restore_source_read_only(self, setting: dict[str, Any]) -> None:
        """Exactly as journaled: OFF (the usual case), or ON (and super_read_only) if it was so before."""
        with self._source() as s:
            flavour = self._flavour(s)
            if not setting.get("read_only"):
                for sql in flavour.read_only_statements(False):
                    s.execute(sql)
                return
            s.execute("SET GLOBAL read_only = ON")
            if setting.get("super_read_only") is not None and not flavour.is_mariadb:
                s.execute(f"SET GLOBAL super_read_only = {'ON' if setting['super_read_only'] else 'OFF'}")

    # --- replica ------------------------------------------------------------------------------
    def _server(self, identifier: str) -> LocalServer:
        return LocalServer(
            self.root / identifier,
            server_id=self.config.replica.server_id,
            port=self.config.replica.port,
            # Its own writes (an event, a person) then move gtid_binlog_pos: step 3's proof sees them.
            # Replicated events stay out of its binlog (log_slave_updates is off).
            log_bin=True,
            extra_args=REPLICA_ARGS,
        )

    def _created_marker(self, identifier: str) -> Path:
        return self.root / identifier / ".replica-created"

    def replica_handle(self, identifier: str) -> ReplicaHandle:
        server = self._server(identifier)
        if not self._created_marker(identifier).exists():
            raise StepFailed(f"local replica {identifier!r} does not exist")
        server.start()  # after a host reboot or a kill of the whole process group
        endpoint = self.config.source.with_address("127.0.0.1", server.port)
        return ReplicaHandle(identifier=identifier, endpoint=endpoint)

    def create_replica(self, identifier: str) -> ReplicaHandle:
        if self._created_marker(identifier).exists():
            self.log.info("replica.adopted", replica=identifier)
            return self.replica_handle(identifier)
        server = self._server(identifier)
        if server.datadir.exists():  # a creation that died half-way: start again from nothing
            server.kill()
            shutil.rmtree(server.datadir)
        template = build_template(self.config.workdir / "template")
        server.datadir.parent.mkdir(parents=True, exist_ok=True)
        server.initialise_from(template)
        server.start()
        src = self.config.source
        user, password = src.user, src.password.reveal()
        conn = server.root()
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (user, password))
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO {quote_identifier(user)}@'%' WITH GRANT OPTION")
        finally:
            conn.close()
        with MySQLSession(src) as s:
            flavour = self._flavour(s)
        replica_endpoint = self.config.source.with_address("127.0.0.1", server.port)
        try:
            seeded = seed_replica(
                src,
                replica_endpoint,
                flavour,
                [*self.config.migration.schemas, HEARTBEAT_SCHEMA],
                workers=max(1, self.config.copy.workers),
                xa_timeout=XA_WAIT_SECONDS,
                log=self.log,
            )
        except pymysql.err.MySQLError as exc:
            # 1412 (a table altered or created after the snapshot opened) and lost connections land
            # here: the next run starts the replica again from nothing.
            raise StepFailed(
                f"creating the local replica failed: {exc}",
                hint="run again: the replica is rebuilt from the start (avoid DDL on the source meanwhile)",
            ) from exc
        with MySQLSession(replica_endpoint) as replica:
            replica.execute(flavour.stop_replica_sql)
            sql, args = flavour.change_source_sql(
                host=src.host,
                port=src.port,
                user=user,
                password=password,
                log_file=seeded.coordinates.file,
                log_pos=seeded.coordinates.position,
            )
            replica.execute(sql, args)
            replica.execute(flavour.start_replica_sql)
        self._created_marker(identifier).write_text("ok\n")
        self.log.info("replica.created", replica=identifier, port=server.port, seconds=round(seeded.seconds, 2))
        return self.replica_handle(identifier)

    def replica_state(self, identifier: str) -> ReplicaState:
        if not self._created_marker(identifier).exists():
            return ReplicaState(
                exists=False, available=False, replicating=False, lag_seconds=None, promoted=False
            )
        handle = self.replica_handle(identifier)
        with MySQLSession(handle.endpoint) as s:
            status = replication_status(s, identifier)
        if status is None:
            return ReplicaState(
                exists=True, available=True, replicating=False, lag_seconds=None, promoted=True
            )
        return ReplicaState(
            exists=True,
            available=True,
            replicating=status.replicating,
            lag_seconds=status.lag_seconds,
            promoted=False,
        )

    def stop_replication(self, identifier: str) -> SnapshotCoordinates:
        handle = self.replica_handle(identifier)
        with MySQLSession(handle.endpoint) as s:
            flavour = self._flavour(s)
            s.execute(flavour.stop_replica_sql)
            rows = s.dicts(flavour.replica_status_sql)
            if not rows:
                raise StepFailed(
                    f"replica {identifier!r} is already promoted and its coordinates were not recorded",
                    hint="the snapshot cannot be used: `migrator cleanup` and start a new migration",
                )
            return flavour.replica_coordinates(rows[0])

    def start_replication(self, identifier: str) -> None:
        handle = self.replica_handle(identifier)
        with MySQLSession(handle.endpoint) as s:
            s.execute(self._flavour(s).start_replica_sql)

    def promote(self, identifier: str) -> None:
        handle = self.replica_handle(identifier)
        with MySQLSession(handle.endpoint) as s:
            flavour = self._flavour(s)
            s.execute(flavour.stop_replica_sql)
            s.execute(flavour.reset_replica_all_sql)

    def delete_replica(self, identifier: str, *, final_snapshot: bool) -> None:
        server = self._server(identifier)
        server.stop()
        shutil.rmtree(server.datadir, ignore_errors=True)

    def stop_all(self) -> None:
        """Stop every local replica process (demo and test teardown)."""
        if not self.root.exists():
            return
        for datadir in self.root.iterdir():
            if datadir.is_dir():
                LocalServer(datadir, server_id=self.config.replica.server_id).stop()

    # --- after the cut-over: sessions and the reverse replication (rollback window) -----------
    def kill_session(self, thread_id: int) -> None:
        """End one source session (KILL CONNECTION: needs SUPER or CONNECTION ADMIN for other users)."""
        with self._source() as s:
            try:
                s.execute("KILL CONNECTION %s", (int(thread_id),))
            except Exception as exc:
                if error_code(exc) == 1094:  # unknown thread id: it left by itself meanwhile
                    return
                raise

    def start_reverse_replication(
        self, *, host: str, port: int, user: str, password: str, log_file: str, log_pos: int, ssl: bool
    ) -> None:
        """The old source follows the target from (log_file, log_pos): CHANGE MASTER + START SLAVE."""
        with self._source() as s:
            flavour = self._flavour(s)
            s.execute(flavour.stop_replica_sql)
            sql, args = flavour.change_source_sql(
                host=host, port=port, user=user, password=password, log_file=log_file, log_pos=log_pos
            )
            if ssl:
                sql += ", MASTER_SSL=1" if flavour.is_mariadb else ", SOURCE_SSL=1"
            s.execute(sql, args)
            s.execute(flavour.start_replica_sql)

    def ensure_reverse_replication_running(self) -> None:
        """START SLAVE again after a source restart (--skip-slave-start); a no-op while it runs."""
        with self._source() as s:
            s.execute(self._flavour(s).start_replica_sql)

    def stop_reverse_replication(self) -> None:
        """STOP SLAVE and forget the target (RESET SLAVE ALL); a no-op when none is configured."""
        with self._source() as s:
            flavour = self._flavour(s)
            s.execute(flavour.stop_replica_sql)
            s.execute(flavour.reset_replica_all_sql)
