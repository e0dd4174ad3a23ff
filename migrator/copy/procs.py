"""The client tools' processes: run them with no byte through Python, bound them in time, read what they said."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import IO

from migrator.copy.types import ChunkCopyFailed
from migrator.mysql.chunking import Chunk

# Error numbers in a tool's stderr that are worth one more attempt of the same chunk.
TRANSIENT_TOOL_ERRORS = ("ERROR 2013", "ERROR 2006", "ERROR 2002", "ERROR 2003", "ERROR 1205", "ERROR 1213")
# Client-side packet limit for both tools; the target server's max_allowed_packet still applies.
MAX_ALLOWED_PACKET = "1G"
STDERR_LIMIT = 4000


def pdeathsig_prefix() -> list[str]:
    # If the orchestrator is killed, a left-over pipe must not commit a chunk later, behind the
    # back of the resumed run; setpriv makes the kernel kill each tool with its parent thread.
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def written_bytes(pid: int) -> int | None:
    """Bytes the process wrote (``wchar`` in /proc/PID/io): its SQL on stdout plus its short stderr.

    Read after the process exited but before it is reaped (waitid WNOWAIT), so the count is final.
    """
    try:
        with open(f"/proc/{pid}/io") as fh:
            for line in fh:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def wait_unreaped(
    proc: subprocess.Popen[bytes], deadline: float | None, monotonic: Callable[[], float]
) -> None:
    """Wait for exit without reaping, so /proc/PID/io still exists; kill the pipe on the deadline."""
    if deadline is None:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        return
    while True:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        if info is not None:
            return
        if monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.05)


def read_until(
    fh: IO[bytes], marker: bytes | None, deadline: float | None, monotonic: Callable[[], float]
) -> bytes:
    """Read a child's stdout until a line starting with ``marker`` is in (None: until EOF) or it ends.

    Raises TimeoutError past ``deadline``.
    """
    out = b""
    fd = fh.fileno()
    while True:
        complete_lines = out.split(b"\n")[:-1]
        if marker is not None and any(line.startswith(marker) for line in complete_lines):
            return out
        wait = None if deadline is None else max(0.0, deadline - monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            raise TimeoutError
        data = os.read(fd, 65536)
        if not data:
            return out
        out += data


def stderr_tail(fh: IO[bytes]) -> str:
    fh.seek(0)
    return fh.read().decode("utf-8", "replace").strip()[-STDERR_LIMIT:]


def raise_for_tools(
    chunk: Chunk, timed_out: bool, chunk_timeout: float | None, *tools: tuple[str, int, str]
) -> None:
    """ChunkCopyFailed naming the timeout or each tool (name, exit code, stderr) that did not exit 0."""
    if timed_out:
        raise ChunkCopyFailed(
            chunk,
            f"timed out after {chunk_timeout} s: the target may be stalled (a full disk makes the "
            "server wait for space); see SHOW PROCESSLIST on the target, then `migrator run` resumes the copy",
        )
    failed = [f"{name} exited {rc}: {text or '(no stderr)'}" for name, rc, text in tools if rc != 0]
    if failed:
        raise ChunkCopyFailed(chunk, "; ".join(failed))
