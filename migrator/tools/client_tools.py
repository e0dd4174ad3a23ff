"""Which MySQL client tools are installed, by what they are (``--version``), not by their names.

On Debian and Ubuntu with mariadb-client, ``mysqlbinlog``, ``mysqldump`` and ``mysql`` are MariaDB's
tools. MariaDB's and Oracle's tools take different options (server id of a binlog dump, TLS in the
option file, GTID_PURGED in dumps) and read different binlogs, so every argv is built from the
detected product, and preflight refuses a set that cannot read the source's binlogs, saying what to
install. The three tools of a migration are of one product, so one option file fits all of them.

Documented ``--version`` lines (fixtures in tests/unit/test_client_tools.py):
  Oracle:  ``mysqlbinlog  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)``
  MariaDB: ``mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)``,
           ``mariadb-dump from 11.4.5-MariaDB, client 10.19 for debian-linux-gnu (x86_64)``,
           ``mariadb-binlog Ver 3.5 for debian-linux-gnu at x86_64`` (no server version: read from a
           sibling tool of the same installation; ``--help`` names MariaDB).
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from migrator.errors import EnvironmentProblem
from migrator.mysql.flavour import Flavour

MARIADB = "mariadb"
MYSQL = "mysql"  # Oracle's (and Percona's) tools

NAMES = {
    "binlog": ("mariadb-binlog", "mysqlbinlog"),
    "dump": ("mariadb-dump", "mysqldump"),
    "client": ("mariadb", "mysql"),
}
EXTRA_DIRS = ("/usr/bin", "/usr/local/mysql/bin", "/usr/local/bin", "/opt/mysql/bin")
INSTALL = {
    MARIADB: "install MariaDB's client (apt-get install mariadb-client; for MySQL 8.0 sources 10.11.11+ "
    "or 11.4.5+, e.g. from the MariaDB repository)",
    MYSQL: "install Oracle's MySQL client matching the source's version (e.g. mysql-community-client "
    "from repo.mysql.com, or the MySQL tarball's bin/ on PATH ahead of /usr/bin)",
}
# MariaDB's mariadb-binlog decodes MySQL 8.0's binlog events from 10.11.11 (and 11.4.5) on.
MARIADB_READS_MYSQL80 = ((10, 11, 11), (11, 0, 0)), ((11, 4, 5), (99, 0, 0))
ORACLE_COMPRESSED_TX = (8, 0, 20)  # Transaction_payload events (binlog_transaction_compression)


@dataclass(frozen=True)
class ClientTool:
    role: str  # "binlog" | "dump" | "client"
    path: str
    product: str  # MARIADB | MYSQL
    version: tuple[int, int, int]
    version_line: str

    def describe(self) -> str:
        v = ".".join(map(str, self.version))
        return f"{self.path} ({'MariaDB' if self.product == MARIADB else 'MySQL'} {v})"

    # --- per-product options -------------------------------------------------------------------
    def server_id_option(self, server_id: int) -> str:
        """The binlog dump's server id (both tools connect as server_id 1 unless told)."""
        if self.product == MARIADB:
            return f"--stop-never-slave-server-id={server_id}"
        return f"--connection-server-id={server_id}"

    def dump_options(self) -> list[str]:
        """Oracle's mysqldump writes SET @@GLOBAL.GTID_PURGED when the server has GTIDs: never wanted."""
        return ["--set-gtid-purged=OFF"] if self.role == "dump" and self.product == MYSQL else []


@dataclass(frozen=True)
class ToolSet:
    product: str
    binlog: ClientTool
    dump: ClientTool
    client: ClientTool

    def tools(self) -> tuple[ClientTool, ClientTool, ClientTool]:
        return self.binlog, self.dump, self.client


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"cannot run {argv[0]} {argv[1]}: {exc}") from exc
    return (done.stdout or "") + (done.stderr or "")


def _triple(match: re.Match[str]) -> tuple[int, int, int]:
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def parse_version(text: str) -> tuple[str, tuple[int, int, int]] | None:
    """Product and version from a ``--version`` line; None when the line names no server version."""
    mariadb = re.search(r"(\d+)\.(\d+)\.(\d+)-MariaDB", text)
    if mariadb:
        return MARIADB, _triple(mariadb)
    oracle = re.search(r"\bVer (\d+)\.(\d+)\.(\d+)\S* for ", text)
    if oracle and int(oracle.group(1)) >= 5 and "mariadb" not in text.lower():
        return MYSQL, _triple(oracle)
    return None


