"""MariaDB SEQUENCE objects (issue 11 item 4): copied with their state, kept in step by the applier, verified.

What the binlog holds (seen on MariaDB 10.11, ``mariadb-binlog -vv``): every write of a sequence's
row (a NEXTVAL that exhausts the cache, SETVAL) is an ``INSERT INTO seq`` row event with the whole
new state, in the transaction that used it; CREATE/ALTER/DROP SEQUENCE are Query events (DDL).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from migrator.errors import EXIT_OK
from migrator.journal import Journal
from migrator.mysql.schema import base_tables, copy_schema
from migrator.mysql.sequences import compare_sequences, list_sequences, read_sequence
from migrator.mysql.session import MySQLSession
from migrator.platforms.local_server import LocalServer
from migrator.ports import SnapshotCoordinates
from migrator.sandbox.dataset import APP_USER
from tests.conftest import MakeServer, admin_endpoint
from tests.harness import APP_PASSWORD, Sandbox, make_sandbox, stop_local_replicas
from tests.integration.test_binlog_applier import TARGET_ARGS, copy_binlogs, make_applier, master_status

SEQUENCES = [
    "CREATE DATABASE app",
    "CREATE SEQUENCE app.stepped START WITH 100 INCREMENT BY 5 MINVALUE 10 MAXVALUE 100000 CACHE 10 CYCLE",
    "CREATE SEQUENCE app.plain",
    "CREATE SEQUENCE app.down START WITH -1 INCREMENT BY -1 MINVALUE -1000 MAXVALUE -1 NOCACHE",
    "CREATE SEQUENCE app.tiny START WITH 1 MAXVALUE 3 CACHE 2 CYCLE",
    "CREATE TABLE app.orders (id BIGINT NOT NULL PRIMARY KEY DEFAULT NEXTVAL(app.plain), note VARCHAR(20))",
    "CREATE TABLE app.t (id INT PRIMARY KEY)",
]

USE_THEM = [
    "SELECT NEXTVAL(app.stepped), NEXTVAL(app.stepped), NEXTVAL(app.down)",
    "INSERT INTO app.orders (note) VALUES ('a'), ('b'), ('c')",
    # Cycled twice: cycle_count 2, which SETVAL (what mariadb-dump writes) cannot restore.
    "SELECT NEXTVAL(app.tiny), NEXTVAL(app.tiny), NEXTVAL(app.tiny), NEXTVAL(app.tiny), NEXTVAL(app.tiny),"
    " NEXTVAL(app.tiny), NEXTVAL(app.tiny)",
    "SELECT SETVAL(app.stepped, 5000)",
]


def state(session: MySQLSession, name: str, schema: str = "app") -> tuple[int, ...]:
    return read_sequence(session, schema, name).state


@pytest.fixture
def pair(make_server: MakeServer) -> Iterator[tuple[MySQLSession, MySQLSession, LocalServer, LocalServer]]:
    source = make_server("source", 1)
    target = make_server("target", 2, extra_args=TARGET_ARGS)
    with MySQLSession(admin_endpoint(source)) as src, MySQLSession(admin_endpoint(target)) as tgt:
        yield src, tgt, source, target


def test_the_schema_copy_creates_each_sequence_with_its_state_before_the_tables(
    pair: tuple[MySQLSession, MySQLSession, LocalServer, LocalServer],
) -> None:
    src, tgt, source, _ = pair
    source.execute(*SEQUENCES, *USE_THEM)
    assert [t.name for t in base_tables(src, ["app"])] == ["orders", "t"]  # sequences are no tables to chunk
    assert state(src, "tiny")[-1] == 2  # cycle_count
    assert compare_sequences(src, tgt, ["app"]) == [
        f"sequence app.{name} is missing on the target" for name in ("down", "plain", "stepped", "tiny")
    ]

    copy_schema(src, tgt, ["app"])  # orders' DEFAULT NEXTVAL(app.plain) needs the sequence first
    assert compare_sequences(src, tgt, ["app"]) == []
    assert list_sequences(tgt, ["app"]) == list_sequences(src, ["app"])
    for name in ("stepped", "plain", "down", "tiny"):
        assert tgt.one(f"SHOW CREATE SEQUENCE app.{name}") == src.one(f"SHOW CREATE SEQUENCE app.{name}")
    copy_schema(src, tgt, ["app"])  # a resumed step 6: the same state again
    assert compare_sequences(src, tgt, ["app"]) == []
    # The target goes on where the source's stored state is: never a value the source handed out.
    assert tgt.value("SELECT NEXTVAL(app.stepped)") == state(src, "stepped")[0] == 5005
    assert tgt.value("SELECT NEXTVAL(app.down)") == -2
    tgt.execute("INSERT INTO app.orders (note) VALUES ('on target')")
    assert tgt.value("SELECT id FROM app.orders") == 1001  # source used 1-3 from a cache of 1000

    differences = compare_sequences(src, tgt, ["app"])
    assert any(d.startswith("sequence app.stepped: source next_not_cached_value=5005,") for d in differences)
    tgt.execute("DROP SEQUENCE app.tiny")
    tgt.execute("CREATE SEQUENCE app.extra")
    assert {"sequence app.tiny is missing on the target", "sequence app.extra exists on the target only"} <= set(
        compare_sequences(src, tgt, ["app"])
    )


def test_the_applier_keeps_sequences_in_step_with_the_source(
    pair: tuple[MySQLSession, MySQLSession, LocalServer, LocalServer], tmp_path: Path
) -> None:
    """From the snapshot's coordinates, every sequence change of the source arrives by row events or DDL."""
    src, tgt, source, target = pair
    source.execute(*SEQUENCES, *USE_THEM)
    start = master_status(source)  # the source is the frozen snapshot here: nothing written since

    copy_schema(src, tgt, ["app"])
    source.execute(
        *USE_THEM,
        *(["INSERT INTO app.orders (note) VALUES ('x')"] * 5),
        # NEXTVAL outside a table write, in a transaction rolled back: the sequence's change stays.
        "BEGIN",
        "INSERT INTO app.t VALUES (1)",
        "SELECT NEXTVAL(app.stepped)",
        "ROLLBACK",
        "SELECT SETVAL(app.down, -500)",
        "SELECT SETVAL(app.tiny, 1, 0, 7)",
        "ALTER SEQUENCE app.stepped RESTART WITH 700 INCREMENT BY 7",
        "SELECT NEXTVAL(app.stepped)",
        "CREATE SEQUENCE app.later START WITH 40",
        "SELECT NEXTVAL(app.later)",
        "DROP SEQUENCE app.plain",
        "CREATE SEQUENCE app.plain START WITH 9000",
        "INSERT INTO app.orders (note) VALUES ('after')",
    )
    archive = tmp_path / "archive"
    copy_binlogs(source, archive)
    applier = make_applier(target, archive, SnapshotCoordinates(*start), tmp_path, group_commit=4)
    applier.apply_available()
    assert applier.applied_position() == master_status(source)
    assert compare_sequences(src, tgt, ["app"]) == []
    # The rows written before the snapshot were not copied here (schema only): the rest are equal.
    after_snapshot = "SELECT * FROM app.orders WHERE id > 3 ORDER BY id"
    assert tgt.rows(after_snapshot) == src.rows(after_snapshot) and len(src.rows(after_snapshot)) == 9
    assert tgt.value("SELECT MAX(id) FROM app.orders") == 9000
    assert tgt.value("SELECT NEXTVAL(app.later)") == state(src, "later")[0]
    assert tgt.value("SELECT NEXTVAL(app.plain)") == state(src, "plain")[0]


