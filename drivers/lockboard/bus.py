"""One RS-485 bus with lock boards on it: one request at a time, timeouts, retries, reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial_asyncio_fast

from . import protocol_485 as p485
from . import protocol_kerong as pk
from .common import (
    DEFAULT_BAUDRATE,
    BoardFamily,
    BoardTimeout,
    BoardUnavailable,
    BusMetrics,
    LockStatus,
)

logger = logging.getLogger(__name__)

Frame = p485.Frame485 | pk.KerongFrame
Matcher = Callable[[Frame], bool]
AvailabilityListener = Callable[[bool], None]
ReportListener = Callable[[LockStatus], None]


@dataclass(frozen=True)
class _Request:
    what: str  # for logs
    frame: bytes
    accept: Matcher
    # A weaker match (Kerong boards that answer an unlock with a plain status frame), taken only
    # when the frame cannot be a late answer to an earlier request that timed out.
    accept_loose: Matcher | None = None
    query_all: bool = False


@dataclass
class _Pending:
    request: _Request
    future: asyncio.Future[Frame]


class LockBus:
    """A serial RS-485 bus shared by several lock boards of one family."""

    def __init__(
        self,
        port: str,
        family: BoardFamily,
        *,
        baudrate: int | None = None,
        request_timeout: float = 0.3,
        retries: int = 2,
        query_all_closed_bit: int = 1,
        reconnect_initial: float = 0.2,
        reconnect_max: float = 10.0,
        name: str = "",
    ) -> None:
        self._family = BoardFamily(family)
        if request_timeout <= 0:
            raise ValueError(f"request_timeout must be > 0, got {request_timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if query_all_closed_bit not in (0, 1):
            raise ValueError(f"query_all_closed_bit must be 0 or 1, got {query_all_closed_bit}")
        if reconnect_initial <= 0 or reconnect_max < reconnect_initial:
            raise ValueError("need 0 < reconnect_initial <= reconnect_max")
        self._port = port
        self._baudrate = baudrate if baudrate is not None else DEFAULT_BAUDRATE[self._family]
        self._request_timeout = request_timeout
        self._retries = retries
        self._closed_bit = query_all_closed_bit
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self._name = name or port
        self._metrics = BusMetrics()
        self._parser: p485.Parser485 | pk.KerongParser
        if self._family is BoardFamily.BOARD_485:
            self._parser = p485.Parser485(self._on_corrupt, self._on_garbage)
        else:
            self._parser = pk.KerongParser(self._on_corrupt, self._on_garbage)

        self._lock = asyncio.Lock()  # one request on the wire at a time
        self._writer: asyncio.StreamWriter | None = None
        self._pending: _Pending | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._port_open = False
        self._exchange_ok = True
        self._answering: dict[int, bool] = {}
        self._available = False
        self._available_event = asyncio.Event()
        self._availability_listeners: list[AvailabilityListener] = []
        self._report_listeners: list[ReportListener] = []
        # (matcher, expiry) of requests that timed out: a frame they match is a late reply.
        self._late: list[tuple[Matcher, float]] = []

    # -- public API -------------------------------------------------------------------------

    @property
    def port(self) -> str:
        return self._port

    @property
    def family(self) -> BoardFamily:
        return self._family

    @property
    def name(self) -> str:
        return self._name

    @property
    def available(self) -> bool:
        """Port open and the last exchange got its reply."""
        return self._available

    @property
    def metrics(self) -> BusMetrics:
        return self._metrics

    def add_availability_listener(self, cb: AvailabilityListener) -> None:
        self._availability_listeners.append(cb)

    def add_report_listener(self, cb: ReportListener) -> None:
        """Unsolicited status reports only; statuses learned from replies are returned instead."""
        self._report_listeners.append(cb)

    async def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"lockbus[{self._name}]")

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The run task's cleanup has dropped the connection; this covers a bus never started.
        self._connection_lost("bus closed")

    # The agreed API takes a timeout rather than leaving it to the caller's asyncio.timeout.
    async def wait_available(self, timeout: float) -> bool:  # noqa: ASYNC109
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._available_event.wait()
        return self._available

    async def unlock(self, address: int, lock: int) -> LockStatus | None:
        """Pulse one lock open; returns the status carried in the board's acknowledgement."""
        if self._family is BoardFamily.BOARD_485:
            p485.check_lock(lock)
            frame = p485.encode_unlock(address, lock)
            got = await self._exchange(
                address,
                _Request(
                    f"unlock {address}/{lock}",
                    frame,
                    lambda f: _is_485(f, p485.HEAD_UNLOCK, address, lock),
                ),
            )
            assert isinstance(got, p485.Frame485)
            return LockStatus(address, lock, got.locked)
        frame = pk.encode_unlock(address, lock)
        got = await self._exchange(
            address,
            _Request(
                f"unlock {address}/{lock}",
                frame,
                lambda f: _is_kerong(f, address, {pk.CMD_UNLOCK}),
                accept_loose=lambda f: _is_kerong(f, address, pk.STATUS_REPLY_CMDS),
            ),
        )
        assert isinstance(got, pk.KerongFrame)
        return LockStatus(address, lock, got.locked(lock), got.item_present(lock))

    async def read_lock(self, address: int, lock: int) -> LockStatus:
        if self._family is BoardFamily.BOARD_485:
            p485.check_lock(lock)
            frame = p485.encode_query(address, lock)
            got = await self._exchange(
                address,
                _Request(
                    f"query {address}/{lock}",
                    frame,
                    lambda f: _is_485(f, p485.HEAD_QUERY, address, lock),
                ),
            )
            assert isinstance(got, p485.Frame485)
            return LockStatus(address, lock, got.locked)
        pk.check_lock(lock)
        statuses = await self._read_kerong(address)
        return statuses[lock]

    async def read_all(self, address: int, lock_count: int) -> dict[int, LockStatus]:
        """Every lock 1..lock_count of one board in a single exchange."""
        if self._family is BoardFamily.BOARD_485:
            if not 1 <= lock_count <= p485.MAX_LOCKS:
                raise ValueError(f"lock_count must be 1..{p485.MAX_LOCKS}, got {lock_count}")
            frame = p485.encode_query_all(address)
            got = await self._exchange(
                address,
                _Request(
                    f"query all {address}",
                    frame,
                    lambda f: (
                        isinstance(f, p485.Frame485) and f.is_query_all and f.address == address
                    ),
                    query_all=True,
                ),
            )
            assert isinstance(got, p485.Frame485)
            states = got.locks(lock_count, closed_bit=self._closed_bit)
            return {lock: LockStatus(address, lock, locked) for lock, locked in states.items()}
        if not 1 <= lock_count <= pk.MAX_LOCKS:
            raise ValueError(f"lock_count must be 1..{pk.MAX_LOCKS}, got {lock_count}")
        statuses = await self._read_kerong(address)
        return {lock: statuses[lock] for lock in range(1, lock_count + 1)}

    # -- requests ---------------------------------------------------------------------------

    async def _read_kerong(self, address: int) -> dict[int, LockStatus]:
        frame = pk.encode_status(address)
        got = await self._exchange(
            address,
            _Request(
                f"status {address}", frame, lambda f: _is_kerong(f, address, pk.STATUS_REPLY_CMDS)
            ),
        )
        assert isinstance(got, pk.KerongFrame)
        return {
            lock: LockStatus(address, lock, got.locked(lock), got.item_present(lock))
            for lock in range(1, pk.MAX_LOCKS + 1)
        }

    async def _exchange(self, address: int, request: _Request) -> Frame:
        if not self._port_open:
            raise BoardUnavailable(f"{self._name}: port {self._port} is not open")
        async with self._lock:
            self._metrics.requests += 1
            had_timeout = False
            try:
                for attempt in range(self._retries + 1):
                    if attempt:
                        self._metrics.retries += 1
                    try:
                        reply = await self._attempt(request)
                    except TimeoutError:
                        had_timeout = True
                        self._metrics.timeouts += 1
                        logger.info(
                            "%s: no reply to %s (attempt %d of %d)",
                            self._name,
                            request.what,
                            attempt + 1,
                            self._retries + 1,
                            extra={"bus": self._name, "request": request.frame.hex()},
                        )
                        continue
                    self._board_answered(address, True)
                    return reply
            finally:
                if had_timeout:
                    # Its reply (or a retry's) may still arrive, during someone else's request.
                    self._remember_late(request.accept)
            self._board_answered(address, False)
            raise BoardTimeout(
                f"{self._name}: no valid reply to {request.what} after "
                f"{self._retries + 1} attempts of {self._request_timeout}s"
            )

    async def _attempt(self, request: _Request) -> Frame:
        writer = self._writer
        if writer is None or not self._port_open:
            raise BoardUnavailable(f"{self._name}: port {self._port} is not open")
        dropped = self._parser.clear()
        if dropped:
            # A frame that never completed; whatever comes next answers the new request.
            self._metrics.partial_frames += 1
            logger.warning(
                "%s: dropped incomplete frame %s",
                self._name,
                dropped.hex(" "),
                extra={"bus": self._name, "frame": dropped.hex()},
            )
        if isinstance(self._parser, p485.Parser485):
            self._parser.expect_query_all = request.query_all
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending = _Pending(request, future)
        try:
            writer.write(request.frame)
            self._metrics.last_frame_written_at = time.perf_counter()
            async with asyncio.timeout(self._request_timeout):
                await writer.drain()
                return await future
        except TimeoutError:
            raise  # an OSError subclass, but only "no reply in time"
        except OSError as exc:
            self._connection_lost(f"write failed: {exc}")
            raise BoardUnavailable(f"{self._name}: write to {self._port} failed: {exc}") from exc
        finally:
            self._pending = None

    def _remember_late(self, matcher: Matcher) -> None:
        now = time.monotonic()
        keep = max(2.0, 5 * self._request_timeout)
        self._late = [(m, t) for m, t in self._late if t > now][-15:]
        self._late.append((matcher, now + keep))

    def _is_late(self, frame: Frame, *, consume: bool) -> bool:
        now = time.monotonic()
        for i, (matcher, expiry) in enumerate(self._late):
            if expiry > now and matcher(frame):
                if consume:
                    del self._late[i]
                return True
        return False

    # -- incoming bytes ---------------------------------------------------------------------

    def _on_bytes(self, data: bytes) -> None:
        for frame in self._parser.feed(data):
            try:
                self._dispatch(frame)
            except Exception:
                logger.exception("%s: failed to handle frame %s", self._name, frame.raw.hex(" "))

    def _dispatch(self, frame: Frame) -> None:
        if (
            isinstance(frame, p485.Frame485)
            and frame.head == p485.HEAD_REPORT
            and 1 <= frame.lock <= p485.MAX_LOCKS
        ):
            self._emit_report(LockStatus(frame.address, frame.lock, frame.locked))
            return
        pending = self._pending
        if pending is not None and not pending.future.done():
            request = pending.request
            if request.accept(frame) or (
                request.accept_loose is not None
                and request.accept_loose(frame)
                and not self._is_late(frame, consume=False)
            ):
                pending.future.set_result(frame)
                return
        late = self._is_late(frame, consume=True)
        self._metrics.stray_frames += 1
        logger.info(
            "%s: discarded %s frame %s",
            self._name,
            "late" if late else "stray",
            frame.raw.hex(" "),
            extra={"bus": self._name, "frame": frame.raw.hex()},
        )

    def _emit_report(self, status: LockStatus) -> None:
        self._metrics.reports += 1
        for cb in list(self._report_listeners):
            try:
                cb(status)
            except Exception:
                logger.exception("%s: report listener failed", self._name)

    def _on_corrupt(self, raw: bytes) -> None:
        self._metrics.corrupt_frames += 1
        logger.warning(
            "%s: corrupt frame skipped (bad checksum): %s",
            self._name,
            raw.hex(" "),
            extra={"bus": self._name, "frame": raw.hex()},
        )

    def _on_garbage(self, junk: bytes) -> None:
        self._metrics.garbage_bytes += len(junk)
        logger.debug(
            "%s: skipped %d garbage bytes: %s",
            self._name,
            len(junk),
            junk.hex(" "),
            extra={"bus": self._name, "frame": junk.hex()},
        )

    # -- connection -------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        opened_before = False
        while not self._closing:
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=self._port,
                    baudrate=self._baudrate,
                    bytesize=8,
                    parity="N",
                    stopbits=1,
                )
            except (OSError, ValueError) as exc:
                if failures == 0:
                    logger.warning(
                        "%s: cannot open %s: %s",
                        self._name,
                        self._port,
                        exc,
                        extra={"bus": self._name, "port": self._port},
                    )
                failures += 1
                await asyncio.sleep(self._backoff(failures))
                continue
            if opened_before:
                self._metrics.reconnects += 1
            opened_before = True
            failures = 0
            try:
                reason = await self._serve(reader, writer)
            except Exception as exc:
                # Never let the bus die on a bug: log, drop the connection, reopen.
                logger.exception("%s: connection handler failed", self._name)
                reason = f"internal error: {exc!r}"
            logger.warning(
                "%s: lost %s: %s",
                self._name,
                self._port,
                reason,
                extra={"bus": self._name, "port": self._port},
            )
            await asyncio.sleep(self._backoff(0))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        logger.info(
            "%s: opened %s at %d baud",
            self._name,
            self._port,
            self._baudrate,
            extra={"bus": self._name, "port": self._port},
        )
        reason = "closed"
        try:
            self._parser.clear()
            self._writer = writer
            self._port_open = True
            self._exchange_ok = True
            self._answering.clear()  # a new connection: no board has been heard on it yet
            self._update_availability()
            reason = await self._read_loop(reader)
        finally:
            self._connection_lost(reason)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return reason

    async def _read_loop(self, reader: asyncio.StreamReader) -> str:
        """Feed the parser until the port fails; returns why."""
        while True:
            try:
                data = await reader.read(4096)
            except OSError as exc:
                return f"read error: {exc}"
            if not data:
                return "end of file"
            self._on_bytes(data)

    def _backoff(self, failures: int) -> float:
        delay = min(self._reconnect_max, self._reconnect_initial * 2.0 ** min(failures, 30))
        # Jitter keeps several buses from retrying in lockstep; not security relevant.
        return delay * random.uniform(0.75, 1.0)  # noqa: S311

    def _connection_lost(self, reason: str) -> None:
        self._writer = None
        self._port_open = False
        self._parser.clear()
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(
                BoardUnavailable(f"{self._name}: {self._port} lost during {pending.request.what}")
            )
        self._update_availability()

    def _board_answered(self, address: int, answered: bool) -> None:
        # The bus counts as working while any board on it answers: one dead board must not
        # take its neighbours' doors out of service (callers see its BoardTimeout).
        self._answering[address] = answered
        self._exchange_ok = any(self._answering.values())
        self._update_availability()

    def _update_availability(self) -> None:
        available = self._port_open and self._exchange_ok
        if available == self._available:
            return
        self._available = available
        if available:
            self._available_event.set()
        else:
            self._available_event.clear()
        for cb in list(self._availability_listeners):
            try:
                cb(available)
            except Exception:
                logger.exception("%s: availability listener failed", self._name)


def _is_485(frame: Frame, head: int, address: int, lock: int) -> bool:
    return (
        isinstance(frame, p485.Frame485)
        and not frame.is_query_all
        and frame.head == head
        and frame.address == address
        and frame.lock == lock
    )


def _is_kerong(frame: Frame, address: int, cmds: set[int] | frozenset[int]) -> bool:
    return isinstance(frame, pk.KerongFrame) and frame.address == address and frame.cmd in cmds
