"""``edge.broker.LocalBroker``: a real mosquitto per test, and what it does across restarts.

These tests also pin down the broker behaviour that the sync engine's fault tests rely on:
a clean stop keeps queued QoS 1 messages, a kill loses what was not saved.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from edge.broker import (
    BrokerError,
    LocalBroker,
    find_mosquitto,
    find_mosquitto_passwd,
    hash_password,
)
from tests.mqtt import TlsMaterial, Upstream, persistent_client, subscription

MakeBroker = Callable[..., Awaitable[LocalBroker]]
V5 = aiomqtt.ProtocolVersion.V5


def client(broker: LocalBroker, **kwargs: object) -> aiomqtt.Client:
    kwargs.setdefault("protocol", V5)
    kwargs.setdefault("timeout", 5)
    return aiomqtt.Client(broker.host, broker.port, **kwargs)  # type: ignore[arg-type]


async def publish(broker: LocalBroker, topic: str, payload: bytes | str, **kwargs: object) -> None:
    async with client(broker, **kwargs) as publisher:
        await publisher.publish(topic, payload, qos=1)


def payload_of(message: aiomqtt.Message) -> bytes:
    assert isinstance(message.payload, bytes)
    return message.payload


# ---------------------------------------------------------------------------- basics


async def test_round_trip_at_qos1(broker: LocalBroker) -> None:
    assert broker.running
    assert broker.port != 1883
    assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    async with subscription("t/round-trip", broker.host, broker.port) as inbox:
        await publish(broker, "t/round-trip", b"hello")
        message = await inbox.get()
    assert payload_of(message) == b"hello"
    assert message.qos == 1
    assert "running" in broker.log_tail(50)


async def test_a_256_kib_batch_passes(broker: LocalBroker) -> None:
    payload = b"x" * (256 * 1024 + 100)
    async with subscription("t/big", broker.host, broker.port) as inbox:
        await publish(broker, "t/big", payload)
        message = await inbox.get()
    assert payload_of(message) == payload


async def test_configuration_written(broker: LocalBroker) -> None:
    conf = broker.conf_path.read_text().splitlines()
    assert f"listener {broker.port} 127.0.0.1" in conf
    assert "allow_anonymous true" in conf
    assert "persistence true" in conf
    assert f"persistence_location {broker.workdir}/" in conf
    assert "max_queued_messages 100000" in conf
    assert "set_tcp_nodelay true" in conf
    assert f"log_dest file {broker.log_path}" in conf


def test_find_mosquitto(mosquitto: str) -> None:
    found = find_mosquitto()
    assert found is not None
    assert Path(found).name == "mosquitto"
    assert Path(found).is_file()


async def test_two_brokers_do_not_share_a_port(make_broker: MakeBroker) -> None:
    first = await make_broker()
    second = await make_broker()
    assert first.port != second.port
    assert first.workdir != second.workdir


async def test_start_failure_quotes_mosquitto(tmp_path: Path, mosquitto: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = LocalBroker(tmp_path / "b", port, executable=mosquitto)
        with pytest.raises(BrokerError, match="Address already in use"):
            await broker.start()
    assert not broker.running


# ---------------------------------------------------------------------------- persistence


async def _leave_a_session(broker: LocalBroker, client_id: str, topic: str) -> None:
    async with persistent_client(broker.host, broker.port, client_id) as subscriber:
        await subscriber.subscribe(topic, qos=1)


async def test_queued_message_survives_a_clean_restart(broker: LocalBroker) -> None:
    port = broker.port
    await _leave_a_session(broker, "consumer-1", "t/queued")
    await publish(broker, "t/queued", b"sent while away")

    assert await broker.stop() == 0
    assert broker.db_path.exists()  # written on SIGTERM
    await broker.restart()
    assert broker.port == port

    async with persistent_client(broker.host, broker.port, "consumer-1") as subscriber:
        async with asyncio.timeout(5):
            message = await anext(subscriber.messages)
    assert payload_of(message) == b"sent while away"
    assert message.topic.value == "t/queued"


async def test_kill_loses_what_was_not_saved(broker: LocalBroker) -> None:
    """SIGKILL = crash: the session and its queued message, acknowledged to the publisher, go."""
    await _leave_a_session(broker, "consumer-1", "t/queued")
    await publish(broker, "t/queued", b"lost")
    await broker.kill()
    await broker.restart()

    async with persistent_client(broker.host, broker.port, "consumer-1") as subscriber:
        await subscriber.subscribe("t/queued", qos=1)
        await subscriber.publish("t/queued", b"marker", qos=1)
        async with asyncio.timeout(5):
            first = await anext(subscriber.messages)
    # A queued message would have been delivered before anything published after connecting.
    assert payload_of(first) == b"marker"


async def test_persist_then_kill_keeps_the_queue(broker: LocalBroker) -> None:
    await _leave_a_session(broker, "consumer-1", "t/queued")
    await publish(broker, "t/queued", b"saved")
    await broker.persist()
    assert broker.db_path.exists()
    await broker.kill()
    await broker.restart()

    async with persistent_client(broker.host, broker.port, "consumer-1") as subscriber:
        async with asyncio.timeout(5):
            message = await anext(subscriber.messages)
    assert payload_of(message) == b"saved"


async def test_without_persistence_a_clean_restart_forgets(make_broker: MakeBroker) -> None:
    broker = await make_broker(persistence=False)
    assert "persistence false" in broker.conf_path.read_text().splitlines()
    await _leave_a_session(broker, "consumer-1", "t/queued")
    await publish(broker, "t/queued", b"forgotten")
    await broker.restart()

    async with persistent_client(broker.host, broker.port, "consumer-1") as subscriber:
        await subscriber.subscribe("t/queued", qos=1)
        await subscriber.publish("t/queued", b"marker", qos=1)
        async with asyncio.timeout(5):
            first = await anext(subscriber.messages)
    assert payload_of(first) == b"marker"
    assert not broker.db_path.exists()


async def test_queue_limit_drops_the_newest_silently(make_broker: MakeBroker) -> None:
    """Past max_queued_messages, messages for an offline session are acknowledged and dropped."""
    broker = await make_broker(max_queued_messages=3)
    await _leave_a_session(broker, "consumer-1", "t/q/#")
    for n in range(5):
        await publish(broker, f"t/q/{n}", str(n))  # every publish is acknowledged

    async with persistent_client(broker.host, broker.port, "consumer-1") as subscriber:
        await subscriber.publish("t/q/marker", b"marker", qos=1)
        received: list[bytes] = []
        async with asyncio.timeout(5):
            async for message in subscriber.messages:
                received.append(payload_of(message))
                if received[-1] == b"marker":
                    break
    assert received == [b"0", b"1", b"2", b"marker"]


async def test_kill_and_restart_at_once_on_the_same_port(broker: LocalBroker) -> None:
    port = broker.port
    # A connected client leaves the broker's side of the connection in TIME_WAIT after a kill.
    async with subscription("t/x", broker.host, broker.port) as inbox:
        await publish(broker, "t/x", b"before")
        assert payload_of(await inbox.get()) == b"before"
        assert await broker.kill() == -9
        assert not broker.running
        await broker.restart()
    assert broker.running
    assert broker.port == port
    async with subscription("t/x", broker.host, broker.port) as inbox:
        await publish(broker, "t/x", b"after")
        assert payload_of(await inbox.get()) == b"after"


async def test_pause_holds_everything_until_resume(broker: LocalBroker) -> None:
    async with subscription("t/p", broker.host, broker.port) as inbox:
        await broker.pause()
        assert broker.paused
        with pytest.raises(aiomqtt.MqttError):  # no CONNACK from a stopped process
            async with client(broker, timeout=0.3):
                pass
        sending = asyncio.create_task(publish(broker, "t/p", b"held"))
        await broker.resume()
        assert not broker.paused
        await asyncio.wait_for(sending, 5)
        assert payload_of(await inbox.get()) == b"held"


async def test_stop_of_a_paused_broker(broker: LocalBroker) -> None:
    await broker.pause()
    assert await broker.stop() == 0
    assert not broker.running


async def test_as_context_manager(tmp_path: Path, mosquitto: str) -> None:
    async with LocalBroker(tmp_path / "b", executable=mosquitto) as broker:
        assert broker.running
        await publish(broker, "t/cm", b"ok")
    assert not broker.running


# ---------------------------------------------------------------------------- TLS


async def test_tls_client_trusting_the_ca_connects(
    tls_broker: LocalBroker, tls_material: TlsMaterial
) -> None:
    assert tls_broker.url.startswith("mqtts://")
    context = tls_material.client_context(with_cert=False)
    async with subscription(
        "t/tls", tls_broker.host, tls_broker.port, tls_context=context
    ) as inbox:
        await publish(tls_broker, "t/tls", b"secret", tls_context=context)
        assert payload_of(await inbox.get()) == b"secret"


async def test_tls_client_without_the_ca_is_refused(tls_broker: LocalBroker) -> None:
    with pytest.raises(aiomqtt.MqttError, match="CERTIFICATE_VERIFY_FAILED"):
        async with client(tls_broker, tls_context=ssl.create_default_context()):
            pass


# A refusal after the TLS handshake (TLS 1.3 checks the client certificate after the client
# has finished its side) reaches aiomqtt 2.5 only as a CONNACK timeout: the cause is logged by
# paho ("failed to receive on socket") and by mosquitto. Hence short timeouts here.


async def test_plain_client_on_a_tls_listener_is_refused(tls_broker: LocalBroker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with client(tls_broker, timeout=1):
            pass
    assert "wrong version number" in tls_broker.log_tail(20)


async def test_client_certificate_required(
    mtls_broker: LocalBroker, tls_material: TlsMaterial
) -> None:
    without_cert = tls_material.client_context(with_cert=False)
    with pytest.raises(aiomqtt.MqttError):
        async with client(mtls_broker, tls_context=without_cert, timeout=1):
            pass
    assert "peer did not return a certificate" in mtls_broker.log_tail(20)

    context = tls_material.client_context(with_cert=True)
    async with subscription(
        "t/mtls", mtls_broker.host, mtls_broker.port, tls_context=context
    ) as inbox:
        await publish(mtls_broker, "t/mtls", b"mutual", tls_context=context)
        assert payload_of(await inbox.get()) == b"mutual"


# ---------------------------------------------------------------------------- passwords


@pytest.fixture(params=["mosquitto_passwd", "python"])
def password_tool(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The password file made by mosquitto_passwd, and by hash_password() where it is missing."""
    if request.param == "mosquitto_passwd":
        if find_mosquitto_passwd() is None:
            pytest.skip("mosquitto_passwd not installed")
    else:
        monkeypatch.setattr("edge.broker.local.find_mosquitto_passwd", lambda: None)
    return str(request.param)


