"""Mosquitto run as a child process: the embedded broker of ``edge demo``, benchmarks and tests.

One :class:`LocalBroker` owns one ``mosquitto`` process, its configuration, log, password file
and persistence database, all in one work directory, listening on one loopback port that it keeps
across restarts. It can be stopped cleanly (SIGTERM: mosquitto writes its persistence database
on the way out), killed (SIGKILL: everything since the last save is lost, like a crash or a power
cut), frozen (SIGSTOP: connections stay open but nothing is answered) and started again.

What mosquitto 2.0 does with these settings, which fault tests depend on:

- A PUBACK is not durability. The in-memory database is written to ``mosquitto.db`` only on a
  clean exit, on SIGUSR1 (:meth:`LocalBroker.persist`) and every ``autosave_interval`` seconds
  (default 1800). After :meth:`LocalBroker.kill` the broker comes back with the state of the last
  save: sessions, subscriptions and queued QoS 1 messages acknowledged since then are gone. The
  file is written to ``mosquitto.db.new``, fsynced and renamed, so a kill never corrupts it.
- Messages are queued for a disconnected client only if its session outlives the connection:
  MQTT 5 ``clean_start=False`` with a non-zero session expiry (expiry 0, the MQTT 5 default, ends
  the session on disconnect), or MQTT 3.1.1 ``clean_session=False``. QoS 0 messages are not
  queued. A QoS 1 publish that matches no subscription is acknowledged anyway (MQTT 5 reason code
  16, "no matching subscribers") and dropped.
- ``max_queued_messages`` is per client, above what is in flight; past it, messages for that
  client are dropped silently (the publisher is still acknowledged).
- ``max_inflight_messages`` is the window of unacknowledged QoS 1/2 messages the broker sends to
  one client (0: no limit), and is announced to MQTT 5 clients as the broker's Receive Maximum.
  Mosquitto 2.0 does not enforce that Receive Maximum on QoS 1 publishes it receives, and paho
  (under aiomqtt) does not honour it: a publisher's own window is what limits it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
DEFAULT_MAX_PACKET_SIZE = 1024 * 1024
"""Largest MQTT packet accepted: room for a 256 KiB event batch with topic and properties."""

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin", "/sbin")
_BIN_DIRS = ("/usr/bin", "/usr/local/bin", "/opt/homebrew/bin")
_POLL_S = 0.02
_RUNNING = re.compile(rb"mosquitto version \S+ running")
_LOG_READ_BYTES = 256 * 1024


class BrokerError(RuntimeError):
    """The broker could not be started, or did something unexpected."""


class MosquittoNotFound(BrokerError):
    """No ``mosquitto`` executable on PATH nor in the usual sbin directories."""


@dataclass(frozen=True)
class BrokerTls:
    """TLS for the broker's listener (PEM files)."""

    ca_file: Path
    """The CA that clients' certificates must chain to (and that signed ``cert_file``)."""
    cert_file: Path
    key_file: Path
    require_certificate: bool = False
    """Refuse clients that present no certificate signed by ``ca_file``."""


def _find_executable(name: str, dirs: tuple[str, ...]) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    for directory in dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_mosquitto() -> str | None:
    """The ``mosquitto`` executable: on PATH, else in an sbin directory (not on PATH for users)."""
    return _find_executable("mosquitto", _SBIN_DIRS)


def find_mosquitto_passwd() -> str | None:
    return _find_executable("mosquitto_passwd", _BIN_DIRS + _SBIN_DIRS)


