"""The outbox drained to a real Mosquitto: order, batching, resume, persistence, TLS, auth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge.broker import LocalBroker
from edge.clock import Clock
from edge.config.sync import MqttConfig, ReconnectConfig, TlsConfig
from edge.db import Database, Transaction
from edge.outbox import cursor
from edge.sync.engine import SyncEngine
from tests.conftest import MakeBroker
from tests.mqtt import TlsMaterial, Upstream, subscription
from tests.sync import running, site_database

SITE = "sync-site"
FAST_RECONNECT = ReconnectConfig(initial_s=0.05, max_s=0.2)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = site_database(tmp_path, SITE)
    yield database
    database.close()


def mqtt_config(broker: LocalBroker, **changes: Any) -> MqttConfig:
    values: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "reconnect": FAST_RECONNECT,
        "publish_timeout_s": 2.0,
        "connect_timeout_s": 2.0,
        "keepalive_s": 5,
    }
    values.update(changes)
    return MqttConfig(**values)


def emit_many(tx: Transaction, count: int, size: int = 50) -> None:
    for i in range(count):
        tx.emit("test.event", {"i": i, "pad": "x" * size})


async def commit(db: Database, count: int, size: int = 50) -> None:
    await db.transact(partial(emit_many, count=count, size=size))


async def acked(db: Database) -> int:
    return (await db.read(cursor.position)).acked


async def test_a_backlog_goes_out_in_seq_order_in_full_batches(
    db: Database, broker: LocalBroker, upstream: Upstream
) -> None:
    await commit(db, 1200)
    async with running(SyncEngine(mqtt_config(broker), SITE, "t", db, Clock())) as engine:
        await upstream.wait_for_seq(SITE, 1200)
        await asyncio.wait_for(engine.uplink.wait_drained(), 5)
    assert upstream.seqs(SITE) == list(range(1, 1201))
    assert upstream.duplicates(SITE) == 0
    assert upstream.messages == 3  # 500 + 500 + 200
    assert await acked(db) == 1200
    first = upstream.events(SITE)[0]
    assert first["site"] == SITE and first["type"] == "test.event" and first["data"]["i"] == 0


async def test_batches_respect_the_byte_limit(db: Database, broker: LocalBroker) -> None:
    await commit(db, 300, size=400)
    config = mqtt_config(broker, batch_max_bytes=8 * 1024)
    async with (
        subscription(f"edge/v1/{SITE}/events", broker.host, broker.port) as inbox,
        running(SyncEngine(config, SITE, "t", db, Clock())),
    ):
        received = await inbox.collect(None, lambda ms: _last_seq(ms) == 300, 10)
    payloads = [bytes(m.payload) for m in received]  # type: ignore[arg-type]
    assert max(len(p) for p in payloads) <= 8 * 1024
    assert len(payloads) >= 300 * 450 // (8 * 1024)
    seqs = [e["seq"] for p in payloads for e in json.loads(p)]
    assert seqs == list(range(1, 301))


async def test_live_events_go_one_message_each(
    db: Database, broker: LocalBroker, upstream: Upstream
) -> None:
    async with running(SyncEngine(mqtt_config(broker), SITE, "t", db, Clock())) as engine:
        assert await engine.wait_connected(5)
        for seq in (1, 2, 3):
            await commit(db, 1)
            await upstream.wait_for_seq(SITE, seq)
    assert upstream.messages == 3
    assert upstream.seqs(SITE) == [1, 2, 3]


async def test_a_restart_resumes_at_the_first_unacknowledged_event(
    db: Database, broker: LocalBroker, upstream: Upstream
) -> None:
    await commit(db, 100)
    async with running(SyncEngine(mqtt_config(broker), SITE, "t", db, Clock())):
        await upstream.wait_for_seq(SITE, 100)
    assert await acked(db) == 100
    await commit(db, 50)  # while the site is not connected
    async with running(SyncEngine(mqtt_config(broker), SITE, "t", db, Clock())) as engine:
        await upstream.wait_for_seq(SITE, 150)
        await asyncio.wait_for(engine.uplink.wait_drained(), 5)
    assert upstream.seqs(SITE) == list(range(1, 151))
    assert upstream.duplicates(SITE) == 0


async def test_status_is_online_when_connected_and_stopped_after_a_clean_stop(
    db: Database, broker: LocalBroker
) -> None:
    topic = f"edge/v1/{SITE}/status"
    engine = SyncEngine(mqtt_config(broker), SITE, "9.9.9", db, Clock())
    async with running(engine):
        assert await engine.wait_connected(5)
        async with subscription(topic, broker.host, broker.port) as inbox:
            online = json.loads((await inbox.get()).payload)  # type: ignore[arg-type]
    async with subscription(topic, broker.host, broker.port) as inbox:
        retained = await inbox.get()
    stopped = json.loads(retained.payload)  # type: ignore[arg-type]
    assert online["state"] == "online" and online["version"] == "9.9.9"
    assert retained.retain and stopped["state"] == "stopped"
    assert stopped["ts"].endswith("Z")


async def test_the_site_runs_while_the_broker_is_unreachable_and_delivers_once_it_is_up(
    db: Database, make_broker: MakeBroker, tmp_path: Path
) -> None:
    down = LocalBroker(tmp_path / "late-broker")  # not started yet: its port refuses
    await down.start()
    port = down.port
    await down.stop()
    engine = SyncEngine(
        MqttConfig(host="127.0.0.1", port=port, reconnect=FAST_RECONNECT, connect_timeout_s=2),
        SITE,
        "t",
        db,
        Clock(),
    )
    async with running(engine):
        await commit(db, 25)
        async with asyncio.timeout(5):
            while engine.state.failures < 3:  # it keeps trying, with backoff
                await asyncio.sleep(0.05)
        assert engine.uplink.stats.pending == 25 and not engine.state.connected
        assert "refused" in (engine.state.last_error or "").lower()
        await down.start()  # same port
        async with Upstream(down.host, down.port) as upstream:
            await upstream.wait_for_seq(SITE, 25, timeout=10)
            assert upstream.seqs(SITE) == list(range(1, 26))
    await down.stop()


async def test_a_broker_that_stops_acknowledging_gets_the_connection_rebuilt(
    db: Database, broker: LocalBroker, upstream: Upstream
) -> None:
    engine = SyncEngine(mqtt_config(broker, publish_timeout_s=0.5), SITE, "t", db, Clock())
    async with running(engine):
        assert await engine.wait_connected(5)
        await broker.pause()  # SIGSTOP: the socket stays open, nothing is answered
        await commit(db, 10)
        async with asyncio.timeout(10):
            while engine.state.failures < 1:
                await asyncio.sleep(0.05)
        assert await acked(db) == 0
        await broker.resume()
        await upstream.wait_for_seq(SITE, 10, timeout=15)
    assert await acked(db) == 10
    assert upstream.gaps(SITE) == []


async def test_tls_with_the_ca_and_a_client_certificate(
    db: Database, mtls_broker: LocalBroker, tls_material: TlsMaterial
) -> None:
    tls = TlsConfig(
        ca_file=tls_material.ca_file,
        cert_file=tls_material.client_cert,
        key_file=tls_material.client_key,
    )
    await commit(db, 5)
    engine = SyncEngine(mqtt_config(mtls_broker, tls=tls), SITE, "t", db, Clock())
    async with running(engine):
        assert await engine.wait_connected(10), engine.state.last_error
        await asyncio.wait_for(engine.uplink.wait_drained(), 10)
    assert await acked(db) == 5


async def test_tls_refuses_a_broker_the_ca_did_not_sign(
    db: Database, tls_broker: LocalBroker, tmp_path: Path
) -> None:
    from tests.mqtt import make_tls_material

    other_ca = make_tls_material(tmp_path / "other-ca")
    config = mqtt_config(tls_broker, tls=TlsConfig(ca_file=other_ca.ca_file))
    engine = SyncEngine(config, SITE, "t", db, Clock())
    async with running(engine):
        async with asyncio.timeout(10):
            while engine.state.failures < 1:
                await asyncio.sleep(0.05)
        assert not engine.state.connected
        assert "CERTIFICATE_VERIFY_FAILED" in (engine.state.last_error or "")


async def test_username_and_password(db: Database, make_broker: MakeBroker) -> None:
    broker = await make_broker(passwords={"site-1": "s3cret"})
    good = SyncEngine(
        mqtt_config(broker, username="site-1", password="s3cret"), SITE, "t", db, Clock()
    )
    async with running(good):
        assert await good.wait_connected(5), good.state.last_error
    bad = SyncEngine(
        mqtt_config(broker, username="site-1", password="wrong"), SITE, "t", db, Clock()
    )
    async with running(bad):
        async with asyncio.timeout(10):
            while bad.state.failures < 1:
                await asyncio.sleep(0.05)
        assert not bad.state.connected
        assert "authori" in (bad.state.last_error or "").lower()


def _last_seq(messages: list[aiomqtt.Message]) -> int:
    if not messages:
        return 0
    return int(json.loads(messages[-1].payload)[-1]["seq"])  # type: ignore[arg-type]