async def test_password_auth(make_broker: MakeBroker, password_tool: str) -> None:
    broker = await make_broker(passwords={"site-1": "right horse", "ops": "battery"})
    assert "allow_anonymous false" in broker.conf_path.read_text().splitlines()
    lines = broker.password_file.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["site-1", "ops"]
    assert all(line.split(":", 1)[1].startswith("$7$") for line in lines)

    # mosquitto 2.0 answers a wrong password with "not authorized" (MQTT 5 reason 135, 3.1.1
    # return code 5), not "bad user name or password" (134 / 4). paho 2 reports the 3.1.1 code
    # as reason code 135 too.
    with pytest.raises(aiomqtt.MqttCodeError, match="Not authorized") as refused:
        async with client(broker, username="site-1", password="wrong"):
            pass
    assert isinstance(refused.value.rc, ReasonCode)
    assert refused.value.rc.value == 135
    with pytest.raises(aiomqtt.MqttCodeError, match="Not authorized") as refused_v311:
        async with client(
            broker, username="site-1", password="wrong", protocol=aiomqtt.ProtocolVersion.V311
        ):
            pass
    assert isinstance(refused_v311.value.rc, ReasonCode)
    assert refused_v311.value.rc.value == 135
    with pytest.raises(aiomqtt.MqttCodeError, match="Not authorized"):
        async with client(broker):  # anonymous
            pass
    assert "not authorised" in broker.log_tail(20)

    async with subscription(
        "t/auth", broker.host, broker.port, username="ops", password="battery"
    ) as inbox:
        await publish(broker, "t/auth", b"in", username="site-1", password="right horse")
        assert payload_of(await inbox.get()) == b"in"


