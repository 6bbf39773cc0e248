"""THE settings: one pydantic-settings class, built once by the CLI and passed down.

Environment variables use the prefix ``SAFEWATCH_`` and ``__`` between groups, e.g.
``SAFEWATCH_DB__URL``, ``SAFEWATCH_MQTT__URL``, ``SAFEWATCH_INGEST__BATCH_MAX_MESSAGES``.
The conventional ``DATABASE_URL`` and ``MQTT_URL`` are honoured when the SAFEWATCH_ ones are unset.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DbSettings(BaseModel):
    """PostgreSQL / TimescaleDB."""

    url: str = "postgresql://postgres@127.0.0.1:5432/safewatch"
    pool_min: int = Field(1, ge=1)
    pool_max: int = Field(8, ge=1)


class MqttSettings(BaseModel):
    """The MQTT broker the gateways publish to."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None
    # MQTT v5 shared subscriptions split the stream across ingest workers. Off by default: Mosquitto 2.0
    # does not restore $share subscriptions after a broker restart, so messages published before the
    # workers reconnect would be dropped, while a plain subscription of a persistent session is kept
    # and queued (docs/decisions/broker-restarts.md). Turn it on to scale out ingest, preferably on EMQX/HiveMQ.
    shared_subscriptions: bool = False
    protocol5: bool = True
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0)
    keepalive_s: int = Field(30, ge=5)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 1883

    @property
    def credentials(self) -> tuple[str | None, str | None]:
        """(username, password) from the explicit fields, else from the URL."""
        parts = urlsplit(self.url)
        user = self.username or (unquote(parts.username) if parts.username else None)
        if self.password is not None:
            return user, self.password.get_secret_value()
        return user, unquote(parts.password) if parts.password else None


def _host_id(process: str) -> str:
    # The MQTT client id of a persistent session must be stable across restarts and unique per
    # worker: one worker per host (or container) by default; set it explicitly to run several.
    return f"{process}-{socket.gethostname()}"


class IngestSettings(BaseModel):
    """Ingest workers."""

    worker_id: str = Field(default_factory=lambda: _host_id("ingest"))
    share_group: str = "safewatch-ingest"
    batch_max_messages: int = Field(1000, ge=1)
    batch_max_ms: int = Field(50, ge=1)
    # ... and at most about this much payload: bounds one transaction (commit latency) for big gateway batches.
    # A batch only fills up when messages wait (else 50 ms closes it), and then larger ones cost PostgreSQL
    # less a reading and catch up sooner (docs/decisions/ingest-batches.md); 1000 gateway batches are ~12 MiB.
    batch_max_bytes: int = Field(12 * 1024 * 1024, ge=1024)
    # Messages received but not yet committed: the memory bound and the back-pressure point.
    max_inflight: int = Field(5000, ge=1)
    # ... and their payload bytes: with the count, the memory bound of a worker whose database is down.
    max_inflight_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    # Batches written at once, each on its own connection: PostgreSQL works a COPY on one core, and a
    # commit is mostly waiting on it, so a second batch need not queue behind the first. Acks stay in order.
    committers: int = Field(2, ge=1, le=16)
    # Plain PostgreSQL: how often a worker recomputes the rollups (TimescaleDB refreshes its own).
    rollup_interval_s: float = Field(30.0, gt=0)
    max_payload_bytes: int = Field(256 * 1024, ge=1024)
    max_future_s: int = Field(300, ge=0)
    max_past_s: int = Field(7 * 24 * 3600, ge=60)
    metrics_port: int | None = 9101


