"""A canary password must never reach argv, the environment of child processes, logs, output or the journal."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from tests.conftest import ADMIN_PASSWORD, MakeServer
from tests.harness import make_sandbox, stop_local_replicas


def leaks_in_processes(canary: bytes) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{pid}/{part}").read_bytes()
            except OSError:
                continue
            if canary in data:
                found.append(f"{pid}/{part}: {Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r}")
    return found


def test_canary_password_goes_nowhere(make_server: MakeServer, tmp_path: Path) -> None:
    canary = ADMIN_PASSWORD.encode()
    box = make_sandbox(make_server, tmp_path)
    try:
        proc = box.popen("run")
        leaks: list[str] = []
        samples = 0
        while proc.poll() is None:
            leaks += leaks_in_processes(canary)
            samples += 1
            time.sleep(0.02)
        stdout, stderr = proc.communicate()
        assert proc.returncode == 0, stderr[-2000:]
        assert samples > 10 and leaks == []
        assert ADMIN_PASSWORD not in stdout + stderr
        # Not ours to scrub, but inside the 0700 workdir: the local replica's master.info holds replication
        # credentials as any MySQL replica does, and the binlog archive is a byte copy of the source's binlogs,
        # which hold CREATE USER ... IDENTIFIED BY in clear. Everything the tool itself wrote must be clean.
        written = [p for p in box.workdir.rglob("*") if p.is_file() and not {"replicas", "binlogs"} & set(p.parts)]
        assert any(p.name == "journal.sqlite" for p in written) and any(p.name == "migrator.log" for p in written)
        assert [str(p) for p in written if canary in p.read_bytes()] == []
        assert stat.S_IMODE(os.stat(box.workdir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(box.workdir / "journal.sqlite").st_mode) == 0o600
        assert not any((box.workdir / "run").glob("**/client.cnf"))  # credential files removed after use
    finally:
        stop_local_replicas(box)
