"""The local binlog archive's upkeep: pruning files every reader is past, and a free-space guard (review C4).

At 24x7 write rates the archive grows by tens to hundreds of GB a day; over a multi-day copy it would
fill the disk, and a tool dying on ENOSPC in a restart loop loses the snapshot once the source's
retention passes. Readers of the archive: the applier (from its committed position) and verification
(from the position other code journals as the ``archive_retain_from`` fact). A file is pruned only
when it lies wholly before every reader's position, and the newest file is never pruned.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from migrator.errors import StepFailed
from migrator.mysql.positions import binlog_sequence

RETAIN_FROM_FACT = "archive_retain_from"


class DiskSpaceLow(StepFailed):
    """The work directory is about to fill: stop cleanly, resume once space is freed."""


def keep_from(readers: Iterable[tuple[str, int] | None]) -> str | None:
    """The file of the earliest reader position (None among them: a reader whose position is unknown
    keeps everything, so the answer is None too)."""
    positions = list(readers)
    if not positions or any(p is None for p in positions):
        return None
    return min((p for p in positions if p is not None), key=lambda p: (binlog_sequence(p[0]), p[1]))[0]


def prunable(names: Sequence[str], first_needed: str | None) -> list[str]:
    """Files wholly before ``first_needed``; never the newest file (the streamer may be writing it)."""
    if first_needed is None or not names:
        return []
    ordered = sorted(names, key=binlog_sequence)
    limit = binlog_sequence(first_needed)
    return [name for name in ordered[:-1] if binlog_sequence(name) < limit]


def prune(archive_dir: Path, names: Iterable[str]) -> list[str]:
    """Delete ``names`` from the archive; returns those deleted (a file already gone is not an error)."""
    removed = []
    for name in names:
        try:
            os.unlink(archive_dir / name)
        except FileNotFoundError:
            continue
        removed.append(name)
    return removed


def free_mb(path: Path) -> float:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free / (1024 * 1024)


def check_free_space(path: Path, min_free_mb: int) -> None:
    """Raise DiskSpaceLow when the filesystem holding ``path`` has less than ``min_free_mb`` free."""
    if min_free_mb <= 0:
        return
    free = free_mb(path)
    if free < min_free_mb:
        raise DiskSpaceLow(
            f"the work directory {path} has {free:,.0f} MB free, below binlog.min_free_mb = {min_free_mb:,} MB: "
            "the run stopped before the disk fills (the binlog archive grows with the source's writes)",
            hint="free space on that filesystem (archived binlogs are pruned once applied), then "
            "`migrator run` resumes where it stopped",
        )
