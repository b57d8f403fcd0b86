"""``edge run`` killed with SIGKILL while it drains its outbox and while it applies a command.

After the restart nothing is lost upstream (duplicates stay within the in-flight window) and
no command is applied twice: the broker redelivers the unacknowledged command, and the site
recognises it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import yaml

from edge.broker import LocalBroker
from edge.commands.envelope import sign_command
from edge.commands.keys import generate_private_key, public_key_b64
from edge.commands.send import send_command
from edge.config import load_config
from edge.config.sync import MqttConfig
from edge.db import Database, Transaction
from edge.db.migrate import upgrade_to_head
from edge.demo.site import SimulatedSite
from tests.edge.test_power_cut import (  # noqa: F401 - processes is a fixture
    SECRET,
    EdgeProcess,
    config_document,
    free_port,
    processes,
    start_edge,
)
from tests.mqtt import Upstream, subscription

SITE = "demo-site"
BATCH = 5
WINDOW = 1
BACKLOG = 4000
KEY = generate_private_key()


def write_config(site: SimulatedSite, broker: LocalBroker, tmp_path: Path) -> Path:
    config = site.config(
        http_port=free_port(),
        code_secret=SECRET,
        logging={"level": "INFO", "format": "json"},
        mqtt={
            "host": broker.host,
            "port": broker.port,
            "batch_max_events": BATCH,
            "inflight_window": WINDOW,
            "reconnect": {"initial_s": 0.05, "max_s": 0.5},
            "keepalive_s": 5,
        },
        commands={"trusted_keys": [{"id": "cloud", "public_key": public_key_b64(KEY)}]},
    )
    document = config_document(config)
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _fill(tx: Transaction) -> None:
    for i in range(BACKLOG):
        tx.emit("order.created", {"order_id": f"o-{i}", "amount_cents": 990})


async def prefill_outbox(config_path: Path) -> None:
    """A site that was offline a while: a backlog waits in its outbox when it starts."""
    config = load_config(config_path, environ={})
    db = Database(config.database_path, config.site.id)
    try:
        upgrade_to_head(db.engine)
        await db.transact(_fill)
    finally:
        db.close()


async def test_sigkill_mid_drain_loses_nothing_and_says_offline(
    site: SimulatedSite,
    broker: LocalBroker,
    tmp_path: Path,
    processes: list[EdgeProcess],  # noqa: F811
) -> None:
    config_path = write_config(site, broker, tmp_path)
    await prefill_outbox(config_path)
    async with Upstream(broker.host, broker.port) as upstream:
        edge = await start_edge(processes, config_path, 1)
        await upstream.wait_for(lambda: upstream.site(SITE).highest >= BACKLOG // 4, 30)
        await edge.kill()
        sent_before_kill = upstream.site(SITE).highest
        assert sent_before_kill < BACKLOG, "the drain finished before the kill: make it slower"

        async with subscription(f"edge/v1/{SITE}/status", broker.host, broker.port) as inbox:
            status = json.loads((await inbox.get(timeout=10)).payload)  # type: ignore[arg-type]
        assert status["state"] == "offline"  # the Last Will, published by the broker

        await start_edge(processes, config_path, 2)
        await upstream.wait_for_seq(SITE, BACKLOG, timeout=60)
    assert upstream.gaps(SITE) == [], upstream.summary(SITE)
    assert upstream.duplicates(SITE) <= WINDOW * BATCH, upstream.summary(SITE)


async def test_sigkill_mid_command_never_applies_it_twice(
    site: SimulatedSite,
    broker: LocalBroker,
    tmp_path: Path,
    processes: list[EdgeProcess],  # noqa: F811
) -> None:
    assert site.boards is not None
    config_path = write_config(site, broker, tmp_path)
    target = site.compartments[0]
    unlocked = asyncio.Event()
    edge: EdgeProcess | None = None

    def on_unlock(address: int, lock: int) -> None:
        if (address, lock) == (target["board"], target["lock"]) and edge is not None:
            assert edge.proc is not None
            edge.proc.kill()  # at once, while the command is being applied
            unlocked.set()

    site.boards.add_unlock_listener(on_unlock)
    cloud = MqttConfig(host=broker.host, port=broker.port)
    async with Upstream(broker.host, broker.port) as upstream:
        edge = await start_edge(processes, config_path, 1)
        envelope = sign_command(
            KEY, "locker.open", {"compartment_id": target["id"], "reason": "test"}, ttl_s=600
        )
        await send_command(cloud, SITE, envelope, wait_s=0)
        await asyncio.wait_for(unlocked.wait(), 20)
        assert edge.proc is not None
        await edge.proc.wait()
        unlocks_before = site.boards.unlock_log.count((target["board"], target["lock"]))
        edge = None  # the restarted one must not be killed

        await start_edge(processes, config_path, 2)

        def results() -> list[dict[str, Any]]:
            return [
                e["data"]
                for e in upstream.events(SITE)
                if e["type"] == "command.result" and e["data"]["command_id"] == envelope["id"]
            ]

        # One answer from the recovery of the interrupted command, one for the redelivery.
        await upstream.wait_for(lambda: len(results()) >= 2, 30)
    first, redelivered = results()[:2]
    assert first["status"] == "failed" and first["error"]["code"] == "interrupted", first
    assert redelivered["status"] == "rejected", redelivered
    assert redelivered["error"]["code"] == "replayed"
    assert unlocks_before == 1
    assert site.boards.unlock_log.count((target["board"], target["lock"])) == 1
