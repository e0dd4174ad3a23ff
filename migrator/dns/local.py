"""The sandbox's DNS: a JSON file of records that the demo's clients re-read on every connect.

The file maps a name to ``{"value": "127.0.0.1:PORT", "ttl": 60, "type": "CNAME", "change": N}``.
Every write replaces the whole file atomically (temp file, fsync, rename, fsync of the directory),
so a reader sees either the old records or the new ones, never half a file. ``change`` is a
serial number per write; a change id ``local-N`` is in sync once the file holds a change >= N.
Writers serialise on a sidecar lock file so two upserts cannot lose each other's records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from migrator.errors import PreflightFailed
from migrator.ports import DnsRecord

log = structlog.get_logger()

_CHANGE_PREFIX = "local-"


def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PreflightFailed(
            f"local DNS file {path} is not valid JSON: {exc}",
            hint="restore it or delete it and let the sandbox recreate it",
        ) from exc
    if not isinstance(data, dict):
        raise PreflightFailed(f"local DNS file {path} must hold a JSON object of records")
    return data


def _write_atomically(path: Path, records: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(records, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    # The rename is only durable once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _writer_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _record_from(name: str, entry: dict[str, Any]) -> DnsRecord:
    return DnsRecord(
        name=name,
        value=str(entry["value"]),
        ttl=int(entry.get("ttl", 60)),
        record_type=str(entry.get("type", "CNAME")),
    )


def _missing(path: Path, name: str, records: dict[str, dict[str, Any]]) -> PreflightFailed:
    known = ", ".join(sorted(records)) or "none"
    return PreflightFailed(
        f"DNS record {name!r} not found in local DNS file {path} (records there: {known})",
        hint="create it first (the sandbox builder does), or fix dns.record in the config",
    )


def _write_record(path: Path, record: DnsRecord) -> int:
    with _writer_lock(path):
        records = _load(path)
        change = max((int(e.get("change", 0)) for e in records.values()), default=0) + 1
        records[record.name] = {
            "value": record.value,
            "ttl": record.ttl,
            "type": record.record_type,
            "change": change,
        }
        _write_atomically(path, records)
    return change


def create(path: Path, record: DnsRecord) -> str:
    """Write ``record`` (replacing one of the same name); the sandbox builder's entry point."""
    change = _write_record(path, record)
    log.info("dns.local.created", name=record.name, value=record.value, path=str(path))
    return f"{_CHANGE_PREFIX}{change}"


def parse_address(value: str) -> tuple[str, int]:
    """``"127.0.0.1:3307"`` or ``"[::1]:3307"`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise PreflightFailed(f"local DNS value {value!r} is not host:port")
    return host.strip("[]"), int(port)


def resolve(path: Path, name: str) -> tuple[str, int]:
    """Where ``name`` points now; the workload calls this before every transaction."""
    records = _load(path)
    entry = records.get(name)
    if entry is None:
        raise _missing(path, name, records)
    return parse_address(str(entry["value"]))


class LocalDns:
    """``DnsProvider`` over a JSON file: writes are visible (in sync) as soon as they return."""

    name = "local"

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, name: str) -> DnsRecord:
        records = _load(self.path)
        entry = records.get(name)
        if entry is None:
            raise _missing(self.path, name, records)
        return _record_from(name, entry)

    def upsert(self, record: DnsRecord) -> str:
        parse_address(record.value)  # refuse a value our clients could not connect to
        change = _write_record(self.path, record)
        change_id = f"{_CHANGE_PREFIX}{change}"
        log.info(
            "dns.local.upserted", name=record.name, value=record.value, ttl=record.ttl, change_id=change_id
        )
        return change_id

    def in_sync(self, change_id: str) -> bool:
        if not change_id.startswith(_CHANGE_PREFIX) or not change_id[len(_CHANGE_PREFIX):].isdigit():
            raise PreflightFailed(f"{change_id!r} is not a local DNS change id")
        wanted = int(change_id[len(_CHANGE_PREFIX):])
        latest = max((int(e.get("change", 0)) for e in _load(self.path).values()), default=0)
        return latest >= wanted
