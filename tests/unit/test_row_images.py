"""The -v row-image reader on MySQL 8.0-shaped `mysqlbinlog --base64-output=decode-rows --verbose` text."""

from __future__ import annotations

from migrator.mysql.schema import ColumnInfo, TableInfo
from migrator.tools.binlog_changes import ChangeSet, KeyColumn, _RowImages, layouts_of, value_readings

# The shape real 8.0 output prints (backquoted names, @N=value; unsigned readings in parentheses).
MYSQL80 = b"""#230101 10:00:00 server id 1  end_log_pos 613 CRC32 0x77b280b0 \tUpdate_rows: table id 70 flags: STMT_END_F
### UPDATE `shop`.`orders`
### WHERE
###   @1=-1 (4294967295)
###   @2='a\\x0ab'
###   @3=NULL
### SET
###   @1=7
###   @2='a\\x0ab'
###   @3=5
# at 613
#230101 10:00:00 server id 1  end_log_pos 700 CRC32 0x77b280b0 \tDelete_rows: table id 71 flags: STMT_END_F
### DELETE FROM `shop`.`heap`
### WHERE
###   @1=1
### INSERT INTO `other`.`x`
### SET
###   @1=1
"""


def _table(name: str, columns: list[tuple[str, str, str]], key: tuple[str, ...]) -> TableInfo:
    cols = tuple(ColumnInfo(n, t, ct, False, False) for n, t, ct in columns)
    return TableInfo("shop", name, "InnoDB", cols, key, "PRIMARY" if key else None, 0, 0, 0)


def test_mysql80_row_images_give_both_ends_of_an_update_and_skip_other_schemas() -> None:
    orders = _table("orders", [("id", "int", "int unsigned"), ("code", "varchar", "varchar(9)"),
                               ("n", "int", "int")], ("id", "code"))
    heap = _table("heap", [("n", "int", "int")], ())
    changes = ChangeSet()
    reader = _RowImages(layouts_of([orders, heap]), changes)
    for line in MYSQL80.splitlines():
        reader.line(line)
    reader.finish()
    # @2 'a\x0ab' is a newline or the four characters: both readings are kept
    assert changes.keys[("shop", "orders")] == {
        (4294967295, b"a\nb"), (4294967295, b"a\\x0ab"), (7, b"a\nb"), (7, b"a\\x0ab")
    }
    assert set(changes.whole) == {("shop", "heap")} and ("other", "x") not in changes.tables()


def test_values_that_cannot_be_read_exactly_are_refused() -> None:
    signed, unsigned = KeyColumn("k", 1, "int"), KeyColumn("k", 1, "uint")
    assert value_readings(signed, b"-1 (255)") == [-1]
    assert value_readings(unsigned, b"-1 (255)") == [255]
    assert value_readings(unsigned, b"5 /* INT meta=0 nullable=0 is_null=0 */") is None  # -vv: not ours
    assert value_readings(KeyColumn("k", 1, "str"), b"NULL") is None
    assert value_readings(KeyColumn("k", 1, "bin", pad_to=4), b"'ab'") == [b"ab\x00\x00"]
    assert value_readings(KeyColumn("k", 1, "str"), b"'" + b"\\x41" * 11 + b"'") is None  # too ambiguous
