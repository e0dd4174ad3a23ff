"""Step 6's journal ledger journals done chunks in groups (one fsync per group, not per chunk)."""

from __future__ import annotations

from pathlib import Path

from migrator.journal import Journal
from migrator.mysql.chunking import Chunk
from steps.s06_copy import JournalChunkLedger


def chunk(i: int) -> Chunk:
    return Chunk("s", f"t{i}", 0, (), None, None)


def test_done_chunks_reach_the_journal_in_groups_and_on_flush(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal.sqlite")
    chunks = [chunk(i) for i in range(JournalChunkLedger.FLUSH_CHUNKS + 3)]
    journal.save_chunk_plan([(c.chunk_id(), c.schema, c.table, c.to_json()) for c in chunks])
    now = [0.0]
    ledger = JournalChunkLedger(journal, monotonic=lambda: now[0])

    ledger.mark_done(chunks[0], 20, 100)
    assert ledger.is_done(chunks[0].chunk_id())  # the copier never copies it twice in this run
    assert journal.copy_progress()["chunks_done"] == 0  # not yet journaled
    now[0] += JournalChunkLedger.FLUSH_SECONDS  # a group is at most this old
    ledger.mark_done(chunks[1], 20, 100)
    assert journal.copy_progress() == {"chunks": len(chunks), "chunks_done": 2, "rows": 40, "bytes": 200}

    for c in chunks[2 : JournalChunkLedger.FLUSH_CHUNKS + 2]:  # or at most this many chunks
        ledger.mark_done(c, 1, 1)
    assert journal.copy_progress()["chunks_done"] == JournalChunkLedger.FLUSH_CHUNKS + 2
    ledger.mark_done(chunks[-1], 1, 1)
    ledger.flush()  # the end of a copy (or its failure) journals the rest
    assert journal.copy_progress()["chunks_done"] == len(chunks)
    assert all(journal.chunk_status(c.chunk_id()) == "done" for c in chunks)
    journal.close()
