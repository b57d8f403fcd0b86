"""A camera for asyncio code: the latest frame, a watchdog, and reopening with backoff.

Frames are grabbed in a background thread (:mod:`.grabber`) and handed to the event loop with
``loop.call_soon_threadsafe``. Only the newest frame is kept: a consumer slower than the camera
skips frames instead of working through a queue of stale ones.

A supervisor task on the event loop starts a grab thread per (re)open and watches it. When no
frame has arrived for ``stall_timeout_s`` the thread is presumed hung in a read it cannot be
pulled out of: its generation is retired (frames it still delivers are dropped) and a fresh
capture is opened. Failed opens, ended streams and stalls are all followed by a reopen after a
jittered exponential backoff; only the end of a non-looping video file is final.

Availability changes are reported, on the event loop, through ``on_availability(True, None)``
and ``on_availability(False, reason)``. No frame is ever written to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from drivers.backoff import Backoff

from .capture import BgrImage, Source, describe
from .errors import CameraError, CameraOpenError, CameraStreamError, CameraTimeout
from .grabber import Exited, Failed, Grabbed, Grabber, GrabEvent, Opened
from .settings import CameraSettings

__all__ = ["Camera", "CameraMetrics", "CameraSettings", "Frame"]

log = logging.getLogger(__name__)

AvailabilityListener = Callable[[bool, str | None], None]

# A grab thread gets this long beyond the capture's own open timeout before it counts as hung.
_OPEN_GRACE_S = 2.0
# stop() waits this long for the grab thread to release its capture, then leaves it behind.
_STOP_GRACE_S = 0.5
# Frames over which the delivered rate is measured.
_FPS_WINDOW = 30


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One image from a camera. ``eq=False``: frames are compared by identity, not by pixels."""

    image: np.ndarray  # BGR uint8, H x W x 3, read-only (shared by every consumer)
    seq: int  # 1, 2, 3… per camera, never reused across reopens
    captured_at: float  # time.monotonic()


@dataclass(frozen=True)
class CameraMetrics:
    frames: int  # frames delivered since start
    reopens: int  # open attempts after the first (retries after failures, stalls, ends)
    stalls: int  # watchdog firings: no frame for stall_timeout_s
    open_failures: int
    read_failures: int  # opened sources that then stopped delivering (ended, read error)
    fps: float  # delivered rate over the last frames; 0.0 while unknown
    stuck_threads: int  # retired grab threads not yet ended (blocked in an OpenCV call)


@dataclass(eq=False)
class _Session:
    """One grab thread and what the supervisor has learnt from it."""

    grabber: Grabber
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # opened, or failed
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # failed after opening
    exited: asyncio.Event = field(default_factory=asyncio.Event)  # capture released
    opened: bool = False
    delivered: bool = False
    failure: Failed | None = None


