"""Moved: the copy lives in the package migrator.copy (a module per path). Old importers keep working."""

from migrator.copy.columns import (
    LOSSY_TEXT_TYPES,
    ORDINAL_TYPES,
    enum_members,
    enum_zeros_sql,
    has_enum_columns,
    has_lossy_columns,
    text_form_is_lossy,
)
from migrator.copy.copier import METHODS, ChunkCopier
from migrator.copy.dump import MAX_ERROR_COUNT
from migrator.copy.ledger import ChunkLedger, MemoryLedger
from migrator.copy.load_data import SELECT_TSV, find_select_tsv, tsv_load_columns, tsv_select_columns
from migrator.copy.procs import MAX_ALLOWED_PACKET, STDERR_LIMIT, TRANSIENT_TOOL_ERRORS
from migrator.copy.rows import (
    BINARY_TYPES,
    ROW_BATCH_BYTES,
    ROW_FETCH,
    STRING_TYPES,
    insert_prefix,
    row_tuple_sql,
)
from migrator.copy.types import ChunkCopyFailed, ChunkResult, CopyProgress, CopyReport

__all__ = [
    "BINARY_TYPES",
    "LOSSY_TEXT_TYPES",
    "MAX_ALLOWED_PACKET",
    "MAX_ERROR_COUNT",
    "METHODS",
    "ORDINAL_TYPES",
    "ROW_BATCH_BYTES",
    "ROW_FETCH",
    "SELECT_TSV",
    "STDERR_LIMIT",
    "STRING_TYPES",
    "TRANSIENT_TOOL_ERRORS",
    "ChunkCopier",
    "ChunkCopyFailed",
    "ChunkLedger",
    "ChunkResult",
    "CopyProgress",
    "CopyReport",
    "MemoryLedger",
    "enum_members",
    "enum_zeros_sql",
    "find_select_tsv",
    "has_enum_columns",
    "has_lossy_columns",
    "insert_prefix",
    "row_tuple_sql",
    "text_form_is_lossy",
    "tsv_load_columns",
    "tsv_select_columns",
]
