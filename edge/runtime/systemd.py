"""systemd's notify protocol (``man sd_notify``) without a dependency: ready, status, watchdog.

Under ``Type=notify`` systemd hands the service ``$NOTIFY_SOCKET``; the controller says when it
is ready (every reachable door compared with the database), what it is doing (``STATUS=``), when
a stop begins, and pings the watchdog from the event loop: a loop that hangs stops the pings, and
systemd restarts the service. Without ``$NOTIFY_SOCKET`` (a terminal, a container, the tests)
every call does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping

log = logging.getLogger(__name__)


def socket_address(value: str) -> str | None:
    """Where to send: a path, or ``@name`` for the abstract namespace; None if not supported."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]  # an abstract socket's name starts with a NUL byte
    return None  # e.g. systemd's vsock: addresses, which a site box never gets


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``), or None if no watchdog is ours."""
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    watched = environ.get("WATCHDOG_PID")
    if watched and watched.strip() != str(pid):
        return None  # the watchdog is meant for another process (we were started by it)
    try:
        timeout_us = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC is not a number; not pinging", extra={"value": usec})
        return None
    if timeout_us <= 0:
        return None
    return timeout_us / 2 / 1_000_000


class Notifier:
    """Datagrams to systemd's notify socket; each method is a no-op when there is no socket."""

    def __init__(self, address: str | None, watchdog_s: float | None = None) -> None:
        self.address = address
        self.watchdog_s = watchdog_s if address is not None else None
        self._socket: socket.socket | None = None
        self._failing = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET")
        if not raw:
            return cls(None)
        address = socket_address(raw)
        if address is None:
            log.warning("NOTIFY_SOCKET is not a path or @name; not notifying", extra={"value": raw})
            return cls(None)
        return cls(address, watchdog_interval(env, os.getpid()))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False if not sent (never raises)."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)  # a full queue must not stall the event loop
            self._socket.sendto(message, self.address)
        except OSError as exc:
            if not self._failing:  # one warning per outage, not one per ping
                log.warning(
                    "could not notify systemd",
                    extra={"socket": self.address.replace("\0", "@"), "error": str(exc)},
                )
            self._failing = True
            return False
        if self._failing:
            log.info("notifying systemd again", extra={"socket": self.address.replace("\0", "@")})
        self._failing = False
        return True

    def status(self, text: str) -> bool:
        return self.notify(_status(text))

    def ready(self, text: str) -> bool:
        return self.notify("READY=1", _status(text))

    def stopping(self, text: str) -> bool:
        return self.notify("STOPPING=1", _status(text))

    def ping(self) -> bool:
        return self.notify("WATCHDOG=1")

    @contextlib.asynccontextmanager
    async def watchdog(self) -> AsyncIterator[None]:
        """Ping the watchdog from this event loop while the block runs."""
        if self.watchdog_s is None:
            yield
            return
        pinger = asyncio.create_task(self._ping_forever(self.watchdog_s), name="systemd-watchdog")
        try:
            yield
        finally:
            pinger.cancel()
            await asyncio.gather(pinger, return_exceptions=True)

    async def _ping_forever(self, interval_s: float) -> None:
        while True:
            self.ping()
            await asyncio.sleep(interval_s)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _status(text: str) -> str:
    return "STATUS=" + " ".join(text.splitlines())  # one datagram line per assignment
