"""The narrow interfaces steps see. Real adapters and test fakes both implement them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from migrator.endpoint import Endpoint


@dataclass(frozen=True)
class SnapshotCoordinates:
    """The source position the frozen snapshot corresponds to: apply starts exactly here."""

    file: str
    position: int
    gtid: str | None = None


@dataclass(frozen=True)
class ReplicaHandle:
    identifier: str  # RDS instance identifier, or the local replica's name
    endpoint: Endpoint


@dataclass(frozen=True)
class ReplicaState:
    exists: bool
    available: bool  # instance is up and accepting connections
    replicating: bool  # IO and SQL threads running
    lag_seconds: float | None  # None when unknown
    promoted: bool  # standalone: no replication configured


class Platform(Protocol):
    """Where the source lives and how a snapshot replica of it is made (local processes or RDS)."""

    name: str

    def binlog_retention_hours(self) -> int | None: ...

    def set_binlog_retention_hours(self, hours: int) -> None: ...

    def create_replica(self, identifier: str) -> ReplicaHandle:
        """Start creating the replica; adopt one of that identifier if it already exists."""
        ...

    def replica_state(self, identifier: str) -> ReplicaState: ...

    def replica_handle(self, identifier: str) -> ReplicaHandle: ...

    def stop_replication(self, identifier: str) -> SnapshotCoordinates:
        """Stop the replica's replication and return the exact source coordinates it stopped at."""
        ...

    def start_replication(self, identifier: str) -> None:
        """Start the replica's replication again (step 3: a stop point that held a prepared XA transaction)."""
        ...

    def promote(self, identifier: str) -> None: ...

    def set_source_read_only(self, read_only: bool) -> None: ...

    def source_read_only_setting(self) -> dict[str, Any]:
        """The source's read_only as configured now (journaled before step 9 freezes it)."""
        ...

    def restore_source_read_only(self, setting: dict[str, Any]) -> None: ...

    def delete_replica(self, identifier: str, *, final_snapshot: bool) -> None: ...


@dataclass(frozen=True)
class DnsRecord:
    name: str
    value: str  # for the local provider "host:port"; for Route53 the A/CNAME value
    ttl: int
    record_type: str = "CNAME"


class DnsProvider(Protocol):
    name: str

    def read(self, name: str) -> DnsRecord: ...

    def upsert(self, record: DnsRecord) -> str:
        """Write the record; return a change id to poll with ``in_sync``."""
        ...

    def in_sync(self, change_id: str) -> bool: ...
