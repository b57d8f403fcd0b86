"""systemd's notify protocol: a real datagram socket stands in for systemd's end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.runtime.systemd import Notifier, socket_address, watchdog_interval

REPO = Path(__file__).resolve().parents[2]


class NotifySocket:
    """systemd's side: a bound AF_UNIX datagram socket, read with deadlines."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages: list[list[str]] = []

    def receive(self, timeout: float) -> list[str]:
        self.sock.settimeout(timeout)
        lines = self.sock.recv(4096).decode().split("\n")
        self.messages.append(lines)
        return lines

    def wait_for(self, assignment: str, timeout: float) -> list[str]:
        """The first message holding ``assignment`` (e.g. READY=1); fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {assignment} within {timeout}s: {self.messages}")
            try:
                lines = self.receive(remaining)
            except TimeoutError:
                continue
            if assignment in lines:
                return lines

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_path(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "notify"
    assert len(str(path)) < 100, "AF_UNIX paths are limited to 108 bytes"
    yield path


@pytest.fixture
def systemd_end(notify_path: Path) -> Iterator[NotifySocket]:
    end = NotifySocket(str(notify_path))
    yield end
    end.close()


def test_run_tells_systemd_ready_pings_the_watchdog_and_says_stopping(
    tmp_path: Path, notify_path: Path, systemd_end: NotifySocket
) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"site: {{id: notify-site}}\ncode_secret: k\ndata_dir: {tmp_path / 'data'}\n"
        "http: {port: 0}\nlogging: {level: INFO, format: json}\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "200000",  # a ping every 0.1 s
    }
    env.pop("WATCHDOG_PID", None)
    with (tmp_path / "output").open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
        )
    try:
        ready = systemd_end.wait_for("READY=1", timeout=60)
        status = next(line for line in ready if line.startswith("STATUS="))
        assert status.startswith("STATUS=serving on 127.0.0.1:")
        assert status.endswith(", site notify-site")
        port = int(status.removeprefix("STATUS=serving on 127.0.0.1:").split(",")[0])
        assert port > 0  # the port actually bound, not the configured 0
        systemd_end.wait_for("WATCHDOG=1", timeout=5)
        systemd_end.wait_for("WATCHDOG=1", timeout=5)
        process.send_signal(signal.SIGTERM)
        stopping = systemd_end.wait_for("STOPPING=1", timeout=10)
        assert any(line.startswith("STATUS=stopping: site notify-site") for line in stopping)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
    before_ready = systemd_end.messages[: systemd_end.messages.index(ready)]
    assert ["STATUS=starting: site notify-site, checking doors"] in before_ready
    assert "Traceback" not in (tmp_path / "output").read_text()


def test_abstract_namespace_addresses() -> None:
    assert socket_address("@edge-notify") == "\0edge-notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@") is None
    assert socket_address("vsock:2:1234") is None


def test_a_notifier_reaches_an_abstract_socket() -> None:
    name = f"edge-test-{os.getpid()}-{threading.get_ident()}"
    end = NotifySocket("\0" + name)
    try:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier.enabled
        assert notifier.ready("serving\non two lines")
        assert end.receive(timeout=5) == ["READY=1", "STATUS=serving on two lines"]
        notifier.close()
    finally:
        end.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "200000"})
    assert not notifier.enabled
    assert notifier.watchdog_s is None
    assert not notifier.ready("serving")
    assert not notifier.ping()
    assert not notifier.stopping("stopping")
    assert notifier._socket is None  # not even a socket was opened


def test_an_unsupported_address_disables_notifying(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.runtime.systemd"):
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert "NOTIFY_SOCKET is not a path or @name; not notifying" in caplog.messages


def test_watchdog_interval_is_half_the_timeout_and_only_for_the_watched_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, pid=42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=42) is None
    assert watchdog_interval({}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, pid=42) is None


def test_a_vanished_socket_is_one_warning_never_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "gone"))  # systemd's socket no longer there
    with caplog.at_level(logging.INFO, logger="edge.runtime.systemd"):
        assert not notifier.ping()
        assert not notifier.ping()
        end = NotifySocket(str(tmp_path / "gone"))
        try:
            assert notifier.ping()
            assert end.receive(timeout=5) == ["WATCHDOG=1"]
        finally:
            end.close()
    assert caplog.messages == ["could not notify systemd", "notifying systemd again"]
    notifier.close()


async def test_the_watchdog_stops_while_the_event_loop_is_blocked(
    notify_path: Path, systemd_end: NotifySocket
) -> None:
    """Pings come from the loop itself, so a hung loop lets systemd's watchdog fire."""
    notifier = Notifier(str(notify_path), watchdog_s=0.02)
    async with notifier.watchdog():
        # The loop runs: pings flow.
        assert await asyncio.to_thread(systemd_end.receive, 5) == ["WATCHDOG=1"]
        # Now the loop is stuck in a blocking call. Whatever was queued was sent before; after
        # that nothing may arrive, for 25 ping intervals.
        systemd_end.sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                systemd_end.sock.recv(4096)
        with pytest.raises(TimeoutError):
            systemd_end.receive(timeout=0.5)
        # Free again: pings resume.
        assert await asyncio.to_thread(systemd_end.receive, 5) == ["WATCHDOG=1"]
    notifier.close()
