"""Broker files (pure): Mosquitto-compatible PBKDF2 hashes, one ACL prefix per gateway."""

from __future__ import annotations

import base64
import hashlib

import pytest

from safewatch.registry.broker import (
    BrokerAccount,
    acl_file,
    broker_files,
    emqx_acl,
    emqx_user_row,
    mosquitto_hash,
    password_file,
    verify_mosquitto_hash,
)

# Written by `mosquitto_passwd -b` (Mosquitto 2.0.11) for user gw1, password "secret".
MOSQUITTO_PASSWD_LINE = ("gw1:$7$101$mnaH54/o2dN2ytGJ$GsPWshAb+HXCT78rnkI9PXx7u05lKJ1fKlxTbK0N1fESY6jnmObzt9JSnJdhO4"
                         "fv2xdXePBj7upBtrNfG+s4fA==")


def test_hash_matches_mosquitto_passwd() -> None:
    encoded = MOSQUITTO_PASSWD_LINE.split(":", 1)[1]
    salt = base64.b64decode(encoded.split("$")[3])
    assert mosquitto_hash("secret", salt=salt, iterations=101) == encoded
    assert verify_mosquitto_hash(encoded, "secret")
    assert not verify_mosquitto_hash(encoded, "Secret")


def test_fresh_hashes_are_salted() -> None:
    a, b = mosquitto_hash("pw"), mosquitto_hash("pw")
    assert a != b and a.startswith("$7$10000$")
    assert verify_mosquitto_hash(a, "pw") and verify_mosquitto_hash(b, "pw")
    assert not verify_mosquitto_hash("$6$abc$def", "pw")


def test_files() -> None:
    accounts = [BrokerAccount("gw-a", "$7$1$x$y", "150100"), BrokerAccount("ingest", "$7$1$p$q")]
    assert password_file(accounts) == "gw-a:$7$1$x$y\ningest:$7$1$p$q\n"
    acl = acl_file(accounts)
    assert "user gw-a\ntopic write se/v1/150100/gw-a/#\n" in acl
    assert "user ingest\ntopic read se/v1/+/+/+\ntopic read $share/+/se/v1/+/+/+\n" in acl
    # Gateways get nothing but their own prefix.
    gateway_block = acl.split("user gw-a\n")[1].split("\n\n")[0]
    assert gateway_block == "topic write se/v1/150100/gw-a/#"


def test_unsafe_username_refused() -> None:
    with pytest.raises(ValueError, match="not a valid id"):
        password_file([BrokerAccount("bad:name", "$7$1$x$y", "150100")])


def test_emqx_equivalents() -> None:
    encoded = mosquitto_hash("pw", iterations=10_000)
    user, digest_hex, salt, superuser = emqx_user_row("gw-a", encoded)
    assert (user, superuser) == ("gw-a", "false")
    # What EMQX's pbkdf2 authenticator (sha512, 10000 iterations, dk_length 64) computes from the import row.
    assert hashlib.pbkdf2_hmac("sha512", b"pw", salt.encode(), 10_000).hex() == digest_hex
    acl = emqx_acl([BrokerAccount("gw-a", encoded, "150100"), BrokerAccount("ingest", encoded)])
    assert '{allow, {username, "gw-a"}, publish, ["se/v1/150100/gw-a/#"]}.' in acl
    assert acl.rstrip().endswith("{deny, all}.")


def test_only_the_notifier_writes_alerts_and_ingest_alerts_only_read() -> None:
    names = ["ingest", "alerts", "notifier", "simulator", "operator"]
    acl = acl_file([BrokerAccount(n, "$7$1$x$y") for n in names])
    blocks = {b.strip().split("\n")[0].removeprefix("user "): b.strip().split("\n")[1:] for b in acl.split("\n\n")[1:]}
    writes = {n: [line for line in lines if line.startswith("topic write")] for n, lines in blocks.items()}
    assert writes == {"ingest": [], "alerts": [], "operator": [], "notifier": ["topic write se/v1/alerts/#"],
                      "simulator": ["topic write se/v1/+/+/telemetry", "topic write se/v1/+/+/event",
                                    "topic write se/v1/+/+/status"]}
    assert blocks["operator"] == ["topic read se/v1/#"]
    assert blocks["notifier"] == ["topic write se/v1/alerts/#"]  # publishes; reads nothing


def test_per_listener_files_keep_gateways_and_services_apart() -> None:
    files = dict(broker_files([BrokerAccount("gw-a", "$7$1$x$y", "150100"), BrokerAccount("ingest", "$7$1$p$q")]))
    assert files["gateways.passwd"] == "gw-a:$7$1$x$y\n"
    assert files["services.passwd"] == "ingest:$7$1$p$q\n"
    assert "ingest" not in files["gateways.acl"] and "gw-a" not in files["services.acl"]
    assert files["health.acl"].endswith("topic read $SYS/broker/uptime\n")
    assert files["passwd"] == "gw-a:$7$1$x$y\ningest:$7$1$p$q\n"  # one listener: both kinds together