@functools.lru_cache(maxsize=64)
def identify(path: str, role: str) -> ClientTool:
    line = _run([path, "--version"]).strip().removeprefix(path).strip()
    found = parse_version(line)
    if found is None and re.search(r"\bVer \d+\.\d+ for ", line):
        # mysqlbinlog's own version (3.x): MariaDB's says so in --help; its server version comes
        # from a sibling tool of the same installation.
        if "mariadb" in _run([path, "--help"])[:4000].lower():
            found = (MARIADB, _sibling_version(path) or (0, 0, 0))
        else:
            found = (MYSQL, (5, 7, 0))  # Oracle's pre-8.0 mysqlbinlog printed "Ver 3.4"
    if found is None:
        raise EnvironmentProblem(
            f"{path} --version printed {line[:200]!r}: neither MariaDB's nor MySQL's client tool",
            hint=f"{INSTALL[MARIADB]}; or {INSTALL[MYSQL]}",
        )
    return ClientTool(role, path, found[0], found[1], line.splitlines()[0] if line else "")


def _sibling_version(path: str) -> tuple[int, int, int] | None:
    folder = Path(os.path.realpath(path)).parent
    for name in ("mariadb-dump", "mariadb", "mysqldump", "mysql"):
        sibling = folder / name
        if sibling.exists() and os.access(sibling, os.X_OK):
            found = parse_version(_run([str(sibling), "--version"]))
            if found and found[0] == MARIADB:
                return found[1]
    return None


def candidates(role: str, search_path: str | None = None) -> list[str]:
    """Every installed executable of the role's names: each PATH directory, then the usual places."""
    dirs = [d for d in (search_path if search_path is not None else os.environ.get("PATH", "")).split(os.pathsep) if d]
    if search_path is None:
        dirs += [d for d in EXTRA_DIRS if d not in dirs]
    seen: dict[str, str] = {}
    for folder in dirs:
        for name in NAMES[role]:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                seen.setdefault(os.path.realpath(path), path)
    return list(seen.values())


def cannot_read(binlog: ClientTool, source: Flavour) -> str:
    """Why this binlog tool cannot read the source's binlogs ('' when it can)."""
    if source.is_mariadb:
        return "" if binlog.product == MARIADB else "MySQL's mysqlbinlog does not read MariaDB binlogs"
    series = (source.major, source.minor)
    version = ".".join(map(str, binlog.version))
    if binlog.product == MYSQL:
        if series >= (8, 0) and binlog.version < ORACLE_COMPRESSED_TX:
            return f"MySQL's mysqlbinlog {version} predates 8.0.20 (compressed transactions)"
        if binlog.version[:2] < series:
            return f"mysqlbinlog {version} is older than the source (MySQL {source.major}.{source.minor})"
        return ""
    if series < (8, 0):
        return ""
    if series == (8, 0):
        if any(low <= binlog.version < high for low, high in MARIADB_READS_MYSQL80):
            return ""
        return (
            f"MariaDB's mariadb-binlog {version} cannot read MySQL 8.0 binlogs "
            "(10.11.11+ or 11.4.5+ can)"
        )
    return f"no MariaDB release is documented to read MySQL {source.major}.{source.minor} binlogs: use Oracle's tools"


def choose(source: Flavour, *, search_path: str | None = None) -> ToolSet:
    """One product's binlog, dump and client tools that can read the source; MySQL sources prefer Oracle's."""
    found = {role: [identify(p, role) for p in candidates(role, search_path)] for role in NAMES}
    preference = (MARIADB, MYSQL) if source.is_mariadb else (MYSQL, MARIADB)
    reasons: list[str] = []
    for product in preference:
        picked = {}
        for role in NAMES:
            tools = sorted((t for t in found[role] if t.product == product), key=lambda t: t.version, reverse=True)
            if tools:
                picked[role] = tools[0]
        if len(picked) < len(NAMES):
            missing = ", ".join(r for r in NAMES if r not in picked)
            reasons.append(f"no {'MariaDB' if product == MARIADB else 'MySQL (Oracle)'} tool installed for: {missing}")
            continue
        why = cannot_read(picked["binlog"], source)
        if why:
            reasons.append(why)
            continue
        return ToolSet(product, picked["binlog"], picked["dump"], picked["client"])
    source_name = f"{'MariaDB' if source.is_mariadb else 'MySQL'} {source.major}.{source.minor}"
    installed = "; ".join(t.describe() for role in NAMES for t in found[role]) or "none"
    raise EnvironmentProblem(
        f"no installed client tools can read the binlogs of the source ({source_name}): {'; '.join(reasons)} "
        f"(installed: {installed})",
        hint=INSTALL[preference[0]],
    )


@functools.lru_cache(maxsize=8)
def for_flavour(source: Flavour) -> ToolSet:
    """The tool set for a source (cached per process: the streamer restarts reuse it)."""
    return choose(source)


def binlog_tool(source: Flavour) -> ClientTool:
    """The binlog tool that reads ``source``'s binlogs: the detected one, never a lookup by command name
    (on Debian ``mysqlbinlog`` is MariaDB's). Raises EnvironmentProblem, saying what to install, when no
    installed set can read them."""
    return for_flavour(source).binlog