class Camera:
    """A camera delivering its latest frame to asyncio code, reopened whenever it fails."""

    def __init__(
        self,
        name: str,
        settings: CameraSettings,
        *,
        on_availability: AvailabilityListener | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._on_availability = on_availability
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s, rng)
        self._describe = describe(name, Source.from_uri(settings.uri))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._session: _Session | None = None
        self._abandoned: set[_Session] = set()  # retired sessions whose thread has not exited
        self._latest: Frame | None = None
        self._seq = 0
        self._available = False
        self._reported: bool | None = None  # last availability told to the listener
        self._last_error: str | None = None
        self._last_progress = 0.0  # monotonic time of the session's open or last frame
        self._frame_times: deque[float] = deque(maxlen=_FPS_WINDOW)
        self._changed = asyncio.Event()  # replaced after every change: see _notify()
        self._counts = {"reopens": 0, "stalls": 0, "open_failures": 0, "read_failures": 0}

    # ------------------------------------------------------------------ public API

    async def start(self) -> None:
        """Start grabbing in the background; returns at once, even if the camera cannot open."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._supervise(), name=f"camera {self.name}")
        self._task.add_done_callback(self._supervisor_done)

    async def stop(self) -> None:
        """Stop grabbing; returns within about half a second even if a read is stuck."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # a crash was logged
            await task
        session, self._session = self._session, None
        if session is not None:
            session.grabber.cancel()
            try:
                async with asyncio.timeout(_STOP_GRACE_S):
                    await session.exited.wait()
            except TimeoutError:
                log.warning("%s: grab thread is stuck in a read; left behind", self._describe)
                self._abandoned.add(session)
        self._set_available(False, f"{self._describe} was stopped")

    @property
    def available(self) -> bool:
        """True while frames arrive: from the first frame after an open until a failure."""
        return self._available

    @property
    def last_error(self) -> str | None:
        """Why the camera was last unavailable (one sentence); None if it never failed."""
        return self._last_error

    @property
    def metrics(self) -> CameraMetrics:
        times = self._frame_times
        span = times[-1] - times[0] if len(times) >= 2 else 0.0
        return CameraMetrics(
            frames=self._seq,
            reopens=self._counts["reopens"],
            stalls=self._counts["stalls"],
            open_failures=self._counts["open_failures"],
            read_failures=self._counts["read_failures"],
            fps=(len(times) - 1) / span if span > 0 else 0.0,
            stuck_threads=len(self._abandoned),
        )

    def latest(self) -> Frame | None:
        """The newest frame, or None before the first one."""
        return self._latest

    async def next_frame(
        self,
        after_seq: int = 0,
        timeout: float = 1.0,  # noqa: ASYNC109 - part of the camera's contract
    ) -> Frame:
        """The latest frame if newer than ``after_seq``, else the next one; CameraTimeout if none.

        ``next_frame(frame.seq)`` in a loop yields each frame once, skipping the ones a slow
        consumer missed.
        """
        if self._task is None:
            raise CameraError(f"{self._describe} is not started: call start() first")
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = self._latest
                    if frame is not None and frame.seq > after_seq:
                        return frame
                    await self._changed.wait()
        except TimeoutError:
            why = "" if self._available or not self._last_error else f": {self._last_error}"
            raise CameraTimeout(
                f"{self._describe} delivered no new frame within {timeout:g} s{why}"
            ) from None

    async def wait_until(
        self,
        condition: Callable[[Camera], bool],
        timeout: float,  # noqa: ASYNC109 - like next_frame
    ) -> None:
        """Wait until ``condition(camera)`` holds; it is checked after every frame or change."""
        try:
            async with asyncio.timeout(timeout):
                while not condition(self):
                    await self._changed.wait()
        except TimeoutError:
            raise CameraTimeout(
                f"{self._describe} did not reach the awaited state within {timeout:g} s "
                f"(available={self._available}, last error: {self._last_error})"
            ) from None

    # ------------------------------------------------------------------ supervisor

    async def _supervise(self) -> None:
        first = True
        while True:
            if not first:
                self._counts["reopens"] += 1
            first = False
            session = self._open_session()
            failure = await self._watch(session)
            if session.delivered:
                self._backoff.reset()
            self._set_available(False, str(failure.error))
            if failure.final:
                return
            await asyncio.sleep(self._backoff.next_delay())

    def _supervisor_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "%s: supervisor crashed; the camera is no longer watched",
                self._describe,
                exc_info=task.exception(),
            )

    def _open_session(self) -> _Session:
        loop = self._loop
        assert loop is not None

        def report(event: GrabEvent) -> None:  # runs in the grab thread
            # The loop is gone only after the camera was dropped: nothing left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_grab_event, session, event)

        session = _Session(Grabber(self.name, self.settings, report))
        self._session = session
        session.grabber.start()
        return session

    async def _watch(self, session: _Session) -> Failed:
        """Wait until ``session`` fails or stalls; returns why it ended (its thread is retired)."""
        settings = self.settings
        try:
            async with asyncio.timeout(settings.open_timeout_s + _OPEN_GRACE_S):
                await session.settled.wait()
        except TimeoutError:
            self._counts["open_failures"] += 1
            self._retire(session)
            return Failed(
                CameraOpenError(
                    f"{self._describe} could not be opened: the open hung for more than "
                    f"{settings.open_timeout_s + _OPEN_GRACE_S:g} s"
                )
            )
        if not session.opened:  # settled without opening: the open failed
            self._counts["open_failures"] += 1
            self._retire(session)
            assert session.failure is not None
            return session.failure
        self._last_progress = time.monotonic()
        while True:
            silent_for = time.monotonic() - self._last_progress
            if silent_for >= settings.stall_timeout_s:
                self._counts["stalls"] += 1
                self._retire(session)
                return Failed(
                    CameraStreamError(
                        f"{self._describe} delivered no frame for {settings.stall_timeout_s:g} s "
                        "(stalled): reopening"
                    )
                )
            try:
                async with asyncio.timeout(settings.stall_timeout_s - silent_for):
                    await session.ended.wait()
            except TimeoutError:
                continue  # re-check: frames may have arrived meanwhile
            self._counts["read_failures"] += 1
            self._retire(session)
            assert session.failure is not None
            return session.failure

    def _retire(self, session: _Session) -> None:
        """Stop accepting anything from ``session``; a hung thread is left to finish alone."""
        session.grabber.cancel()
        if self._session is session:
            self._session = None
        if not session.exited.is_set():
            self._abandoned.add(session)
        self._notify()

    # ------------------------------------------------------------------ grab-thread events

    def _on_grab_event(self, session: _Session, event: GrabEvent) -> None:
        if isinstance(event, Exited):
            session.exited.set()
            self._abandoned.discard(session)
            self._notify()
            return
        if session is not self._session:
            return  # a retired thread's late news: dropped
        if isinstance(event, Grabbed):
            self._deliver(session, event.image, event.captured_at)
        elif isinstance(event, Opened):
            session.opened = True
            session.settled.set()
        elif isinstance(event, Failed):
            session.failure = event
            session.settled.set()
            session.ended.set()
        self._notify()

    def _deliver(self, session: _Session, image: BgrImage, captured_at: float) -> None:
        self._seq += 1
        self._latest = Frame(image=image, seq=self._seq, captured_at=captured_at)
        self._frame_times.append(captured_at)
        self._last_progress = time.monotonic()
        session.delivered = True
        self._set_available(True, None)

    def _set_available(self, available: bool, reason: str | None) -> None:
        self._available = available
        if reason is not None:
            self._last_error = reason
        if self._reported is available:
            return
        self._reported = available
        if available:
            log.info("%s is available", self._describe)
        elif self._task is None:
            log.info("%s", reason)  # stopped on purpose
        else:
            log.warning("%s", reason)
        self._notify()
        if self._on_availability is not None:
            try:
                self._on_availability(available, reason)
            except Exception:
                log.exception("%s: availability listener failed", self._describe)

    def _notify(self) -> None:
        """Wake everything waiting in next_frame() or wait_until()."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
