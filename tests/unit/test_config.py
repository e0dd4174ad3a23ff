from __future__ import annotations

import os
from pathlib import Path

import pytest

from migrator.config import load
from migrator.errors import EXIT_BAD_INPUT, ConfigError

MINIMAL = """
[migration]
schemas = ["shop"]
[source]
host = "127.0.0.1"
port = 3307
user = "migrator"
password_env = "TEST_SOURCE_PW"
[target]
host = "10.0.0.5"
user = "migrator"
password_file = "target.pw"
[dns]
record = "db.example.internal"
target_value = "10.0.0.5"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text)
    (tmp_path / "target.pw").write_text("t-secret\n")
    return path


@pytest.fixture(autouse=True)
def source_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SOURCE_PW", "s-secret")


def test_minimal_config_parses_with_defaults(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, MINIMAL))
    assert cfg.migration.schemas == ("shop",)
    assert cfg.migration.platform == "local"
    assert cfg.source.port == 3307 and cfg.target.port == 3306
    assert cfg.source.password.reveal() == "s-secret"
    assert cfg.target.password.reveal() == "t-secret"
    assert cfg.copy.workers == 2
    assert cfg.sync.poll_seconds == 1.0
    assert cfg.workdir == tmp_path / ".migrator"
    assert cfg.dns.file == tmp_path / ".migrator" / "dns.json"


def test_secrets_never_print(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, MINIMAL))
    text = repr(cfg) + str(cfg.summary())
    assert "s-secret" not in text and "t-secret" not in text


def test_fingerprint_changes_with_target_not_with_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load(write(tmp_path, MINIMAL)).fingerprint()
    monkeypatch.setenv("TEST_SOURCE_PW", "another")
    assert load(write(tmp_path, MINIMAL)).fingerprint() == first
    assert load(write(tmp_path, MINIMAL.replace("10.0.0.5", "10.0.0.6"))).fingerprint() != first


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace("[migration]", "[migration]\nbogus = 1"),
            "unknown key(s) in [migration]: bogus",
        ),
        (lambda t: t + "\n[extras]\nx=1\n", "unknown section(s): extras"),
        (lambda t: t.replace("port = 3307", 'port = "3307"'), "source.port must be int, got str"),
        (lambda t: t.replace("port = 3307", "port = 70000"), "source.port must be 0-65535"),
        (
            lambda t: t.replace('schemas = ["shop"]', "schemas = []"),
            "migration.schemas must list at least one",
        ),
        (
            lambda t: t.replace('schemas = ["shop"]', 'schemas = ["mysql"]'),
            "must not include system schemas: mysql",
        ),
        (lambda t: t.replace('user = "migrator"\npassword_env', "password_env"), "source.user is required"),
        (
            lambda t: t.replace("TEST_SOURCE_PW", "NOT_SET_ANYWHERE_PW"),
            "NOT_SET_ANYWHERE_PW, which is not set",
        ),
        (lambda t: t.replace("target.pw", "missing.pw"), "cannot read"),
        (
            lambda t: t.replace("[migration]", '[migration]\nplatform = "gcp"'),
            "migration.platform must be one of local, rds",
        ),
        (lambda t: t.replace("[migration]", '[migration]\nplatform = "rds"'), "there is no [rds] section"),
        (lambda t: t + "\n[copy]\nworkers = 0\n", "copy.workers must be > 0"),
        (lambda t: t + "\n[copy]\nworkers = true\n", "copy.workers must be int, got bool"),
        (lambda t: t + "\n[sync]\npoll_seconds = 0\n", "sync.poll_seconds must be between 0.01 and 60"),
        (lambda t: t + "\n[cutover]\nread_only = false\n", "nothing would pause writes"),
        (lambda t: t + '\n[definers]\nfallback = "root"\n', "definers.fallback must look like user@host"),
        (
            lambda t: t.replace("record = ", 'provider = "route53"\nrecord = '),
            "dns.hosted_zone_id is required",
        ),
        (lambda t: t.replace("[dns]\n", ""), "section [dns] is required"),
        (lambda t: t + 'resolvers = ["10.0.0.2"]\n', "dns.resolvers confirms a Route53 change"),
        (lambda t: t + "\nthis is = not toml [", "invalid TOML"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, edit(MINIMAL))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.exit_code == EXIT_BAD_INPUT


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_password_literal_and_env_conflict(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'password_env = "TEST_SOURCE_PW"', 'password_env = "TEST_SOURCE_PW"\npassword = "x"'
    )
    with pytest.raises(ConfigError, match="give only one of"):
        load(write(tmp_path, text))


def test_example_configs_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[2] / "configs"
    for env in ("MIGRATOR_SOURCE_PASSWORD", "MIGRATOR_TARGET_PASSWORD"):
        monkeypatch.setenv(env, "x")
    for path in sorted(root.glob("*.toml")):
        assert load(path).migration.schemas, path
    assert os.environ["MIGRATOR_SOURCE_PASSWORD"] == "x"
