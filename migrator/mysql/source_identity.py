"""Which server the binlogs come from: recorded with the snapshot, checked before every streamer (re)start.

A failover to another instance, a Blue/Green switchover or a repointed endpoint gives a server with
binlog files of the same names and other contents (review A6); streaming from it would overwrite an
archived file with another server's and apply garbage or skip transactions. So before the tool
starts, the source must be the recorded server (MySQL: ``@@server_uuid``; MariaDB, which has no
server_uuid: ``@@server_id``), and its binlogs must continue the archive (see ``continuity_problems``).
A Multi-AZ instance failover keeps the volume, hence the same binlogs and identity, and passes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from migrator.errors import StepFailed
from migrator.mysql.flavour import Flavour
from migrator.mysql.positions import binlog_sequence
from migrator.mysql.session import MySQLSession, error_code

_MAGIC = b"\xfebin"
_HEADER = 19  # v4 event header: timestamp, type, server_id, length, next position, flags
_GTID_LIST_EVENT = 163  # MariaDB's Gtid_list_log_event, the second event of every binlog file

SOURCE_CHANGED_HINT = (
    "the binlogs of two servers must never be mixed: point [source] back at the server the snapshot was "
    "taken from, or start over from step 2 with a new snapshot (`migrator cleanup --confirm`, a new "
    "migration.workdir)"
)


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "''")


class SourceChanged(StepFailed):
    """The source endpoint now reaches another server than the one the snapshot and archive come from."""


@dataclass(frozen=True)
class SourceIdentity:
    server_id: int
    server_uuid: str | None  # None on MariaDB

    def as_fact(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_fact(cls, data: dict[str, Any]) -> SourceIdentity:
        return cls(int(data["server_id"]), data.get("server_uuid"))

    def describe(self) -> str:
        return f"server_uuid {self.server_uuid}" if self.server_uuid else f"server_id {self.server_id}"


def read_identity(session: MySQLSession, flavour: Flavour) -> SourceIdentity:
    row = session.one(flavour.server_identity_sql)
    if row is None:
        raise StepFailed(f"could not read the identity of {session.endpoint.describe()}")
    return SourceIdentity(int(row[0]), None if row[1] is None else str(row[1]))


def archived_gtid_list(path: Path) -> list[tuple[int, int, int]] | None:
    """The (domain, server, sequence) triples of a MariaDB binlog file's Gtid_list event, or None.

    None when the file is not that long yet or is not a MariaDB binlog (a MySQL file starts with
    Previous_gtids instead: server_uuid identifies MySQL sources).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    if len(head) < 4 + _HEADER or head[:4] != _MAGIC:
        return None
    fd_length = struct.unpack_from("<I", head, 4 + 9)[0]
    at = 4 + fd_length
    if len(head) < at + _HEADER + 4 or head[at + 4] != _GTID_LIST_EVENT:
        return None
    length = struct.unpack_from("<I", head, at + 9)[0]
    if len(head) < at + length:
        return None
    count = struct.unpack_from("<I", head, at + _HEADER)[0] & 0x0FFFFFFF
    body = at + _HEADER + 4
    if body + 16 * count > at + length:
        return None
    return [struct.unpack_from("<IIQ", head, body + 16 * i) for i in range(count)]


def source_gtid_list(session: MySQLSession, name: str) -> list[tuple[int, int, int]] | None:
    """The same, as the source shows it (``SHOW BINLOG EVENTS``: Info ``[0-1-5,1-2-7]``)."""
    for row in session.rows(f"SHOW BINLOG EVENTS IN '{_quoted(name)}' LIMIT 3"):
        if str(row[2]) == "Gtid_list":
            text = str(row[5]).strip().strip("[]").strip()
            if not text:
                return []
            triples = []
            for item in text.split(","):
                domain, server, seq = item.strip().split("-")
                triples.append((int(domain), int(server), int(seq)))
            return triples
    return None


_XID_EVENT = 16


@dataclass(frozen=True)
class ArchivedEvent:
    start: int
    type: int
    server_id: int
    next_position: int
    xid: int | None  # an Xid event's transaction id: numbered by the server that wrote it


