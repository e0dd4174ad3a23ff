"""What the copy's parts exchange: a chunk's outcome, the copy's progress and report, and the
interface every copy path (LOAD DATA, dump pipe, rows) implements."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from migrator.errors import StepFailed
from migrator.mysql.chunking import Chunk

# What a target out of disk space answers. Besides the plain ones (1021 disk full, 1114 table full,
# errno 28), MariaDB 10.11 fails an index build that runs out of space in the datadir or tmpdir with
# 1815 "Internal error: rename index to add" (seen in the fault campaign's disk-full trial), which names
# nothing about disk.
_OUT_OF_SPACE = re.compile(
    r"\((1021|1114),|errno: 28\b|error 28\b|No space left|Disk full|rename index to add", re.IGNORECASE
)


def looks_out_of_space(detail: str) -> bool:
    return _OUT_OF_SPACE.search(detail) is not None


class ChunkCopyFailed(StepFailed):
    def __init__(self, chunk: Chunk, detail: str) -> None:
        hint = "fix the cause and run again: done chunks are kept, this one is deleted and reloaded"
        if looks_out_of_space(detail):
            hint = (
                "the target looks out of disk space (its datadir or tmpdir): free space or grow the volume, "
                "then run again; done chunks are kept, this one is deleted and reloaded"
            )
        super().__init__(f"copying {chunk.qualified_name} {chunk.describe_range()} failed: {detail}", hint=hint)
        self.chunk = chunk


@dataclass(frozen=True)
class DefaultsFiles:
    """The client tools' credentials for one copy: a defaults file per server (see DefaultsFile)."""

    snapshot: Path
    target: Path


@dataclass(frozen=True)
class Copied:
    """What one path moved for one chunk."""

    rows: int  # rows in the chunk's range on the target after commit
    bytes: int  # bytes the reading side wrote (a tool's stdout, or the INSERTs sent); 0 if not measurable


class CopyPath(Protocol):
    """One way of moving a chunk's rows from the snapshot to the target, in one target transaction.

    The range is empty on the target when ``copy`` starts (the copier cleared it). ``copy`` returns
    after the target committed, or raises (ChunkCopyFailed, or a session's error) having kept nothing
    it could roll back; the copier decides about retries.
    """

    name: str

    def copy(self, chunk: Chunk, files: DefaultsFiles) -> Copied: ...


@dataclass(frozen=True)
class ChunkResult:
    chunk: Chunk
    rows: int  # rows in the chunk's range on the target after commit
    bytes: int  # bytes of SQL the dump process wrote (see written_bytes); 0 if not measurable
    seconds: float
    attempts: int


@dataclass(frozen=True)
class CopyProgress:
    chunks_total: int
    chunks_done: int  # copied in this run
    chunks_skipped: int  # already done according to the ledger
    rows: int
    bytes: int
    elapsed: float
    eta_seconds: float | None

    @property
    def fraction(self) -> float:
        todo = self.chunks_total - self.chunks_skipped
        return 1.0 if todo <= 0 else self.chunks_done / todo

    def as_fields(self) -> dict[str, object]:
        """Flat fields for a structlog event or a status line."""
        return {
            "chunks_total": self.chunks_total,
            "chunks_done": self.chunks_done,
            "chunks_skipped": self.chunks_skipped,
            "rows": self.rows,
            "bytes": self.bytes,
            "elapsed": round(self.elapsed, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "percent": round(100 * self.fraction, 1),
        }


@dataclass(frozen=True)
class CopyReport:
    rows: int
    bytes: int
    seconds: float
    chunks_done: int
    chunks_skipped: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0
