"""Where a MySQL server is and how to log in: the one shape every adapter takes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from migrator.secrets import Secret


@dataclass(frozen=True)
class Tls:
    ca_file: Path | None = None
    verify_identity: bool = True


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    password: Secret
    tls: Tls | None = None

    def describe(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def with_address(self, host: str, port: int) -> Endpoint:
        return Endpoint(host=host, port=port, user=self.user, password=self.password, tls=self.tls)
