"""Credentials for the MySQL command-line tools, in a 0600 file in a 0700 directory, never in argv.

``--defaults-extra-file`` must be the first option the tool sees. The file is removed on exit.
TLS options differ by product (migrator/tools/client_tools.py): MariaDB's tools take ``ssl`` and
``ssl-verify-server-cert``; Oracle's 8.0+ removed both (WL#9091: an unknown option is fatal) and take
``ssl-mode``, which is also written as DISABLED without TLS, since their default, PREFERRED, would be
unverified TLS that silently falls back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from migrator.endpoint import Endpoint, Tls


def _escape(value: str) -> str:
    # Option files treat a quoted value's backslash escapes; quote so '#' and spaces survive.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DefaultsFile:
    """``with DefaultsFile(endpoint) as path:`` gives a path to pass as ``--defaults-extra-file``."""

    def __init__(self, endpoint: Endpoint, *, parent: Path | None = None, product: str = "mariadb") -> None:
        self.endpoint = endpoint
        self.product = product
        self.parent = parent
        self._dir: Path | None = None
        self.path: Path | None = None

    def __enter__(self) -> Path:
        if self.parent is not None:
            self.parent.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="migrator-cred-", dir=self.parent))
        os.chmod(self._dir, 0o700)
        self.path = self._dir / "client.cnf"
        lines = [
            "[client]",
            f"host={self.endpoint.host}",
            f"port={self.endpoint.port}",
            f"user={_escape(self.endpoint.user)}",
            f"password={_escape(self.endpoint.password.reveal())}",
            "protocol=TCP",
        ]
        lines += tls_lines(self.endpoint.tls, self.product)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return self.path

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)


def tls_lines(tls: Tls | None, product: str) -> list[str]:
    if product == "mysql":
        if tls is None:
            return ["ssl-mode=DISABLED"]
        mode = "VERIFY_IDENTITY" if tls.verify_identity else "VERIFY_CA" if tls.ca_file else "REQUIRED"
        return [f"ssl-mode={mode}", *([f"ssl-ca={tls.ca_file}"] if tls.ca_file else [])]
    if tls is None:
        return []
    lines = ["ssl"]
    if tls.ca_file:
        lines.append(f"ssl-ca={tls.ca_file}")
    if tls.verify_identity:
        lines.append("ssl-verify-server-cert")
    return lines
