"""What HID and serial scanners share: the reconnect loop, availability, framing, listeners.

A scanner runs in the background from ``start()``: it opens its device, reads until the device
goes away, reports that, and opens it again with jittered exponential backoff, for ever, until
``close()``. A code cut off by the device going away is reported as rejected, never delivered.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging

from drivers.backoff import Backoff

from .events import (
    AvailabilityListener,
    RejectedScan,
    RejectListener,
    RejectReason,
    ScanListener,
    ScannedCode,
    ScannerMetrics,
)
from .framing import Framing, FramingError

log = logging.getLogger(__name__)


class ScannerDriver(abc.ABC):
    """One scanner device; subclasses open it and feed what they read to ``_deliver``."""

    def __init__(
        self,
        name: str,
        target: str,
        *,
        on_scan: ScanListener,
        on_availability: AvailabilityListener | None,
        on_rejected: RejectListener | None,
        framing: Framing,
        reconnect_initial: float,
        reconnect_max: float,
    ) -> None:
        if reconnect_initial <= 0 or reconnect_max < reconnect_initial:
            raise ValueError("need 0 < reconnect_initial <= reconnect_max")
        self.name = name
        self.target = target  # the device path, for messages
        self.framing = framing
        self.metrics = ScannerMetrics()
        self._on_scan = on_scan
        self._on_availability = on_availability
        self._on_rejected = on_rejected
        self._backoff = Backoff(reconnect_initial, reconnect_max)
        self._available = False
        self._available_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session_open = False
        self._opened_before = False

    # -- public API -------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """The device is open and being read."""
        return self._available

    # The agreed API takes a timeout rather than leaving it to the caller's asyncio.timeout.
    async def wait_available(self, timeout: float) -> bool:  # noqa: ASYNC109
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._available_event.wait()
        return self._available

    async def start(self) -> None:
        """Begin opening and reading the device in the background; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"scanner[{self.name}]")

    async def close(self) -> None:
        """Stop reading, close the device, stop reconnecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drop_partial()
        self._set_available(False, "closed")

    async def __aenter__(self) -> ScannerDriver:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # -- for subclasses ---------------------------------------------------------------------

    @abc.abstractmethod
    async def _session(self) -> str:
        """Open the device, call ``_opened()``, read until it is lost; returns why it ended.

        OSError out of here is a failure to open (before ``_opened()``) or a lost device.
        """

    @abc.abstractmethod
    def _cut_off(self, detail: str) -> None:
        """The device is gone: report the code in progress (if any) as CUT_OFF, drop it."""

    @abc.abstractmethod
    def _drop_partial(self) -> None:
        """Forget the code in progress without reporting it (the scanner is being closed)."""

    def _opened(self, description: str) -> None:
        self._session_open = True
        if self._opened_before:
            self.metrics.reconnects += 1
        self._opened_before = True
        log.info(
            "%s: opened %s",
            self.name,
            description,
            extra={"scanner": self.name, "device": self.target},
        )
        self._set_available(True, None)

    def _deliver(self, text: str, raw: bytes | str) -> None:
        """A complete code as read (terminator removed): unwrap it and tell on_scan."""
        try:
            unwrapped = self.framing.unwrap(text)
        except FramingError as exc:
            self._reject(RejectReason.BAD_FRAMING, str(exc), raw)
            return
        if not unwrapped.text:
            self._reject(RejectReason.BAD_FRAMING, "no data inside the framing", raw)
            return
        scan = ScannedCode(self.name, unwrapped.text, unwrapped.symbology, raw, unwrapped.aim_id)
        self.metrics.scans += 1
        # The text may be a credential: only its length is logged.
        log.debug(
            "%s: code scanned",
            self.name,
            extra={"scanner": self.name, "symbology": scan.symbology, "length": len(scan.text)},
        )
        try:
            self._on_scan(scan)
        except Exception:
            log.exception("%s: scan listener failed", self.name, extra={"scanner": self.name})

    def _reject(self, reason: RejectReason, detail: str, raw: bytes | str) -> None:
        self.metrics.rejected[reason.value] += 1
        log.warning(
            "%s: scan rejected (%s): %s",
            self.name,
            reason.value,
            detail,
            extra={"scanner": self.name, "reason": reason.value, "length": len(raw)},
        )
        if self._on_rejected is None:
            return
        try:
            self._on_rejected(RejectedScan(self.name, reason, detail, raw))
        except Exception:
            log.exception("%s: reject listener failed", self.name, extra={"scanner": self.name})

    # -- connection -------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            self._session_open = False
            try:
                reason = await self._session()
            except OSError as exc:
                what = "lost" if self._session_open else "cannot open"
                reason = f"{what} {self.target}: {exc}"
            except Exception as exc:
                # Never let the scanner die on a bug: log, drop the device, reopen it.
                log.exception("%s: reading failed", self.name, extra={"scanner": self.name})
                reason = f"internal error: {exc!r}"
            if self._session_open:
                failures = 0
                self._backoff.reset()
                self._cut_off(reason)
            level = logging.WARNING if self._session_open or failures == 0 else logging.DEBUG
            log.log(level, "%s: %s", self.name, reason, extra={"scanner": self.name})
            self._set_available(False, reason)
            failures += 1
            await asyncio.sleep(self._backoff.next_delay())

    def _set_available(self, available: bool, reason: str | None) -> None:
        if not available:
            self.metrics.last_error = reason
        if available == self._available:
            return
        self._available = available
        if available:
            self._available_event.set()
        else:
            self._available_event.clear()
        if self._on_availability is None:
            return
        try:
            self._on_availability(available, reason)
        except Exception:
            log.exception(
                "%s: availability listener failed", self.name, extra={"scanner": self.name}
            )
