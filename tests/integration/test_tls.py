"""TLS as configured: verified against the configured CA for pymysql sessions and the MySQL tools alike."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pymysql
import pytest

from migrator.copy import SELECT_TSV, find_select_tsv
from migrator.endpoint import Endpoint, Tls
from migrator.mysql.session import MySQLSession
from migrator.platforms.local_server import find_binary
from migrator.secrets import Secret
from migrator.tools.defaults_file import DefaultsFile
from tests.conftest import ADMIN_PASSWORD, ADMIN_USER, MakeServer

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name} CA",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


def make_server_cert(directory: Path, ca_key: Path, ca_cert: Path) -> tuple[Path, Path]:
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(csr)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)],
                   check=True, capture_output=True)
    return key, cert


@pytest.fixture
def tls_server(make_server: MakeServer, tmp_path: Path) -> tuple[int, Path]:
    ca_key, ca_cert = make_ca(tmp_path, "test")
    key, cert = make_server_cert(tmp_path, ca_key, ca_cert)
    server = make_server("tls", 1, extra_args=(f"--ssl-ca={ca_cert}", f"--ssl-cert={cert}", f"--ssl-key={key}",
                                                 "--require-secure-transport=ON"))
    return server.port, ca_cert


def endpoint(port: int, tls: Tls | None) -> Endpoint:
    return Endpoint("127.0.0.1", port, ADMIN_USER, Secret(ADMIN_PASSWORD), tls)


def test_session_verifies_the_server_against_the_configured_ca(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    with MySQLSession(endpoint(port, Tls(ca_file=ca, verify_identity=True))) as s:
        assert s.one("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[1]  # type: ignore[index]


def test_plaintext_is_never_a_silent_fallback(tls_server: tuple[int, Path]) -> None:
    port, _ca = tls_server
    with pytest.raises(pymysql.err.OperationalError):
        MySQLSession(endpoint(port, None))  # the server requires TLS; no TLS configured means none is tried


def test_a_server_signed_by_another_ca_is_refused(tls_server: tuple[int, Path], tmp_path: Path) -> None:
    port, _ca = tls_server
    other = tmp_path / "other"
    other.mkdir()
    _key, other_ca = make_ca(other, "other")
    with pytest.raises((pymysql.err.OperationalError, ssl.SSLError)):
        MySQLSession(endpoint(port, Tls(ca_file=other_ca, verify_identity=True)))


def test_command_line_tools_use_tls_from_the_defaults_file(tls_server: tuple[int, Path], tmp_path: Path) -> None:
    port, ca = tls_server
    with DefaultsFile(endpoint(port, Tls(ca_file=ca, verify_identity=True)), parent=tmp_path) as cnf:
        assert oct(cnf.stat().st_mode & 0o777) == "0o600"
        result = subprocess.run([find_binary("mariadb", "mysql"), f"--defaults-extra-file={cnf}", "-N", "-e",
                                 "SHOW SESSION STATUS LIKE 'Ssl_cipher'"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\t")[1].strip()
    assert not cnf.parent.exists()  # removed on exit


def test_the_fast_select_uses_tls_and_verifies_the_ca(tls_server: tuple[int, Path], tmp_path: Path) -> None:
    tool = find_select_tsv()
    if tool is None:
        pytest.skip(f"{SELECT_TSV} is not built: scripts/bootstrap.sh builds it")
    port, ca = tls_server
    query = "--execute=SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'"
    with DefaultsFile(endpoint(port, Tls(ca_file=ca, verify_identity=True)), parent=tmp_path) as cnf:
        result = subprocess.run([tool, f"--defaults-extra-file={cnf}", "--ssl", query],
                                capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() not in ("", "\\N")  # a cipher was negotiated
    other = tmp_path / "other"
    other.mkdir()
    _key, other_ca = make_ca(other, "other")
    with DefaultsFile(endpoint(port, Tls(ca_file=other_ca, verify_identity=True)), parent=tmp_path) as cnf:
        refused = subprocess.run([tool, f"--defaults-extra-file={cnf}", "--ssl", query],
                                 capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("ERROR 2026"), refused.stderr  # the TLS handshake failed
