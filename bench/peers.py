"""The peers, run as their users run them: whole-schema tools with their usual options.

Credentials reach every tool through a 0600 defaults file (``--defaults-extra-file`` /
``--defaults-file`` / pt's ``F=``), never argv.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from migrator.endpoint import Endpoint
from migrator.mysql.flavour import MARIADB_10_11
from migrator.mysql.session import MySQLSession, quote_identifier
from migrator.tools.defaults_file import DefaultsFile


@dataclass(frozen=True)
class PeerResult:
    seconds: float
    detail: str = ""


def tool(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(argv, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} exited {proc.returncode}: {proc.stderr.decode()[-800:]}")
    return proc  # type: ignore[no-any-return]


def _pipe(first: list[str], second: list[str]) -> None:
    with tempfile.TemporaryFile() as err1, tempfile.TemporaryFile() as err2:
        a = subprocess.Popen(first, stdout=subprocess.PIPE, stderr=err1)
        b = subprocess.Popen(second, stdin=a.stdout, stdout=subprocess.DEVNULL, stderr=err2)
        assert a.stdout is not None
        a.stdout.close()
        rc_b, rc_a = b.wait(), a.wait()
        if rc_a or rc_b:
            err1.seek(0)
            err2.seek(0)
            raise RuntimeError(f"pipe failed ({rc_a}, {rc_b}): {err1.read()[-500:]!r} {err2.read()[-500:]!r}")


# --- copy --------------------------------------------------------------------------------------


def dump_pipe(source: Endpoint, target: Endpoint, schema: str, secrets: Path) -> PeerResult:
    """``mysqldump --single-transaction --databases db | mysql``: the default options, one stream."""
    dump, client = tool(*MARIADB_10_11.dump_tool), tool(*MARIADB_10_11.client_tool)
    assert dump and client
    with DefaultsFile(source, parent=secrets) as src, DefaultsFile(target, parent=secrets) as dst:
        started = time.monotonic()
        _pipe(
            [dump, f"--defaults-extra-file={src}", "--single-transaction", "--hex-blob", "--databases", schema],
            [client, f"--defaults-extra-file={dst}", "--max-allowed-packet=256M"],
        )
        return PeerResult(time.monotonic() - started)


def mydumper_available() -> bool:
    return tool("mydumper") is not None and tool("myloader") is not None


def mydumper_myloader(
    source: Endpoint, target: Endpoint, schema: str, secrets: Path, *, threads: int, rows: int
) -> PeerResult:
    """``mydumper -t N --rows R`` into a directory, then ``myloader -t N``; both timed, as one copy."""
    dumper, loader = tool("mydumper"), tool("myloader")
    assert dumper and loader
    out = Path(tempfile.mkdtemp(prefix="mydumper-", dir=secrets))
    try:
        with DefaultsFile(source, parent=secrets) as src, DefaultsFile(target, parent=secrets) as dst:
            started = time.monotonic()
            _run(
                [dumper, f"--defaults-file={src}", "--host", source.host, "--port", str(source.port),
                 "--user", source.user, "-B", schema, "-o", str(out / "dump"), "-t", str(threads),
                 "--rows", str(rows), "--trx-consistency-only"]
            )
            dumped = time.monotonic() - started
            _run(
                [loader, f"--defaults-file={dst}", "--host", target.host, "--port", str(target.port),
                 "--user", target.user, "-d", str(out / "dump"), "-t", str(threads)]
            )
            total = time.monotonic() - started
        return PeerResult(total, f"dump {dumped:.1f} s + load {total - dumped:.1f} s")
    finally:
        shutil.rmtree(out, ignore_errors=True)


# --- apply -------------------------------------------------------------------------------------


def binlog_pipe(target: Endpoint, files: list[Path], start_pos: int, secrets: Path) -> PeerResult:
    """``mysqlbinlog --start-position=P file... | mysql``."""
    binlog, client = tool(*MARIADB_10_11.binlog_tool), tool(*MARIADB_10_11.client_tool)
    assert binlog and client
    with DefaultsFile(target, parent=secrets) as dst:
        started = time.monotonic()
        _pipe(
            [binlog, "--no-defaults", f"--start-position={start_pos}", *map(str, files)],
            [client, f"--defaults-extra-file={dst}", "--max-allowed-packet=256M"],
        )
        return PeerResult(time.monotonic() - started)


def sql_thread(
    source: Endpoint,
    target: Endpoint,
    start: tuple[str, int],
    end: tuple[str, int],
    *,
    parallel: int = 0,
    timeout: float = 3600,
) -> PeerResult:
    """The target replicates from the source from ``start`` until it executed ``end`` (IO + SQL thread)."""
    with MySQLSession(target) as tgt:
        if parallel:
            tgt.execute(f"SET GLOBAL slave_parallel_threads = {int(parallel)}")
            tgt.execute("SET GLOBAL slave_parallel_mode = 'optimistic'")
        tgt.execute(
            "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, MASTER_PASSWORD=%s,"
            " MASTER_LOG_FILE=%s, MASTER_LOG_POS=%s, MASTER_USE_GTID=no",
            (source.host, source.port, source.user, source.password.reveal(), start[0], start[1]),
        )
        started = time.monotonic()
        tgt.execute("START SLAVE")
        deadline = started + timeout
        while True:
            status = tgt.dicts("SHOW SLAVE STATUS")[0]
            if status["Last_SQL_Errno"] or status["Last_IO_Errno"]:
                raise RuntimeError(f"replication failed: {status['Last_SQL_Error'] or status['Last_IO_Error']}")
            if (status["Relay_Master_Log_File"], int(status["Exec_Master_Log_Pos"])) >= end:
                seconds = time.monotonic() - started
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the SQL thread did not catch up in time")
            time.sleep(0.01)
        tgt.execute("STOP SLAVE")
    return PeerResult(seconds)


# --- verify ------------------------------------------------------------------------------------

_PT_LINE = re.compile(r"^\s*\S+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\S+)\s*$")


def pt_table_checksum_available() -> bool:
    return tool("pt-table-checksum") is not None


def pt_table_checksum(source: Endpoint, schema: str, secrets: Path) -> PeerResult:
    """pt-table-checksum on the source (``--recursion-method=none``: with a replica, the replica runs the
    same statements through replication, at the same time)."""
    pt = tool("pt-table-checksum")
    assert pt
    with DefaultsFile(source, parent=secrets) as src:
        started = time.monotonic()
        proc = subprocess.run(
            [pt, "--recursion-method=none", "--no-check-binlog-format", "--no-check-replication-filters",
             f"--databases={schema}", "--chunk-size-limit=0", "--no-version-check",
             f"F={src},h={source.host},P={source.port}"],
            capture_output=True,
            check=False,
        )
        seconds = time.monotonic() - started
    # Exit codes are a bit field; 0 or the "differences"/"skipped" bits still mean it ran.
    text = proc.stdout.decode(errors="replace")
    rows = skipped = errors = 0
    for line in text.splitlines():
        m = _PT_LINE.match(line)
        if m:
            errors += int(m.group(1))
            rows += int(m.group(3))
            skipped += int(m.group(6))
    if proc.returncode not in (0, 16, 32) and not rows:
        raise RuntimeError(f"pt-table-checksum exited {proc.returncode}: {proc.stderr.decode()[-800:]}")
    return PeerResult(seconds, f"{rows} rows, {skipped} chunks skipped, {errors} errors")


def checksum_table(source: Endpoint, target: Endpoint, tables: list[tuple[str, str]]) -> PeerResult:
    """``CHECKSUM TABLE`` of every table, source and target at the same time (whole tables: no ranges)."""
    names = ", ".join(f"{quote_identifier(s)}.{quote_identifier(t)}" for s, t in tables)
    results: dict[str, list[tuple[object, ...]]] = {}

    def side(name: str, endpoint: Endpoint) -> Callable[[], None]:
        def work() -> None:
            with MySQLSession(endpoint) as session:
                results[name] = session.rows(f"CHECKSUM TABLE {names}")

        return work

    threads = [threading.Thread(target=side(n, e)) for n, e in (("source", source), ("target", target))]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    equal = results.get("source") == results.get("target")
    return PeerResult(seconds, "equal" if equal else "DIFFERENT")
