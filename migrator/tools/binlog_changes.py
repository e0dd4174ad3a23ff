"""Which tables a range of the archived binlog changed.

Step 8 proves tables equal while writes still flow; step 10 (writes paused) then only has to
re-check the tables that changed after that proof. This module reads the archive for that range.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from migrator.mysql.flavour import Flavour
from migrator.mysql.positions import binlog_sequence, position_key
from migrator.platforms.local_server import find_binary
from migrator.tools.binlog_streamer import list_archive
from migrator.tools.binlog_text import Transaction, parse, statement_tables

Table = tuple[str, str]


def tables_changed(
    archive_dir: Path, flavour: Flavour, start: tuple[str, int], end: tuple[str, int]
) -> set[Table] | None:
    """Tables with row events or statements in (start, end]; None when a DDL or a statement whose
    tables cannot be named means "assume everything changed"."""
    if position_key(end) <= position_key(start):
        return set()
    tool = find_binary(*flavour.binlog_tool)
    first, last = binlog_sequence(start[0]), binlog_sequence(end[0])
    changed: set[Table] = set()
    for archived in list_archive(archive_dir):
        seq = binlog_sequence(archived.name)
        if not first <= seq <= last:
            continue
        argv = [tool, "--no-defaults"]
        if seq == first:
            argv.append(f"--start-position={start[1]}")
        if seq == last:
            argv.append(f"--stop-position={end[1]}")
        argv.append(str(archive_dir / archived.name))
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert proc.stdout is not None
        try:
            for unit in parse(proc.stdout):
                if not isinstance(unit, Transaction):
                    continue
                if unit.is_ddl:
                    return None
                changed.update(unit.tables)
                for statement in unit.queries:
                    for schema, table in statement_tables(statement.sql, statement.db):
                        if schema is None or table is None:
                            return None
                        changed.add((schema, table))
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()
    return changed
