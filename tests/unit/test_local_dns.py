"""The sandbox's DNS file: atomic replacement, clear errors, and the resolve() the workload relies on."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from migrator.dns.local import LocalDns, create, parse_address, resolve
from migrator.errors import EXIT_BAD_INPUT, PreflightFailed
from migrator.ports import DnsRecord

NAME = "db.sandbox.internal"


def test_create_then_read_and_resolve(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    create(path, DnsRecord(NAME, "127.0.0.1:40001", ttl=60))

    dns = LocalDns(path)
    assert dns.read(NAME) == DnsRecord(NAME, "127.0.0.1:40001", ttl=60, record_type="CNAME")
    assert resolve(path, NAME) == ("127.0.0.1", 40001)
    on_disk = json.loads(path.read_text())
    assert on_disk[NAME]["value"] == "127.0.0.1:40001"
    assert on_disk[NAME]["ttl"] == 60
    assert on_disk[NAME]["type"] == "CNAME"


def test_upsert_replaces_the_record_keeps_others_and_is_in_sync(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    create(path, DnsRecord(NAME, "127.0.0.1:40001", ttl=300))
    create(path, DnsRecord("other.sandbox", "127.0.0.1:40009", ttl=60))
    dns = LocalDns(path)

    change_id = dns.upsert(DnsRecord(NAME, "127.0.0.1:40002", ttl=5))

    assert dns.in_sync(change_id)
    assert dns.read(NAME).value == "127.0.0.1:40002"
    assert dns.read(NAME).ttl == 5
    assert resolve(path, NAME) == ("127.0.0.1", 40002)
    assert resolve(path, "other.sandbox") == ("127.0.0.1", 40009)
    # Nothing but the file and its writer lock is left behind: no temp files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dns.json", "dns.json.lock"]
    # Every write gets a new, larger change id; an id from the future is not in sync yet.
    later = dns.upsert(DnsRecord(NAME, "127.0.0.1:40003", ttl=5))
    assert int(later.removeprefix("local-")) > int(change_id.removeprefix("local-"))
    assert dns.in_sync(change_id)
    assert not dns.in_sync("local-999")


def test_missing_record_is_a_clear_preflight_failure(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    dns = LocalDns(path)
    with pytest.raises(PreflightFailed) as missing_file:
        dns.read(NAME)
    assert NAME in str(missing_file.value)
    assert str(path) in str(missing_file.value)
    assert missing_file.value.exit_code == EXIT_BAD_INPUT

    create(path, DnsRecord("elsewhere.sandbox", "127.0.0.1:1", ttl=60))
    with pytest.raises(PreflightFailed, match=r"db\.sandbox\.internal.*not found.*elsewhere\.sandbox"):
        resolve(path, NAME)


def test_corrupt_file_and_bad_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    path.write_text("{not json")
    with pytest.raises(PreflightFailed, match="not valid JSON"):
        LocalDns(path).read(NAME)

    good = tmp_path / "good.json"
    create(good, DnsRecord(NAME, "127.0.0.1:40001", ttl=60))
    with pytest.raises(PreflightFailed, match="not host:port"):
        LocalDns(good).upsert(DnsRecord(NAME, "db.example.com", ttl=60))
    assert resolve(good, NAME) == ("127.0.0.1", 40001)  # the refused upsert changed nothing
    with pytest.raises(PreflightFailed):
        LocalDns(good).in_sync("C0123ROUTE53")


def test_parse_address_handles_ipv6_brackets() -> None:
    assert parse_address("[::1]:3307") == ("::1", 3307)
    assert parse_address("localhost:3306") == ("localhost", 3306)


def test_readers_never_see_a_partial_file_while_writers_race(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    create(path, DnsRecord(NAME, "127.0.0.1:50000", ttl=60))
    dns = LocalDns(path)
    stop = threading.Event()
    seen: set[int] = set()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.add(resolve(path, NAME)[1])
            except BaseException as exc:
                errors.append(exc)
                return

    def writer(offset: int) -> None:
        for i in range(100):
            dns.upsert(DnsRecord(NAME, f"127.0.0.1:{50000 + offset + i}", ttl=60))
            dns.upsert(DnsRecord(f"w{offset}.sandbox", f"127.0.0.1:{i + 1}", ttl=60))

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(offset,)) for offset in (1000, 2000)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()

    assert errors == []
    assert len(seen) > 1  # the readers really overlapped the writes
    # Both writers' last records survived: the lock serialised read-modify-write.
    assert resolve(path, "w1000.sandbox") == ("127.0.0.1", 100)
    assert resolve(path, "w2000.sandbox") == ("127.0.0.1", 100)
    assert dns.in_sync("local-401")  # 1 create + 2 writers x 200 upserts