def test_hash_password_matches_mosquitto_format() -> None:
    salt = bytes(range(12))
    hashed = hash_password("secret", salt=salt)
    prefix, algorithm, iterations, salt_b64, digest_b64 = hashed.split("$")
    assert (prefix, algorithm, iterations) == ("", "7", "101")
    assert salt_b64 == "AAECAwQFBgcICQoL"
    assert len(digest_b64) == 88  # 64 bytes
    assert hash_password("secret", salt=salt) == hashed
    assert hash_password("other", salt=salt) != hashed


# ---------------------------------------------------------------------------- upstream helper


def batch(site: str, seqs: list[int], ids: dict[int, str] | None = None) -> str:
    ids = ids or {}
    return json.dumps(
        [
            {
                "id": ids.get(seq, f"{site}-{seq}"),
                "seq": seq,
                "type": "test.event",
                "ts": "2026-01-01T00:00:00Z",
                "site": site,
                "data": {},
            }
            for seq in seqs
        ]
    )


async def test_upstream_survives_a_broker_kill(broker: LocalBroker, upstream: Upstream) -> None:
    await publish(broker, "edge/v1/site-a/events", batch("site-a", [1, 2, 3]))
    await upstream.wait_for_seq("site-a", 3)

    await broker.kill()
    await broker.restart()
    await upstream.wait_connected(connections=2, timeout=10)

    await publish(broker, "edge/v1/site-a/events", batch("site-a", [3, 4, 5]))  # 3 again
    await publish(broker, "edge/v1/site-b/events", batch("site-b", [1]))
    await upstream.wait_for_seq("site-a", 5)
    await upstream.wait_for_seq("site-b", 1)

    assert upstream.seqs("site-a") == [1, 2, 3, 4, 5]
    assert upstream.gaps("site-a") == []
    assert upstream.duplicates("site-a") == 1
    assert [e["seq"] for e in upstream.events("site-b")] == [1]
    assert upstream.errors == []


