"""Drive the real applier over mysqlbinlog *text*: the archive holds the text, a stand-in tool prints it.

MySQL 8 cannot run here. Its ``mysqlbinlog`` output is reproduced as text (tests/fixtures/binlog/), or
real MariaDB output is reshaped into MySQL's shape around MariaDB's own row events, so the applier's
whole path (tool output -> parse -> batching -> multi-statement round trips) runs against a real target.
The stand-in prints the file named by its last argument, ignoring --start-position: units before the
applied position are skipped by the applier itself, as with the tool's reprinted file header.
"""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

from migrator.platforms.local_server import LocalServer, find_binary
from migrator.tools.binlog_applier import BinlogApplier

_GTID_TRANS = re.compile(rb"^#\d{6}\s.*end_log_pos (\d+) .*\tGTID \d+-\d+-\d+ .*trans")


def install_text_tool(applier: BinlogApplier, tmp_path: Path) -> None:
    tool = tmp_path / "print-text-binlog"
    tool.write_text('#!/bin/sh\nfor a in "$@"; do f="$a"; done\nexec cat "$f"\n')
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    applier._tool = str(tool)  # the seam: the applier runs whatever binlog tool it found


def mariadb_text(server: LocalServer, file: str, start: int | None = None) -> bytes:
    argv = [find_binary("mariadb-binlog", "mysqlbinlog"), "--no-defaults"]
    if start is not None:
        argv.append(f"--start-position={start}")
    argv.append(str(server.datadir / file))
    return subprocess.run(argv, check=True, capture_output=True).stdout


def as_mysql_begin_queries(text: bytes, autocommit: list[int]) -> bytes:
    """MariaDB row transactions reshaped as MySQL 8 prints them: the GTID event without START TRANSACTION,
    then a ``BEGIN`` Query event whose session-flags line carries the writer's autocommit whenever it
    differs from the previous transaction's (mysqlbinlog prints only changes), e.g. a JDBC pool
    (autocommit=0) interleaved with single statements (autocommit=1). The rows stay MariaDB's own."""
    out: list[bytes] = []
    lines = text.splitlines(keepends=True)
    n = 0
    printed: int | None = 1  # what mysqlbinlog assumes at the start of its output
    i = 0
    while i < len(lines):
        line = lines[i]
        gtid = _GTID_TRANS.match(line)
        if gtid is None:
            out.append(line)
            i += 1
            continue
        end = int(gtid.group(1))
        out.append(line)
        i += 1
        while not lines[i].startswith(b"START TRANSACTION"):
            out.append(lines[i])
            i += 1
        i += 2  # START TRANSACTION and its /*!*/;
        mode = autocommit[n % len(autocommit)]
        n += 1
        out.append(b"# at %d\n" % end)
        out.append(b"#261203  7:57:10 server id 1  end_log_pos %d CRC32 0x00000000 \tQuery\tthread_id=9"
                   b"\texec_time=0\terror_code=0\n" % end)
        out.append(b"SET TIMESTAMP=1796284630/*!*/;\n")
        if mode != printed:
            out.append(b"SET @@session.foreign_key_checks=1, @@session.sql_auto_is_null=0, "
                       b"@@session.unique_checks=1, @@session.autocommit=%d/*!*/;\n" % mode)
            printed = mode
        out.append(b"BEGIN\n/*!*/;\n")
    return b"".join(out)
