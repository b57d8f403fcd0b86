"""The machinery every serial reader shares: the port, reconnects, one command at a time, and
the continuous inventory loop. A protocol module supplies the frames.

Subclasses implement four hooks:

- ``_feed(data)``: run the protocol's parser over received bytes; hand tag reads to
  ``_emit_tag`` and every other complete frame to ``_frame_received``;
- ``_identify()``: one exchange that proves a reader of this family answers on the port;
- ``_inventory_antenna(antenna)``: one inventory on one antenna, returning when the reader says
  the round is over (tags are emitted as they arrive); it raises ``RoundIncomplete`` when the
  reader could not inventory that antenna, and the pass is then not reported as a round;
- ``_apply_power(dbm)``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import serial_asyncio_fast

from .reader import (
    ReaderRejected,
    ReaderTimeout,
    ReaderUnavailable,
    RfidReader,
    RoundEnd,
    RoundIncomplete,
)

log = logging.getLogger(__name__)

Matcher = Callable[[Any], bool]


class _Link(asyncio.Protocol):
    def __init__(self, owner: SerialReader) -> None:
        self._owner = owner

    def data_received(self, data: bytes) -> None:
        self._owner._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._link_lost(f"port closed: {exc}" if exc else "port closed")


class SerialReader(RfidReader):
    def __init__(
        self,
        name: str,
        port: str,
        baudrate: int,
        antennas: Sequence[int],
        *,
        command_timeout: float = 1.0,
        round_timeout: float = 5.0,
        reconnect_initial: float = 0.2,
        reconnect_max: float = 10.0,
    ) -> None:
        super().__init__(name, antennas)
        if command_timeout <= 0 or round_timeout <= 0:
            raise ValueError("timeouts must be > 0")
        if reconnect_initial <= 0 or reconnect_max < reconnect_initial:
            raise ValueError("need 0 < reconnect_initial <= reconnect_max")
        self.port = port
        self.baudrate = baudrate
        self.command_timeout = command_timeout
        self.round_timeout = round_timeout
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self._transport: asyncio.Transport | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self._lock = asyncio.Lock()  # one command on the wire at a time
        self._pending: tuple[Matcher, asyncio.Future[Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._inventory_wanted = asyncio.Event()
        self._idle = asyncio.Event()  # set while no inventory pass is running
        self._idle.set()
        self._round_number = 0

    # -- hooks ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def _feed(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _identify(self) -> None: ...

    @abc.abstractmethod
    async def _inventory_antenna(self, antenna: int) -> int: ...

    @abc.abstractmethod
    async def _apply_power(self, dbm: float) -> None: ...

    def _reset_parser(self) -> None:
        """Drop a half-received frame (after a reconnect). Subclasses with a parser override."""

    # -- public API ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"rfid[{self.name}]")

    async def close(self) -> None:
        self._closing = True
        self._inventory_wanted.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drop_transport()
        self._set_available(False, "closed")

    async def start_inventory(self) -> None:
        self._inventory_wanted.set()

    async def stop_inventory(self) -> None:
        self._inventory_wanted.clear()
        await self._idle.wait()

    async def set_power(self, dbm: float) -> None:
        await self._apply_power(dbm)

    @property
    def connected(self) -> bool:
        return self._transport is not None

    # -- for subclasses --------------------------------------------------------------------------

    async def _request(
        self, frame: bytes, accept: Matcher, reply_timeout: float | None = None
    ) -> Any:
        """Send ``frame`` and wait for the first frame that ``accept`` takes."""
        async with self._lock:
            return await self._send_and_wait(frame, accept, reply_timeout)

    async def _send_and_wait(
        self, frame: bytes, accept: Matcher, reply_timeout: float | None
    ) -> Any:
        transport = self._transport
        if transport is None or self._lost.is_set():
            raise ReaderUnavailable(f"{self.name}: {self.port} is not open")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending = (accept, future)
        try:
            transport.write(frame)
            async with asyncio.timeout(reply_timeout or self.command_timeout):
                return await future
        except TimeoutError:
            self.metrics.timeouts += 1
            raise ReaderTimeout(
                f"{self.name}: no reply to {frame.hex(' ')} within "
                f"{reply_timeout or self.command_timeout}s"
            ) from None
        finally:
            self._pending = None

    def _frame_received(self, frame: Any) -> None:
        """Every complete frame that is not a tag read: the answer to a request, or a stray."""
        self.metrics.frames += 1
        pending = self._pending
        if pending is not None and not pending[1].done() and pending[0](frame):
            pending[1].set_result(frame)
            return
        self.metrics.unknown_frames += 1
        log.info("%s: unexpected frame %s", self.name, _hex(frame), extra={"reader": self.name})

    def _frame_corrupt(self, raw: bytes) -> None:
        self.metrics.corrupt_frames += 1
        log.warning(
            "%s: corrupt frame skipped: %s",
            self.name,
            raw.hex(" "),
            extra={"reader": self.name, "frame": raw.hex()},
        )

    def _garbage(self, junk: bytes) -> None:
        self.metrics.garbage_bytes += len(junk)
        log.debug("%s: skipped %d garbage bytes", self.name, len(junk))

    # -- connection ------------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        opened_before = False
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                transport, _ = await serial_asyncio_fast.create_serial_connection(
                    loop, lambda: _Link(self), self.port, baudrate=self.baudrate
                )
            except (OSError, ValueError) as exc:
                if failures == 0:
                    log.warning(
                        "%s: cannot open %s: %s",
                        self.name,
                        self.port,
                        exc,
                        extra={"reader": self.name, "port": self.port},
                    )
                self._set_available(False, f"cannot open {self.port}: {exc}")
                failures += 1
                await asyncio.sleep(self._backoff(failures))
                continue
            self._transport = transport
            self._lost.clear()
            self._reset_parser()
            if opened_before:
                self.metrics.reconnects += 1
            opened_before = True
            reason = await self._serve()
            self._drop_transport()
            self._set_available(False, reason)
            if self._closing:
                return
            failures += 1
            log.warning("%s: reader lost: %s", self.name, reason, extra={"reader": self.name})
            await asyncio.sleep(self._backoff(failures))

    async def _serve(self) -> str:
        """Identify the reader, then run inventory while it is wanted; returns why it stopped."""
        try:
            await self._identify()
            log.info(
                "%s: reader answers on %s at %d baud",
                self.name,
                self.port,
                self.baudrate,
                extra={"reader": self.name, "port": self.port},
            )
            self._set_available(True)
            incomplete_streak = 0
            reason = ""
            while True:
                await self._wait_for_inventory()
                self._idle.clear()
                try:
                    reads, complete = 0, True
                    for antenna in self.antennas:
                        if not self._inventory_wanted.is_set():
                            break
                        try:
                            reads += await self._inventory_antenna(antenna)
                        except (RoundIncomplete, ReaderRejected) as exc:
                            # The other antennas are still read (their tags still count as seen),
                            # but the pass is no round.
                            complete = False
                            reason = str(exc)
                    else:
                        if complete:
                            if incomplete_streak:
                                log.info(
                                    "%s: complete rounds again after %d incomplete passes",
                                    self.name,
                                    incomplete_streak,
                                    extra={"reader": self.name},
                                )
                            incomplete_streak = 0
                            self._round_number += 1
                            self._emit_round(RoundEnd(self._round_number, self.antennas, reads))
                        else:
                            self.metrics.incomplete_rounds += 1
                            incomplete_streak += 1
                            # Once per streak: a refused antenna repeats on every pass.
                            log.log(
                                logging.WARNING if incomplete_streak == 1 else logging.DEBUG,
                                "%s: pass not counted as a round: %s",
                                self.name,
                                reason,
                                extra={"reader": self.name},
                            )
                finally:
                    self._idle.set()
        except (ReaderTimeout, ReaderUnavailable, ReaderRejected) as exc:
            return str(exc)
        except Exception as exc:
            # Never let the reader die on a bug: log, drop the connection, reconnect.
            log.exception("%s: reader handler failed", self.name)
            return f"internal error: {exc!r}"

    async def _wait_for_inventory(self) -> None:
        if self._inventory_wanted.is_set():
            return
        lost = asyncio.ensure_future(self._lost.wait())
        wanted = asyncio.ensure_future(self._inventory_wanted.wait())
        try:
            await asyncio.wait({lost, wanted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            wanted.cancel()
        if self._lost.is_set():
            raise ReaderUnavailable(f"{self.name}: {self.port} was lost")

    def _link_lost(self, reason: str) -> None:
        self._lost.set()
        pending = self._pending
        if pending is not None and not pending[1].done():
            pending[1].set_exception(ReaderUnavailable(f"{self.name}: {reason}"))

    def _drop_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def _backoff(self, failures: int) -> float:
        delay = min(self._reconnect_max, self._reconnect_initial * 2.0 ** min(failures - 1, 30))
        # Jitter keeps several readers from retrying in lockstep; not security relevant.
        return delay * random.uniform(0.75, 1.0)  # noqa: S311


def _hex(frame: Any) -> str:
    raw = getattr(frame, "raw", None)
    return raw.hex(" ") if isinstance(raw, bytes | bytearray) else repr(frame)
