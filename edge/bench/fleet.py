"""``edge bench fleet --sites N``: N site sync engines against one broker on this machine.

Every site has its own database and its own MQTT session, as on separate boxes; an upstream
consumer subscribes to ``edge/v1/+/events`` the way a cloud worker would. Two phases:

- live: each site commits one event at a time at a steady pace; end-to-end latency is from the
  site's commit to the consumer receiving the event (one process, one clock), after a warm-up;
- backlog: every site has ``BACKLOG`` events waiting at once (a chain coming back online); total
  events per second is the count over the time until the consumer holds every one.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import aiomqtt

from edge.bench.report import emit, machine, percentiles, progress
from edge.broker.local import LocalBroker
from edge.clock import Clock
from edge.config.sync import MqttConfig
from edge.db import Database, Transaction
from edge.db.migrate import upgrade_to_head
from edge.logs import configure_logging
from edge.outbox.store import Envelope
from edge.sync.engine import SyncEngine

LIVE_S = 15.0
WARMUP_S = 5.0
"""Live events of the first seconds (fresh connections, cold caches) are not measured."""
LIVE_INTERVAL_S = 1.0
BACKLOG = 500


class Upstream:
    """The cloud side: receives every site's events, notes when each arrived."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.arrived: dict[tuple[str, int], float] = {}
        self.changed = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client(
            "127.0.0.1", self.port, identifier=f"upstream-{uuid.uuid4().hex[:6]}"
        ) as client:
            await client.subscribe("edge/v1/+/events", qos=1)
            self.ready.set()
            async for message in client.messages:
                now = time.perf_counter()
                assert isinstance(message.payload, bytes)
                for envelope in json.loads(message.payload):
                    self.arrived.setdefault((envelope["site"], envelope["seq"]), now)
                self.changed.set()

    async def wait_for(self, count: int, within_s: float) -> None:
        async with asyncio.timeout(within_s):
            while len(self.arrived) < count:
                self.changed.clear()
                await self.changed.wait()


class Site:
    def __init__(self, name: str, tmp: Path, port: int) -> None:
        self.name = name
        self.db = Database(tmp / f"{name}.db", name)
        upgrade_to_head(self.db.engine)
        self.committed: dict[int, float] = {}
        self.db.add_event_listener(self._on_commit)
        config = MqttConfig(host="127.0.0.1", port=port, client_id=f"edge-{name}")
        self.engine = SyncEngine(config, name, "bench", self.db, Clock())
        self.task: asyncio.Task[None] | None = None

    def _on_commit(self, envelopes: list[Envelope]) -> None:
        now = time.perf_counter()
        for envelope in envelopes:
            self.committed[envelope.seq] = now

    async def emit(self, count: int) -> None:
        await self.db.transact(partial(_emit, count=count))

    async def live(self, until: float) -> None:
        await asyncio.sleep(random.uniform(0, LIVE_INTERVAL_S))  # noqa: S311 - spread the sites
        while time.perf_counter() < until:
            await self.emit(1)
            await asyncio.sleep(LIVE_INTERVAL_S)


def _emit(tx: Transaction, count: int) -> None:
    for i in range(count):
        tx.emit("order.created", {"order_id": str(uuid.uuid4()), "amount_cents": 1200 + i})


async def run_fleet_bench(sites: int) -> int:
    configure_logging("WARNING", "console")
    with tempfile.TemporaryDirectory(prefix="edge-bench-fleet-") as tmp:
        broker = LocalBroker(Path(tmp) / "broker", persistence=False)
        await broker.start()
        try:
            result = await _run(Path(tmp), broker.port, sites)
        finally:
            await broker.stop()
    print(
        f"fleet: {sites} sites on one broker; live latency p50 {result['latency_ms']['p50']} ms "
        f"p99 {result['latency_ms']['p99']} ms; backlog drain {result['events_per_s']:.0f} "
        "events/s in total"
    )
    emit(result)
    return 0


async def _run(tmp: Path, port: int, count: int) -> dict[str, Any]:
    upstream = Upstream(port)
    consumer = asyncio.create_task(upstream.run())
    await asyncio.wait_for(upstream.ready.wait(), 10)
    fleet = [Site(f"site-{i:04d}", tmp, port) for i in range(count)]
    try:
        for i, site in enumerate(fleet):
            site.task = asyncio.create_task(site.engine.run_forever())
            if i % 20 == 19:
                progress(i + 1, count, "connecting sites")
        connected = await asyncio.gather(*(s.engine.wait_connected(60) for s in fleet))
        assert all(connected), f"{connected.count(False)} sites did not connect"

        measured_from = time.perf_counter() + WARMUP_S
        until = measured_from + LIVE_S
        await asyncio.gather(*(s.live(until) for s in fleet))
        live_events = sum(len(s.committed) for s in fleet)
        await upstream.wait_for(live_events, 60)
        latencies = [
            (upstream.arrived[(s.name, seq)] - at) * 1000
            for s in fleet
            for seq, at in s.committed.items()
            if at >= measured_from
        ]

        started = time.perf_counter()
        await asyncio.gather(*(s.emit(BACKLOG) for s in fleet))
        await upstream.wait_for(live_events + BACKLOG * count, 600)
        backlog_s = time.perf_counter() - started
    finally:
        await asyncio.gather(*(s.engine.stop(flush_timeout_s=0) for s in fleet))
        await asyncio.gather(*(s.task for s in fleet if s.task is not None))
        for s in fleet:
            s.db.close()
        consumer.cancel()
    return {
        "bench": "fleet",
        "machine": machine(),
        "sites": count,
        "events_per_s": round(BACKLOG * count / backlog_s, 1),
        "latency_ms": percentiles(latencies),
        "live": {
            "events": len(latencies),
            "seconds": LIVE_S,
            "warmup_s": WARMUP_S,
            "per_site_interval_s": LIVE_INTERVAL_S,
            "measured": "site commit -> upstream consumer received",
        },
        "backlog": {"events_per_site": BACKLOG, "seconds": round(backlog_s, 3)},
        "broker": "one mosquitto on 127.0.0.1; all sites and the consumer in this process",
    }
