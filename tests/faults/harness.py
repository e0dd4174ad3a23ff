"""The fault harness: the orchestrator as a subprocess (`python -m migrator.cli run`) against real local
servers under the writer oracle, faults injected from outside, then `run` again until it is done.

A trial passes when, after the last `run` exits 0:
  - our verify said so (step 10's fact ``verification.ok``);
  - an independent comparison agrees: ``CHECKSUM TABLE ... EXTENDED`` equal on source and target for
    every table but shop.ledger, which the writer's oracle checks on the target (no acknowledged
    insert missing, no increment lost or applied twice, no unknown row);
  - the journal is consistent after every kill and at the end (see ``journal_problems``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tests.conftest
from migrator.engine import execution_rank
from migrator.errors import EXIT_OK
from migrator.platforms.local_server import LocalServer, build_template
from migrator.sandbox.workload import WriteWorkload
from migrator.secrets import Secret
from tests.conftest import MakeServer, add_admin, admin_endpoint
from tests.faults.proxy import FaultProxy
from tests.harness import APP_PASSWORD, APP_USER, RECORD, Sandbox, make_sandbox, stop_local_replicas

LEDGER = "shop.ledger"
# The fact each done step must have left in the journal (the brief's journal invariant).
FACT_OF_STEP = {3: "snapshot", 6: "copy", 10: "verification", 14: "write_pause_seconds"}
RUN_TIMEOUT = 150.0  # a healthy `run` here takes ~10 s; a hang must not eat the CI budget


# --- servers outside pytest (the campaign script) ----------------------------------------------
class ServerFactory:
    """``make_server`` for code outside pytest: same signature as the conftest fixture."""

    def __init__(self, root: Path, template: Path) -> None:
        self.root = root
        self.template = build_template(template)
        self.started: list[LocalServer] = []

    def __call__(
        self, name: str, server_id: int, *, log_bin: bool = True, extra_args: tuple[str, ...] = ()
    ) -> LocalServer:
        server = LocalServer(self.root / "servers" / name, server_id=server_id, log_bin=log_bin,
                             extra_args=extra_args)
        server.datadir.parent.mkdir(parents=True, exist_ok=True)
        server.initialise_from(self.template)
        server.start()
        add_admin(server)
        self.started.append(server)
        return server

    def close(self) -> None:
        for server in self.started:
            server.kill()
            server.socket_path.unlink(missing_ok=True)


# --- journal -------------------------------------------------------------------------------
def _ro(journal: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)


def step_statuses(journal: Path) -> dict[int, str]:
    if not journal.exists():
        return {}
    try:
        conn = _ro(journal)
        try:
            return {int(n): str(s) for n, s in conn.execute("SELECT number, status FROM step")}
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the first run is still creating the schema
        return {}


def journal_problems(journal: Path) -> list[str]:
    """Invariants that hold at any instant, a kill included."""
    if not journal.exists():
        return []
    conn = _ro(journal)
    try:
        status = {int(n): str(s) for n, s in conn.execute("SELECT number, status FROM step")}
        facts = {str(k) for (k,) in conn.execute("SELECT key FROM fact")}
        chunks = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 'done'), 0) FROM copy_chunk"
        ).fetchone()
    finally:
        conn.close()
    problems: list[str] = []
    running = [n for n, s in status.items() if s == "running"]
    if len(running) > 1:
        problems.append(f"steps {running} all running at once")
    # Steps finish in execution order (12 runs before 9), not in number order.
    ordered = sorted(status.items(), key=lambda item: execution_rank(item[0]))
    finished = [n for n, s in ordered if s in ("done", "skipped")]
    unfinished = [n for n, s in ordered if s not in ("done", "skipped")]
    if finished and unfinished and execution_rank(unfinished[0]) < execution_rank(finished[-1]):
        problems.append(f"step {unfinished[0]} is {status[unfinished[0]]} but step {finished[-1]} is done")
    for number, fact in FACT_OF_STEP.items():
        if status.get(number) == "done" and fact not in facts:
            problems.append(f"step {number} done without its fact {fact!r}")
    from steps import STEPS

    for step in STEPS:  # a step whose predecessors are all done must find the facts it needs
        ready = all(
            status.get(n) in ("done", "skipped") for n in status if execution_rank(n) < execution_rank(step.NUMBER)
        )
        missing = [key for key in step.NEEDS if key not in facts]
        if status and ready and missing:
            problems.append(f"step {step.NUMBER} is next but the journal lacks {missing}")
    if status.get(6) == "done" and chunks[0] != chunks[1]:
        problems.append(f"step 6 done with {chunks[1]}/{chunks[0]} chunks done")
    return problems


def journal_facts(journal: Path) -> dict[str, Any]:
    from migrator.journal import Journal

    ro = Journal.open_readonly(journal)
    try:
        return ro.facts()
    finally:
        ro.close()


# --- independent comparison ----------------------------------------------------------------
def checksum_tables(server: LocalServer, tables: list[str]) -> dict[str, int | None]:
    conn = server.root()
    try:
        with conn.cursor() as cur:
            cur.execute("CHECKSUM TABLE " + ", ".join(tables) + " EXTENDED")
            return {str(name): (None if value is None else int(value)) for name, value in cur.fetchall()}
    finally:
        conn.close()


# --- a trial's world -----------------------------------------------------------------------
@dataclass
class RunRecord:
    rc: int
    seconds: float
    env: dict[str, str]
    stderr_tail: str
    killed_by: str = ""  # what killed it from outside, if anything

    @property
    def error(self) -> str:
        """The CLI's own `error:`/`hint:` lines, else the end of stderr."""
        lines = [line for line in self.stderr_tail.splitlines() if line.startswith(("error:", "  hint:"))]
        return " / ".join(lines)[:900] if lines else self.stderr_tail[-600:]


