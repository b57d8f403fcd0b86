"""``edge bench labels``: label rendering on one core, and a 10,000-label reprice end to end.

- ``render_per_s``: 296x128 black/white/red labels with Chinese names rendered a second by one
  thread (the label service renders on one worker thread), median of three runs.
- ``reprice_10k_s``: every one of 10,000 bound labels showing version 1 of its product's
  price; version 2 of all prices is committed, and the clock runs until the last label has
  confirmed it: planned, rendered, recorded, uploaded to the OpenEPaperLink access point
  simulator over HTTP (its own process; unpaced: ``uploads_per_s`` far above what it takes),
  fetched by the tags at their check-ins (every second), and confirmed from the AP's tag
  database (its confirmer reads it every 5 s, or less often when reading takes long).
  ``upload_per_s`` is the rate that implies; a real ESP32 access point takes a few a second,
  which ``uploads_per_s`` in the configuration matches.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from drivers.esl.openepaperlink import OpenEPaperLinkAP
from edge.bench.report import emit, machine, median, progress
from edge.catalog.prices import PriceBook
from edge.clock import Clock
from edge.config.labels import LabelsConfig
from edge.db import Database, Transaction
from edge.db.migrate import upgrade_to_head
from edge.db.tables import Label, LabelPush, Price, Product
from edge.labels import pushes
from edge.labels.delivery import Deliverer
from edge.labels.rendering.bench import render_rate
from edge.labels.rendering.model import gtin_check_digit
from edge.labels.service import LabelService
from edge.logs import configure_logging

PREFIX = "00000300"


def gtin(i: int) -> str:
    body = f"0691{i:09d}"
    return body + str(gtin_check_digit(body))


def run_labels_bench(labels: int) -> int:
    configure_logging("WARNING", "console")
    rates = [render_rate(2.0) for _ in range(3)]
    print(f"render: {', '.join(f'{r:.0f}' for r in rates)} labels/s", flush=True)
    seconds = asyncio.run(_reprice(labels))
    print(f"reprice: {labels} labels in {seconds:.1f} s", flush=True)
    emit(
        {
            "bench": "labels",
            "machine": machine(),
            "render_per_s": median(rates),
            "labels": labels,
            "reprice_10k_s": round(seconds * 10_000 / labels, 1),
            "reprice_s": round(seconds, 1),
            "upload_per_s": round(labels / seconds, 1),
        }
    )
    return 0


async def _reprice(count: int) -> float:
    """Seconds from version 2 committed to every label confirming it. The access point
    simulator runs in its own process, as a real one runs on its own device."""
    logging.getLogger("drivers.esl").setLevel(logging.ERROR)
    port = _free_port()
    simulator = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drivers.esl.simulator",
        "--port",
        str(port),
        "--tags",
        str(count),
        "--checkin-interval",
        "1",
        "--wide-paging",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        macs = await _simulated_tags(simulator, count)
        with tempfile.TemporaryDirectory(prefix="edge-bench-labels-") as workdir:
            return await _reprice_through(f"http://127.0.0.1:{port}", macs, Path(workdir))
    finally:
        simulator.terminate()
        await simulator.wait()


async def _simulated_tags(simulator: asyncio.subprocess.Process, count: int) -> list[str]:
    assert simulator.stdout is not None
    macs: list[str] = []
    async with asyncio.timeout(120):
        while len(macs) < count:
            line = (await simulator.stdout.readline()).decode()
            if not line:
                raise RuntimeError("the access point simulator stopped during start-up")
            if line.startswith("  "):
                macs.append(line.split()[0])
    return macs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _reprice_through(url: str, macs: list[str], workdir: Path) -> float:
    count = len(macs)
    db = Database(workdir / "edge.db", "bench-site")
    upgrade_to_head(db.engine)
    since = datetime.now(UTC) - timedelta(hours=1)
    await db.transact(lambda tx: _bound_catalogue(tx, macs, since))
    prices = PriceBook(db)
    prices.load_sync()
    config = LabelsConfig.model_validate(
        {"access_points": [{"name": "ap1", "url": url, "uploads_per_s": 1000}]}
    )
    service = LabelService(config, db, prices, Clock(), {"ap1": OpenEPaperLinkAP(url, name="ap1")})
    await _shown_as_version_1(db, prices)
    await service.start()
    deliverer = service.deliverers["ap1"]
    try:
        started = time.perf_counter()
        await db.transact(lambda tx: _version_2(tx, macs))
        prices.changed()
        service.catalog_changed()
        while deliverer.confirmed < count:
            await deliverer.wait_until(_more_than(deliverer.confirmed), 300)
            progress(deliverer.confirmed, count, "reprice")
        return time.perf_counter() - started
    finally:
        await service.close()
        db.close()


def _more_than(confirmed: int) -> Callable[[Deliverer], bool]:
    return lambda deliverer: deliverer.confirmed > confirmed


def _bound_catalogue(tx: Transaction, macs: list[str], since: datetime) -> None:
    for i, mac in enumerate(macs):
        tx.session.add(
            Product(gtin=gtin(i), name=f"农夫山泉 饮用天然水 {i}", size="550ml", updated_at=since)
        )
        tx.session.add(
            Price(
                gtin=gtin(i),
                version=1,
                amount=200 + i % 300,
                currency="CNY",
                effective_at=since,
                updated_at=since,
            )
        )
        tx.session.add(
            Label(
                id=mac,
                gtin=gtin(i),
                template="2.9-bwr",
                access_point="ap1",
                bound_at=since,
                updated_at=since,
            )
        )


async def _shown_as_version_1(db: Database, prices: PriceBook) -> None:
    """Every label already shows version 1 (as after the store's first full refresh)."""

    def confirm_all(tx: Transaction) -> None:
        labels = tx.session.exec(select(Label)).all()
        pushes.plan(tx, labels, prices, datetime.now(UTC))
        for push in tx.session.exec(select(LabelPush)).all():
            push.state, push.shown = pushes.CONFIRMED, dict(push.content)
            tx.session.add(push)

    await db.transact(confirm_all)


def _version_2(tx: Transaction, macs: list[str]) -> None:
    now = datetime.now(UTC)
    for i in range(len(macs)):
        tx.session.add(
            Price(
                gtin=gtin(i),
                version=2,
                amount=250 + i % 300,
                currency="CNY",
                effective_at=now,
                updated_at=now,
            )
        )
