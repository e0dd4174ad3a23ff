"""The settings of the connection tail and the rollback window: parsed once, every bad value named."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.config import load
from migrator.errors import ConfigError

BASE = """
[migration]
schemas = ["shop"]
[source]
host = "127.0.0.1"
user = "migrator"
password = "s"
[target]
host = "10.0.0.5"
user = "migrator"
password = "t"
[dns]
record = "db.example.internal"
target_value = "10.0.0.5"
"""


def load_text(tmp_path: Path, extra: str) -> object:
    path = tmp_path / "m.toml"
    path.write_text(BASE + extra)
    return load(path)


def test_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, "")
    assert config.cutover.connection_grace_seconds == 30  # type: ignore[attr-defined]
    assert config.cutover.xa_wait_seconds == 10  # type: ignore[attr-defined]
    window = config.rollback  # type: ignore[attr-defined]
    assert window.enabled and window.user == "" and window.target_host == "" and window.target_port == 0


def test_a_replication_account_and_its_address(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        '[cutover]\nconnection_grace_seconds = 0\n[rollback]\nuser = "repl"\npassword = "r-secret"\n'
        'target_host = "10.1.2.3"\ntarget_port = 3307\nssl = true\n',
    )
    window = config.rollback  # type: ignore[attr-defined]
    assert (window.user, window.password.reveal(), window.target_host, window.target_port, window.ssl) == (
        "repl", "r-secret", "10.1.2.3", 3307, True
    )
    assert config.cutover.connection_grace_seconds == 0  # type: ignore[attr-defined]
    assert "r-secret" not in repr(config.summary())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[cutover]\nconnection_grace_seconds = -1\n", "cutover.connection_grace_seconds must be >= 0"),
        ("[cutover]\nxa_wait_seconds = -1\n", "cutover.xa_wait_seconds must be >= 0"),
        ('[rollback]\nuser = "repl"\n', "rollback.user is set but no rollback.password"),
        ("[rollback]\ntarget_port = 70000\n", "rollback.target_port must be 0-65535"),
        ('[rollback]\nenabled = "yes"\n', "rollback.enabled must be bool"),
        ("[rollback]\nlag = 3\n", "unknown key(s) in [rollback]: lag"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_text(tmp_path, extra)
    assert message in exc.value.message
