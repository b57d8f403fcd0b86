"""A camera used as a code scanner: each code shown to it is reported once while it stays in view.

A shopper holds a phone with a member QR in front of the kiosk's camera for a second or two; the
camera delivers 15 frames a second, and every one of them carries the same code. The scanner
decodes at most ``max_rate_hz`` frames a second in a worker thread (a few ms each) and reports a
code when it appears; the same code is reported again only after it was out of view for
``gone_after_s`` (the phone taken away and shown again), never once per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .codes import CodeReader, DecodedCode
from .errors import CameraError
from .source import Camera

log = logging.getLogger(__name__)

ScanListener = Callable[["CameraScan"], None]

# How long to wait for a frame before asking again (the camera reconnects by itself meanwhile).
_FRAME_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class CameraScan:
    camera: str
    symbology: str
    text: str


class CameraScanner:
    """Reads codes from a running :class:`Camera` and tells ``on_scan`` of each new one."""

    def __init__(
        self,
        camera: Camera,
        reader: CodeReader,
        on_scan: ScanListener,
        *,
        max_rate_hz: float = 5.0,
        gone_after_s: float = 1.5,
    ) -> None:
        if max_rate_hz <= 0 or gone_after_s <= 0:
            raise ValueError("max_rate_hz and gone_after_s must be positive")
        self.camera = camera
        self.reader = reader
        self._on_scan = on_scan
        self._interval_s = 1.0 / max_rate_hz
        self._gone_after_s = gone_after_s
        self._in_view: dict[tuple[str, str], float] = {}  # code -> when it was last seen
        self._task: asyncio.Task[None] | None = None
        self.frames_read = 0
        self.scans = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"scanner {self.camera.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        seq = 0
        while True:
            try:
                frame = await self.camera.next_frame(seq, timeout=_FRAME_WAIT_S)
            except CameraError:
                continue  # the camera reports its own availability and reopens itself
            seq = frame.seq
            try:
                codes = await loop.run_in_executor(None, self.reader.read, frame.image)
            except Exception:  # one bad frame must not stop the scanner
                log.exception("reading codes failed", extra={"camera": self.camera.name})
                codes = []
            self.frames_read += 1
            self._report_new(codes, frame.captured_at)
            # Rate limit from when the frame was taken: decoding time counts towards it.
            await asyncio.sleep(max(0.0, frame.captured_at + self._interval_s - time.monotonic()))

    def _report_new(self, codes: list[DecodedCode], seen_at: float) -> None:
        for key, last_seen in list(self._in_view.items()):
            if seen_at - last_seen > self._gone_after_s:
                del self._in_view[key]
        for code in codes:
            key = (code.symbology, code.text)
            known = key in self._in_view
            self._in_view[key] = seen_at
            if known:
                continue
            self.scans += 1
            try:
                self._on_scan(CameraScan(self.camera.name, code.symbology, code.text))
            except Exception:
                log.exception("a scan listener failed", extra={"camera": self.camera.name})
