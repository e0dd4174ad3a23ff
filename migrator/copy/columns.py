"""What a table's column types mean for the copy: which text forms lose values, and the ENUM index-0 value.

The copier routes a table by text_form_is_lossy (the dump pipe never takes one); every path counts
ENUM's index-0 values (enum_zeros_sql) to tell their expected warnings from a changed value.
"""

from __future__ import annotations

from migrator.mysql.schema import ColumnInfo, TableInfo
from migrator.mysql.session import quote_identifier

# Column types whose text form (what mariadb-dump prints) does not round-trip: the row path copies them.
LOSSY_TEXT_TYPES = frozenset({"float"})
# Loaded by number (ENUM index, SET bitmask): the text '' is ambiguous (index 0, or a member '').
ORDINAL_TYPES = frozenset({"enum", "set"})


def enum_members(column_type: str) -> list[str]:
    """The members of ``enum('a','it''s')`` / ``set(...)`` as information_schema.COLUMNS spells them."""
    members: list[str] = []
    body = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    i = 0
    while i < len(body):
        if body[i] != "'":
            i += 1  # the comma between members
            continue
        value, i = [], i + 1
        while i < len(body):
            if body[i] == "'" and body[i + 1 : i + 2] == "'":
                value.append("'")
                i += 2
            elif body[i] == "'":
                i += 1
                break
            else:
                value.append(body[i])
                i += 1
        members.append("".join(value))
    return members


def text_form_is_lossy(col: ColumnInfo) -> bool:
    """Whether mariadb-dump's text of this column can load as another value.

    FLOAT prints with 6 significant digits. Where an ENUM or SET has a member '', the text of
    ENUM's index-0 error value ('') loads as that member, and a SET's ',x' as 'x' alone.
    """
    if col.data_type in LOSSY_TEXT_TYPES:
        return True
    return col.data_type in ORDINAL_TYPES and "" in enum_members(col.column_type)


def has_lossy_columns(table: TableInfo) -> bool:
    """Whether mariadb-dump would change a value of this table (see text_form_is_lossy)."""
    return any(text_form_is_lossy(c) for c in table.columns if not c.generated)


def enum_zeros_sql(table: TableInfo) -> str:
    """How many of a row's ENUM values are the index-0 error value ('' stored under a permissive sql_mode).

    Strict mode refuses that value (1265, review B9); a non-strict load takes each with exactly one
    warning 1265, so the loads expect that many warnings and no other.
    """
    terms = [
        f"({quote_identifier(c.name)} + 0 = 0)"
        for c in table.columns
        if c.data_type == "enum" and not c.generated
    ]
    return f"COALESCE({' + '.join(terms)}, 0)" if terms else "0"


def has_enum_columns(table: TableInfo) -> bool:
    return any(c.data_type == "enum" and not c.generated for c in table.columns)
