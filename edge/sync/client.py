"""Building an aiomqtt client from the ``mqtt`` section of the configuration.

Shared by the site's sync engine and the operator tools (``edge command send``), so both speak
to the broker with the same TLS, credentials and protocol settings.
"""

from __future__ import annotations

import ssl

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config.sync import MqttConfig


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    context = ssl.create_default_context(cafile=str(config.tls.ca_file))
    if config.tls.cert_file is not None and config.tls.key_file is not None:
        context.load_cert_chain(str(config.tls.cert_file), str(config.tls.key_file))
    return context


def make_client(
    config: MqttConfig,
    client_id: str,
    *,
    will: aiomqtt.Will | None = None,
    persistent: bool = True,
    timeout_s: float | None = None,
) -> aiomqtt.Client:
    """A client for one connection attempt.

    ``persistent``: clean start off and a session expiry, so the broker keeps subscriptions
    and queues QoS 1 messages (commands) while the client is away.
    """
    v5 = config.protocol == "5"
    properties: Properties | None = None
    if v5 and persistent:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = config.session_expiry_s
    password = config.password.get_secret_value() if config.password is not None else None
    client = aiomqtt.Client(
        config.host,
        config.effective_port,
        username=config.username,
        password=password,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        will=will,
        clean_session=None if v5 else not persistent,
        clean_start=not persistent if v5 else True,
        keepalive=config.keepalive_s,
        timeout=timeout_s if timeout_s is not None else config.connect_timeout_s,
        properties=properties,
        tls_context=tls_context(config),
        max_inflight_messages=max(20, config.inflight_window * 2),
    )
    return client
