"""An OpenEPaperLink access point on 127.0.0.1: the AP's HTTP API over a simulated tag database.

It answers ``/imgupload``, ``/jsonupload``, ``/get_db`` and ``/tag_cmd`` as the AP firmware does
(see ``drivers.esl.openepaperlink`` for the source files and the semantics) and models what
happens behind them:

* An upload stores the JPEG, sets ``contentMode`` (default 24) and ``nextupdate`` 0.
* The content runner converts it for a tag that has been heard (``RSSI`` != 0): to the tag's
  palette (Pillow, Floyd-Steinberg when ``dither`` != 0), one bit plane for black and one for
  the colour, and hashes that buffer with md5. If the first 8 bytes equal the tag's current
  hash it queues nothing, else it queues a transfer (``pending`` = queue length) and deletes the
  JPEG. It runs right away (``prepare_immediately=True``) or when ``run_content()`` is called.
  The real AP converts with its own dithering and compression, so hashes of the same JPEG differ
  between this simulator and a device; their form and behaviour are the same.
* ``check_in(mac)``: the tag wakes. ``lastseen``/``nextcheckin``/radio fields are updated; a
  boot wake-up with nothing pending zeroes the hash; then the tag takes the first queued item
  and reports transfer complete: ``hash`` = its 8-byte data version + 8 zero bytes,
  ``updatecount`` + 1, ``updatelast`` = now, ``pending`` = what is left. One item per check-in.
* Faithful quirks: ``pos`` of ``get_db`` is 8 bits (``page_pos_bits=None`` lifts that for
  benchmarks), queued images for a tag are not replaced by newer ones (an operator precedence
  slip in newproto.cpp ``queueDataAvail``), ``refresh`` of an uploaded image only zeroes the hash.
* Not modelled: the 5-minute "due to check in" condition and sleep hours of the content runner,
  multiple APs, JSON template drawing (``/jsonupload`` is stored, not drawn), firmware updates.

Which answer ``/imgupload`` gives depends on the AP's web server library (``web_server``).
web.cpp answers twice: the upload handler sends 409 / 400 / "Ok, saved" while the body is
parsed, then the request handler sends a bare 200. With ``esphome/ESPAsyncWebServer`` (AP firmware
from 2024-04 to 2025-03) ``send`` writes at once, so the first answer reaches the client. With
``ESP32Async/ESPAsyncWebServer`` (since 2025-03-19, AP commit 2d486d7c, still current) ``send``
replaces an answer not yet written, so every upload gets an empty 200, even while the AP is not
running (the upload is then dropped) or for an unknown MAC. The default is the current library.

Faults: ``set_running(False)`` (409 on uploads with ``web_server="esphome"``; with the current
library the upload is silently dropped), ``set_online(mac, False)`` (a tag that never
checks in), ``fail_next(n, status=...)``, ``garble_next(n)`` (a 200 with a truncated body) and
``latency_s`` (every answer waits, for client timeouts).

Run ``python -m drivers.esl.simulator --port 8088 --tags 20`` to serve until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import io
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from .openepaperlink import NEVER

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Handler = Callable[[Request], Awaitable[Response]]
# The AP's web server library decides which of two answers to /imgupload reaches the client.
WebServer = Literal["esp32async", "esphome"]
TransferListener = Callable[[str, str | None], None]  # mac, command (None = an image)

WHITE, BLACK, RED, YELLOW = (255, 255, 255), (0, 0, 0), (255, 0, 0), (255, 255, 0)
PAGE_LIMIT = 5000  # tagDBtoJson ends a page after the tag that makes the JSON exceed this
WAKEUP_FIRSTBOOT = 0xFC
WAKEUP_NETWORK_SCAN = 0xFD
_ZERO8 = bytes(8)
# First 8 bytes of the ledFlash payloads web.cpp sends (oepl-proto.h bit fields, LSB first):
# they become the command's data version, so the tag's hash after it completes.
_COMMAND_DATA_VER = {
    "ledflash": bytes([0x81, 0x3C, 0x13, 0x0A, 0xE4, 0x53, 0x0A, 0x03]),
    "ledflash_long": bytes([0x11, 0xE4, 0x33, 0x32, 0, 0, 0, 0]),
}
_QUEUED_COMMANDS = frozenset(
    {"reboot", "scan", "reset", "deepsleep", "ledflash", "ledflash_long", "ledflash_stop"}
)
_HEX_MAC = re.compile(r"(?:[0-9A-Fa-f]{12}|[0-9A-Fa-f]{16})")
_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


@dataclass(frozen=True)
class HwType:
    id: int
    name: str
    width: int
    height: int
    colors: tuple[tuple[int, int, int], ...]  # palette index order: white, black, colours


# A few of resources/tagtypes/*.json.
HW_TYPES: dict[int, HwType] = {
    t.id: t
    for t in (
        HwType(0x00, 'M2 1.54"', 152, 152, (WHITE, BLACK, RED)),
        HwType(0x01, 'M2 2.9"', 296, 128, (WHITE, BLACK, RED)),
        HwType(0x02, 'M2 4.2"', 400, 300, (WHITE, BLACK, RED)),
        HwType(0x03, 'M2 2.2"', 212, 104, (WHITE, BLACK, RED)),
        HwType(0x04, 'M2 2.6"', 296, 152, (WHITE, BLACK, RED)),
        HwType(0x05, 'M2 7.4"', 640, 384, (WHITE, BLACK, RED)),
        HwType(0x26, 'M2 7.5" BW', 640, 384, (WHITE, BLACK)),
        HwType(0x28, 'M3 1.6" BWRY', 168, 168, (WHITE, BLACK, RED, YELLOW)),
    )
}


@dataclass
class _QueueItem:
    data_ver: bytes  # 8 bytes
    command: str | None = None  # None = an image
    image: Image.Image | None = None


@dataclass
class _StoredUpload:
    jpeg: bytes
    dither: int


@dataclass
class SimTag:
    """One tag as the AP records it, plus what the simulated tag itself does."""

    mac: str
    hw: HwType
    online: bool = True  # False: the tag never checks in
    radio_rssi: int = -60  # what the tag reports at check-in
    battery_mv: int = 2900
    temperature: int = 21
    alias: str = ""
    # AP record (tag_db.h tagRecord)
    rssi: int = 0  # 0 = never heard
    lqi: int = 0
    lastseen: int = 0
    nextupdate: int = 0
    nextcheckin: int = 0
    content_mode: int = 0
    md5: bytes = bytes(16)
    wakeup_reason: int = 0
    capabilities: int = 0
    modecfgjson: str = ""
    rotate: int = 0
    lut: int = 0
    invert: int = 0
    update_count: int = 0
    update_last: int = 0
    channel: int = 0
    version: int = 0
    queue: list[_QueueItem] = field(default_factory=list)
    stored_upload: _StoredUpload | None = None  # the JPEG in /temp until it is converted
    last_upload_jpeg: bytes | None = None
    shown: Image.Image | None = None  # what the display shows (after transfer complete)
    commands_received: list[str] = field(default_factory=list)
    next_wakeup_reason: int = WAKEUP_FIRSTBOOT

    def to_json(self) -> dict[str, Any]:
        """tag_db.cpp ``fillNode``, field for field."""
        return {
            "mac": self.mac,
            "hash": self.md5.hex(),
            "lastseen": self.lastseen,
            "nextupdate": self.nextupdate,
            "nextcheckin": self.nextcheckin,
            "pending": len(self.queue),
            "alias": self.alias,
            "contentMode": self.content_mode,
            "LQI": self.lqi,
            "RSSI": self.rssi,
            "temperature": self.temperature,
            "batteryMv": self.battery_mv,
            "hwType": self.hw.id,
            "wakeupReason": self.wakeup_reason,
            "capabilities": self.capabilities,
            "modecfgjson": self.modecfgjson,
            "isexternal": False,
            "apip": "0.0.0.0",  # noqa: S104 - a field value, nothing binds to it
            "rotate": self.rotate,
            "lut": self.lut,
            "invert": self.invert,
            "updatecount": self.update_count,
            "updatelast": self.update_last,
            "ch": self.channel,
            "ver": self.version,
        }


class AccessPointSimulator:
    """The AP side: ``base_url = await sim.start()``, then drive tags and inject faults."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = time.time,
        checkin_interval_s: float | None = None,
        tag_interval_s: int = 40,
        prepare_immediately: bool = True,
        page_pos_bits: int | None = 8,
        channel: int = 11,
        web_server: WebServer = "esp32async",
        keep_alive: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.clock = clock
        self.checkin_interval_s = checkin_interval_s
        self.tag_interval_s = tag_interval_s
        self.prepare_immediately = prepare_immediately
        self.page_pos_bits = page_pos_bits
        self.channel = channel
        self.web_server = web_server
        self.keep_alive = keep_alive  # True: not like the AP, saves a connect per request
        self.running = True
        self.latency_s = 0.0
        self.requests: Counter[str] = Counter()
        self.uploads_accepted = 0
        self.conversion_errors: list[str] = []
        self._tags: dict[str, SimTag] = {}  # insertion order = the AP's tagDB order
        self._faults: list[tuple[int, str]] = []  # (status, body) or (0, "garble")
        self._transfer_listeners: list[TransferListener] = []
        self._server: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._checkin_task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._app = Starlette(
            routes=[
                Route("/imgupload", self._guarded(self._imgupload), methods=["POST"]),
                Route("/jsonupload", self._guarded(self._jsonupload), methods=["POST"]),
                Route("/get_db", self._guarded(self._get_db), methods=["GET"]),
                Route("/tag_cmd", self._guarded(self._tag_cmd), methods=["POST"]),
            ]
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> str:
        config = uvicorn.Config(
            self._app,
            host=self.host,
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._closing.clear()
        self._server = uvicorn.Server(config)
        self._serve_task = asyncio.create_task(self._server.serve(), name="oepl-sim-http")
        async with asyncio.timeout(10):
            while not self._server.started:
                if self._serve_task.done():
                    self._serve_task.result()  # why it could not start (port taken)
                    raise RuntimeError("the simulator's HTTP server stopped during start-up")
                await asyncio.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        if self.checkin_interval_s:
            self._checkin_task = asyncio.create_task(self._check_in_periodically())
        return self.base_url

    async def stop(self) -> None:
        self._closing.set()
        if self._checkin_task is not None:
            self._checkin_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkin_task
            self._checkin_task = None
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            await self._serve_task
        self._server = self._serve_task = None

    async def wait_closed(self) -> None:
        """Until the HTTP server stops (uvicorn stops it on SIGINT or SIGTERM)."""
        if self._serve_task is not None:
            await asyncio.shield(self._serve_task)

    async def __aenter__(self) -> AccessPointSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- tags ---------------------------------------------------------------------------------

    def add_tag(
        self,
        mac: str,
        *,
        hw_type: int = 0x01,
        width: int | None = None,
        height: int | None = None,
        seen: bool = True,
        online: bool = True,
        alias: str = "",
        battery_mv: int = 2900,
        rssi: int = -60,
    ) -> str:
        """A tag in the AP's database. Returns its MAC as the AP shows it.

        ``seen``: it has booted and checked in once already (else it is a record the AP has not
        heard from, e.g. restored from a backup: uploads wait for its first check-in).
        ``width``/``height`` override the size of ``hw_type`` (required for unknown types)."""
        normalized = _hex2mac(mac)
        if normalized is None:
            raise ValueError(f"not a 12 or 16 hex digit MAC: {mac!r}")
        if normalized in self._tags:
            raise ValueError(f"tag {normalized} exists")
        hw = HW_TYPES.get(hw_type)
        if hw is None:
            if width is None or height is None:
                raise ValueError(f"hwType {hw_type:#04x} is unknown here: give width and height")
            hw = HwType(hw_type, f"type {hw_type:02X}", width, height, (WHITE, BLACK, RED))
        elif width is not None or height is not None:
            hw = HwType(hw.id, hw.name, width or hw.width, height or hw.height, hw.colors)
        tag = SimTag(normalized, hw, online=online, radio_rssi=rssi, battery_mv=battery_mv)
        tag.alias = alias
        self._tags[normalized] = tag
        if seen:
            self._record_check_in(tag, wakeup_reason=0)
            tag.next_wakeup_reason = 0
            tag.nextupdate = NEVER  # its boot content has been drawn
        return normalized

    def add_tags(self, count: int, *, hw_type: int = 0x01, prefix: str = "00000200") -> list[str]:
        """``count`` tags with MACs ``prefix`` + a running number."""
        digits = 16 - len(prefix)
        return [self.add_tag(f"{prefix}{i:0{digits}X}", hw_type=hw_type) for i in range(count)]

    def tag(self, mac: str) -> SimTag:
        normalized = _hex2mac(mac)
        if normalized is None or normalized not in self._tags:
            raise KeyError(mac)
        return self._tags[normalized]

    @property
    def macs(self) -> list[str]:
        return list(self._tags)

    def set_online(self, mac: str, online: bool) -> None:
        self.tag(mac).online = online

    def add_transfer_listener(self, listener: TransferListener) -> None:
        """Called after every transfer complete with the MAC and the command (None = image)."""
        self._transfer_listeners.append(listener)

    def uploaded_image(self, mac: str) -> Image.Image | None:
        """The last JPEG accepted for the tag, decoded (RGB)."""
        jpeg = self.tag(mac).last_upload_jpeg
        return None if jpeg is None else _decode(jpeg)

    def displayed_image(self, mac: str) -> Image.Image | None:
        """What the tag shows: the converted image of its last completed transfer (RGB)."""
        shown = self.tag(mac).shown
        return None if shown is None else shown.convert("RGB")

    # -- the tags' side -----------------------------------------------------------------------

    def check_in(self, mac: str) -> bool:
        """The tag wakes up and talks to the AP; True if it completed a transfer."""
        tag = self.tag(mac)
        if not tag.online:
            return False
        wakeup, tag.next_wakeup_reason = tag.next_wakeup_reason, 0
        self._record_check_in(tag, wakeup_reason=wakeup)
        delivered = self._transfer_one(tag)
        if self.prepare_immediately:
            self._prepare(tag)
        return delivered

    def check_in_all(self) -> int:
        """Every online tag checks in once; returns the number of completed transfers."""
        return sum(self.check_in(mac) for mac in list(self._tags))

    def run_content(self) -> int:
        """One pass of the AP's content runner; returns the number of transfers queued."""
        return sum(self._prepare(tag) for tag in list(self._tags.values()))

    def _record_check_in(self, tag: SimTag, *, wakeup_reason: int) -> None:
        now = int(self.clock())
        tag.lastseen = now
        tag.nextcheckin = now + self.tag_interval_s
        tag.rssi, tag.lqi = tag.radio_rssi, 100
        tag.wakeup_reason = wakeup_reason
        tag.channel = self.channel
        tag.version = 0x001E
        if wakeup_reason >= 0xE0 and not tag.queue:
            tag.nextupdate = 0
            tag.md5 = bytes(16)

    def _transfer_one(self, tag: SimTag) -> bool:
        if not tag.queue:
            return False
        item = tag.queue.pop(0)
        if item.command == "deepsleep":
            # Delivered without a transfer-complete; the tag sleeps until woken by hand.
            tag.commands_received.append(item.command)
            tag.nextcheckin = NEVER
            tag.online = False
            return False
        tag.md5 = item.data_ver + _ZERO8
        tag.update_count += 1
        tag.update_last = int(self.clock())
        if item.image is not None:
            tag.shown = item.image
        if item.command is not None:
            tag.commands_received.append(item.command)
            if item.command == "reboot":
                tag.next_wakeup_reason = WAKEUP_FIRSTBOOT
            elif item.command == "scan":
                tag.next_wakeup_reason = WAKEUP_NETWORK_SCAN
        for listener in self._transfer_listeners:
            listener(tag.mac, item.command)
        return True

    def _prepare(self, tag: SimTag) -> bool:
        """contentmanager.cpp ``contentRunner`` + ``drawNew`` for one tag: True if queued."""
        if tag.nextupdate != 0 or tag.rssi == 0:
            return False
        tag.nextupdate = NEVER
        upload = tag.stored_upload
        if upload is None or tag.content_mode not in (0, 22, 23, 24, 25):
            return False  # "Not found: /temp/...": the JPEG was consumed already
        converted = _convert(upload.jpeg, tag.hw, dither=upload.dither != 0)
        if converted is None:
            self.conversion_errors.append(f"{tag.mac}: invalid jpg")
            logger.warning("%s: invalid jpg, nothing queued", tag.mac)
            return False  # the JPEG stays, as on the AP
        tag.stored_upload = None
        image, data_ver = converted
        if data_ver == tag.md5[:8]:
            return False  # "new image is the same as current image. not updating tag."
        tag.queue.append(_QueueItem(data_ver, image=image))
        return True

    async def _check_in_periodically(self) -> None:
        assert self.checkin_interval_s is not None
        while True:
            await asyncio.sleep(self.checkin_interval_s)
            self.check_in_all()

    # -- AP state and faults ------------------------------------------------------------------

    def set_running(self, running: bool) -> None:
        """False: the AP is paused or stopped (``runStatus`` != RUN): uploads get 409."""
        self.running = running

    def fail_next(self, count: int = 1, *, status: int = 500, body: str = "simulated") -> None:
        """The next ``count`` requests (any path) are answered ``status`` and ``body``."""
        self._faults.extend([(status, body)] * count)

    def garble_next(self, count: int = 1) -> None:
        """The next ``count`` requests get a 200 whose body breaks off mid-JSON."""
        self._faults.extend([(0, "garble")] * count)

    # -- HTTP ---------------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            self.requests[request.url.path] += 1
            if self.latency_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self.latency_s)
            response = self._injected_fault() or await handler(request)
            if not self.keep_alive:
                response.headers["Connection"] = "close"  # as ESPAsyncWebServer always does
            return response

        return guarded

    def _injected_fault(self) -> Response | None:
        if not self._faults:
            return None
        status, body = self._faults.pop(0)
        if status == 0:
            return Response('{"tags":[{"mac":"0000', media_type="application/json")
        return PlainTextResponse(body, status_code=status)

    async def _imgupload(self, request: Request) -> Response:
        answer = await self._handle_imgupload(request)
        if self.web_server == "esp32async":
            # The request handler's send(200) runs after the upload handler and replaces its
            # answer, whatever it was: 409, 400 and "Ok, saved" all become an empty 200.
            return Response(status_code=200)
        return answer

    async def _handle_imgupload(self, request: Request) -> Response:
        """web.cpp ``doImageUpload``: what the upload handler answers."""
        async with request.form() as form:
            items = form.multi_items()
            file_at = next((i for i, (_, v) in enumerate(items) if isinstance(v, UploadFile)), None)
            if file_at is None:
                return PlainTextResponse("")  # the request handler's bare 200, nothing stored
            if not self.running:
                return PlainTextResponse("Come back later", status_code=409)
            # The AP reads mac when the file part starts: fields after the file are too late.
            if not any(key == "mac" for key, _ in items[:file_at]):
                return PlainTextResponse("parameters incomplete", status_code=400)
            upload = items[file_at][1]
            assert isinstance(upload, UploadFile)
            jpeg = await upload.read()
            fields = {key: value for key, value in items if isinstance(value, str)}
        mac = _hex2mac(fields["mac"])
        if mac is None:
            return PlainTextResponse("")  # hex2mac failed: no answer of its own, bare 200
        tag = self._tags.get(mac)
        if tag is None:
            return PlainTextResponse("mac not found", status_code=400)
        dither = _atoi(fields.get("dither", "1"))
        ttl = _atoi(fields.get("ttl", "0"))
        if "alias" in fields:
            tag.alias = fields["alias"]
        for name in ("rotate", "lut", "invert"):
            if name in fields:
                setattr(tag, name, _atoi(fields[name]))
        tag.content_mode = _atoi(fields["contentmode"]) if "contentmode" in fields else 24
        filename = f"/temp/{fields['mac']}_{int(self.clock() * 1000) % 2**32}.jpg"
        tag.modecfgjson = json.dumps(
            {
                "filename": filename,
                "timetolive": str(ttl),
                "dither": str(dither),
                "delete": "1",
                "preload": "0",
                "preload_lut": "0",
                "preload_type": "0",
            }
        )
        tag.stored_upload = _StoredUpload(jpeg, dither)
        tag.last_upload_jpeg = jpeg
        tag.nextupdate = 0
        self.uploads_accepted += 1
        if self.prepare_immediately:
            self._prepare(tag)
        return PlainTextResponse("Ok, saved")

    async def _jsonupload(self, request: Request) -> Response:
        if not self.running:
            return PlainTextResponse("come back later", status_code=409)
        async with request.form() as form:
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        if "mac" not in fields or "json" not in fields:
            return PlainTextResponse("Missing parameters", status_code=400)
        mac = _hex2mac(fields["mac"])
        if mac is None:
            return PlainTextResponse("malformatted mac (the AP sends no answer)", 400)
        tag = self._tags.get(mac)
        if tag is None:
            return PlainTextResponse("mac not found in tagDB", status_code=400)
        ttl = _atoi(fields.get("ttl", "0"))
        filename = f"/current/{fields['mac']}.json"
        tag.modecfgjson = json.dumps({"filename": filename, "interval": str(ttl)})
        tag.content_mode = 19
        tag.nextupdate = 0
        if self.prepare_immediately:
            self._prepare(tag)  # templates are not drawn here: nothing is queued
        return PlainTextResponse("Ok, saved")

    async def _get_db(self, request: Request) -> Response:
        params = request.query_params
        if "mac" in params:
            mac = _hex2mac(params["mac"])
            if mac is None:
                body = '{"error": "malformatted parameter"}'
            else:
                tag = self._tags.get(mac)
                body = _page([tag.to_json()] if tag else [], None)
            return Response(body, media_type="application/json")
        pos = _atoi(params.get("pos", "0"))
        if self.page_pos_bits is not None:
            pos &= (1 << self.page_pos_bits) - 1  # uint8_t startPos
        tags = list(self._tags.values())
        entries: list[dict[str, Any]] = []
        size = len('{"tags":[]}')
        following: int | None = None
        for index in range(max(pos, 0), len(tags)):
            entry = tags[index].to_json()
            size += len(_compact(entry).encode()) + (1 if entries else 0)
            entries.append(entry)
            if size > PAGE_LIMIT:
                following = index + 1
                break
        return Response(_page(entries, following), media_type="application/json")

    async def _tag_cmd(self, request: Request) -> Response:
        async with request.form() as form:
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        if "mac" not in fields or "cmd" not in fields:
            return PlainTextResponse("param error", status_code=500)
        mac = _hex2mac(fields["mac"])
        if mac is None:
            return PlainTextResponse("malformatted mac (the AP sends no answer)", 400)
        tag = self._tags.get(mac)
        if tag is None:
            return PlainTextResponse("Error: mac not found", status_code=400)
        self._apply_command(tag, fields["cmd"])
        return PlainTextResponse("Ok, done")

    def _apply_command(self, tag: SimTag, cmd: str) -> None:
        if cmd == "del":
            del self._tags[tag.mac]
        elif cmd == "purge":
            now = int(self.clock())
            for stale in [t for t in self._tags.values() if _is_stale(t, now)]:
                del self._tags[stale.mac]
        elif cmd == "clear":
            tag.queue.clear()
        elif cmd == "refresh":
            tag.md5 = bytes(16)
            tag.nextupdate = 0
            if self.prepare_immediately:
                self._prepare(tag)
        elif cmd in _QUEUED_COMMANDS:
            tag.queue.append(_QueueItem(_COMMAND_DATA_VER.get(cmd, _ZERO8), command=cmd))
        # Anything else: the AP answers "Ok, done" and does nothing.


def _is_stale(tag: SimTag, now: int) -> bool:
    return tag.nextcheckin == NEVER or tag.lastseen < now - 24 * 3600 or now > tag.nextcheckin + 600


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _page(entries: list[dict[str, Any]], following: int | None) -> str:
    document: dict[str, Any] = {"tags": entries}
    if following is not None:
        document["continu"] = following
    return _compact(document)


def _hex2mac(text: str) -> str | None:
    """tag_db.cpp ``hex2mac`` + ``mac2hex``: 12 or 16 hex digits -> 16 upper-case digits."""
    if not _HEX_MAC.fullmatch(text):
        return None
    return text.upper().rjust(16, "0")


def _atoi(text: str) -> int:
    """C ``atoi``/Arduino ``toInt``: the leading integer, 0 if none."""
    match = _LEADING_INT.match(text)
    return int(match.group(1)) if match else 0


def _decode(jpeg: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _convert(jpeg: bytes, hw: HwType, *, dither: bool) -> tuple[Image.Image, bytes] | None:
    """The JPEG in the tag's palette and the 8-byte data version (md5 of the bit planes)."""
    rgb = _decode(jpeg)
    if rgb is None:
        return None
    mode = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
    quantized = rgb.quantize(palette=_palette(hw.colors), dither=mode)
    indices = Image.frombytes("L", quantized.size, quantized.tobytes())
    planes = [indices.point(lut, "1").tobytes() for lut in _plane_luts(len(hw.colors))]
    digest = hashlib.md5(b"".join(planes), usedforsecurity=False).digest()
    return quantized, digest[:8]


@functools.cache
def _palette(colors: tuple[tuple[int, int, int], ...]) -> Image.Image:
    palette = Image.new("P", (1, 1))
    flat = [channel for color in colors for channel in color]
    palette.putpalette(flat + flat[:3] * (256 - len(colors)))  # the rest repeats white
    return palette


@functools.cache
def _plane_luts(colors: int) -> tuple[list[int], ...]:
    """Lookup tables from palette index to bit: black, then (if any) the colour plane."""
    black = [255 if i == 1 else 0 for i in range(256)]
    if colors <= 2:
        return (black,)
    return black, [255 if 2 <= i < colors else 0 for i in range(256)]


async def _serve(args: argparse.Namespace) -> None:
    sim = AccessPointSimulator(
        host=args.host,
        port=args.port,
        checkin_interval_s=args.checkin_interval,
        page_pos_bits=None if args.wide_paging else 8,
    )
    macs = sim.add_tags(args.tags, hw_type=args.hw_type)
    url = await sim.start()
    print(f"OpenEPaperLink AP simulator on {url}: {len(macs)} tags", flush=True)
    for mac in macs:
        print(f"  {mac}  hwType {args.hw_type:#04x}", flush=True)
    try:
        await sim.wait_closed()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--hw-type", type=lambda s: int(s, 0), default=0x01)
    parser.add_argument(
        "--checkin-interval", type=float, default=10.0, help="seconds; 0 = tags never check in"
    )
    parser.add_argument(
        "--wide-paging",
        action="store_true",
        help="page get_db past tag 255 (the firmware cannot: for benchmarks of large sites)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
