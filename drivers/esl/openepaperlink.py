"""OpenEPaperLink access point over HTTP: upload images, read the tag database, send tag commands.

Implemented from the AP firmware source, OpenEPaperLink/OpenEPaperLink (read at commit
cdd1cfa9, 2026-08): ``ESP32_AP-Flasher/src/web.cpp`` (HTTP handlers), ``src/tag_db.cpp`` and
``include/tag_db.h`` (tag record, its JSON, MAC parsing, paging), ``src/contentmanager.cpp``
(when an upload is converted), ``src/newproto.cpp`` (hash, pending queue, transfer complete),
``wwwroot/main.js`` and ``wwwroot/upload-demo.html`` (how the AP's own pages call the API), and
``oepl-proto.h`` (command payloads).

MAC addresses (tag_db.cpp ``hex2mac``/``mac2hex``)
    The AP accepts 12 or 16 hex digits and always reports 16 upper-case digits; a 12-digit MAC
    is the 16-digit one with ``0000`` in front. ``normalize_label_id`` does the same, and every
    request carries the 16-digit form. Malformed ids raise ``InvalidLabelId`` before any request
    (the AP would answer 200 with an empty body to an upload, and nothing at all to tag_cmd).

``POST /imgupload`` (web.cpp ``doImageUpload``), multipart
    Fields ``mac``, ``dither`` (0 off, 1 Floyd-Steinberg = AP default, 2 ordered, makeimage.cpp),
    optional ``ttl`` (minutes the tag may sleep after this image), ``rotate``, ``lut``,
    ``invert``, ``alias``, ``contentmode`` (AP default 24, "external image"),
    ``preloadtype``/``preloadlut``; then one file part (any field name; the AP's pages use
    ``file``) holding a JPEG of the tag's resolution. The AP reads ``mac`` when the file part
    starts, so the fields must come before the file (``upload`` builds the body in that order).
    The handler answers 409 "Come back later" while the AP is not running, 400 "parameters
    incomplete" without ``mac``, 400 "mac not found", else 200 "Ok, saved"; then the route's
    request handler also sends a bare 200. Which one the client gets depends on the web server
    library (ESPAsyncWebServer ``send``): the esphome fork (AP firmware 2024-04 to 2025-03)
    writes the first at once, so 409 -> ``AccessPointBusy``, "mac not found" ->
    ``UnknownLabel``; the ESP32Async fork (firmware since 2025-03-19, AP commit 2d486d7c)
    replaces an unsent answer, so every upload gets an empty 200, also when the AP dropped it
    (not running) or does not know the MAC. Both "Ok, saved" and an empty 200 count as accepted;
    the baseline read catches unknown tags, and a dropped upload shows as
    ``DeliveryStatus.NOT_QUEUED`` at once (``nextupdate`` never became 0). Every answer carries
    ``Connection: close``.
    An accepted upload only stores the JPEG, sets ``contentMode`` 24 and ``nextupdate`` 0. The
    content runner (every ~100 ms) converts it later, and only for a tag that has been heard
    (``RSSI`` != 0) and is due to check in within 5 minutes (contentmanager.cpp).

``GET /get_db``, ``/get_db?pos=N``, ``/get_db?mac=M`` (web.cpp, tag_db.cpp ``tagDBtoJson``)
    ``{"tags": [...]}``; a page ends after the tag that makes the JSON exceed 5000 bytes, and
    then carries ``"continu": <index of the next tag>``. ``pos`` is parsed into a uint8_t, so
    tags after index 255 cannot be paged to: ``pos=256`` restarts at 0. The AP's own page stops
    when ``continu`` does not grow; so does ``states()``, which logs the wrap, counts it, and
    asks for the requested tags it did not reach one by one with ``?mac=``. ``?mac=`` answers
    ``{"tags": []}`` for an unknown tag and ``{"error": "malformatted parameter"}`` for a bad MAC.
    Tag fields (tag_db.cpp ``fillNode``): ``mac`` (16 hex), ``hash`` (32 lower-case hex of a
    16-byte md5 field), ``lastseen``, ``nextupdate``, ``nextcheckin`` (epoch seconds, 0 =
    never; 3216153600 = "never"/deep sleep), ``pending`` (a count, not a bool), ``alias``,
    ``contentMode``, ``LQI``, ``RSSI`` (signed dBm, 0 = never heard), ``temperature``,
    ``batteryMv``, ``hwType``, ``wakeupReason``, ``capabilities``, ``modecfgjson``,
    ``isexternal``, ``apip``, ``rotate``, ``lut``, ``invert``, ``updatecount``, ``updatelast``,
    ``ch``, ``ver``. All integers except the strings named and ``isexternal`` (bool).

``hash`` and ``pending`` (newproto.cpp ``prepareDataAvail``, ``processXferComplete``)
    Converting an upload hashes the converted buffer (md5). If its first 8 bytes equal those
    of the tag's current hash, the AP logs "new image is the same as current image" and queues
    nothing. Otherwise it queues a transfer whose data version is those 8 bytes, and
    ``pending`` becomes the tag's queue length. The tag's ``hash`` does NOT change then: it is
    updated only when the tag reports "transfer complete", to the completed item's 8-byte data
    version followed by 8 zero bytes (so the last 16 hex digits are ``0``), and ``updatecount``
    grows by one, ``updatelast`` = now, ``pending`` = what is left queued. The tag sends
    transfer complete after the download, just before it draws. Commands (reboot, ledflash...)
    are queue items too: completing one also grows ``updatecount`` and sets ``hash`` to the
    command's data version (zeros, or the LED pattern). ``refresh`` zeroes the hash and redraws,
    but an uploaded JPEG is deleted once converted, so for an uploaded image refresh only clears
    the hash; upload again to redisplay. A tag that boots (wakeupReason >= 0xE0) with nothing
    pending also gets its hash zeroed. An all-zero hash is reported here as ``hash=None``.
    The caller cannot predict the hash (the AP's own dithering/compression), so ``Upload``
    carries ``expected_hash=None`` and a ``baseline`` state read just before the upload;
    ``drivers.esl.backend.delivery_status`` judges delivery from ``preparing`` (``nextupdate``
    == 0: converted yet?), ``pending`` and ``updatecount`` against that baseline.

``POST /tag_cmd`` (web.cpp), form fields ``mac`` and ``cmd``
    ``refresh``, ``clear`` (drop the tag's queue), ``reboot``, ``scan``, ``reset`` (tag
    settings), ``deepsleep``, ``ledflash``, ``ledflash_long``, ``ledflash_stop``, ``del``
    (forget the tag). 200 "Ok, done" (also for a command the AP does not know, so ``command``
    checks the name first); 400 "Error: mac not found"; 500 "param error" without both fields.
    ``purge`` (delete every stale tag) is left out on purpose: it is not about one label.

Not used here: ``POST /jsonupload`` (``mac``, ``json``, ``ttl``; 409 like imgupload) and the
``/ws`` websocket. Requests: ``upload`` = one ``get_db?mac=`` (the baseline; skipped when the
caller passes one) + one POST; ``command`` = one POST; ``states`` = pages or one request per
tag. Nothing is retried: the caller owns retries, backoff and rate limits, and
``EslError.retryable`` tells it which errors may pass. By default one request at a time.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from .backend import (
    AccessPointBusy,
    AccessPointUnreachable,
    BadResponse,
    InvalidLabelId,
    TagState,
    UnknownLabel,
    Upload,
)

logger = logging.getLogger(__name__)

COMMANDS = frozenset(
    {
        "refresh",
        "clear",
        "reboot",
        "scan",
        "reset",
        "deepsleep",
        "ledflash",
        "ledflash_long",
        "ledflash_stop",
        "del",
    }
)
NEVER = 3216153600  # the AP's "no time" for nextupdate / nextcheckin (2071-12-02)
MAX_PAGE_POS = 255  # get_db's pos is a uint8_t
_MAC = re.compile(r"(?:[0-9A-Fa-f]{12}|[0-9A-Fa-f]{16})")
_OK_UPLOAD = "Ok, saved"
_OK_COMMAND = "Ok, done"
# Below this many tags, ?mac= per tag costs less than paging through the whole database.
_PER_TAG_QUERY_LIMIT = 8


def normalize_mac(label_id: str) -> str:
    """12 or 16 hex digits -> the AP's 16 upper-case digits; ``InvalidLabelId`` otherwise."""
    text = label_id.strip()
    if not _MAC.fullmatch(text):
        raise InvalidLabelId(f"label id must be 12 or 16 hex digits, not {label_id!r}")
    return text.upper().rjust(16, "0")


