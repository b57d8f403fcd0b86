"""Power cut in the middle of a cabinet session: ``edge run`` SIGKILLed, then started again.

The restarted controller settles the session from the door state and a fresh inventory: the
shopper is charged once for what they took, never twice and never not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from edge.clock import Clock
from edge.config import load_config
from edge.db import Database
from edge.db.migrate import upgrade_to_head
from edge.demo.site import DEMO_PRODUCTS, SimulatedSite, add_demo_catalog
from tests.edge.test_power_cut import (
    KIOSK,
    OPERATOR,
    EdgeProcess,
    config_document,
    events,
    free_port,
    start_edge,
)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[SimulatedSite]:
    simulated = SimulatedSite(tmp_path / "site", with_cabinet=True)
    simulated.tags.read_probability = 0.95
    await simulated.start()
    simulated.stock_cabinet(20)
    yield simulated
    await simulated.stop()


@pytest.fixture
async def edge_config(site: SimulatedSite, tmp_path: Path) -> Path:
    config = site.config(
        http_port=free_port(),
        code_secret="cabinet-power-cut",
        logging={"level": "INFO", "format": "json"},
    )
    # The catalogue as upstream would have sent it, in the database the process will open.
    db = Database(config.database_path, config.site.id)
    upgrade_to_head(db.engine)
    since = Clock().now() - timedelta(hours=1)

    db.transact_sync(lambda tx: add_demo_catalog(tx, since))
    db.close()
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config_document(config), sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
async def processes() -> AsyncIterator[list[EdgeProcess]]:
    started: list[EdgeProcess] = []
    yield started
    for process in started:
        if process.proc is not None and process.proc.returncode is None:
            await process.kill()


async def poll(http: httpx.AsyncClient, path: str, until: Any, deadline_s: float = 30) -> Any:
    """Another process: nothing to wait on but its API."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while True:
        r = await http.get(path, headers=OPERATOR if "kiosk" not in path else KIOSK)
        if r.status_code == 200 and until(r.json()):
            return r.json()
        assert loop.time() < deadline, f"{path} never matched: {r.text}"
        await asyncio.sleep(0.05)


async def start_shopping(http: httpx.AsyncClient) -> str:
    await poll(http, "/api/v1/kiosk/cabinets", lambda cabs: cabs[0]["available"])
    r = await http.post(
        "/api/v1/kiosk/cabinets/K1/sessions",
        headers=KIOSK,
        json={"member_id": "member-42", "member_source": "qr"},
    )
    assert r.status_code == 201, r.text
    session_id: str = r.json()["id"]
    await poll(http, f"/api/v1/kiosk/cabinet-sessions/{session_id}", lambda s: s["state"] == "open")
    return session_id


async def charged_once(
    processes: list[EdgeProcess], edge_config: Path, session_id: str, taken: set[str]
) -> None:
    second = await start_edge(processes, edge_config, 2)
    async with httpx.AsyncClient(base_url=second.base_url, timeout=15) as http:
        session = await poll(
            http, f"/api/v1/cabinet-sessions/{session_id}", lambda s: s["state"] == "closed"
        )
        assert {line["epc"] for line in session["lines"]} == taken
        assert session["total"] == sum(
            price
            for gtin, _n, price in DEMO_PRODUCTS
            for line in session["lines"]
            if line["gtin"] == gtin
        )
        found = await events(http)
    orders = [e for e in found if e["type"] == "order.created"]
    assert len(orders) == 1, orders
    assert {line["epc"] for line in orders[0]["data"]["lines"]} == taken
    closed = [e for e in found if e["type"] == "cabinet.session_closed"]
    assert [e["data"]["session_id"] for e in closed] == [session_id]
    assert await second.terminate() == 0


async def test_power_cut_with_the_door_open_settles_once_after_restart(
    site: SimulatedSite, edge_config: Path, processes: list[EdgeProcess]
) -> None:
    assert load_config(edge_config, environ={}).cabinets
    first = await start_edge(processes, edge_config, 1)
    async with httpx.AsyncClient(base_url=first.base_url, timeout=15) as http:
        session_id = await start_shopping(http)
    taken = set(sorted(site.tags.epcs())[:3])
    for epc in taken:
        site.tags.remove(epc)
    await first.kill()
    site.close_cabinet()  # the shopper shuts the door while the power is off
    await charged_once(processes, edge_config, session_id, taken)


async def test_power_cut_while_counting_after_the_close_settles_once(
    site: SimulatedSite, edge_config: Path, processes: list[EdgeProcess]
) -> None:
    assert site.reader is not None
    first = await start_edge(processes, edge_config, 1)
    async with httpx.AsyncClient(base_url=first.base_url, timeout=15) as http:
        session_id = await start_shopping(http)
        taken = set(sorted(site.tags.epcs())[-2:])
        for epc in taken:
            site.tags.remove(epc)
        site.reader.silent = True  # the count cannot finish before the power goes
        site.close_cabinet()
        await poll(
            http, f"/api/v1/cabinet-sessions/{session_id}", lambda s: s["state"] == "settling"
        )
    await first.kill()
    site.reader.silent = False
    await charged_once(processes, edge_config, session_id, taken)
