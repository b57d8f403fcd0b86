"""A bulk reprice: every product's price changes at once, the controller is stopped midway and
started again, and every label ends up showing the new price, each confirmed once. Then the
operator's `edge labels refresh` and `edge labels status` on the same database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import col, select

from drivers.esl.simulator import AccessPointSimulator
from edge.app import EdgeApp
from edge.clock import ManualClock
from edge.db.tables import LabelPush, OutboxEvent
from edge.labels.rendering.model import gtin_check_digit
from tests.edge.test_labels_flow import backoff_elapsed, price, send, started

LABELS = 120


def gtin(i: int) -> str:
    body = f"0690{i:09d}"
    return body + str(gtin_check_digit(body))


@pytest.fixture
async def ap() -> AsyncIterator[AccessPointSimulator]:
    simulator = AccessPointSimulator(checkin_interval_s=0.05)
    simulator.add_tags(LABELS)
    async with simulator:
        yield simulator


async def reprice(app: EdgeApp, clock: ManualClock, version: int, amount: int) -> None:
    prices = [price(gtin(i), version, amount + i, clock, hours=-1 / version) for i in range(LABELS)]
    await send(app, clock, "catalog.upsert", {"prices": prices})


async def updated_events(app: EdgeApp, version: int) -> list[OutboxEvent]:
    rows = await app.db.read(
        lambda s: s.exec(select(OutboxEvent).where(col(OutboxEvent.type) == "label.updated")).all()
    )
    return [r for r in rows if r.data["price_version"] == version]


async def test_a_bulk_reprice_survives_a_restart_midway_and_confirms_each_label_once(
    start_app: Callable[..., Any], clock: ManualClock, ap: AccessPointSimulator, tmp_path: Path
) -> None:
    app = await started(
        start_app,
        ap,
        access_points=[
            {"name": "ap1", "url": ap.base_url, "uploads_per_s": 60, "poll_interval_s": 0.1}
        ],
    )
    products = [{"gtin": gtin(i), "name": f"商品 {i}", "size": "500ml"} for i in range(LABELS)]
    await send(app, clock, "catalog.upsert", {"products": products})
    await reprice(app, clock, 1, 300)
    for i, mac in enumerate(ap.macs):
        await send(app, clock, "label.bind", {"label_id": mac, "gtin": gtin(i)})
    assert app.labels is not None
    await delivered(app, clock, LABELS)

    await reprice(app, clock, 2, 500)
    await app.labels.deliverers["ap1"].wait_until(
        lambda d: d.confirmed >= LABELS + LABELS // 4, timeout=60
    )
    await app.stop()  # midway: some labels show the new price, the rest are queued or sent
    seen = app.events.of_type("label.updated")  # type: ignore[attr-defined]
    before = sum(e.data["price_version"] == 2 for e in seen)
    assert LABELS // 4 <= before < LABELS

    again = await started(
        start_app,
        ap,
        access_points=[
            {"name": "ap1", "url": ap.base_url, "uploads_per_s": 60, "poll_interval_s": 0.1}
        ],
    )
    assert again.labels is not None
    await delivered(again, clock, LABELS - before)
    events = await updated_events(again, 2)
    assert sorted(e.data["label_id"] for e in events) == sorted(ap.macs)  # each once
    pushes = await again.db.read(lambda s: s.exec(select(LabelPush)).all())
    assert {p.state for p in pushes} == {"confirmed"}
    assert {p.label_id: p.content["price"] for p in pushes} == {
        mac: 500 + i for i, mac in enumerate(ap.macs)
    }
    # The first round's uploads, the second's, and at most the few in flight at the stop.
    assert ap.uploads_accepted <= 2 * LABELS + 5

    # The operator pushes every label again from the command line while the controller runs.
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump(operator_config(again)))
    refreshed = run_edge("labels", "refresh", "--all", "--config", str(config))
    assert f"{LABELS} of {LABELS} labels queued" in refreshed.stdout
    again.labels.wake()  # the senders look at the queue every few seconds; no need to wait
    await delivered(again, clock, 2 * LABELS - before)
    status = run_edge("labels", "status", "--config", str(config), "--follow")
    assert status.returncode == 0, status.stderr
    assert f"confirmed {LABELS}" in status.stdout
    assert "labels delivered" in status.stderr  # the progress bar


async def delivered(app: EdgeApp, clock: ManualClock, confirmed: int) -> None:
    """Until ``confirmed`` pushes were confirmed; an upload the AP dropped (one a stop cut
    short) is sent again once its retry delay has passed on the controller's clock."""
    assert app.labels is not None
    deliverer = app.labels.deliverers["ap1"]
    while deliverer.confirmed < confirmed:
        drops = deliverer.dropped + deliverer.upload_errors
        await deliverer.wait_until(
            lambda d, seen=drops: d.confirmed >= confirmed or d.dropped + d.upload_errors > seen,
            timeout=60,
        )
        if deliverer.confirmed < confirmed:
            backoff_elapsed(app, clock)


def operator_config(app: EdgeApp) -> dict[str, Any]:
    """What the operator's tools need of the site's configuration: its database."""
    return {
        "site": {"id": app.config.site.id},
        "data_dir": str(app.config.data_dir),
        "database": {"path": str(app.config.database.path)},
        "code_secret": "x" * 32,
    }


def run_edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=60
    )