@dataclass
class OeplMetrics:
    """Counters of one AP; mutated in place."""

    requests: int = 0
    busy: int = 0  # 409 answers
    unreachable: int = 0  # timeouts, refused or dropped connections
    bad_responses: int = 0
    skipped_tags: int = 0  # get_db entries without a usable mac, ignored
    paging_wraps: int = 0  # get_db paging that could not go past tag 255


class OpenEPaperLinkAP:
    """One OpenEPaperLink access point, e.g. ``OpenEPaperLinkAP("http://192.168.1.50")``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        name: str | None = None,
        max_concurrent_requests: int = 1,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name or f"openepaperlink@{self.base_url}"
        self.metrics = OeplMetrics()
        # The AP is an ESP32: by default one request at a time. Waiting for a turn is not a
        # timeout of the AP (pool=None): the caller decides how much it queues.
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, pool=None),
            limits=httpx.Limits(
                max_connections=max_concurrent_requests,
                max_keepalive_connections=max_concurrent_requests,
            ),
            transport=transport,
        )

    def normalize_label_id(self, label_id: str) -> str:
        return normalize_mac(label_id)

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> OpenEPaperLinkAP:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- upload -------------------------------------------------------------------------------

    async def upload(
        self,
        label_id: str,
        image_jpeg: bytes,
        *,
        dither: bool = False,
        baseline: TagState | None = None,
        ttl_min: int | None = None,
        lut: int | None = None,
        rotate: int | None = None,
        invert: bool | None = None,
        alias: str | None = None,
    ) -> Upload:
        """Upload one JPEG for one tag. Reads the tag's state first (the delivery baseline,
        and ``UnknownLabel`` for a tag the AP does not know) unless ``baseline`` is given; a
        baseline read before an earlier upload to this tag was confirmed is still safe.
        "Accepted" is all the AP says: judge the result with ``backend.delivery_status``."""
        mac = normalize_mac(label_id)
        if baseline is None:
            baseline = await self._state_of(mac)
            if baseline is None:
                raise UnknownLabel(f"{self.name}: no tag {mac}")
        elif baseline.label_id != mac:
            raise ValueError(f"baseline of {baseline.label_id} given for {mac}")
        fields = {"mac": mac, "dither": "1" if dither else "0"}
        optional = {"ttl": ttl_min, "lut": lut, "rotate": rotate, "alias": alias}
        fields.update({key: str(value) for key, value in optional.items() if value is not None})
        if invert is not None:
            fields["invert"] = "1" if invert else "0"
        content, content_type = _multipart(fields, f"{mac}.jpg", image_jpeg)
        response = await self._request(
            "POST", "/imgupload", content=content, headers={"Content-Type": content_type}
        )
        self._raise_for_status(response, mac)
        answer = response.text.strip()
        if answer not in (_OK_UPLOAD, ""):  # "" from current firmware, see the module doc
            raise self._bad(f"upload for {mac}: AP answered {answer[:80]!r}")
        return Upload(mac, expected_hash=None, baseline=baseline, accepted_at=datetime.now(UTC))

    # -- tag database -------------------------------------------------------------------------

    async def states(self, label_ids: Collection[str] | None = None) -> dict[str, TagState]:
        if label_ids is None:
            return (await self._all_states())[0]
        wanted = {normalize_mac(label_id) for label_id in label_ids}
        found: dict[str, TagState] = {}
        missing = wanted
        if len(wanted) > _PER_TAG_QUERY_LIMIT:
            every, complete = await self._all_states()
            found = {mac: state for mac, state in every.items() if mac in wanted}
            # Absent from a complete listing = unknown; after a wrap, maybe just not reached.
            missing = set() if complete else wanted - found.keys()
        for mac in sorted(missing):
            state = await self._state_of(mac)
            if state is not None:
                found[mac] = state
        return found

    async def _state_of(self, mac: str) -> TagState | None:
        tags = await self._get_db({"mac": mac})
        return next((tag for tag in tags if tag.label_id == mac), None)

    async def _all_states(self) -> tuple[dict[str, TagState], bool]:
        """Every tag paging reaches, and whether paging reached the end of the database."""
        found: dict[str, TagState] = {}
        pos = 0
        while True:
            page = await self._get_db_page({"pos": str(pos)} if pos else {})
            found.update((tag.label_id, tag) for tag in self._tags_of(page))
            following = page.get("continu")
            if following is None:
                return found, True
            if not isinstance(following, int) or isinstance(following, bool):
                raise self._bad(f"get_db continu is {following!r}, not an integer")
            if following <= pos:
                # pos went past 255 and wrapped (uint8_t): this page restarted near tag 0.
                # The AP's own web page stops here too.
                self.metrics.paging_wraps += 1
                logger.warning(
                    "%s: get_db cannot page past tag %d (asked pos=%d, got continu=%d); "
                    "later tags are only reachable one by one",
                    self.name,
                    MAX_PAGE_POS,
                    pos,
                    following,
                )
                return found, False
            pos = following

    async def _get_db(self, params: Mapping[str, str]) -> list[TagState]:
        return self._tags_of(await self._get_db_page(params))

    async def _get_db_page(self, params: Mapping[str, str]) -> dict[str, Any]:
        response = await self._request("GET", "/get_db", params=dict(params))
        self._raise_for_status(response, params.get("mac"))
        try:
            document = json.loads(response.content)
        except ValueError as exc:
            raise self._bad(f"get_db answered malformed JSON: {response.text[:80]!r}") from exc
        if not isinstance(document, dict):
            raise self._bad(f"get_db answered {type(document).__name__}, not an object")
        if "error" in document:
            raise self._bad(f"get_db error: {document['error']!r}")
        return document

    def _tags_of(self, page: Mapping[str, Any]) -> list[TagState]:
        entries = page.get("tags")
        if not isinstance(entries, list):
            raise self._bad("get_db answer has no tags list")
        states: list[TagState] = []
        for entry in entries:
            try:
                states.append(tag_state_from_json(entry))
            except (InvalidLabelId, TypeError, ValueError) as exc:
                self.metrics.skipped_tags += 1
                logger.warning("%s: skipped a get_db entry (%s): %.200r", self.name, exc, entry)
        return states

    # -- commands -----------------------------------------------------------------------------

    async def command(self, label_id: str, cmd: str) -> None:
        mac = normalize_mac(label_id)
        if cmd not in COMMANDS:
            raise ValueError(f"unknown tag command {cmd!r}; one of {sorted(COMMANDS)}")
        response = await self._request("POST", "/tag_cmd", data={"mac": mac, "cmd": cmd})
        self._raise_for_status(response, mac)
        if response.text.strip() != _OK_COMMAND:
            raise self._bad(f"tag_cmd {cmd} for {mac}: AP answered {response.text[:80]!r}")

    # -- HTTP ---------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.metrics.requests += 1
        try:
            return await self._client.request(method, path, **kwargs)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            self.metrics.unreachable += 1
            raise AccessPointUnreachable(
                f"{self.name}: {method} {path}: {type(exc).__name__} {exc}".rstrip()
            ) from exc

    def _raise_for_status(self, response: httpx.Response, mac: str | None) -> None:
        status = response.status_code
        if status == 200:
            return
        text = response.text.strip()
        if status == 409:
            self.metrics.busy += 1
            raise AccessPointBusy(f"{self.name}: AP not running ({text or 409})")
        if status == 400 and "mac not found" in text:
            raise UnknownLabel(f"{self.name}: no tag {mac}")
        raise self._bad(f"HTTP {status} {text[:80]!r}", status=status)

    def _bad(self, message: str, *, status: int | None = None) -> BadResponse:
        self.metrics.bad_responses += 1
        return BadResponse(f"{self.name}: {message}", status=status)


def _multipart(fields: Mapping[str, str], filename: str, jpeg: bytes) -> tuple[bytes, str]:
    """multipart/form-data with the fields first and the JPEG last, in one piece.

    The AP reads ``mac`` when the file part starts, so the order matters; one buffer is also
    one write instead of a dozen small ones."""
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode()
        + b"\r\n"
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        "\r\nContent-Type: image/jpeg\r\n\r\n".encode()
    )
    body = b"".join([*parts, jpeg, f"\r\n--{boundary}--\r\n".encode()])
    return body, f"multipart/form-data; boundary={boundary}"


def tag_state_from_json(entry: object) -> TagState:
    """One get_db tag object -> ``TagState``; ``ValueError``/``TypeError`` if unusable.

    Only ``mac`` is required; fields that are missing (older firmware) become ``None``."""
    if not isinstance(entry, Mapping):
        raise TypeError(f"tag entry is {type(entry).__name__}, not an object")
    mac = entry.get("mac")
    if not isinstance(mac, str):
        raise ValueError("tag entry without a mac")
    raw_hash = entry.get("hash")
    if raw_hash is not None and not isinstance(raw_hash, str):
        raise TypeError(f"hash is {type(raw_hash).__name__}")
    tag_hash = raw_hash.lower() if raw_hash and raw_hash.strip("0") else None
    pending_count = _int(entry, "pending") or 0
    next_update = _int(entry, "nextupdate")
    alias = entry.get("alias")
    return TagState(
        label_id=normalize_mac(mac),
        hash=tag_hash,
        pending=pending_count > 0,
        pending_count=pending_count,
        last_seen=_time(_int(entry, "lastseen")),
        next_checkin=_time(_int(entry, "nextcheckin")),
        battery_mv=_int(entry, "batteryMv"),
        rssi=_int(entry, "RSSI"),
        hw_type=_int(entry, "hwType"),
        update_count=_int(entry, "updatecount"),
        updated_at=_time(_int(entry, "updatelast")),
        preparing=None if next_update is None else next_update == 0,
        alias=alias if isinstance(alias, str) else None,
        raw=dict(entry),
    )


def _int(entry: Mapping[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key} is {value!r}, not an integer")
    return value


def _time(epoch: int | None) -> datetime | None:
    if not epoch or epoch >= NEVER:
        return None
    return datetime.fromtimestamp(epoch, UTC)