# --- end to end: a writer uses a sequence during the whole migration ------------------------------


class SequenceWriter:
    """Inserts rows keyed by NEXTVAL into the source, as the application would, until the write pause.

    Every 25th operation is a bare NEXTVAL (a value no row gets). It stops at the pause (the source
    turns read-only: 1290), so the source's sequence state afterwards is its final one.
    """

    def __init__(self, source: LocalServer) -> None:
        self.source = source
        self.ids: list[int] = []  # acknowledged inserts
        self.bare = 0
        self.stopped_by: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = pymysql.connect(
            host="127.0.0.1", port=self.source.port, user=APP_USER, password=APP_PASSWORD, autocommit=True
        )
        n = 0
        try:
            with conn.cursor() as cur:
                while not self._stop.is_set():
                    n += 1
                    try:
                        if n % 25 == 0:
                            cur.execute("SELECT NEXTVAL(shop.order_seq)")
                            self.bare += 1
                            continue
                        cur.execute(
                            "INSERT INTO shop.seq_orders VALUES (NEXTVAL(shop.order_seq), %s)", (f"n{n}",)
                        )
                        cur.execute("SELECT PREVIOUS VALUE FOR shop.order_seq")
                        row: Any = cur.fetchone()
                        self.ids.append(int(row[0]))
                    except pymysql.err.MySQLError as exc:
                        self.stopped_by = str(exc)
                        return
                    time.sleep(0.005)
        finally:
            conn.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@pytest.fixture
