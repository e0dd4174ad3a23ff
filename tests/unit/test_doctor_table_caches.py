"""The doctor's table-cache row (issue 13 item 3): a warning when a server caches fewer tables than are migrated."""

from __future__ import annotations

from migrator import doctor

DEFAULTS = {"table_definition_cache": "400", "table_open_cache": "2000"}
ROOMY = {"table_definition_cache": "12000", "table_open_cache": "12000"}


def test_more_tables_than_a_cache_warns_naming_the_server_and_the_setting() -> None:
    row = doctor.table_cache_finding(10_000, DEFAULTS, ROOMY)
    assert row.check == "table caches" and row.status == doctor.WARNING
    assert row.source == "table_definition_cache 400, table_open_cache 2000 (10,000 tables)"
    assert "on the source for the migration" in row.remedy and "target" not in row.remedy.split("on the")[-1]
    assert "table_definition_cache = 11000" in row.remedy


def test_both_servers_short_are_both_named_and_enough_room_is_ok() -> None:
    assert "source and target" in doctor.table_cache_finding(3000, DEFAULTS, DEFAULTS).remedy
    # 500 tables: the definition cache (400) is short, the open-table cache is not.
    assert doctor.table_cache_finding(500, DEFAULTS, ROOMY).status == doctor.WARNING
    fine = doctor.table_cache_finding(300, DEFAULTS, DEFAULTS)
    assert fine.status == doctor.OK and fine.remedy == ""
    # A variable the server lacks (another product) is not a reason to warn.
    assert doctor.table_cache_finding(10_000, {}, ROOMY).status == doctor.OK
