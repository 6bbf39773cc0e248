"""Broker accounts from the environment and the operator's certificates (no broker, no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from safewatch.registry.broker import verify_mosquitto_hash
from safewatch.registry.broker_setup import install_operator_certificates, password_env, service_accounts

STRONG = "a-generated-password-0123456789"


def test_required_accounts_need_a_strong_password_and_optional_ones_exist_only_when_set() -> None:
    env = {password_env("ingest"): STRONG, password_env("notifier"): STRONG}
    made = service_accounts(["ingest", "notifier"], ["simulator"], env)
    assert [a.username for a in made] == ["ingest", "notifier"]
    assert all(verify_mosquitto_hash(a.password_hash, STRONG) and not a.is_gateway for a in made)
    assert [a.username for a in service_accounts([], ["simulator"], {password_env("simulator"): STRONG})] == \
        ["simulator"]
    with pytest.raises(ValueError, match="SAFEWATCH_BROKER_PASSWORD_ALERTS"):
        service_accounts(["alerts"], [], env)
    with pytest.raises(ValueError, match="shorter than 16"):
        service_accounts(["ingest"], [], {password_env("ingest"): "short"})


def test_operator_certificates_replace_the_trial_ones(tmp_path: Path) -> None:
    source, tls = tmp_path / "operator", tmp_path / "tls"
    source.mkdir()
    assert not install_operator_certificates(source, tls)  # nothing given: a trial certificate will be made
    tls.mkdir()
    (tls / "ca.crt").write_text("trial ca")
    (source / "server.crt").write_text("operator cert")
    (source / "server.key").write_text("operator key")
    assert install_operator_certificates(source, tls)
    assert (tls / "server.crt").read_text() == "operator cert"
    assert (tls / "server.key").stat().st_mode & 0o077 == 0
    assert not (tls / "ca.crt").exists(), "a publicly signed certificate needs no trial CA beside it"
