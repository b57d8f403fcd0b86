"""The screens' event streams (SSE) over a real HTTP listener: what kiosks see, resuming, ending."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from edge.api import feed as feed_module
from edge.api import stream as stream_module
from edge.app import EdgeApp
from edge.demo.site import COURIER_ID, KIOSK_TOKEN, OPERATOR_TOKEN, SimulatedSite

KIOSK = {"X-Kiosk-Token": KIOSK_TOKEN}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@dataclass
class Message:
    event: str
    id: str | None
    data: Any


class SseReader:
    """Reads messages off an open ``text/event-stream`` response, as a browser would."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, within_s: float = 10) -> Message:
        fields: dict[str, str] = {}
        async with asyncio.timeout(within_s):
            async for line in self._lines:
                if line == "":
                    if fields:
                        data = json.loads(fields["data"]) if "data" in fields else None
                        return Message(fields.get("event", "message"), fields.get("id"), data)
                    continue
                if line.startswith(":"):
                    continue  # keepalive
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        raise EOFError("the stream ended")

    async def until(self, type_: str, within_s: float = 10) -> Message:
        while True:
            message = await self.next(within_s)
            if message.event == type_:
                return message


@pytest.fixture
async def served(make_app: Callable[..., EdgeApp]) -> AsyncIterator[EdgeApp]:
    app = make_app()
    await app.start(serve_http=True)
    await app.wait_checked()
    yield app
    await app.stop()


def base_url(app: EdgeApp) -> str:
    return f"http://127.0.0.1:{app.http_port}"


async def deposit(app: EdgeApp, site: SimulatedSite, code: str) -> tuple[str, str]:
    door = await app.lockers.start_deposit(COURIER_ID, code, "S")
    site.close_door(door.compartment_id)
    done = await app.lockers.wait_operation(door.operation_id, wait_s=5)
    assert done.pickup_code is not None
    return door.compartment_id, door.operation_id


async def test_a_kiosk_sees_doors_and_parcels_but_no_codes(
    served: EdgeApp, site: SimulatedSite
) -> None:
    async with (
        httpx.AsyncClient(base_url=base_url(served), timeout=10) as http,
        http.stream("GET", "/api/v1/kiosk/stream", headers=KIOSK) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(response)
        assert (await reader.next()).event == "ready"
        compartment, operation = await deposit(served, site, "PKG-SECRET-1")

        opened = await reader.until("door.opened")
        assert opened.data["data"] == {"compartment": compartment, "operation": operation}
        closed = await reader.until("door.closed")
        assert int(closed.id or 0) > int(opened.id or 0)
        deposited = await reader.until("parcel.deposited")
        assert deposited.data["data"]["compartment"] == compartment
        # A public screen is never told parcel codes, courier ids or pickup codes.
        assert "PKG-SECRET-1" not in json.dumps(deposited.data)
        assert COURIER_ID not in json.dumps(deposited.data)


async def test_the_kiosk_stream_needs_a_kiosk_token(served: EdgeApp) -> None:
    async with httpx.AsyncClient(base_url=base_url(served), timeout=10) as http:
        refused = await http.get("/api/v1/kiosk/stream", headers=OPERATOR)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "not_a_kiosk"
        refused = await http.get("/api/v1/stream", headers=KIOSK)
        assert refused.status_code == 401


async def test_a_screen_that_reconnects_gets_what_it_missed_once(
    served: EdgeApp, site: SimulatedSite
) -> None:
    async with httpx.AsyncClient(base_url=base_url(served), timeout=10) as http:
        async with http.stream("GET", "/api/v1/stream", headers=OPERATOR) as response:
            reader = SseReader(response)
            await reader.next()  # ready
            await deposit(served, site, "PKG-1")
            seen = await reader.until("parcel.deposited")
        # Disconnected: two more deposits happen.
        await deposit(served, site, "PKG-2")
        await deposit(served, site, "PKG-3")
        headers = {**OPERATOR, "Last-Event-ID": seen.id or ""}
        async with http.stream("GET", "/api/v1/stream", headers=headers) as response:
            reader = SseReader(response)
            replayed = []
            while (message := await reader.next()).event != "ready":
                replayed.append(message)
        seqs = [int(m.id or 0) for m in replayed]
        assert seqs == sorted(seqs) and seqs[0] == int(seen.id or 0) + 1
        codes = [m.data["data"].get("parcel_code") for m in replayed]
        assert [c for c in codes if c] == ["PKG-2", "PKG-3"]


async def test_a_screen_that_missed_too_much_is_told_to_reload(
    served: EdgeApp, site: SimulatedSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "REPLAY_LIMIT", 3)
    await deposit(served, site, "PKG-1")  # several events: commanded, opened, closed, deposited
    async with (
        httpx.AsyncClient(base_url=base_url(served), timeout=10) as http,
        http.stream("GET", "/api/v1/stream", headers=OPERATOR, params={"after": 0}) as response,
    ):
        reader = SseReader(response)
        assert (await reader.next()).event == "resync"
        assert (await reader.next()).event == "ready"
        await deposit(served, site, "PKG-2")
        live = await reader.until("parcel.deposited")
        assert live.data["data"]["parcel_code"] == "PKG-2"


async def test_a_screen_that_stops_reading_is_cut_off_not_buffered_forever(
    served: EdgeApp, site: SimulatedSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "QUEUE_LIMIT", 2)
    with served.feed.watch() as watcher:
        await deposit(served, site, "PKG-1")  # more than two events
        assert watcher.cut_off
        received = [await watcher.next(), await watcher.next()]
        assert [e.seq for e in received] == sorted(e.seq for e in received)
        with pytest.raises(feed_module.FeedEnded):
            await watcher.next()
    assert served.feed.watchers == 0


async def test_a_stop_ends_open_streams(make_app: Callable[..., EdgeApp]) -> None:
    app = make_app()
    await app.start(serve_http=True)
    await app.wait_checked()
    async with (
        httpx.AsyncClient(base_url=base_url(app), timeout=10) as http,
        http.stream("GET", "/api/v1/kiosk/stream", headers=KIOSK) as response,
    ):
        reader = SseReader(response)
        assert (await reader.next()).event == "ready"
        # Without ending the streams, the HTTP server would wait for them and the stop hang.
        await asyncio.wait_for(app.stop(), 15)
        with pytest.raises((EOFError, httpx.HTTPError)):
            await reader.next(5)
