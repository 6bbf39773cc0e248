"""Ports, decided without a server: the variable to name, the port the demo takes, what it says when it cannot."""

from __future__ import annotations

import errno
import itertools

from safewatch.demo import api_port_busy_message, choose_port, metrics_ports
from safewatch.runtime import port_unavailable_reason, setting_env_var
from safewatch.settings import AlertSettings, IngestSettings, NotifierSettings, Settings


def test_the_variable_named_is_the_one_pydantic_settings_reads(monkeypatch) -> None:
    assert setting_env_var("alerts", "metrics_port") == "SAFEWATCH_ALERTS__METRICS_PORT"
    monkeypatch.setenv(setting_env_var("alerts", "metrics_port"), "19102")
    monkeypatch.setenv(setting_env_var("api", "port"), "18000")
    settings = Settings()
    assert (settings.alerts.metrics_port, settings.api.port) == (19102, 18000)


def test_a_bind_failure_is_worded_for_an_operator() -> None:
    assert port_unavailable_reason(OSError(errno.EADDRINUSE, "Address already in use")) == "in use by another program"
    assert "root" in port_unavailable_reason(OSError(errno.EACCES, "Permission denied"))
    assert port_unavailable_reason(OSError(errno.ECONNRESET, "Connection reset")) == "Connection reset"


def test_a_free_port_is_used_a_busy_default_is_replaced_and_a_busy_explicit_one_is_refused() -> None:
    draw = itertools.count(20_000).__next__
    assert choose_port(8000, explicit=False, free=True, draw=draw) == 8000
    assert choose_port(8000, explicit=True, free=True, draw=draw) == 8000
    assert choose_port(8000, explicit=False, free=False, draw=draw) == 20_000
    assert choose_port(8000, explicit=True, free=False, draw=draw) is None


def test_the_demo_leaves_explicit_metrics_ports_alone_and_moves_busy_defaults() -> None:
    settings = Settings(ingest=IngestSettings(), alerts=AlertSettings(metrics_port=19102),
                        notifier=NotifierSettings())
    draw = itertools.count(20_000).__next__
    chosen = metrics_ports(settings, free=lambda port: port != 9101, draw=draw)
    assert chosen == {"ingest": 20_000, "notifier": 9103}  # alerts: the operator's port, as given
    off = Settings(notifier=NotifierSettings(metrics_port=None))
    assert "notifier" not in metrics_ports(off, free=lambda port: True, draw=draw)


def test_the_demo_names_both_ways_to_choose_another_api_port() -> None:
    line = api_port_busy_message("127.0.0.1", 8000)
    assert "\n" not in line
    assert "8000" in line and "--port" in line and "SAFEWATCH_API__PORT" in line
