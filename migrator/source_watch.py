"""Stray writes: anything written on a migrated schema of the source after the final position.

From step 10 until `migrator finish` the binlog streamer keeps copying the source's binlog into the
archive. Nothing should write the migrated schemas there any more (writes are paused, then moved to
the target): an event that does is a write the target never got. It is raised as an alarm in the
journal and in `status`, with what the binlog says about it: the server id, the time, the table, the
session's thread id (MySQL's BEGIN event) and the statement (MariaDB's Annotate_rows events).

Events the target sends back through the rollback window's replication carry the target's server id
(they reach the source's binlog only with log_slave_updates): those are not stray and are skipped.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from migrator.endpoint import Endpoint
from migrator.journal import Journal
from migrator.mysql.flavour import Flavour
from migrator.mysql.positions import binary_logs, binlog_sequence
from migrator.mysql.session import MySQLSession
from migrator.tools import client_tools
from migrator.tools.binlog_streamer import list_archive
from migrator.tools.binlog_text import Transaction, parse, statement_tables
from migrator.tools.defaults_file import DefaultsFile

_AT = re.compile(rb"^# at (\d+)\s*$")
_HEADER = re.compile(
    rb"^#(\d{2})(\d{2})(\d{2})\s+(\d{1,2}):(\d{2}):(\d{2})\s+server id\s+(\d+)\s+end_log_pos\s+\d+(.*)$"
)
_THREAD = re.compile(rb"thread_id=(\d+)")


@dataclass(frozen=True)
class StrayWrite:
    file: str
    position: int  # where the transaction starts
    end_position: int
    server_id: int | None
    when: str | None  # as the binlog's event header says (the server's local time)
    tables: tuple[str, ...]  # schema.table
    thread_id: int | None
    statement: str | None  # the original statement, when the binlog carries it
    ddl: bool

    def describe(self) -> str:
        who = f"server id {self.server_id}" if self.server_id is not None else "unknown server"
        if self.thread_id is not None:
            who += f", thread {self.thread_id}"
        what = f": {self.statement[:120]}" if self.statement else ""
        return (
            f"{'DDL' if self.ddl else 'write'} on {', '.join(self.tables)} at {self.file}:{self.position} "
            f"({who}, {self.when or 'time unknown'}){what}"
        )

    def as_fact(self) -> dict[str, Any]:
        data = asdict(self)
        data["tables"] = list(self.tables)
        return data


@dataclass
class _Header:
    server_id: int
    when: str
    thread_id: int | None


def _annotated(lines: Iterable[bytes], headers: dict[int, _Header], notes: list[tuple[int, bytes]]) -> Iterator[bytes]:
    """Pass the tool's lines through to the parser, noting each event's header and annotations by position."""
    at = 0
    for line in lines:
        if line.startswith(b"# at "):
            match = _AT.match(line.rstrip(b"\n"))
            if match:
                at = int(match.group(1))
        elif line[:1] == b"#" and line[1:2].isdigit():
            match = _HEADER.match(line.rstrip(b"\n"))
            if match:
                yy, mo, dd, hh, mi, ss = (int(g) for g in match.groups()[:6])
                thread = _THREAD.search(match.group(8))
                headers[at] = _Header(
                    server_id=int(match.group(7)),
                    when=f"{2000 + yy:04d}-{mo:02d}-{dd:02d} {hh:02d}:{mi:02d}:{ss:02d}",
                    thread_id=int(thread.group(1)) if thread else None,
                )
        elif line.startswith(b"#Q> "):
            notes.append((at, line[4:].rstrip(b"\n")))
        yield line


def scan(
    archive_dir: Path,
    flavour: Flavour,
    since: tuple[str, int],
    schemas: Iterable[str],
    *,
    ignore_server_ids: frozenset[int] = frozenset(),
) -> list[StrayWrite]:
    """Transactions in the archive after ``since`` that touch one of ``schemas``; oldest first."""
    tool = client_tools.binlog_tool(flavour).path
    names = [f.name for f in list_archive(archive_dir)]
    return _scan_files(
        names, since, schemas, ignore_server_ids, lambda name: [tool, "--no-defaults", str(archive_dir / name)]
    )


def scan_source(
    source: Endpoint,
    flavour: Flavour,
    since: tuple[str, int],
    schemas: Iterable[str],
    *,
    secrets_dir: Path,
    ignore_server_ids: frozenset[int] = frozenset(),
) -> list[StrayWrite]:
    """The same, read from the source itself (REPLICATION SLAVE + REPLICATION CLIENT): always current, and
    read-only, so `status` can run it while no orchestrator (and so no streamer) runs."""
    binlog = client_tools.binlog_tool(flavour)
    tool = binlog.path
    with MySQLSession(source) as s:
        names = [name for name, _size in binary_logs(s)]
    with DefaultsFile(source, parent=secrets_dir, product=binlog.product) as cnf:
        return _scan_files(
            names, since, schemas, ignore_server_ids,
            lambda name: [tool, f"--defaults-extra-file={cnf}", "--read-from-remote-server", name],
        )


def _scan_files(
    names: list[str],
    since: tuple[str, int],
    schemas: Iterable[str],
    ignore_server_ids: frozenset[int],
    argv_for: Callable[[str], list[str]],
) -> list[StrayWrite]:
    wanted = set(schemas)
    first = binlog_sequence(since[0])
    found: list[StrayWrite] = []
    for name in names:
        seq = binlog_sequence(name)
        if seq < first:
            continue
        argv = argv_for(name)
        if seq == first:
            argv.insert(-1, f"--start-position={since[1]}")
        headers: dict[int, _Header] = {}
        notes: list[tuple[int, bytes]] = []
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            for unit in parse(_annotated(proc.stdout, headers, notes)):
                if isinstance(unit, Transaction):
                    write = _stray(
                        name, unit, wanted=wanted, headers=headers, notes=notes, ignore_server_ids=ignore_server_ids
                    )
                    if write is not None:
                        found.append(write)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()
    return found


def _stray(
    name: str,
    unit: Transaction,
    *,
    wanted: set[str],
    headers: dict[int, _Header],
    notes: list[tuple[int, bytes]],
    ignore_server_ids: frozenset[int],
) -> StrayWrite | None:
    tables = {(s, t) for s, t in unit.tables if s in wanted}
    for statement in unit.queries:
        for schema, table in statement_tables(statement.sql, statement.db):
            if schema in wanted:
                tables.add((schema, table or "*"))
    if not tables:
        return None
    header = headers.get(unit.start_pos)
    if header is not None and header.server_id in ignore_server_ids:
        return None  # the target's own events, replicated back in the rollback window
    # MySQL's Query BEGIN (not the GTID event before it) carries the thread id: the first one that has it.
    thread = next(
        (h.thread_id for at, h in sorted(headers.items())
         if unit.start_pos <= at < unit.end_pos and h.thread_id is not None),
        None,
    )
    note = next((text for at, text in notes if unit.start_pos <= at < unit.end_pos), None)
    return StrayWrite(
        file=name,
        position=unit.start_pos,
        end_position=unit.end_pos,
        server_id=header.server_id if header else None,
        when=header.when if header else None,
        tables=tuple(sorted(f"{s}.{t}" for s, t in tables)),
        thread_id=thread,
        statement=note.decode("utf-8", "replace") if note else None,
        ddl=unit.is_ddl,
    )


def record(journal: Journal, writes: list[StrayWrite], *, log: Any = None) -> list[StrayWrite]:
    """Journal alarms for writes not yet recorded (fact ``stray_writes`` and one event each); returns the new ones."""
    known = journal.fact("stray_writes") or []
    seen = {(w["file"], int(w["position"])) for w in known}
    new = [w for w in writes if (w.file, w.position) not in seen]
    if not new:
        return []
    for w in new:
        journal.event("source.stray_write", None, **w.as_fact())
        if log is not None:
            log.error("source.stray_write", alarm=w.describe())
    journal.put_fact("stray_writes", [*known, *(w.as_fact() for w in new)])
    return new


def from_fact(data: dict[str, Any]) -> StrayWrite:
    return StrayWrite(**{**data, "tables": tuple(data["tables"])})
