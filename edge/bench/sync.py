"""``edge bench sync``: one site's outbox, enqueued durably and drained to a local Mosquitto.

Each round enqueues ``events`` events (fsync'ed commits of ``batch`` events each), then starts a
sync engine and times the drain until the broker acknowledged the last one. In the same run, a
plain aiomqtt loop publishes one event per QoS 1 message (awaiting each PUBACK, the way a
straightforward client does) as the peer reference; the ratio is drain rate / plain-loop rate.
A last figure times single-event transactions: the rate a site can record events one by one.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import aiomqtt

from edge.bench.report import emit, machine, median, progress
from edge.broker.local import LocalBroker
from edge.clock import Clock, rfc3339
from edge.config.sync import MqttConfig
from edge.db import Database, Transaction
from edge.db.migrate import upgrade_to_head
from edge.logs import configure_logging
from edge.sync.engine import SyncEngine

SITE = "bench-site"
ROUNDS = 3
ENQUEUE_TX_EVENTS = 1000
SINGLE_TX_EVENTS = 500


def _sample_data(i: int) -> dict[str, Any]:
    """About the size of a real parcel event."""
    return {
        "parcel_id": str(uuid.UUID(int=i)),
        "parcel_code": f"SF{i:012d}",
        "compartment_id": f"A{i % 48:02d}",
        "courier_id": "courier-1",
        "size": "M",
        "zone": "ambient",
    }


async def run_sync_bench(events: int, plain_events: int) -> int:
    configure_logging("WARNING", "console")
    with tempfile.TemporaryDirectory(prefix="edge-bench-sync-") as tmp:
        broker = LocalBroker(Path(tmp) / "broker", persistence=False)
        await broker.start()
        try:
            result = await _rounds(Path(tmp), broker.port, events, plain_events)
        finally:
            await broker.stop()
    print(
        f"sync: {events} events per round, {ROUNDS} rounds; durable enqueue "
        f"{result['enqueue_per_s']:.0f} events/s ({ENQUEUE_TX_EVENTS} per transaction), "
        f"one event per transaction {result['enqueue_single_tx_per_s']:.0f}/s; drain "
        f"{result['drain_per_s']:.0f} events/s; plain aiomqtt QoS 1 loop "
        f"{result['plain_loop_per_s']:.0f} events/s; ratio {result['ratio']}"
    )
    emit(result)
    return 0


async def _rounds(tmp: Path, port: int, events: int, plain_events: int) -> dict[str, Any]:
    enqueue, drain, plain, single = [], [], [], []
    for round_no in range(ROUNDS):
        db = Database(tmp / f"round{round_no}.db", SITE)
        upgrade_to_head(db.engine)
        try:
            enqueue.append(await _enqueue(db, events))
            drain.append(await _drain(db, port, events))
            single.append(await _enqueue_single(db))
        finally:
            db.close()
        plain.append(await _plain_loop(port, plain_events))
        progress(round_no + 1, ROUNDS, "sync rounds")
    drain_rate, plain_rate = median(drain), median(plain)
    return {
        "bench": "sync",
        "machine": machine(),
        "events": events,
        "rounds": ROUNDS,
        "enqueue_per_s": median(enqueue),
        "enqueue_events_per_tx": ENQUEUE_TX_EVENTS,
        "enqueue_single_tx_per_s": median(single),
        "drain_per_s": drain_rate,
        "plain_loop_per_s": plain_rate,
        "plain_loop_events": plain_events,
        "ratio": round(drain_rate / plain_rate, 2),
        "drain_batch": {"max_events": 500, "max_bytes": 256 * 1024, "inflight_window": 8},
        "sqlite": {"journal_mode": "wal", "synchronous": "full"},
        "broker": "mosquitto on 127.0.0.1",
    }


async def _enqueue(db: Database, events: int) -> float:
    def write(tx: Transaction, first: int, count: int) -> None:
        for i in range(first, first + count):
            tx.emit("parcel.deposited", _sample_data(i))

    started = time.perf_counter()
    for first in range(0, events, ENQUEUE_TX_EVENTS):
        count = min(ENQUEUE_TX_EVENTS, events - first)
        await db.transact(partial(write, first=first, count=count))
    return events / (time.perf_counter() - started)


async def _enqueue_single(db: Database) -> float:
    started = time.perf_counter()
    for i in range(SINGLE_TX_EVENTS):
        await db.transact(partial(_emit_one, i=i))
    return SINGLE_TX_EVENTS / (time.perf_counter() - started)


def _emit_one(tx: Transaction, i: int) -> None:
    tx.emit("parcel.deposited", _sample_data(i))


async def _drain(db: Database, port: int, events: int) -> float:
    config = MqttConfig(host="127.0.0.1", port=port, client_id=f"bench-{uuid.uuid4().hex[:8]}")
    engine = SyncEngine(config, SITE, "bench", db, Clock())
    started = time.perf_counter()
    task = asyncio.create_task(engine.run_forever())
    try:
        await asyncio.wait_for(engine.uplink.wait_drained(), 600)
        elapsed = time.perf_counter() - started
        assert engine.uplink.stats.acked_seq == events, engine.uplink.stats
    finally:
        await engine.stop(flush_timeout_s=0)
        await task
    return events / elapsed


async def _plain_loop(port: int, events: int) -> float:
    """The peer: one event per message, each publish awaited until its PUBACK."""
    clock = Clock()
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"plain-{uuid.uuid4().hex[:8]}"
    ) as client:
        started = time.perf_counter()
        for i in range(events):
            envelope = {
                "id": str(uuid.uuid4()),
                "seq": i + 1,
                "type": "parcel.deposited",
                "ts": rfc3339(clock.now()),
                "site": SITE,
                "data": _sample_data(i),
            }
            await client.publish(f"edge/v1/{SITE}/events", json.dumps([envelope]).encode(), qos=1)
        return events / (time.perf_counter() - started)
