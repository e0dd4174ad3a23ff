"""Where the copy records chunk progress: a chunk is done only once the target committed it."""

from __future__ import annotations

from typing import Protocol

from migrator.mysql.chunking import Chunk


class ChunkLedger(Protocol):
    """Where chunk progress is recorded (the journal's copy_chunk table)."""

    def is_done(self, chunk_id: str) -> bool: ...

    def mark_started(self, chunk: Chunk) -> None: ...

    def mark_done(self, chunk: Chunk, rows: int, bytes: int) -> None: ...


class MemoryLedger:
    """An in-memory ChunkLedger, for tests and one-off copies."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.done: dict[str, tuple[int, int]] = {}

    def is_done(self, chunk_id: str) -> bool:
        return chunk_id in self.done

    def mark_started(self, chunk: Chunk) -> None:
        self.started.append(chunk.chunk_id())

    def mark_done(self, chunk: Chunk, rows: int, bytes: int) -> None:
        self.done[chunk.chunk_id()] = (rows, bytes)
