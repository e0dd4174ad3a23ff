"""The source's binlogs, copied byte for byte to local disk by a supervised `mysqlbinlog --raw --stop-never`.

mysqlbinlog never reconnects: a network cut or a source restart ends the process. ``ensure_running``
restarts it from the last archived file, which the tool rewrites from its start (it opens each file
with O_TRUNC when the file's Format_description event arrives), so a partial last file is healed.
Files end up byte-identical to the source's, except the in-use flag of the first event's header.

A tool alive but stuck (a dead connection it waits on forever) is found by its output: when the
archive has not grown for ``stall_seconds`` while the source's head is past it, the tool is killed
and restarted (review B12). Before every (re)start the source must still be the server the snapshot
came from, with binlogs that continue the archive (review A6, migrator.mysql.source_identity): a
failover to another instance stops the run instead of mixing two servers' files.

The child dies with us (PR_SET_PDEATHSIG=SIGKILL, own process group). Note that the kernel sends the
signal when the *thread* that started the child exits, so start it from a long-lived thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from migrator.endpoint import Endpoint
from migrator.errors import BinlogGap, StepFailed
from migrator.mysql.flavour import Flavour
from migrator.mysql.positions import binlog_sequence, position_key, source_head
from migrator.mysql.session import MySQLSession, error_code, is_transient
from migrator.mysql.source_identity import SourceChanged, SourceIdentity, check_same_source
from migrator.tools import client_tools
from migrator.tools.defaults_file import DefaultsFile

STDERR_LOG = "streamer.log"
# The source no longer has the file we asked for (ER_MASTER_FATAL_ERROR_READING_BINLOG on a purged file).
_GAP_SIGNATURES = ("Could not find first log file name", "purged binary logs", "binary log is not open")
GAP_REMEDY = (
    "take a new snapshot: restart the migration from step 2 (migrator retry-step 2), after raising binlog "
    "retention (CALL mysql.rds_set_configuration('binlog retention hours', 48)) so it cannot recur"
)
_PR_SET_PDEATHSIG = 1
_RAN_LONG_ENOUGH = 30.0  # seconds: a process that lived this long resets the restart backoff


@dataclass(frozen=True)
class ArchivedFile:
    name: str
    size: int


def is_binlog_name(name: str) -> bool:
    try:
        binlog_sequence(name)
    except ValueError:
        return False
    return True


def list_archive(archive_dir: Path) -> list[ArchivedFile]:
    """Binlog files in the archive, in binlog order."""
    if not archive_dir.is_dir():
        return []
    found: list[ArchivedFile] = []
    for entry in os.scandir(archive_dir):
        if entry.is_file() and is_binlog_name(entry.name):
            with contextlib.suppress(FileNotFoundError):
                found.append(ArchivedFile(entry.name, entry.stat().st_size))
    return sorted(found, key=lambda f: (binlog_sequence(f.name), f.name))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def check_source_has(source: MySQLSession | Endpoint, first_needed: str) -> None:
    """Raise BinlogGap when ``first_needed`` is no longer among the source's binary logs."""
    session = source if isinstance(source, MySQLSession) else MySQLSession(source)
    try:
        try:
            names = [str(row[0]) for row in session.rows("SHOW BINARY LOGS")]
        except Exception as exc:
            if error_code(exc) == 1381:  # ER_NO_BINARY_LOGGING
                raise BinlogGap(
                    f"the source {session.endpoint.describe()} has binary logging off",
                    hint="enable log_bin (on RDS: a backup retention period > 0), then restart the migration "
                    "from step 2 for a new snapshot",
                ) from exc
            raise
    finally:
        if session is not source:
            session.close()
    if first_needed in names:
        return
    have = f"it has {names[0]} .. {names[-1]}" if names else "it lists no binary logs"
    raise BinlogGap(
        f"binlog file {first_needed} is gone from the source {session.endpoint.describe()} ({have}): "
        "the changes since the snapshot can no longer be streamed",
        hint=GAP_REMEDY,
    )


