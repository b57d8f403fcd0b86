"""An LLRP network reader (Impinj Speedway/R700, Zebra FX...) as an ``RfidReader``.

One TCP connection to the reader. After the reader's ConnectionAttemptEvent the driver reads the
capabilities (for the transmit power table), asks for a periodic KEEPALIVE (so a dead link is
noticed even while idle) and for AISpec events, replaces every ROSpec with its own and, while
inventory is wanted, enables and starts it. The ROSpec runs one AISpec of ``round_duration`` over
all antennas and restarts periodically; one AISpec run is one round.

Where a round ends: the reader sends the RO_ACCESS_REPORT of a run at its end, but a real reader
(Impinj, Zebra) sends no report at all for a run that read no tag, so reports alone would never
end a round over an empty cabinet. The end of a round is therefore the AISpecEvent
(End_Of_AISpec) in a READER_EVENT_NOTIFICATION, which the reader sends after every run of our
ROSpec, empty or not. A round holds the reads reported since the previous round ended: the
report of a run normally arrives before its end event, and a report that arrives after it is
counted into the next round rather than lost. Fallback: a reader that sends no AISpec events
(llrpkit's emulator; one that refuses the notification spec) has each report counted as one
round, as long as no AISpec event has been seen on the connection.

Reconnects run for ever with jittered exponential backoff; configuration, the wanted inventory
state and the requested power are re-applied on every new connection, because a reader that
rebooted has forgotten them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from typing import Any

from ..reader import (
    ReaderError,
    ReaderRejected,
    ReaderTimeout,
    ReaderUnavailable,
    RfidReader,
    RoundEnd,
    TagRead,
)
from . import codec
from .codec import (
    Capabilities,
    LlrpDecodeError,
    LlrpStatus,
    Message,
    MessageDecoder,
)

log = logging.getLogger(__name__)

ROSPEC_ID = 0x45444745  # "EDGE": ours, whatever else a previous client left on the reader
DEFAULT_PORT = 5084
_READ_CHUNK = 65536
_HEX_LOG_LIMIT = 256


class LlrpRejected(ReaderRejected):
    """The reader answered with an LLRPStatus other than M_Success (or an ERROR_MESSAGE)."""

    def __init__(self, message: str, status: LlrpStatus) -> None:
        super().__init__(message)
        self.status = status


class LlrpReader(RfidReader):
    def __init__(
        self,
        name: str,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        antennas: Sequence[int] = (1,),
        round_duration: float = 0.2,
        command_timeout: float = 2.0,
        reconnect_initial: float = 0.2,
        reconnect_max: float = 10.0,
        keepalive_period: float = 5.0,
    ) -> None:
        super().__init__(name, antennas)
        if max(self.antennas) > 0xFFFF:
            raise ValueError("LLRP antenna IDs are 16-bit")
        if round_duration <= 0 or command_timeout <= 0 or keepalive_period <= 0:
            raise ValueError("round_duration, command_timeout and keepalive_period must be > 0")
        if reconnect_initial <= 0 or reconnect_max < reconnect_initial:
            raise ValueError("need 0 < reconnect_initial <= reconnect_max")
        self.host = host
        self.port = port
        self.round_duration = round_duration
        self.command_timeout = command_timeout
        self.keepalive_period = keepalive_period
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self.capabilities: Capabilities | None = None
        """What the reader said about itself on the current (or last) connection."""
        self.power_dbm: float | None = None
        """The table power last applied, None until ``set_power``."""
        self._power_wanted: float | None = None
        self._decoder = MessageDecoder()
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, tuple[int | None, asyncio.Future[Message]]] = {}
        self._connect_event: asyncio.Future[int] | None = None
        self._drop_reason: str | None = None
        self._next_id = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._control = asyncio.Lock()  # configuration, start/stop and power, one at a time
        self._ready = False  # configured on the current connection
        self._running = False  # our ROSpec enabled and started on the current connection
        self._wanted = False
        self._round_number = 0
        self._round_reads = 0  # tag replies reported since the last round ended
        self._aispec_events = False  # the reader sent an AISpec end event on this connection
        self._round_by_report = False  # the last round was ended by a report (fallback)
        self._connected_before = False
        self._ready_once = False  # the current connection got as far as configured

    # -- public API ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"rfid[{self.name}]")

    async def close(self) -> None:
        self._closing = True
        self._wanted = False
        task, self._task = self._task, None
        if self._ready:
            # A reader keeps running its ROSpecs after the client is gone; leave it idle.
            with contextlib.suppress(ReaderError):
                await self._transact(codec.DELETE_ROSPEC, codec.rospec_id_body(ROSPEC_ID))
            with contextlib.suppress(ReaderError):
                await self._transact(codec.CLOSE_CONNECTION)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_available(False, "closed")

    async def start_inventory(self) -> None:
        async with self._control:
            self._wanted = True
            if not self._ready or self._running:
                return  # resumed by the connection as soon as it is configured
            try:
                await self._start_rospec()
            except LlrpRejected:
                self._wanted = False
                raise
            except (ReaderTimeout, ReaderUnavailable):
                pass  # the link is gone; the next connection resumes inventory

    async def stop_inventory(self) -> None:
        # Reports and AISpec events are dropped from here on, so no round is reported after this
        # returns even if the reader sends the report or the end of an AISpec cut short by
        # STOP_ROSPEC.
        self._wanted = False
        async with self._control:
            if not self._ready or not self._running:
                return
            with contextlib.suppress(ReaderTimeout, ReaderUnavailable):
                await self._stop_rospec()

    async def set_power(self, dbm: float) -> None:
        async with self._control:
            if not self._ready:
                raise ReaderUnavailable(f"{self.name}: not connected to {self.host}:{self.port}")
            await self._apply_power(dbm)
            self._power_wanted = dbm

    async def transact(self, msg_type: int, body: bytes = b"") -> Message:
        """Send one request and return its response; raises ``LlrpRejected`` when the reader
        refuses it. For diagnostics and for requests this driver does not model."""
        return await self._transact(msg_type, body)

    # -- connection ------------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            reason = await self._connect_and_serve()
            if self._ready_once:
                failures = 0  # the connection worked: start the backoff over
            self._set_available(False, reason)
            if self._closing:
                return
            failures += 1
            level = logging.WARNING if failures == 1 else logging.DEBUG
            log.log(level, "%s: reader lost: %s", self.name, reason, extra={"reader": self.name})
            await asyncio.sleep(self._backoff(failures))

    async def _connect_and_serve(self) -> str:
        self._ready_once = False
        try:
            async with asyncio.timeout(self.command_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            return f"cannot connect to {self.host}:{self.port}: {exc or 'timeout'}"
        loop = asyncio.get_running_loop()
        self._writer = writer
        self._drop_reason = None
        self._decoder.clear()
        self._round_reads = 0
        self._aispec_events = False
        self._round_by_report = False
        connect_event: asyncio.Future[int] = loop.create_future()
        self._connect_event = connect_event
        receiver = asyncio.create_task(self._receive(reader), name=f"rfid[{self.name}].rx")
        try:
            return await self._serve(connect_event, receiver)
        finally:
            self._ready = False
            self._running = False
            self._writer = None
            self._connect_event = None
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            writer.close()
            self._fail_pending("connection closed")

    async def _serve(self, connect_event: asyncio.Future[int], receiver: asyncio.Task[str]) -> str:
        try:
            try:
                async with asyncio.timeout(self.command_timeout):
                    status = await connect_event
            except TimeoutError:
                return "no ConnectionAttemptEvent from the reader"
            if status != codec.CONNECTION_SUCCESS:
                name = codec.CONNECTION_STATUS_NAMES.get(status, "unknown")
                return f"reader refused the connection: status {status} ({name})"
            async with self._control:
                await self._configure()
                if self._connected_before:
                    self.metrics.reconnects += 1
                self._connected_before = True
                self._ready_once = True
                log.info(
                    "%s: LLRP reader ready at %s:%d",
                    self.name,
                    self.host,
                    self.port,
                    extra={"reader": self.name},
                )
                self._set_available(True)
                if self._wanted:
                    await self._start_rospec()
            return await receiver
        except ReaderError as exc:
            return str(exc)
        except Exception as exc:
            # Never let the reader die on a bug: log, drop the connection, reconnect.
            log.exception("%s: reader handler failed", self.name)
            return f"internal error: {exc!r}"

    async def _receive(self, reader: asyncio.StreamReader) -> str:
        reason = await self._read_loop(reader)
        self._fail_pending(reason)
        return reason

    async def _read_loop(self, reader: asyncio.StreamReader) -> str:
        # The reader sends a KEEPALIVE every keepalive_period, so silence this long means the
        # link or the reader is dead even when TCP has not noticed.
        idle_limit = 3 * self.keepalive_period + self.command_timeout
        while True:
            try:
                async with asyncio.timeout(idle_limit):
                    data = await reader.read(_READ_CHUNK)
            except TimeoutError:
                self.metrics.timeouts += 1
                return f"nothing from the reader for {idle_limit:.1f}s"
            except (ConnectionError, OSError) as exc:
                return self._drop_reason or f"connection lost: {exc}"
            if not data:
                return self._drop_reason or "connection closed by the reader"
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        garbage_before = self._decoder.garbage_bytes
        messages = self._decoder.feed(data)
        skipped = self._decoder.garbage_bytes - garbage_before
        if skipped:
            self.metrics.garbage_bytes += skipped
            log.warning(
                "%s: skipped %d bytes that cannot start an LLRP message",
                self.name,
                skipped,
                extra={"reader": self.name},
            )
        for msg in messages:
            self._dispatch(msg)

    def _drop_link(self, reason: str) -> None:
        """Close the connection from our side; the run loop reconnects."""
        writer = self._writer
        if writer is not None and self._drop_reason is None:
            self._drop_reason = reason
            writer.transport.abort()

    def _fail_pending(self, reason: str) -> None:
        error = ReaderUnavailable(f"{self.name}: {reason}")
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            _fail(future, error)
        if self._connect_event is not None:
            _fail(self._connect_event, error)

    # -- requests --------------------------------------------------------------------------------

    async def _transact(self, msg_type: int, body: bytes = b"") -> Message:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise ReaderUnavailable(f"{self.name}: not connected to {self.host}:{self.port}")
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        msg_id = self._next_id
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = (codec.RESPONSE_TYPE.get(msg_type), future)
        try:
            writer.write(codec.encode_message(msg_type, body, msg_id))
            async with asyncio.timeout(self.command_timeout):
                reply = await future
        except TimeoutError:
            self.metrics.timeouts += 1
            reason = f"no answer to message type {msg_type} within {self.command_timeout}s"
            self._drop_link(reason)
            raise ReaderTimeout(f"{self.name}: {reason}") from None
        finally:
            self._pending.pop(msg_id, None)
        try:
            status = codec.response_status(reply)
        except LlrpDecodeError as exc:
            self._corrupt(reply, exc)
            raise ReaderError(f"{self.name}: undecodable answer to type {msg_type}") from exc
        if not status.ok:
            self.metrics.error_replies += 1
            what = "ERROR_MESSAGE" if reply.type == codec.ERROR_MESSAGE else f"type {reply.type}"
            raise LlrpRejected(
                f"{self.name}: reader refused message type {msg_type} ({what}): {status}", status
            )
        return reply

    async def _configure(self) -> None:
        # RequestedData 0 = all capabilities.
        reply = await self._transact(codec.GET_READER_CAPABILITIES, bytes([0]))
        try:
            self.capabilities = codec.decode_capabilities(reply.body)
        except LlrpDecodeError as exc:
            self._corrupt(reply, exc)
            self.capabilities = Capabilities()
        limit = self.capabilities.max_antennas
        if limit and max(self.antennas) > limit:
            log.warning(
                "%s: antennas %s configured but the reader has %d ports",
                self.name,
                list(self.antennas),
                limit,
                extra={"reader": self.name},
            )
        keepalive_ms = max(1, round(self.keepalive_period * 1000))
        try:
            await self._transact(
                codec.SET_READER_CONFIG,
                codec.set_reader_config_body(keepalive_ms=keepalive_ms, aispec_events=True),
            )
        except LlrpRejected as exc:
            # Every LLRP reader should take it; one that does not still works, with a report
            # counted as a round (and no round at all for a run that read nothing).
            self._count("aispec_events_refused")
            log.warning(
                "%s: the reader refused AISpec event notification (%s); an empty read zone "
                "will end no rounds",
                self.name,
                exc.status,
                extra={"reader": self.name},
            )
            await self._transact(
                codec.SET_READER_CONFIG, codec.set_reader_config_body(keepalive_ms=keepalive_ms)
            )
        if self._power_wanted is not None:
            await self._apply_power(self._power_wanted)
        await self._delete_rospecs()
        duration_ms = max(1, round(self.round_duration * 1000))
        # The period leaves a little slack after each run, so the next start never falls while
        # the previous run is still ending (a start trigger on an active ROSpec is ignored).
        period_ms = duration_ms + max(10, duration_ms // 10)
        await self._transact(
            codec.ADD_ROSPEC, codec.encode_rospec(ROSPEC_ID, self.antennas, duration_ms, period_ms)
        )
        self._ready = True

    async def _delete_rospecs(self) -> None:
        try:
            await self._transact(codec.DELETE_ROSPEC, codec.rospec_id_body(0))  # 0 = every ROSpec
            return
        except LlrpRejected as exc:
            # LLRP says ROSpecID 0 deletes all; some implementations answer "no ROSpec 0".
            self._count("delete_all_refused")
            log.info("%s: DELETE_ROSPEC(all) refused: %s", self.name, exc.status)
        with contextlib.suppress(LlrpRejected):
            await self._transact(codec.DELETE_ROSPEC, codec.rospec_id_body(ROSPEC_ID))

    async def _start_rospec(self) -> None:
        # Reports count from the moment we ask: the first one may arrive right behind (or, with
        # the periodic trigger, even before) the START_ROSPEC response.
        self._running = True
        try:
            await self._transact(codec.ENABLE_ROSPEC, codec.rospec_id_body(ROSPEC_ID))
        except ReaderError:
            self._running = False
            raise
        try:
            await self._transact(codec.START_ROSPEC, codec.rospec_id_body(ROSPEC_ID))
        except LlrpRejected as exc:
            # An enabled ROSpec with a periodic start trigger may already have started itself.
            self._count("start_refused")
            log.debug("%s: START_ROSPEC refused: %s", self.name, exc.status)

    async def _stop_rospec(self) -> None:
        self._running = False
        try:
            await self._transact(codec.STOP_ROSPEC, codec.rospec_id_body(ROSPEC_ID))
        except LlrpRejected as exc:
            # Between two periodic runs the ROSpec is not active, and STOP may be refused.
            self._count("stop_refused")
            log.debug("%s: STOP_ROSPEC refused: %s", self.name, exc.status)
        await self._transact(codec.DISABLE_ROSPEC, codec.rospec_id_body(ROSPEC_ID))

    async def _apply_power(self, dbm: float) -> None:
        caps = self.capabilities or Capabilities()
        try:
            index, actual = caps.nearest_power(dbm)
        except LookupError as exc:
            raise ReaderRejected(f"{self.name}: cannot set power: {exc}") from None
        hop_table = caps.hop_table_ids[0] if caps.hop_table_ids else 1
        body = codec.set_reader_config_body(
            power_index=index,
            antennas=self.antennas,
            hop_table_id=hop_table,
        )
        await self._transact(codec.SET_READER_CONFIG, body)
        self.power_dbm = actual
        log.info(
            "%s: transmit power %.2f dBm (index %d) for %.2f dBm requested",
            self.name,
            actual,
            index,
            dbm,
            extra={"reader": self.name},
        )

    # -- what the reader sends -------------------------------------------------------------------

    def _dispatch(self, msg: Message) -> None:
        self.metrics.frames += 1
        try:
            if msg.type == codec.RO_ACCESS_REPORT:
                self._on_report(msg)
            elif msg.type == codec.KEEPALIVE:
                self._count("keepalives")
                writer = self._writer
                if writer is not None and not writer.is_closing():
                    writer.write(codec.encode_keepalive_ack(msg.msg_id))
            elif msg.type == codec.READER_EVENT_NOTIFICATION:
                self._on_event(msg)
            elif not self._resolve(msg):
                self.metrics.unknown_frames += 1
                log.info(
                    "%s: unexpected message type %d: %s",
                    self.name,
                    msg.type,
                    _hex(msg.raw),
                    extra={"reader": self.name},
                )
        except LlrpDecodeError as exc:
            self._corrupt(msg, exc)
        except Exception:
            # A listener's bug must not take the connection down.
            log.exception("%s: handling message type %d failed", self.name, msg.type)

    def _resolve(self, msg: Message) -> bool:
        entry = self._pending.get(msg.msg_id)
        if entry is None:
            return False
        expected, future = entry
        if expected is not None and msg.type not in (expected, codec.ERROR_MESSAGE):
            return False
        del self._pending[msg.msg_id]
        if not future.done():
            future.set_result(msg)
        return True

    def _on_report(self, msg: Message) -> None:
        report = codec.decode_ro_access_report(msg.body)  # decode all before emitting anything
        self._unknown_params(msg, report.unknown)
        if not (self._wanted and self._running):
            self._count("reports_ignored")
            return
        for tag in report.tags:
            antenna = tag.antenna or (self.antennas[0] if len(self.antennas) == 1 else None)
            if antenna is None:
                self._count("reads_without_antenna")
                continue
            self._emit_tag(TagRead(tag.epc.hex(), antenna, tag.peak_rssi, tag.pc))
            self._round_reads += tag.seen_count or 1
        if not self._aispec_events:
            self._end_round(by_report=True)  # fallback: this reader ends no AISpec with an event
        # Otherwise the round ends at the next AISpec end event, with these reads in it.

    def _on_aispec_event(self, event: codec.AISpecEvent) -> None:
        if not event.end or event.rospec_id != ROSPEC_ID:
            self._count("aispec_events_ignored")  # another client's ROSpec, or a future type
            return
        self._count("aispec_events")
        first = not self._aispec_events
        if first:
            self._aispec_events = True
            log.info("%s: the reader sends AISpec events", self.name, extra={"reader": self.name})
        if not (self._wanted and self._running):
            return
        if first and self._round_by_report:
            # The fallback already ended this run's round at its report, which came (as it
            # should) before this event; ending another would count the run twice.
            return
        self._end_round(by_report=False)

    def _end_round(self, *, by_report: bool) -> None:
        reads, self._round_reads = self._round_reads, 0
        self._round_by_report = by_report
        self._round_number += 1
        self._emit_round(RoundEnd(self._round_number, self.antennas, reads))

    def _on_event(self, msg: Message) -> None:
        event = codec.decode_reader_event(msg.body)
        self._unknown_params(msg, event.unknown)
        if event.connection_attempt is not None:
            waiting = self._connect_event
            if waiting is not None and not waiting.done():
                waiting.set_result(event.connection_attempt)
            else:
                # Status 4: someone else tried to connect to our reader.
                log.warning(
                    "%s: connection attempt event, status %d (%s)",
                    self.name,
                    event.connection_attempt,
                    codec.CONNECTION_STATUS_NAMES.get(event.connection_attempt, "unknown"),
                    extra={"reader": self.name},
                )
        if event.connection_closed:
            log.info("%s: the reader is closing the connection", self.name)
        if event.aispec is not None:
            self._on_aispec_event(event.aispec)
        for name in event.events:
            self._count("reader_events")
            log.debug("%s: reader event %s", self.name, name)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _count(self, key: str, n: int = 1) -> None:
        self.metrics.extra[key] = self.metrics.extra.get(key, 0) + n

    def _unknown_params(self, msg: Message, types: list[int]) -> None:
        if not types:
            return
        self._count("unknown_parameters", len(types))
        log.debug(
            "%s: skipped parameters %s in message type %d: %s",
            self.name,
            types,
            msg.type,
            _hex(msg.raw),
        )

    def _corrupt(self, msg: Message, exc: Exception) -> None:
        self.metrics.corrupt_frames += 1
        log.warning(
            "%s: undecodable message type %d skipped (%s): %s",
            self.name,
            msg.type,
            exc,
            _hex(msg.raw),
            extra={"reader": self.name, "frame": msg.raw.hex()},
        )

    def _backoff(self, failures: int) -> float:
        delay = min(self._reconnect_max, self._reconnect_initial * 2.0 ** min(failures - 1, 30))
        # Jitter keeps several readers from retrying in lockstep; not security relevant.
        return delay * random.uniform(0.75, 1.0)  # noqa: S311


def _fail(future: asyncio.Future[Any], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
        # Its awaiter may be gone already; do not let asyncio warn about an unread exception.
        future.exception()


def _hex(raw: bytes) -> str:
    text = raw[:_HEX_LOG_LIMIT].hex(" ")
    return text + " ..." if len(raw) > _HEX_LOG_LIMIT else text
