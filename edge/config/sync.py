"""Configuration of the upstream link: the MQTT broker, signed commands, outbox retention."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, FilePath, model_validator

from edge.config.types import Secret, Strict, read_secret_file


class TlsConfig(Strict):
    ca_file: FilePath
    """The CA that signed the broker's certificate (PEM)."""
    cert_file: FilePath | None = None
    """Client certificate (PEM), for brokers that authenticate sites by certificate."""
    key_file: FilePath | None = None

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class ReconnectConfig(Strict):
    initial_s: float = Field(default=1.0, gt=0, le=60)
    max_s: float = Field(default=60.0, gt=0, le=3600)
    """Waits double from ``initial_s`` up to ``max_s``, each with full random jitter."""


class MqttConfig(Strict):
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    """Default 8883 with TLS, 1883 without."""
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = None
    """Default ``edge-{site}``; must be unique on the broker."""
    username: str | None = None
    password: Secret | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0, le=0xFFFFFFFF)
    """How long the broker keeps this site's session (and commands sent meanwhile) offline."""
    topic_prefix: str = Field(default="edge/v1", pattern=r"^[^#+]+[^/#+]$")
    batch_max_events: int = Field(default=500, ge=1, le=500)
    batch_max_bytes: int = Field(default=256 * 1024, ge=1024, le=256 * 1024)
    inflight_window: int = Field(default=8, ge=1, le=100)
    """Messages published and not yet acknowledged by the broker, at most."""
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """For connecting, subscribing and a clean disconnect."""
    publish_timeout_s: float = Field(default=30.0, gt=0)
    """A publish unacknowledged for this long is treated as a dead connection."""
    telemetry_interval_s: float = Field(default=60.0, gt=0)
    reconnect: ReconnectConfig = ReconnectConfig()

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 8883 if self.tls is not None else 1883


class TrustedKey(Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    """A name for logs and ``command.result``: which key signed the command."""
    public_key: Annotated[str, BeforeValidator(read_secret_file)] = Field(min_length=1)
    """Base64 of the 32-byte raw Ed25519 public key, or ``{file: PATH}`` holding it."""


class CommandsConfig(Strict):
    trusted_keys: list[TrustedKey] = Field(default_factory=list)
    """Upstream signing keys; list the new key beside the old one while rotating."""
    max_lifetime_s: float = Field(default=24 * 3600, gt=0)
    """Commands whose ``expires_at - issued_at`` is longer are rejected: this bounds how long
    command ids must be remembered to recognise replays."""
    clock_skew_s: float = Field(default=300, ge=0)
    """Tolerance for an ``issued_at`` ahead of the site's clock."""
    max_payload_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)


class OutboxConfig(Strict):
    delivered_retention_h: float = Field(default=7 * 24, ge=0)
    """Delivered events are kept this long (to answer questions, to replay), then pruned."""
    prune_interval_s: float = Field(default=3600, gt=0)
    max_backlog_mb: float = Field(default=1024, gt=0)
    """Cap for the estimated size of undelivered events (stored fields plus 64 bytes a row)."""
    backlog_alarm_ratio: float = Field(default=0.5, gt=0, lt=1)
    """``outbox.backlog_high`` when the backlog passes this share of the cap;
    ``outbox.backlog_ok`` when it falls below 80 % of that level."""
    when_full: Literal["drop_oldest", "refuse_new"] = "drop_oldest"
    """At the cap: ``drop_oldest`` deletes the oldest undelivered events (down to 90 % of the
    cap), moves the delivery cursor past them and records the range in an ``outbox.truncated``
    event (the site keeps working); ``refuse_new`` drops nothing and refuses new deposits
    (HTTP 503 ``outbox_full``) before any door moves, while events of what already happened
    (work under way, pickups, doors, devices, command results) are still written past the cap."""
