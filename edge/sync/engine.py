"""The site's link to its upstream broker: one connection at a time, rebuilt forever.

Per connection: ``status`` goes ``online`` (retained; the Last Will says ``offline``), the
commands topic is subscribed on a persistent session, and four loops run together: the outbox
drain, the command intake, the telemetry tick and the retained state snapshots. When any of
them fails (the broker went away, a publish was never acknowledged) the connection is dropped
and rebuilt after a jittered backoff; nothing is lost, because the outbox cursor only moves
on acknowledgements and commands are acknowledged only once their result is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from edge.clock import Clock, rfc3339
from edge.config.sync import MqttConfig
from edge.db import Database
from edge.runtime.backoff import Backoff
from edge.sync.client import make_client
from edge.sync.topics import Topics
from edge.sync.uplink import OutboxPublisher

log = logging.getLogger(__name__)

CommandHandler = Callable[[bytes], Awaitable[object]]
Snapshot = Callable[[], Awaitable[Any]]


@dataclass
class LinkState:
    connected: bool = False
    connects: int = 0
    failures: int = 0
    last_error: str | None = None
    published_snapshots: dict[str, str] = field(default_factory=dict)
    down_since: float | None = field(default_factory=time.monotonic)
    """Monotonic time the link went down (or the engine started); None while connected."""

    def down_for(self) -> float | None:
        return None if self.down_since is None else time.monotonic() - self.down_since


class SyncEngine:
    def __init__(
        self,
        config: MqttConfig,
        site: str,
        version: str,
        db: Database,
        clock: Clock,
        *,
        on_command: CommandHandler | None = None,
        telemetry: Snapshot | None = None,
        snapshots: dict[str, Snapshot] | None = None,
    ) -> None:
        self.config = config
        self.site = site
        self.version = version
        self.clock = clock
        self.topics = Topics(config.topic_prefix, site)
        self.client_id = config.client_id or f"edge-{site}"
        self.uplink = OutboxPublisher(config, db, site, self.topics.events)
        db.add_event_listener(self.uplink.on_commit)
        self.on_command = on_command
        self.telemetry = telemetry
        self.snapshots = snapshots or {}
        self.state = LinkState()
        self.backoff = Backoff(config.reconnect.initial_s, config.reconnect.max_s)
        self._connected = asyncio.Event()
        self._stop = asyncio.Event()
        self._snapshot_due = asyncio.Event()
        self._commands_running: set[asyncio.Task[object]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Connect, work, and reconnect after every failure until ``stop``."""
        await self.uplink.load_position()
        while not self._stop.is_set():
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure means: reconnect later
                self._disconnected(exc)
            if self._stop.is_set():
                return
            delay = self.backoff.next_delay()
            log.info("reconnecting to the broker", extra={"in_s": round(delay, 2)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Flush the outbox as far as the broker allows, say ``stopped``, disconnect."""
        if self.state.connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.uplink.wait_drained(), flush_timeout_s)
        self._stop.set()
        if self._commands_running:
            await asyncio.gather(*self._commands_running, return_exceptions=True)

    async def wait_connected(self, within_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), within_s)
        return self._connected.is_set()

    def snapshot_changed(self) -> None:
        """Something a retained snapshot shows may have changed: compare and republish."""
        self._snapshot_due.set()

    # -- one connection --------------------------------------------------------------------

    def _status(self, state: str) -> bytes:
        return json.dumps(
            {"state": state, "version": self.version, "ts": rfc3339(self.clock.now())}
        ).encode()

    async def _session(self) -> None:
        will = aiomqtt.Will(self.topics.status, self._status("offline"), qos=1, retain=True)
        client = make_client(self.config, self.client_id, will=will)
        # Commands are acknowledged only after their result is committed: a crash before that
        # gets the command redelivered (and recognised), never lost.
        client._client.manual_ack_set(True)
        connected = False
        try:
            async with client:
                connected = True
                await self._connected_session(client)
        except Exception as exc:
            raise SessionFailed(connected) from exc
        log.info("disconnected from the broker on stop", extra={"site": self.site})

    async def _connected_session(self, client: aiomqtt.Client) -> None:
        self._on_connected()
        try:
            await client.publish(self.topics.status, self._status("online"), qos=1, retain=True)
            await client.subscribe(self.topics.commands, qos=1)
            await self._work(client)
            await client.publish(self.topics.status, self._status("stopped"), qos=1, retain=True)
        finally:
            self._connected.clear()
            self.state.connected = False
            self.state.down_since = time.monotonic()

    def _on_connected(self) -> None:
        self.state.connected = True
        self.state.down_since = None
        self.state.connects += 1
        self.state.published_snapshots.clear()  # republish every snapshot on a new session
        self._snapshot_due.set()
        self.backoff.reset()
        self._connected.set()
        log.info(
            "connected to the broker",
            extra={
                "broker": f"{self.config.host}:{self.config.effective_port}",
                "client_id": self.client_id,
                "pending": self.uplink.stats.pending,
            },
        )

    def _disconnected(self, exc: BaseException) -> None:
        self.state.failures += 1
        was_connected = isinstance(exc, SessionFailed) and exc.was_connected
        reason = _reason(exc.__cause__ if isinstance(exc, SessionFailed) and exc.__cause__ else exc)
        self.state.last_error = reason
        log.warning(
            "broker connection lost" if was_connected else "cannot reach the broker",
            extra={"reason": reason, "pending": self.uplink.stats.pending},
        )

    async def _work(self, client: aiomqtt.Client) -> None:
        """Run the connection's loops until stop (returns) or a failure (raises)."""
        async with asyncio.TaskGroup() as group:
            loops = [
                group.create_task(self.uplink.run(client)),
                group.create_task(self._commands(client)),
                group.create_task(self._telemetry(client)),
                group.create_task(self._snapshots(client)),
            ]
            await self._stop.wait()
            # A command being applied finishes and is acknowledged; no new one is taken.
            if self._commands_running:
                await asyncio.gather(*self._commands_running, return_exceptions=True)
            for task in loops:
                task.cancel()

    async def _commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if self._stop.is_set():
                return  # not acknowledged: the broker redelivers it on the next start
            payload = message.payload
            data = payload if isinstance(payload, bytes) else str(payload or "").encode()
            if self.on_command is None:
                log.warning("command ignored: this site has no command handler")
            else:
                # Shielded: a connection lost mid-command must not cut the command in half.
                task = asyncio.ensure_future(self.on_command(data))
                self._commands_running.add(task)
                task.add_done_callback(self._commands_running.discard)
                await asyncio.shield(task)
            if message.qos > 0:
                client._client.ack(message.mid, message.qos)

    async def _telemetry(self, client: aiomqtt.Client) -> None:
        if self.telemetry is None:
            return
        while True:
            body = await self.telemetry()
            await client.publish(self.topics.telemetry, json.dumps(body).encode(), qos=0)
            await asyncio.sleep(self.config.telemetry_interval_s)

    async def _snapshots(self, client: aiomqtt.Client) -> None:
        if not self.snapshots:
            return
        while True:
            # Every commit marks the snapshots due; the timeout is a backstop for a change that
            # came without an event, not a polling loop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._snapshot_due.wait(), self.config.telemetry_interval_s)
            self._snapshot_due.clear()
            for thing, take in self.snapshots.items():
                body = json.dumps(await take(), sort_keys=True)
                if self.state.published_snapshots.get(thing) == body:
                    continue
                await client.publish(self.topics.state(thing), body.encode(), qos=1, retain=True)
                self.state.published_snapshots[thing] = body


class SessionFailed(Exception):
    def __init__(self, was_connected: bool) -> None:
        super().__init__("the broker connection failed")
        self.was_connected = was_connected


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
