"""The whole controller with its upstream link: events, state, telemetry and signed commands
travel through a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from edge.api.app import create_api
from edge.app import EdgeApp
from edge.broker import LocalBroker
from edge.clock import ManualClock
from edge.commands.envelope import sign_command
from edge.commands.keys import generate_private_key, public_key_b64, write_key_pair
from edge.commands.send import send_command
from edge.config.sync import MqttConfig
from edge.db.tables import Compartment
from edge.demo.site import COURIER_ID, SimulatedSite
from tests.edge.test_power_cut import free_port
from tests.mqtt import Upstream, subscription

SITE = "demo-site"  # SimulatedSite's site id
REPO = Path(__file__).resolve().parents[2]
KEY = generate_private_key()


def link(broker: LocalBroker | int, **changes: Any) -> dict[str, Any]:
    """Config overrides: the mqtt section (a broker, or a bare port) and a trusted key."""
    mqtt: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": broker if isinstance(broker, int) else broker.port,
        "telemetry_interval_s": 0.2,
        "reconnect": {"initial_s": 0.05, "max_s": 0.3},
        "connect_timeout_s": 3,
    }
    mqtt.update(changes)
    return {
        "mqtt": mqtt,
        "commands": {"trusted_keys": [{"id": "cloud-1", "public_key": public_key_b64(KEY)}]},
    }


def cloud(broker: LocalBroker) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port)


async def command(
    broker: LocalBroker, clock: ManualClock, type_: str, data: dict[str, Any]
) -> dict[str, Any]:
    envelope = sign_command(KEY, type_, data, ttl_s=60, kid="cloud-1", issued_at=clock.now())
    result = await send_command(cloud(broker), SITE, envelope, wait_s=10)
    assert result is not None, f"no command.result for {type_}"
    return result


async def compartment(app: EdgeApp, compartment_id: str) -> Compartment:
    found = await app.db.read(lambda s: s.get(Compartment, compartment_id))
    assert found is not None
    return found


async def test_a_deposit_reaches_upstream_with_state_and_telemetry(
    start_app: Callable[..., Any], site: SimulatedSite, broker: LocalBroker, upstream: Upstream
) -> None:
    app: EdgeApp = await start_app(**link(broker))
    assert app.sync is not None and await app.sync.wait_connected(5)
    door = await app.lockers.start_deposit(COURIER_ID, "SF1234567890", "S")
    site.close_door(door.compartment_id)
    await app.lockers.wait_operation(door.operation_id, wait_s=10)
    deposited = await app.events.wait_for("parcel.deposited")  # type: ignore[attr-defined]
    await upstream.wait_for_seq(SITE, deposited.seq, timeout=10)
    sent = next(e for e in upstream.events(SITE) if e["seq"] == deposited.seq)
    assert sent["id"] == deposited.id and sent["type"] == "parcel.deposited"

    async with subscription(f"edge/v1/{SITE}/state/+", broker.host, broker.port) as inbox:
        state = await inbox.collect(
            None,
            lambda ms: (
                _has_compartment(ms, door.compartment_id, "occupied")
                and any(m.topic.value.endswith("/devices") for m in ms)
            ),
            10,
        )
    first: dict[str, Any] = {}
    for message in state:
        first.setdefault(message.topic.value.rsplit("/", 1)[1], message)
    assert set(first) == {"compartments", "devices"}
    assert all(m.retain for m in first.values())  # a new subscriber gets the snapshot at once

    async with subscription(f"edge/v1/{SITE}/telemetry", broker.host, broker.port) as inbox:
        telemetry = json.loads((await inbox.get(timeout=5)).payload)  # type: ignore[arg-type]
    assert telemetry["outbox"]["last_seq"] >= deposited.seq
    assert {d["name"] for d in telemetry["devices"]} >= {"lockers", "freezer"}
    assert {t["sensor"] for t in telemetry["temperatures"]} == {"chiller", "freezer-probe"}


def _has_compartment(messages: list[Any], compartment_id: str, state: str) -> bool:
    for message in messages:
        if message.topic.value.endswith("/compartments"):
            for row in json.loads(message.payload):
                if row["id"] == compartment_id and row["state"] == state:
                    return True
    return False


async def test_signed_commands_are_applied_and_forged_ones_are_not(
    start_app: Callable[..., Any], site: SimulatedSite, broker: LocalBroker, clock: ManualClock
) -> None:
    app: EdgeApp = await start_app(**link(broker))
    assert app.sync is not None and await app.sync.wait_connected(5)
    target = site.compartments[0]["id"]

    forged = sign_command(
        KEY,
        "compartment.disable",
        {"compartment_id": target, "reason": "x"},
        ttl_s=60,
        issued_at=clock.now(),
    )
    forged["data"]["reason"] = "changed after signing"
    rejected = await send_command(cloud(broker), SITE, forged, wait_s=10)
    assert rejected is not None and rejected["status"] == "rejected"
    assert rejected["error"]["code"] == "bad_signature"
    assert (await compartment(app, target)).enabled

    applied = await command(
        broker, clock, "compartment.disable", {"compartment_id": target, "reason": "hinge"}
    )
    assert applied["status"] == "ok", applied
    assert not (await compartment(app, target)).enabled

    unknown = await command(broker, clock, "compartment.paint", {"compartment_id": target})
    assert unknown["status"] == "rejected" and unknown["error"]["code"] == "unknown_type"

    # A command addressed to another site (captured there, replayed here) is refused.
    data = {"compartment_id": target, "reason": "fixed"}
    elsewhere = sign_command(
        KEY, "compartment.enable", data, ttl_s=60, site="other-site", issued_at=clock.now()
    )
    refused = await send_command(cloud(broker), SITE, elsewhere, wait_s=10)
    assert refused is not None and refused["error"]["code"] == "wrong_site"
    assert not (await compartment(app, target)).enabled
    here = sign_command(KEY, "compartment.enable", data, ttl_s=60, site=SITE, issued_at=clock.now())
    enabled = await send_command(cloud(broker), SITE, here, wait_s=10)
    assert enabled is not None and enabled["status"] == "ok"
    assert (await compartment(app, target)).enabled


async def test_a_command_sent_while_the_site_is_offline_arrives_when_it_reconnects(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    broker: LocalBroker,
    upstream: Upstream,
    clock: ManualClock,
) -> None:
    target = site.compartments[1]["id"]
    first: EdgeApp = await start_app(**link(broker))
    assert first.sync is not None and await first.sync.wait_connected(5)  # session + subscription
    await first.stop()

    envelope = sign_command(
        KEY,
        "compartment.disable",
        {"compartment_id": target, "reason": "offline"},
        ttl_s=300,
        issued_at=clock.now(),
    )
    assert await send_command(cloud(broker), SITE, envelope, wait_s=0) is None

    second: EdgeApp = await start_app(**link(broker))
    result = await second.events.wait_for(  # type: ignore[attr-defined]
        "command.result", lambda e: e.data["command_id"] == envelope["id"], timeout=10
    )
    assert result.data["status"] == "ok"
    assert not (await compartment(second, target)).enabled


async def test_edge_command_send_from_the_command_line(
    start_app: Callable[..., Any],
    site: SimulatedSite,
    broker: LocalBroker,
    tmp_path: Path,
    clock: ManualClock,
) -> None:
    # The command line signs with the real time; bring the site's clock there.
    clock.advance((datetime.now(UTC) - clock.now()).total_seconds())
    app: EdgeApp = await start_app(**link(broker))
    assert app.sync is not None and await app.sync.wait_connected(5)
    key_path = tmp_path / "cloud-1.pem"
    write_key_pair(key_path, KEY)
    config_path = tmp_path / "cloud.yaml"
    document = app.config.model_dump(mode="json", by_alias=True, exclude_none=True)
    document["code_secret"] = "not-used-by-the-sender"
    document.pop("kiosks")
    document["http"].pop("operator_token", None)
    config_path.write_text(yaml.safe_dump(document))
    target = site.compartments[2]["id"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli", "command", "send",
        "--config", str(config_path), "--key", str(key_path), "--kid", "cloud-1",
        "--type", "compartment.disable",
        "--data", json.dumps({"compartment_id": target, "reason": "from the CLI"}),
        "--wait", "10",
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, (out, err)
    assert '"status": "ok"' in out.decode() or '"status":"ok"' in out.decode()
    assert not (await compartment(app, target)).enabled


async def test_with_the_broker_unreachable_the_site_works_and_metrics_show_the_backlog(
    start_app: Callable[..., Any], site: SimulatedSite
) -> None:
    app: EdgeApp = await start_app(**link(free_port()))  # nobody listens there
    door = await app.lockers.start_deposit(COURIER_ID, "SF000111", "S")
    site.close_door(door.compartment_id)
    view = await app.lockers.wait_operation(door.operation_id, wait_s=10)
    assert view.pickup_code is not None  # the deposit completed while offline

    transport = httpx.ASGITransport(app=create_api(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as http:
        metrics = (await http.get("/metrics")).text
    assert app.sync is not None and app.sync.state.failures >= 1
    pending = _metric(metrics, "edge_outbox_pending")
    assert pending >= 4  # door.commanded, door.opened, door.closed, parcel.deposited at least
    assert _metric(metrics, "edge_sync_connected") == 0
    assert _metric(metrics, "edge_outbox_last_seq") - _metric(metrics, "edge_outbox_acked_seq") == (
        pending
    )


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