class BinlogStreamer:
    def __init__(
        self,
        source: Endpoint,
        archive_dir: Path,
        flavour: Flavour,
        server_id: int,
        *,
        secrets_dir: Path,
        log: Any = None,
        connect_timeout: float = 15.0,
        max_backoff: float = 30.0,
        identity: SourceIdentity | None = None,
        stall_seconds: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.archive_dir = archive_dir
        self.flavour = flavour
        self.server_id = server_id
        self.secrets_dir = secrets_dir
        self.log = log if log is not None else structlog.get_logger()
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self.identity = identity
        self.stall_seconds = stall_seconds
        self._mark: tuple[str, int] | None = None  # the archive's last file and size, last seen
        self._grew_at = 0.0
        self._head_checked_at = 0.0
        self.stall_restarts = 0
        self._sleep = sleep
        self._monotonic = monotonic
        self._first_file: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._credentials: DefaultsFile | None = None
        self._started_at = 0.0
        self._died_at: float | None = None
        self._stderr_offset = 0
        self.restarts = 0
        self.consecutive_failures = 0
        self.last_error = ""

    # --- public ------------------------------------------------------------------------------
    def start(self, first_file: str) -> None:
        """Stream from ``first_file``, or from the last archived file if that is newer (re-downloaded whole).

        Blocks until the tool is writing into the archive; raises BinlogGap when the source no longer
        has the file, StepFailed for any other failure to start (bad credentials, unreachable source).
        """
        binlog_sequence(first_file)  # validates the name
        if self.is_running():
            return
        self._first_file = first_file
        self.archive_dir.mkdir(parents=True, exist_ok=True)
        self._check_source()
        self._launch()
        deadline = self._monotonic() + self.connect_timeout
        while self._monotonic() < deadline:
            if self._streaming():
                self._release_credentials()
                return
            if self._proc is not None and self._proc.poll() is not None:
                break
            self._sleep(0.02)
        if self._proc is not None and self._proc.poll() is None:
            # Connected but the source sent nothing yet is possible only without any event; treat as up.
            return
        message = self._exit_message()
        self._reap()
        if any(sig in message for sig in _GAP_SIGNATURES):
            raise self._gap(message)
        raise StepFailed(
            f"the binlog streamer for {self.source.describe()} exited at start: {message}",
            hint="check the source is reachable and the user has REPLICATION SLAVE and REPLICATION CLIENT",
        )

    def ensure_running(self) -> bool:
        """Restart a dead streamer from the last archived file (with capped backoff). True if it restarted."""
        if self._proc is None:
            return False
        if self._proc.poll() is None:
            if self._credentials is not None and self._streaming():
                self._release_credentials()
            self._watch_output()
            if self._proc.poll() is None:
                return False
        now = self._monotonic()
        if self._died_at is None:
            message = self._exit_message()
            self.last_error = message
            self.log.warning("streamer.exited", returncode=self._proc.returncode, error=message)
            self._release_credentials()
            if any(sig in message for sig in _GAP_SIGNATURES):
                raise self._gap(message)
            if now - self._started_at >= _RAN_LONG_ENOUGH:
                self.consecutive_failures = 0
            self.consecutive_failures += 1
            self._died_at = now
        delay = min(self.max_backoff, 0.25 * 2 ** (self.consecutive_failures - 1))
        if now < self._died_at + delay:
            return False
        try:
            self._check_source()
        except SourceChanged:
            raise
        except Exception as exc:  # the source is unreachable: try again after the next backoff
            if not is_transient(exc) and not isinstance(exc, OSError):
                raise
            self.log.warning("streamer.source_unreachable", error=str(exc))
            self.consecutive_failures += 1
            self._died_at = now
            return False
        self._launch()
        self.restarts += 1
        self.log.info("streamer.restarted", file=self._resume_file(), restarts=self.restarts)
        return True

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._release_credentials()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def archived_files(self) -> list[ArchivedFile]:
        return list_archive(self.archive_dir)

    # --- internals ---------------------------------------------------------------------------
    def _check_source(self) -> None:
        """Raise SourceChanged unless the source is the recorded server and continues the archive."""
        if self.identity is None:
            return
        archived = [(f.name, f.size) for f in self.archived_files()]
        with MySQLSession(self.source, connect_timeout=10) as session:
            check_same_source(session, self.flavour, self.identity, archived, self.archive_dir)

    def _watch_output(self) -> None:
        """Kill a live tool whose archive stopped growing while the source's head moved on (it is stuck)."""
        now = self._monotonic()
        archived = self.archived_files()
        mark = (archived[-1].name, archived[-1].size) if archived else None
        if mark != self._mark:
            self._mark, self._grew_at = mark, now
            return
        if now - self._grew_at < self.stall_seconds or now - self._head_checked_at < self.stall_seconds / 4:
            return
        self._head_checked_at = now
        try:
            with MySQLSession(self.source, connect_timeout=10, read_timeout=30) as session:
                head = source_head(session, self.flavour)
        except Exception as exc:  # unreachable: the tool cannot do better than wait either
            self.log.info("streamer.head_unreadable", error=str(exc))
            return
        if mark is not None and position_key(head) <= (binlog_sequence(mark[0]), mark[1]):
            self._grew_at = now  # an idle source: nothing to stream
            return
        assert self._proc is not None
        self.log.warning(
            "streamer.stalled",
            pid=self._proc.pid,
            seconds=round(now - self._grew_at, 1),
            archived=None if mark is None else f"{mark[0]}:{mark[1]}",
            source_head=f"{head[0]}:{head[1]}",
        )
        self.stall_restarts += 1
        self._proc.kill()  # SIGKILL ends a stopped or blocked process too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)

    def _resume_file(self) -> str:
        assert self._first_file is not None
        archived = self.archived_files()
        if archived and binlog_sequence(archived[-1].name) > binlog_sequence(self._first_file):
            return archived[-1].name
        return self._first_file

    def _launch(self) -> None:
        file = self._resume_file()
        self._release_credentials()
        tool = client_tools.for_flavour(self.flavour).binlog  # by --version, not by name (review B3)
        credentials = DefaultsFile(self.source, parent=self.secrets_dir, product=tool.product)
        path = credentials.__enter__()
        self._credentials = credentials
        argv = [
            tool.path,
            f"--defaults-extra-file={path}",  # must come first
            "--read-from-remote-server",
            "--raw",
            "--stop-never",
            tool.server_id_option(self.server_id),
            f"--result-file={self.archive_dir}{os.sep}",  # with --raw a prefix: files keep the source's names
            file,
        ]
        stderr_path = self.archive_dir / STDERR_LOG
        self._stderr_offset = stderr_path.stat().st_size if stderr_path.exists() else 0
        with open(stderr_path, "ab") as stderr:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - prctl must run in the child
                start_new_session=True,
            )
        self._started_at = self._monotonic()
        self._grew_at = self._started_at
        self._died_at = None
        self.log.info("streamer.started", file=file, pid=self._proc.pid, source=self.source.describe())

    def _streaming(self) -> bool:
        """The tool holds a file of the archive open: it has connected, so it has read its credentials."""
        if self._proc is None:
            return False
        fd_dir = Path(f"/proc/{self._proc.pid}/fd")
        archive = str(self.archive_dir.resolve())
        try:
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith(archive + os.sep) and is_binlog_name(os.path.basename(target)):
                        return True
        except OSError:
            return False
        return False

    def _release_credentials(self) -> None:
        credentials, self._credentials = self._credentials, None
        if credentials is not None:
            credentials.__exit__(None, None, None)

    def _exit_message(self) -> str:
        try:
            with open(self.archive_dir / STDERR_LOG, "rb") as fh:
                fh.seek(self._stderr_offset)
                text = fh.read()[-2000:].decode("utf-8", "replace").strip()
        except OSError:
            text = ""
        rc = self._proc.returncode if self._proc is not None else None
        return text or f"exit status {rc}"

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        self._proc = None
        self._release_credentials()

    def _gap(self, message: str) -> BinlogGap:
        file = self._resume_file()
        return BinlogGap(
            f"binlog file {file} is gone from the source {self.source.describe()}: {message}",
            hint=GAP_REMEDY,
        )
