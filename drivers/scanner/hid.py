"""USB HID keyboard-wedge scanners, read through evdev (``/dev/input/event*``).

The device is grabbed (``EVIOCGRAB``) so that what the scanner types reaches this driver only,
never the kiosk's browser or a console. Open it by its stable name,
``/dev/input/by-id/usb-<vendor>_<model>-event-kbd``: ``eventN`` numbers change on replug, the
by-id link follows the device. Key events go through :class:`KeyDecoder` (layout, shift state,
terminator, stuck keys: see :mod:`.keymap`), then through the configured :class:`Framing`.

Where the events come from is injectable (``source``): by default :func:`evdev_source` opens the
device with python-evdev; tests and demos pass a replayed or scripted device instead, which
then runs through the very same reading, decoding and reconnect path.

The process needs read access to the device (udev rule or the ``input`` group) and python-evdev.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from .base import ScannerDriver
from .events import AvailabilityListener, RejectListener, RejectReason, ScanListener
from .framing import Framing
from .keymap import EV_KEY, KEY_PRESS, DiscardedCode, KeyDecoder, KeyEvent, Layout, Terminator

if TYPE_CHECKING:
    import evdev

log = logging.getLogger(__name__)

OpenedEvents = AbstractAsyncContextManager[AsyncIterator[KeyEvent]]
EventSource = Callable[[], OpenedEvents]
"""Opens the device: entering the context opens it (OSError if it cannot), the iterator yields
its events and raises OSError when the device goes away, leaving the context closes it."""


def evdev_source(device_path: str, *, grab: bool = True) -> EventSource:
    """Events of the input device at ``device_path``, grabbed for this process if ``grab``."""

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[AsyncIterator[KeyEvent]]:
        try:
            import evdev  # here, not at the top: the decoder and tests work without it
        except ImportError as exc:
            raise OSError(f"python-evdev is not installed: {exc}") from exc
        device = evdev.InputDevice(device_path)
        try:
            log.info(
                "input device %s is %r (%s)",
                device_path,
                device.name,
                device.path,
                extra={"device": device_path},
            )
            if grab:
                device.grab()  # OSError (EBUSY) if another process holds the grab
            events = _events_of(device)
            try:
                yield events
            finally:
                await events.aclose()
        finally:
            device.close()  # also releases the grab

    return opened


async def _events_of(device: evdev.InputDevice[str]) -> AsyncGenerator[KeyEvent, None]:
    async for event in device.async_read_loop():
        yield KeyEvent(event.type, event.code, event.value, event.timestamp())


class HidScanner(ScannerDriver):
    """A keyboard-wedge scanner on one input device: reports each code to ``on_scan``.

    ``layout``: the keyboard layout the scanner is set to ("us", "de", "fr"); ``terminator``:
    its suffix key ("enter" accepts Enter and keypad Enter, or "tab"). ``prefix``, ``suffix``,
    ``aim_ids``, ``fnc1_as``: see :class:`~drivers.scanner.framing.Framing`.
    ``max_gap_s``: a code whose keys stop coming for this long without a terminator is
    rejected as STALE (and keys held that long are forgotten); None disables that.
    ``max_length``: longer codes are rejected as TOO_LONG. ``grab`` applies to the default
    evdev source; a ``source`` given instead is used as it is.
    """

    def __init__(
        self,
        name: str,
        device_path: str,
        *,
        layout: str | Layout = "us",
        terminator: Terminator = "enter",
        on_scan: ScanListener,
        on_availability: AvailabilityListener | None = None,
        on_rejected: RejectListener | None = None,
        grab: bool = True,
        prefix: str = "",
        suffix: str = "",
        aim_ids: bool = False,
        fnc1_as: str | None = None,
        max_gap_s: float | None = 1.0,
        max_length: int = 4096,
        reconnect_initial: float = 0.2,
        reconnect_max: float = 5.0,
        source: EventSource | None = None,
    ) -> None:
        super().__init__(
            name,
            device_path,
            on_scan=on_scan,
            on_availability=on_availability,
            on_rejected=on_rejected,
            framing=Framing(prefix, suffix, aim_ids, fnc1_as),
            reconnect_initial=reconnect_initial,
            reconnect_max=reconnect_max,
        )
        self.device_path = device_path
        self.decoder = KeyDecoder(
            layout,
            terminator,
            max_gap_s=max_gap_s,
            max_length=max_length,
            on_discard=self._discarded,
        )
        self._max_gap_s = max_gap_s
        self._source = source if source is not None else evdev_source(device_path, grab=grab)
        self._last_press = 0.0  # loop time of the last key press handled
        self._stale_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<HidScanner {self.name} {self.device_path} {self.decoder.layout.name}>"

    async def _session(self) -> str:
        self.decoder.reset()  # a new device: no key is down, Caps Lock off
        try:
            async with self._source() as events:
                self._opened(f"{self.device_path} (layout {self.decoder.layout.name})")
                async for event in events:
                    self._on_event(event)
            return f"{self.device_path}: its event stream ended"
        finally:
            self._cancel_stale_timer()

    def _on_event(self, event: KeyEvent) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = event.at if event.at is not None else now
        if event.type == EV_KEY and event.value == KEY_PRESS:
            self._last_press = now
        text = self.decoder.feed(event.type, event.code, event.value, at)
        self.metrics.unknown_keys = self.decoder.stats.unknown_keys
        self.metrics.repeats_ignored = self.decoder.stats.repeats_ignored
        self.metrics.empty = self.decoder.stats.empty
        if text is not None:
            self._deliver(text, text)
        if self.decoder.pending and self._max_gap_s is not None and self._stale_timer is None:
            self._stale_timer = loop.call_later(self._max_gap_s, self._check_stale)

    def _check_stale(self) -> None:
        """Keys stopped coming in the middle of a code: reject it now, not at the next scan."""
        self._stale_timer = None
        if not self.decoder.pending or self._max_gap_s is None:
            return
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._last_press
        if idle >= self._max_gap_s:
            self.decoder.discard(RejectReason.STALE, f"no terminator after {idle:.1f} s")
        else:
            self._stale_timer = loop.call_later(self._max_gap_s - idle, self._check_stale)

    def _cancel_stale_timer(self) -> None:
        if self._stale_timer is not None:
            self._stale_timer.cancel()
            self._stale_timer = None

    def _discarded(self, discarded: DiscardedCode) -> None:
        self._reject(discarded.reason, discarded.detail, discarded.text)

    def _cut_off(self, detail: str) -> None:
        self.decoder.discard(RejectReason.CUT_OFF, f"device lost in the middle of a code: {detail}")
        self.decoder.reset()

    def _drop_partial(self) -> None:
        self._cancel_stale_timer()
        self.decoder.reset()
