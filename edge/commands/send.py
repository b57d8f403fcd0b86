"""Sending a signed command to a site over MQTT, and waiting for its ``command.result``.

Used by ``edge command send`` and by upstream code and tests: the same client settings as the
site's own (``edge.sync.client``), a fresh non-persistent session with a unique client id.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from edge.commands.canonical import canonical_json
from edge.commands.dispatcher import RESULT_EVENT
from edge.config.sync import MqttConfig
from edge.sync.client import make_client
from edge.sync.topics import Topics


async def send_command(
    mqtt_config: MqttConfig,
    site: str,
    envelope: dict[str, Any],
    wait_s: float,
    *,
    client_id: str | None = None,
) -> dict[str, Any] | None:
    """Publish ``envelope`` (QoS 1) to the site's commands topic.

    With ``wait_s > 0`` the site's events are subscribed to first, and the ``data`` of the
    ``command.result`` for this command is returned, or None when none came within ``wait_s``.
    Connection problems raise ``aiomqtt.MqttError``.
    """
    topics = Topics(mqtt_config.topic_prefix, site)
    command_id = str(envelope["id"]).lower()
    client = make_client(
        mqtt_config, client_id or f"edge-command-{uuid.uuid4().hex[:16]}", persistent=False
    )
    async with client:
        if wait_s > 0:
            # Subscribed before publishing: a fast answer cannot slip past.
            await client.subscribe(topics.events, qos=1)
        await client.publish(
            topics.commands,
            canonical_json(envelope),
            qos=1,
            timeout=mqtt_config.publish_timeout_s,
        )
        if wait_s <= 0:
            return None
        try:
            async with asyncio.timeout(wait_s):
                async for message in client.messages:
                    result = find_result(message.payload, command_id)
                    if result is not None:
                        return result
        except TimeoutError:
            return None
    return None


def find_result(payload: object, command_id: str) -> dict[str, Any] | None:
    """The ``command.result`` data for ``command_id`` in one events message, if it is there.

    An events message is a JSON array of event envelopes; anything else is skipped.
    """
    if not isinstance(payload, str | bytes | bytearray):
        return None
    try:
        decoded: Any = json.loads(payload)
    except ValueError:
        return None
    events = decoded if isinstance(decoded, list) else [decoded]
    for event in events:
        if not isinstance(event, dict) or event.get("type") != RESULT_EVENT:
            continue
        data = event.get("data")
        if isinstance(data, dict) and str(data.get("command_id", "")).lower() == command_id:
            return data
    return None