def hash_password(password: str, *, iterations: int = 101, salt: bytes | None = None) -> str:
    """A password hash as mosquitto 2.0's ``mosquitto_passwd`` writes it.

    ``$7$ITERATIONS$base64(salt)$base64(PBKDF2-HMAC-SHA512(password, salt, ITERATIONS, 64))``,
    with a 12-byte random salt and 101 iterations, mosquitto_passwd's defaults.
    """
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail(path: Path, lines: int, offset: int = 0) -> str:
    """The last ``lines`` lines of ``path``, from ``offset`` on."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(offset, size - _LOG_READ_BYTES))
            text = file.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def _check_config_value(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"{name} cannot go into mosquitto.conf: {value!r}")
    return value


class LocalBroker:
    """A mosquitto process listening on ``127.0.0.1``, with everything it writes in ``workdir``.

    ``port=None`` picks a free port on the first :meth:`start`; restarts reuse it. Files in
    ``workdir``: ``mosquitto.conf``, ``mosquitto.log``, ``mosquitto.out`` (what mosquitto prints
    before its log is open), ``passwords``, ``mosquitto.db``.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        persistence: bool = True,
        tls: BrokerTls | None = None,
        passwords: dict[str, str] | None = None,
        max_queued_messages: int = 100_000,
        max_inflight_messages: int = 20,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        autosave_interval: int | None = None,
        debug_log: bool = False,
        executable: str | None = None,
    ) -> None:
        """
        ``passwords``: username to password; anonymous clients are then refused.
        ``max_inflight_messages``: mosquitto's default, 20; 0 is no limit (see module doc).
        ``autosave_interval``: seconds between saves of the persistence database (mosquitto's
        default, 1800, when None; 0 saves only on a clean stop and :meth:`persist`).
        ``debug_log``: log every packet (``log_type all``): useful to see a fault, heavy in a
        benchmark.
        """
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port out of range: {port}")
        if max_packet_size < 20:
            raise ValueError("mosquitto refuses a max_packet_size below 20 bytes")
        for name in passwords or {}:
            if not name or ":" in name or "\n" in name:
                raise ValueError(f"username not allowed in a mosquitto password file: {name!r}")
        self.workdir = Path(workdir).resolve()
        _check_config_value("workdir", str(self.workdir))
        self._port = port
        self.persistence = persistence
        self.tls = tls
        self.passwords = dict(passwords) if passwords is not None else None
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.max_packet_size = max_packet_size
        self.autosave_interval = autosave_interval
        self.debug_log = debug_log
        self.executable = executable
        self._process: asyncio.subprocess.Process | None = None
        self._paused = False
        self._started_once = False
        self._offsets = (0, 0)

    # ------------------------------------------------------------------ where things are

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if self._port is None:
            raise BrokerError("the broker has no port yet: start() picks one")
        return self._port

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls is not None else 'mqtt'}://{self.host}:{self.port}"

    @property
    def conf_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def output_path(self) -> Path:
        return self.workdir / "mosquitto.out"

    @property
    def password_file(self) -> Path:
        return self.workdir / "passwords"

    @property
    def db_path(self) -> Path:
        return self.workdir / "mosquitto.db"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def paused(self) -> bool:
        return self.running and self._paused

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    def log_tail(self, n: int = 20) -> str:
        """The last ``n`` lines of mosquitto's log."""
        return _tail(self.log_path, n)

    # ------------------------------------------------------------------ configuration

    def config_text(self, port: int) -> str:
        lines = [
            "# Written by edge.broker.LocalBroker; rewritten at every start.",
            "per_listener_settings false",
            f"allow_anonymous {'false' if self.passwords is not None else 'true'}",
        ]
        if self.passwords is not None:
            lines.append(f"password_file {self.password_file}")
        if os.geteuid() == 0:
            # Run as root, mosquitto would switch to the "mosquitto" user, which cannot write
            # to a work directory made by root (pytest's tmp_path is 0700).
            lines.append("user root")
        if self.persistence:
            lines += [
                "persistence true",
                # 2.x puts a "/" between location and file, 1.x does not: a trailing "/" suits both
                f"persistence_location {self.workdir}/",
                "persistence_file mosquitto.db",
            ]
            if self.autosave_interval is not None:
                lines += [
                    "autosave_on_changes false",
                    f"autosave_interval {self.autosave_interval}",
                ]
        else:
            lines.append("persistence false")
        lines += [
            f"max_queued_messages {self.max_queued_messages}",
            f"max_inflight_messages {self.max_inflight_messages}",
            f"max_packet_size {self.max_packet_size}",
            "set_tcp_nodelay true",
            f"log_dest file {self.log_path}",
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
        ]
        log_types = ["error", "warning", "notice", "information", "subscribe", "unsubscribe"]
        lines += [f"log_type {kind}" for kind in (["all"] if self.debug_log else log_types)]
        lines.append(f"listener {port} {HOST}")
        if self.tls is not None:
            for option, path in (
                ("cafile", self.tls.ca_file),
                ("certfile", self.tls.cert_file),
                ("keyfile", self.tls.key_file),
            ):
                lines.append(f"{option} {_check_config_value(option, str(Path(path).resolve()))}")
            lines.append(
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}"
            )
        return "\n".join(lines) + "\n"

    async def _write_password_file(self) -> None:
        assert self.passwords is not None
        path = self.password_file
        path.unlink(missing_ok=True)
        tool = find_mosquitto_passwd()
        if tool is None:
            text = "".join(f"{user}:{hash_password(pw)}\n" for user, pw in self.passwords.items())
            path.write_text(text)
            path.chmod(0o600)
            return
        path.touch(mode=0o600)
        for user, password in self.passwords.items():
            # -b takes the password on the command line: fine for a loopback test broker.
            process = await asyncio.create_subprocess_exec(
                tool,
                "-b",
                str(path),
                user,
                password,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await process.communicate()
            if process.returncode != 0:
                raise BrokerError(f"{tool} failed for user {user!r}: {output.decode().strip()}")

    # ------------------------------------------------------------------ life cycle

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start mosquitto and return once its port accepts connections."""
        if self.running:
            raise BrokerError(f"mosquitto already running (pid {self.pid})")
        executable = self.executable or find_mosquitto()
        if executable is None:
            raise MosquittoNotFound(
                "mosquitto not found on PATH nor in "
                + ", ".join(_SBIN_DIRS)
                + " (Debian/Ubuntu: apt-get install mosquitto)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.passwords is not None and not self._started_once:
            await self._write_password_file()
        # A port picked by us can be taken by someone else before mosquitto binds it: on the
        # first start only, try another one.
        attempts = 3 if self._port is None else 1
        for attempt in range(attempts):
            port = self._port if self._port is not None else _free_port()
            try:
                await self._launch(executable, port, timeout_s)
            except BrokerError:
                in_use = "Address already in use" in self._output_and_log_tail(10)
                if attempt + 1 < attempts and in_use:
                    continue
                raise
            self._port = port
            self._started_once = True
            return

    async def _launch(self, executable: str, port: int, timeout_s: float) -> None:
        self.conf_path.write_text(self.config_text(port))
        # The log and output files are appended to across restarts; errors quote this start's.
        self._offsets = (_size(self.output_path), _size(self.log_path))
        with self.output_path.open("ab") as output:
            self._process = await asyncio.create_subprocess_exec(
                executable,
                "-c",
                str(self.conf_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        self._paused = False
        try:
            await self._wait_ready(port, timeout_s)
        except BaseException:
            await self.kill()  # not left behind by a failed or cancelled start
            raise

    async def _wait_ready(self, port: int, timeout_s: float) -> None:
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self._process.returncode is not None:
                raise BrokerError(
                    f"mosquitto exited with status {self._process.returncode} at start\n"
                    + self._output_and_log_tail(20)
                )
            # The port answering is not enough: it could be someone else's listener, with
            # mosquitto about to exit because it could not bind. "running" is logged after the
            # listeners are open.
            if await self._accepts(port) and self._logged_running():
                return
            if loop.time() > deadline:
                tail = self._output_and_log_tail(20)
                raise BrokerError(
                    f"mosquitto did not accept connections on {HOST}:{port} within {timeout_s}s\n"
                    + tail
                )
            await asyncio.sleep(_POLL_S)

    @staticmethod
    async def _accepts(port: int) -> bool:
        try:
            async with asyncio.timeout(0.25):
                _reader, writer = await asyncio.open_connection(HOST, port)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def _logged_running(self) -> bool:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._offsets[1])
                return _RUNNING.search(log.read()) is not None
        except FileNotFoundError:
            return False

    def _output_and_log_tail(self, n: int) -> str:
        """What mosquitto wrote since it was last launched."""
        parts = []
        output = _tail(self.output_path, n, self._offsets[0])
        if output:
            parts.append(f"--- {self.output_path}\n{output}")
        log = _tail(self.log_path, n, self._offsets[1])
        if log:
            parts.append(f"--- {self.log_path}\n{log}")
        return "\n".join(parts) or "(mosquitto wrote nothing)"

    async def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM and wait: mosquitto saves its persistence database and exits.

        Killed (SIGKILL) if it has not exited within ``timeout_s``. Returns the exit status, or
        None if it was not running.
        """
        process = self._process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        self._signal(signal.SIGTERM)
        if self._paused:
            self._signal(signal.SIGCONT)
            self._paused = False
        try:
            async with asyncio.timeout(timeout_s):
                return await process.wait()
        except TimeoutError:
            return await self.kill()

    async def kill(self) -> int | None:
        """SIGKILL and wait: a crash. Whatever was not saved to ``mosquitto.db`` is lost."""
        process = self._process
        if process is None or process.returncode is not None:
            return None if process is None else process.returncode
        self._signal(signal.SIGKILL)
        self._paused = False
        return await process.wait()

    async def restart(self, timeout_s: float = 10.0) -> None:
        """Start again on the same port; a running broker is stopped cleanly first."""
        if self.running:
            await self.stop()
        await self.start(timeout_s)

    async def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered (PUBACKs, PINGRESPs) until resume."""
        if not self.running:
            raise BrokerError("mosquitto is not running")
        self._signal(signal.SIGSTOP)
        self._paused = True

    async def resume(self) -> None:
        if not self.running:
            raise BrokerError("mosquitto is not running")
        self._signal(signal.SIGCONT)
        self._paused = False

    async def persist(self, timeout_s: float = 10.0) -> None:
        """Make mosquitto save its database now (SIGUSR1) and wait until the file is replaced."""
        if not self.persistence:
            raise BrokerError("persistence is off for this broker")
        if not self.running:
            raise BrokerError("mosquitto is not running")
        if self._paused:
            raise BrokerError("mosquitto is paused: resume() first")

        def inode() -> int | None:
            try:
                return self.db_path.stat().st_ino
            except FileNotFoundError:
                return None

        before = inode()
        self._signal(signal.SIGUSR1)
        # mosquitto writes mosquitto.db.new and renames it over mosquitto.db: while the old file
        # still exists the new one cannot have its inode, so a new inode means a finished save.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (now := inode()) is None or now == before:
            if not self.running:
                raise BrokerError("mosquitto exited while saving\n" + self._output_and_log_tail(20))
            if loop.time() > deadline:
                raise BrokerError(f"mosquitto did not save {self.db_path} within {timeout_s}s")
            await asyncio.sleep(_POLL_S)

    def _signal(self, signum: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signum)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        port = self._port if self._port is not None else "?"
        return f"<LocalBroker {HOST}:{port} {state} {self.workdir}>"