def sandbox(make_server: MakeServer, tmp_path: Path) -> Iterator[Sandbox]:
    # No rollback window: it would replicate the target's sequences back to the source, and the test's last
    # check is that `verify` sees the two apart once the target moves on.
    box = make_sandbox(make_server, tmp_path, rollback={"enabled": False})
    box.source.execute(
        "CREATE SEQUENCE shop.order_seq START WITH 1000 INCREMENT BY 3 CACHE 20",
        "CREATE SEQUENCE shop.idle_seq START WITH 5 NOCACHE",
        # No DEFAULT NEXTVAL(...) here: the local platform builds its replica with mariadb-dump, whose
        # LOCK TABLES around the INSERTs leaves the sequence unlocked (1100 on load; the schema copy
        # and applier tests above cover such a default).
        "CREATE TABLE shop.seq_orders (id BIGINT NOT NULL PRIMARY KEY, note VARCHAR(20) NOT NULL)",
        "INSERT INTO shop.seq_orders VALUES (NEXTVAL(shop.order_seq), 'before')",
    )
    yield box
    stop_local_replicas(box)


def test_a_sequence_used_during_the_migration_arrives_in_step_and_works_after_the_cutover(sandbox: Sandbox) -> None:
    writer = SequenceWriter(sandbox.source)
    writer.start()
    result = sandbox.cli("run")
    writer.stop()
    assert result.returncode == EXIT_OK, result.stderr[-3000:]
    assert writer.stopped_by is not None and "1290" in writer.stopped_by  # it wrote until the pause
    assert len(writer.ids) > 100 and writer.bare > 3
    assert Journal.open_readonly(sandbox.workdir / "journal.sqlite").facts()["verification"]["ok"] is True
    with MySQLSession(admin_endpoint(sandbox.target)) as tgt, MySQLSession(admin_endpoint(sandbox.source)) as src:
        # The target's sequences are in the source's final state ...
        assert compare_sequences(src, tgt, ["shop"]) == []
        assert read_sequence(tgt, "shop", "order_seq").state == read_sequence(src, "shop", "order_seq").state
        # ... every acknowledged row is there once, under the id the sequence gave it ...
        on_target = [int(r[0]) for r in tgt.rows("SELECT id FROM shop.seq_orders WHERE note <> 'before'")]
        assert sorted(on_target) == sorted(writer.ids)
        assert verify_json(sandbox)["sequence_differences"] == []
        # ... and NEXTVAL works there, beyond every value the source handed out.
        tgt.execute("INSERT INTO shop.seq_orders VALUES (NEXTVAL(shop.order_seq), 'after')")
        assert int(tgt.value("SELECT id FROM shop.seq_orders WHERE note = 'after'")) > max(writer.ids)
        assert int(tgt.value("SELECT NEXTVAL(shop.idle_seq)")) == 5
    # `migrator verify` now sees the target's sequences ahead of the (paused) source's.
    seen = verify_json(sandbox)
    assert [d.split(":")[0] for d in seen["sequence_differences"]] == [
        "sequence shop.idle_seq",
        "sequence shop.order_seq",
    ]
    assert seen["in_sync"] is False
    # The text answer names them too: an operator reading it must see why it is not in sync.
    text = sandbox.cli("verify", "--no-checksums")
    assert text.returncode != EXIT_OK
    assert "sequence shop.order_seq: source" in text.stdout and "NOT IN SYNC" in text.stdout, text.stdout


def verify_json(box: Sandbox) -> dict[str, Any]:
    result = box.cli("verify", "--json", "--no-checksums")
    assert result.stdout, result.stderr[-2000:]
    data: dict[str, Any] = json.loads(result.stdout)
    return data
