"""The copy: the frozen snapshot's rows into the target, chunk by chunk, each chunk one target transaction.

Which path a chunk takes (ChunkCopier.method_for; each is exact for every type, and
tests/integration/test_copy_types.py forces each one):

- LOAD DATA (load_data.py) wherever the target allows ``local_infile``: a select on the snapshot
  (migrator-select-tsv, else ``mariadb --batch``) writes the rows as tab-separated stored bytes into
  a pipe that ``LOAD DATA LOCAL`` on the target reads. FLOAT goes as DOUBLE text, BIT as a number,
  ENUM by index and SET by bitmask. It costs the target a quarter less CPU than parsing INSERTs.
- The dump pipe (dump.py) where the target refuses LOAD DATA LOCAL: ``mariadb-dump --where=<range>
  | mariadb``, with no byte through Python.
- The row path (rows.py) where the dump pipe would change a value: mariadb-dump prints FLOAT with 6
  significant digits (16777216 arrives as 16777200), and an ENUM or SET with a member '' makes its
  text ambiguous (see columns.text_form_is_lossy). The snapshot renders each row as a SQL tuple
  itself and the rows go as multi-row INSERTs over pymysql.

ENUM's index-0 value ('' stored under a permissive sql_mode) is refused by strict mode (review
B9), so loads of tables with ENUM columns run non-strict and fail on any warning those values do
not explain (columns.enum_zeros_sql).

The ledger (the journal) hears ``mark_done`` only after the target committed, so a crash in
between leaves committed rows: every attempt first deletes the chunk's key range (copier.py).
planning.py makes the copy's plan: table order, batches, per-chunk time budgets.
"""

from migrator.copy.columns import enum_members, has_lossy_columns, text_form_is_lossy
from migrator.copy.copier import METHODS, ChunkCopier
from migrator.copy.ledger import ChunkLedger, MemoryLedger
from migrator.copy.load_data import SELECT_TSV, find_select_tsv
from migrator.copy.types import (
    ChunkCopyFailed,
    ChunkResult,
    Copied,
    CopyPath,
    CopyProgress,
    CopyReport,
    DefaultsFiles,
)

__all__ = [
    "METHODS",
    "SELECT_TSV",
    "ChunkCopier",
    "ChunkCopyFailed",
    "ChunkLedger",
    "ChunkResult",
    "Copied",
    "CopyPath",
    "CopyProgress",
    "CopyReport",
    "DefaultsFiles",
    "MemoryLedger",
    "enum_members",
    "find_select_tsv",
    "has_lossy_columns",
    "text_form_is_lossy",
]
