"""The shipped Mosquitto configuration (pure): locked down as shipped, local-only for the demo and the tests."""

from __future__ import annotations

import re
from pathlib import Path

from safewatch.registry.broker_conf import (
    LISTENERS_MARKER,
    debian_dropin,
    delivery_settings,
    local_conf,
    main_conf_problems,
    rebased_conf,
)

SHIPPED = (Path(__file__).resolve().parents[3] / "deploy" / "mosquitto" / "mosquitto.conf").read_text(encoding="utf-8")


def listeners(text: str) -> dict[str, list[str]]:
    """Each ``listener`` line with the directives that follow it (up to the next listener)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("listener "):
            current = line
            out[current] = []
        elif current and line and not line.startswith("#"):
            out[current].append(line)
    return out


def test_the_shipped_listeners_are_locked_down() -> None:
    # Before the first listener: Mosquitto applies it to the listeners that follow.
    assert LISTENERS_MARKER in SHIPPED
    assert 0 < SHIPPED.index("\nper_listener_settings true\n") < SHIPPED.index("\nlistener ")
    found = listeners(SHIPPED)
    assert set(found) == {"listener 1883", "listener 8883", "listener 1880 127.0.0.1"}
    services, gateways, health = found["listener 1883"], found["listener 8883"], found["listener 1880 127.0.0.1"]
    for directives in (services, gateways):
        assert "allow_anonymous false" in directives
        assert any(d.startswith("password_file ") for d in directives)
        assert any(d.startswith("acl_file ") for d in directives)
    assert "use_username_as_clientid true" in gateways
    assert {d.split()[0] for d in gateways} >= {"cafile", "certfile", "keyfile"}
    assert "services.passwd" in " ".join(services) and "gateways.passwd" in " ".join(gateways)
    # The anonymous one is bound to loopback and its ACL file is the health check's.
    assert health == ["allow_anonymous true", "acl_file /mosquitto/config/safewatch/health.acl"]


def test_local_conf_keeps_delivery_settings_and_listens_on_loopback_only(tmp_path: Path) -> None:
    text = local_conf(SHIPPED, port=41883, data_dir=tmp_path)
    assert listeners(text) == {"listener 41883 127.0.0.1": ["allow_anonymous true"]}
    for setting in ("max_queued_messages 2000000", "persistence true", "persistent_client_expiration 7d"):
        assert setting in text
    assert f"persistence_location {tmp_path}/" in text
    assert not re.search(r"(?m)^(password_file|acl_file|per_listener_settings|cafile)", text)


def test_delivery_settings_of_an_older_file_drop_its_listeners() -> None:
    old = "persistence true\nlistener 1883\nallow_anonymous true\nmax_queued_messages 5\n"
    assert delivery_settings(old) == "persistence true\nmax_queued_messages 5\n"


def test_rebased_conf_moves_every_listener_and_path(tmp_path: Path) -> None:
    text = rebased_conf(SHIPPED, files_dir=tmp_path / "files", data_dir=tmp_path / "data",
                        ports={1883: 1, 8883: 2, 1880: 3})
    assert set(listeners(text)) == {"listener 1 127.0.0.1", "listener 2 127.0.0.1", "listener 3 127.0.0.1"}
    assert "/mosquitto/" not in text.replace("mosquitto.conf", "")
    assert f"password_file {tmp_path}/files/gateways.passwd" in text


def test_the_debian_dropin_binds_only_the_gateways_listener_beyond_loopback(tmp_path: Path) -> None:
    text = debian_dropin(SHIPPED, files_dir=tmp_path, ports={1883: 1883, 8883: 8883, 1880: 1880},
                         bind={1883: "127.0.0.1", 8883: "", 1880: "127.0.0.1"})
    assert set(listeners(text)) == {"listener 1883 127.0.0.1", "listener 8883", "listener 1880 127.0.0.1"}
    # Debian's own mosquitto.conf sets these before its include_dir: Mosquitto refuses them a second time.
    assert not re.search(r"(?m)^persistence(_location)?\b", text)
    assert "max_queued_messages 2000000" in text and "per_listener_settings true" in text
    assert f"keyfile {tmp_path}/tls/server.key" in text and "/mosquitto/" not in text


DEBIAN_MAIN = """# Place your local configuration in /etc/mosquitto/conf.d/
pid_file /run/mosquitto/mosquitto.pid

persistence true
persistence_location /var/lib/mosquitto/

log_dest file /var/log/mosquitto/mosquitto.log

include_dir /etc/mosquitto/conf.d
"""


def test_debians_own_mosquitto_conf_takes_the_dropin_and_an_edited_one_is_named() -> None:
    conf_d = Path("/etc/mosquitto/conf.d")
    assert main_conf_problems(DEBIAN_MAIN, conf_d=conf_d) == []
    edited = DEBIAN_MAIN.replace("include_dir /etc/mosquitto/conf.d\n", "listener 1883\nallow_anonymous true\n")
    missing, own = main_conf_problems(edited, conf_d=conf_d)
    assert "include_dir /etc/mosquitto/conf.d" in missing
    assert "allow_anonymous, listener" in own and "restore the file Debian ships" in own