@dataclass
class World:
    """One sandbox with its writer, optional proxies, and the log of every `run`."""

    box: Sandbox
    workload: WriteWorkload
    source_proxy: FaultProxy | None = None
    target_proxy: FaultProxy | None = None
    runs: list[RunRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def journal(self) -> Path:
        return self.box.workdir / "journal.sqlite"

    def statuses(self) -> dict[int, str]:
        return step_statuses(self.journal)

    def _after_run(self, record: RunRecord) -> RunRecord:
        self.runs.append(record)
        for problem in journal_problems(self.journal):
            self.problems.append(f"after run {len(self.runs)} (rc {record.rc}): {problem}")
        return record

    def run(self, env: dict[str, str] | None = None, *args: str) -> RunRecord:
        started = time.monotonic()
        result = self.box.cli("run", *args, env=env, timeout=RUN_TIMEOUT)
        return self._after_run(
            RunRecord(result.returncode, time.monotonic() - started, env or {}, result.stderr[-3000:])
        )

    def run_with(
        self,
        driver: Callable[[subprocess.Popen[str]], str],
        env: dict[str, str] | None = None,
    ) -> RunRecord:
        """Start `run`, let ``driver`` inject faults while it works (it returns what it did)."""
        started = time.monotonic()
        proc = self.box.popen("run", env=env)
        try:
            killed_by = driver(proc)
            _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.communicate()
            raise
        return self._after_run(
            RunRecord(proc.returncode, time.monotonic() - started, env or {}, stderr[-3000:], killed_by)
        )

    def finish(self, max_runs: int = 4) -> RunRecord:
        """`run` until it exits 0 (a resume is the operator's only tool); the last record."""
        for _ in range(max_runs):
            record = self.run()
            if record.rc == EXIT_OK:
                return record
        self.problems.append(f"no successful run after {max_runs} resumes: {self.runs[-1].error}")
        return self.runs[-1]

    def wait_for_step(
        self, proc: subprocess.Popen[str], number: int, status: str = "running", timeout: float = 120
    ) -> bool:
        """Poll the journal until step ``number`` has ``status`` (or is past it); False if the run ended."""
        deadline = time.monotonic() + timeout
        order = {"pending": 0, "failed": 0, "running": 1, "done": 2, "skipped": 2}
        while time.monotonic() < deadline and proc.poll() is None:
            statuses = self.statuses()
            now = statuses.get(number)
            later_started = any(
                s != "pending" for n, s in statuses.items() if execution_rank(n) > execution_rank(number)
            )
            if now is not None and (order.get(now, 0) >= order[status] or later_started):
                return True
            time.sleep(0.005)
        return False

    def verify_outcome(self) -> None:
        """The pass criteria (module docstring), appended to ``problems``."""
        facts = journal_facts(self.journal)
        if not facts.get("verification", {}).get("ok"):
            self.problems.append("step 10 recorded no verification.ok")
        statuses = self.statuses()
        if set(statuses.values()) != {"done"}:
            self.problems.append(f"steps not all done: {statuses}")
        tables = [t for t in self.box.dataset.tables if t != LEDGER]
        source, target = checksum_tables(self.box.source, tables), checksum_tables(self.box.target, tables)
        differ = [t for t in tables if source.get(t) != target.get(t) or source.get(t) is None]
        if differ:
            self.problems.append(f"CHECKSUM TABLE EXTENDED differs for {differ}")
        verdict = self.workload.verify(admin_endpoint(self.box.target))
        if not verdict.ok:
            self.problems.append(f"writer oracle: {verdict.describe()}")

    def settle_workload(self, timeout: float = 15) -> None:
        """After the cut-over, let the writer land on the target, then stop it."""
        target = f"127.0.0.1:{self.box.target.port}"
        deadline = time.monotonic() + timeout
        while self.workload.stats().last_server != target and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = self.workload.stop()
        if stats.last_server != target:
            self.problems.append(f"the writer never wrote to the target (last server {stats.last_server})")


@contextlib.contextmanager
def world(
    make_server: MakeServer,
    tmp_path: Path,
    *,
    seed: int,
    proxy_source: bool = False,
    proxy_target: bool = False,
    rate: float = 40.0,
    shapes: bool = False,
    before_sandbox: Callable[[Path], None] | None = None,
    **overrides: dict[str, Any],
) -> Iterator[World]:
    """A small sandbox (scale 1, 1 MB chunks) with the writer running; proxies in front if asked.

    ``shapes``: the writer mixes autocommit-on statements, autocommit-off transactions and XA transactions,
    with ANALYZE/FLUSH statements until step 8 starts (later they would move the source's binlog during
    the write pause, which step 10 rightly refuses; an ANALYZE refused by read_only is still logged).
    """
    if before_sandbox is not None:
        before_sandbox(tmp_path)
    sections: dict[str, dict[str, Any]] = {"copy": {"workers": 2, "chunk_mb": 1}}
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    # The config is written by make_sandbox; proxies need the servers' ports first, so they come after
    # and the config is rewritten with the proxy's address.
    box = make_sandbox(make_server, tmp_path, scale=1, **sections)
    proxies: list[FaultProxy] = []
    w: World | None = None
    try:
        source_proxy = target_proxy = None
        if proxy_source or proxy_target:
            text = box.config_path.read_text()
            if proxy_source:
                source_proxy = FaultProxy("127.0.0.1", box.source.port).start()
                proxies.append(source_proxy)
                text = _replace_port(text, "source", box.source.port, source_proxy.port)
            if proxy_target:
                target_proxy = FaultProxy("127.0.0.1", box.target.port).start()
                proxies.append(target_proxy)
                text = _replace_port(text, "target", box.target.port, target_proxy.port)
            box.config_path.write_text(text)
        if shapes:
            journal = box.workdir / "journal.sqlite"
            workload = WriteWorkload(
                box.dns_file, RECORD, APP_USER, Secret(APP_PASSWORD), rate_per_s=rate, seed=seed, shapes=True,
                admin=(tests.conftest.ADMIN_USER, Secret(tests.conftest.ADMIN_PASSWORD)),
                admin_gate=lambda: step_statuses(journal).get(8, "pending") == "pending",
            )
        else:
            workload = box.workload(rate=rate, seed=seed)
        workload.start()
        w = World(box, workload, source_proxy, target_proxy)
        yield w
    finally:
        if w is not None and w.workload.stats().running:
            with contextlib.suppress(Exception):
                w.workload.stop()
        for proxy in proxies:
            proxy.stop()
        stop_local_replicas(box)


def _replace_port(text: str, section: str, old: int, new: int) -> str:
    """Point [section]'s port at the proxy (dns.target_value keeps the real server: the app connects direct)."""
    out: list[str] = []
    current = ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[] ")
        if current == section and line.startswith("port = "):
            assert line == f"port = {old}", line
            out.append(f"port = {new}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def sigkill(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