class AlertSettings(BaseModel):
    """Alert workers."""

    worker_id: str = Field(default_factory=lambda: _host_id("alerts"))
    # League codes this worker owns (empty: all). Each equipment's state lives in one worker.
    leagues: list[str] = Field(default_factory=list)
    metrics_port: int | None = 9102
    # Wall-clock seconds between housekeeping runs: registry reload, shelving expiry, inspection alerts.
    housekeeping_s: float = Field(30.0, gt=0)
    # A batch closes at whichever comes first. Its payload bytes bound the work in it, whatever the
    # messages' shape, so a breach never waits behind a large one; many small messages make one batch,
    # which the engine scores at once (bench/alerts measures publish → alert committed;
    # docs/decisions/alert-batches.md).
    batch_max_messages: int = Field(1000, ge=1)
    batch_max_bytes: int = Field(128 * 1024, ge=1)
    batch_max_ms: int = Field(10, ge=1)
    # Behind (the oldest message in hand waited longer than behind_ms), a batch may hold up to
    # batch_max_bytes_behind: a breach in the queue already waits longer than a larger batch takes,
    # and larger batches clear the queue sooner, since part of the engine's cost is per batch.
    behind_ms: int = Field(1000, ge=1)
    batch_max_bytes_behind: int = Field(1024 * 1024, ge=1)
    # The engine's state is checkpointed at least this often (wall clock), and whenever the deliveries not
    # yet acknowledged fill half the inflight window below: a delivery is acknowledged only once a checkpoint
    # covers it, so a crash replays it from the broker (issue 21). A checkpoint writes every equipment heard
    # from since the last one whatever the number of its readings, so its cost per second falls with the
    # interval (python -m bench.alerts.checkpoint); the window must hold the deliveries of an interval: MQTT's
    # largest Receive Maximum, and the bytes of ~10 s of shape (b). 30 s, not 5: at 20,000 equipment a worker
    # with 5 s checkpoints fell behind (docs/decisions/alert-checkpoints.md).
    checkpoint_s: float = Field(30.0, gt=0, le=60)
    max_inflight: int = Field(65535, ge=1, le=65535)
    max_inflight_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024)


class NotifierSettings(BaseModel):
    """The notifier: escalation timers and delivery of the outbox (webhook, SMS webhook, MQTT, e-mail)."""

    worker_id: str = Field(default_factory=lambda: _host_id("notifier"))
    metrics_port: int | None = 9103
    # Longest wait between two looks at the timers and the outbox when no NOTIFY arrives.
    poll_s: float = Field(1.0, gt=0, le=60)
    batch: int = Field(100, ge=1)  # timers per transaction; outbox rows per claim
    senders: int = Field(4, ge=1, le=64)  # deliveries in parallel (a slow receiver must not stall the rest)
    # A sender's lease on the rows it is posting, renewed every third of it while they are in flight:
    # a killed notifier's rows are taken over within this (issue 21: at most 5 s).
    claim_s: float = Field(3.0, ge=1, le=60)
    retry_base_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)
    expires_s: int = Field(24 * 3600, ge=1)  # give up on a notification this long after it was written
    group_interval_s: float = Field(30.0, ge=0)  # 0: no grouping
    webhook_timeout_s: float = Field(5.0, gt=0)
    mqtt_timeout_s: float = Field(5.0, gt=0)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "safewatch@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(10.0, gt=0)
    # Where the API is reachable, for links in notifications (Alertmanager's externalURL).
    external_url: str = "http://127.0.0.1:8000"


class ApiSettings(BaseModel):
    """The HTTP API and dashboard."""

    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: SecretStr | None = None
    token_ttl_s: int = Field(8 * 3600, ge=60)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)


class Settings(BaseSettings):
    """Everything configurable in SafeWatch."""

    model_config = SettingsConfigDict(env_prefix="SAFEWATCH_", env_nested_delimiter="__", extra="ignore")

    db: DbSettings = Field(default_factory=DbSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON unless stderr is a terminal
    data_dir: Path = Path(".safewatch")

    @model_validator(mode="before")
    @classmethod
    def _conventional_urls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for group, env_name in (("db", "DATABASE_URL"), ("mqtt", "MQTT_URL")):
            explicit = os.environ.get(f"SAFEWATCH_{group.upper()}__URL")
            conventional = os.environ.get(env_name)
            if conventional and not explicit:
                section = data.get(group)
                if section is None:
                    data[group] = {"url": conventional}
                elif isinstance(section, dict) and "url" not in section:
                    data[group] = {**section, "url": conventional}
        return data