def last_complete_event(path: Path) -> ArchivedEvent | None:
    """The last whole event of an archived binlog file (the streamer may have written part of the next)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            if fh.read(4) != _MAGIC:
                return None
            at, found = 4, None
            while at + _HEADER <= size:
                fh.seek(at)
                header = fh.read(_HEADER + 8)
                if len(header) < _HEADER:
                    break
                _, kind, server_id, length, next_position = struct.unpack_from("<IBIII", header)
                if length < _HEADER or at + length > size:
                    break
                xid = struct.unpack_from("<Q", header, _HEADER)[0] if kind == _XID_EVENT and len(header) >= 27 else None
                found = ArchivedEvent(at, kind, server_id, next_position, xid)
                at += length
            return found
    except OSError:
        return None


def _event_on_source(session: MySQLSession, name: str, event: ArchivedEvent) -> str | None:
    """None when the source has the same event at the same offset of ``name``, else what differs."""
    try:
        rows = session.rows(f"SHOW BINLOG EVENTS IN '{_quoted(name)}' FROM {int(event.start)} LIMIT 1")
    except Exception as exc:
        if error_code(exc) == 1220:  # "Wrong offset or I/O error": no event starts there on this server
            return f"no event starts at {name}:{event.start} on the source, where the archive has one"
        raise
    if not rows:
        return f"the source's {name} ends before {event.start}, where the archive has an event"
    _, pos, _kind, server_id, end, info = rows[0][:6]
    if int(pos) != event.start or int(server_id) != event.server_id or int(end) != event.next_position:
        return (
            f"the event at {name}:{event.start} is from server {server_id} ending at {end} on the source, "
            f"from server {event.server_id} ending at {event.next_position} in the archive"
        )
    if event.xid is not None and f"xid={event.xid}" not in str(info).replace(" ", ""):
        return f"the transaction ending at {name}:{event.next_position} has another xid on the source ({info})"
    return None


def continuity_problems(
    session: MySQLSession, archived: Sequence[tuple[str, int]], archive_dir: Path, *, mariadb: bool
) -> list[str]:
    """Where the source's binlogs disagree with the archive's: empty when they continue it.

    Every complete archived file the source still lists must have the same size there; the file the
    streamer resumes (the last archived one) must not be longer in the archive, and its last whole
    event must be on the source at the same offset, from the same server id, ending at the same
    position (an Xid event with the same transaction id); on MariaDB its Gtid_list (the GTID state
    when the file began) must be the same on both.
    """
    listed = {str(r[0]): int(r[1]) for r in session.rows("SHOW BINARY LOGS")}
    problems = []
    ordered = sorted(archived, key=lambda f: binlog_sequence(f[0]))
    for i, (name, size) in enumerate(ordered):
        if name not in listed:
            continue
        last = i == len(ordered) - 1
        if (not last and listed[name] != size) or (last and listed[name] < size):
            problems.append(f"binlog {name} has {listed[name]} bytes on the source and {size} in the archive")
    if ordered and ordered[-1][0] in listed:
        event = last_complete_event(archive_dir / ordered[-1][0])
        differs = None if event is None else _event_on_source(session, ordered[-1][0], event)
        if differs is not None:
            problems.append(differs)
    if mariadb and ordered and ordered[-1][0] in listed:
        name = ordered[-1][0]
        ours = archived_gtid_list(archive_dir / name)
        if ours is not None:
            theirs = source_gtid_list(session, name)
            if theirs is not None and sorted(theirs) != sorted(ours):
                problems.append(f"binlog {name} begins at GTID state {theirs} on the source and {ours} in the archive")
    return problems


def check_same_source(
    session: MySQLSession,
    flavour: Flavour,
    recorded: SourceIdentity,
    archived: Sequence[tuple[str, int]],
    archive_dir: Path,
) -> None:
    """Raise SourceChanged unless ``session`` reaches the recorded server and its binlogs continue the archive."""
    now = read_identity(session, flavour)
    where = session.endpoint.describe()
    same = now.server_uuid == recorded.server_uuid if recorded.server_uuid else now.server_id == recorded.server_id
    if not same:
        raise SourceChanged(
            f"the source {where} is another server ({now.describe()}) than the one the snapshot was taken "
            f"from ({recorded.describe()}): streaming stopped before mixing its binlogs into the archive",
            hint=SOURCE_CHANGED_HINT,
        )
    problems = continuity_problems(session, archived, archive_dir, mariadb=flavour.is_mariadb)
    if problems:
        raise SourceChanged(
            f"the source {where} has binlogs that do not continue the archive ({'; '.join(problems)}): "
            "another server answers there, or its binlogs were rewritten; streaming stopped",
            hint=SOURCE_CHANGED_HINT,
        )
