"""Long-lived work that spans steps: the binlog streamer (5..11), the applier (7..11), the heartbeat (5..9).

The journal records which services *should* run; a resumed engine restarts them from their
recorded positions before it continues, so a crash between steps costs nothing but a restart.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from typing import Any

from migrator.config import Config
from migrator.errors import StepFailed
from migrator.journal import Journal
from migrator.mysql.flavour import Flavour, detect
from migrator.mysql.heartbeat import SCHEMA as HEARTBEAT_SCHEMA
from migrator.mysql.heartbeat import HeartbeatWriter
from migrator.mysql.session import MySQLSession, Timeouts, set_default_timeouts
from migrator.mysql.source_identity import SourceIdentity
from migrator.ports import SnapshotCoordinates
from migrator.tools.archive import RETAIN_FROM_FACT, check_free_space, keep_from, prunable, prune
from migrator.tools.binlog_applier import BinlogApplier
from migrator.tools.binlog_streamer import BinlogStreamer, list_archive

STREAMER, APPLIER, HEARTBEAT = "streamer", "applier", "heartbeat"


def snapshot_coordinates(journal: Journal) -> SnapshotCoordinates:
    raw = journal.fact("snapshot")
    if raw is None:
        raise StepFailed("no snapshot coordinates recorded (step 3 has not run)")
    return SnapshotCoordinates(file=raw["file"], position=int(raw["position"]), gtid=raw.get("gtid"))


class ServiceSupervisor:
    def __init__(
        self, config: Config, journal: Journal, *, log: Any, crash_points: frozenset[str] = frozenset()
    ) -> None:
        self.config = config
        self.journal = journal
        self.log = log
        # Every session of this run (steps and services) times out instead of hanging (review B12).
        set_default_timeouts(
            Timeouts(read=config.sync.read_timeout_seconds, write=config.sync.write_timeout_seconds)
        )
        # Fault tests: "apply.after_commit" dies the first time the applier passes that hook,
        # "apply.after_commit@3" the third time (as the engine's step crash points, by SIGKILL).
        self.crash_points = frozenset(p for p in crash_points if p.startswith("apply."))
        self._fault_counts: Counter[str] = Counter()
        self.streamer: BinlogStreamer | None = None
        self.applier: BinlogApplier | None = None
        self.heartbeat: HeartbeatWriter | None = None
        self._applier_thread: threading.Thread | None = None
        self._applier_stop = threading.Event()
        self._flavours: dict[str, Flavour] = {}

    def _flavour(self, which: str) -> Flavour:
        if which not in self._flavours:
            endpoint = self.config.source if which == "source" else self.config.target
            with MySQLSession(endpoint) as s:
                self._flavours[which] = detect(str(s.value("SELECT VERSION()")))
        return self._flavours[which]

    # --- lifecycle ----------------------------------------------------------------------------
    def resume(self) -> None:
        """Restart what the journal says should be running (after a crash or a reboot)."""
        for name, (desired, _position) in sorted(self.journal.services().items()):
            if desired == "running":
                self.log.info("service.resume", service=name)
                self.start(name)

    def start(self, name: str) -> None:
        self.journal.set_service(name, "running")
        if name == STREAMER:
            self._start_streamer()
        elif name == APPLIER:
            self._start_applier()
        elif name == HEARTBEAT:
            self._start_heartbeat()
        else:  # pragma: no cover - names are constants
            raise ValueError(name)

    def stop(self, name: str) -> None:
        """Stop for good: the journal says it should no longer run."""
        self._halt(name)
        self.journal.set_service(name, "stopped")

    def shutdown(self) -> None:
        """Process exit: stop everything but keep the desired state so a resume restarts it."""
        for name in (HEARTBEAT, APPLIER, STREAMER):
            self._halt(name)

    def _halt(self, name: str) -> None:
        if name == STREAMER and self.streamer is not None:
            self.streamer.stop()
            self._record_files()
            self.streamer = None
        elif name == APPLIER and self._applier_thread is not None:
            self._applier_stop.set()
            self._applier_thread.join(timeout=60)
            self._applier_thread = None
            self._mirror_position()
        elif name == HEARTBEAT and self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None

    def _start_streamer(self) -> None:
        if self.streamer is not None and self.streamer.is_running():
            return
        coords = snapshot_coordinates(self.journal)
        identity = self.journal.fact("source_identity")
        if identity is None:  # a journal from before step 3 recorded it: nothing to check against
            self.log.warning("streamer.source_identity_unknown")
        self.streamer = BinlogStreamer(
            self.config.source,
            self.config.archive_dir,
            self._flavour("source"),
            self.config.binlog.streamer_server_id,
            secrets_dir=self.config.secrets_dir,
            log=self.log.bind(service=STREAMER),
            identity=None if identity is None else SourceIdentity.from_fact(identity),
            stall_seconds=self.config.binlog.stall_seconds,
        )
        self.streamer.start(coords.file)

    def _make_applier(self) -> BinlogApplier:
        if self.applier is None:
            self.applier = BinlogApplier(
                self.config.target,
                self.config.archive_dir,
                self._flavour("source"),
                schemas=frozenset([*self.config.migration.schemas, HEARTBEAT_SCHEMA]),
                start=snapshot_coordinates(self.journal),
                secrets_dir=self.config.secrets_dir,
                group_commit=self.config.sync.group_commit,
                log=self.log.bind(service=APPLIER),
                fault_hook=self._applier_fault if self.crash_points else None,
            )
        return self.applier

    def _applier_fault(self, name: str) -> None:
        self._fault_counts[name] += 1
        if name in self.crash_points or f"{name}@{self._fault_counts[name]}" in self.crash_points:
            self.log.warning("crash_point", point=name, occurrence=self._fault_counts[name])
            os.kill(os.getpid(), signal.SIGKILL)

    def _start_applier(self) -> None:
        if self._applier_thread is not None and self._applier_thread.is_alive():
            return
        applier = self._make_applier()
        applier.ensure_position_table()
        self._applier_stop = threading.Event()
        self._applier_thread = threading.Thread(
            target=applier.run, args=(self._applier_stop,), name="applier", daemon=True
        )
        self._applier_thread.start()

    def _start_heartbeat(self) -> None:
        if self.heartbeat is not None and self.heartbeat.is_running():
            return
        self.heartbeat = HeartbeatWriter(
            self.config.source, self.config.sync.heartbeat_seconds, log=self.log.bind(service=HEARTBEAT)
        )
        self.heartbeat.start()

    # --- supervision --------------------------------------------------------------------------
    def check(self) -> None:
        """Called between steps and while steps wait: restart a dead streamer, surface applier errors."""
        if self.streamer is not None:
            if self.streamer.ensure_running():
                self.journal.event("service.restarted", None, service=STREAMER)
            self._record_files()
        if self._applier_thread is not None:
            applier = self._make_applier()
            if applier.error is not None:
                error = applier.error
                self._applier_thread = None
                raise StepFailed(f"the binlog applier stopped: {error}") from error
            if not self._applier_thread.is_alive():
                self.log.warning("service.restart", service=APPLIER)
                self._start_applier()
            self._mirror_position()
        self.prune_archive()
        # After pruning: what is left to free is the operator's to free (review C4).
        check_free_space(self.config.workdir, self.config.binlog.min_free_mb)

    # --- the archive --------------------------------------------------------------------------
    def archive_readers(self) -> list[tuple[str, int] | None]:
        """Where each reader of the archive will read from next; None: a reader whose position is unknown.

        The applier reads from its committed position (from the snapshot's before it ran); verification
        from the ``archive_retain_from`` fact ([file, position], set by the code that verifies; null
        when it needs nothing); step 10 from step 8's ``preverify.until``; the proofs from ``proof_state.since``
        (their last round) or ``proof_pass.p0``, and the prepared parts of the XA transactions open there;
        before step 8 journals either, nothing is pruned.
        """
        services = self.journal.services()
        applied = services.get(APPLIER, ("stopped", None))[1]
        snapshot = self.journal.fact("snapshot")
        readers: list[tuple[str, int] | None] = []
        if applied is not None:
            readers.append((str(applied[0]), int(applied[1])))
        elif snapshot is not None:
            readers.append((str(snapshot["file"]), int(snapshot["position"])))
        else:
            readers.append(None)
        retain = self.journal.fact(RETAIN_FROM_FACT)
        if retain is not None:
            readers.append((str(retain[0]), int(retain[1])))
        status = {row.number: row.status for row in self.journal.steps()}
        preverify = self.journal.fact("preverify")
        if preverify is not None and status.get(10) not in ("done", "skipped"):
            readers.append((str(preverify["until"][0]), int(preverify["until"][1])))
        if status.get(10) not in ("done", "skipped"):
            # The proofs (migrator/proofs.py) read the archive from their pass's p0 and their last round.
            state, baseline = self.journal.fact("proof_state"), self.journal.fact("proof_pass")
            if state is not None:
                readers.append((str(state["since"][0]), int(state["since"][1])))
            elif baseline is not None:
                readers.append((str(baseline["p0"][0]), int(baseline["p0"][1])))
            elif status.get(8) == "running" and retain is None:
                readers.append(None)  # a pass starting: its p0 is not journaled yet
            # ... and the prepared parts of the XA transactions open there, read when their XA COMMIT comes.
            for prepared in ((state or baseline or {}).get("xa_open") or {}).values():
                readers.append((str(prepared[0]), int(prepared[1])))
        return readers

    def prune_archive(self) -> list[str]:
        """Delete archived files every reader is past; returns their names."""
        names = [f.name for f in list_archive(self.config.archive_dir)]
        doomed = prunable(names, keep_from(self.archive_readers()))
        removed = prune(self.config.archive_dir, doomed)
        if removed:
            self.log.info("archive.pruned", files=removed)
            self.journal.event("archive.pruned", None, files=removed)
        return removed

    def _record_files(self) -> None:
        if self.streamer is not None:
            self.journal.record_binlog_files([(f.name, f.size) for f in self.streamer.archived_files()])

    def _mirror_position(self) -> None:
        if self.applier is None:
            return
        try:
            file, pos = self.applier.applied_position()
        except Exception as exc:  # the target may be restarting; the next tick mirrors it
            self.log.debug("service.position_unavailable", error=str(exc))
            return
        self.journal.service_position(APPLIER, [file, pos])

    def applied_position(self) -> tuple[str, int]:
        return self._make_applier().applied_position()

    def apply_until_caught_up(self) -> None:
        """One synchronous pass (used when the service is stopped but the archive has more)."""
        self._make_applier().apply_available()