async def test_upstream_reports_gaps_order_and_bad_messages(
    broker: LocalBroker, upstream: Upstream
) -> None:
    await publish(broker, "edge/v1/site-a/events", batch("site-a", [1, 4, 2, 7]))
    await publish(broker, "edge/v1/site-a/events", b"not json")
    await publish(broker, "edge/v1/site-a/events", batch("site-b", [1]))  # wrong topic
    await upstream.wait_for(lambda: len(upstream.errors) == 2 and upstream.messages == 3)

    assert upstream.gaps("site-a") == [(3, 3), (5, 6)]
    assert upstream.site("site-a").out_of_order == 1
    assert "not JSON" in upstream.errors[0]
    assert "site 'site-b'" in upstream.errors[1]
    with pytest.raises(TimeoutError, match="highest seq 7"):
        await upstream.wait_for_seq("site-a", 3, timeout=0.2)


async def test_upstream_gets_what_was_queued_while_it_was_away(broker: LocalBroker) -> None:
    async with Upstream(broker.host, broker.port, client_id="upstream-away"):
        pass  # leaves its persistent session behind
    await publish(broker, "edge/v1/site-a/events", batch("site-a", [1, 2]))
    await broker.restart()  # clean stop: the queue is saved
    async with Upstream(broker.host, broker.port, client_id="upstream-away") as upstream:
        await upstream.wait_for_seq("site-a", 2)
        assert upstream.seqs("site-a") == [1, 2]


async def test_upstream_reports_its_own_crash(broker: LocalBroker) -> None:
    consumer = Upstream(broker.host, broker.port, client_id="upstream-crash")
    await consumer.start()

    def broken(message: aiomqtt.Message) -> None:
        raise ValueError("bug in the consumer")

    consumer._receive = broken  # type: ignore[method-assign]
    await publish(broker, "edge/v1/site-a/events", batch("site-a", [1]))
    with pytest.raises(RuntimeError, match="bug in the consumer"):
        await consumer.wait_for_seq("site-a", 1)
    with pytest.raises(ValueError, match="bug in the consumer"):
        await consumer.close()
