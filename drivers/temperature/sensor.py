"""Temperature sensors of chilled and frozen compartments, read over Modbus RTU with pymodbus.

Several sensors usually hang on one RS-485 line. pymodbus opens a serial port with an exclusive
lock, so two clients cannot share a path: sensors given the same port path (in the same event
loop) share one :class:`_Bus`, i.e. one ``AsyncModbusSerialClient``, and take turns on it.

Timeouts and retries are enforced here, per sensor, rather than by pymodbus: the shared client is
built with ``retries=0``, no automatic reconnect and a generous timeout that only serves as a
backstop. A lost port (USB adapter pulled) is noticed through pymodbus's ``trace_connect`` hook,
so a request in flight fails at once instead of running into its timeout, and the next ``read()``
opens the port again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from .registers import RegisterMap, decode_raw, decode_registers

log = logging.getLogger(__name__)

# pymodbus's own response/connect timeout: only a backstop, the sensor enforces its own timeout.
_BACKSTOP_TIMEOUT = 60.0


class SensorUnavailable(Exception):
    """The sensor could not be read: port absent, no response, exception response, bad data."""


@dataclass(frozen=True)
class TemperatureReading:
    celsius: float
    raw: int | float  # the value in the register(s) before scale and offset
    at: float  # time.monotonic() when the response arrived


@dataclass(frozen=True)
class _LineSettings:
    baudrate: int
    parity: str
    stopbits: int
    bytesize: int


class _PortLost(Exception):
    """The serial port went away while a request was in flight."""


class _Bus:
    """One serial line (one port path) shared by every sensor on it."""

    def __init__(self, port: str, settings: _LineSettings) -> None:
        self.port = port
        self.settings = settings
        self.lock = asyncio.Lock()  # one request on the line at a time
        self.users = 0
        self._client: AsyncModbusSerialClient | None = None
        self._lost = asyncio.Event()
        self._reopen = False

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def _on_connection(self, up: bool) -> None:
        if not up:
            self._lost.set()

    async def open(self, seconds: float) -> bool:
        """Make sure the port is open (reopening it if asked to); False if it cannot be opened."""
        if self._reopen:
            self._reopen = False
            self.close_port()
        if self.connected:
            return True
        if self._client is None:
            self._client = AsyncModbusSerialClient(
                self.port,
                baudrate=self.settings.baudrate,
                parity=self.settings.parity,
                stopbits=self.settings.stopbits,
                bytesize=self.settings.bytesize,
                timeout=_BACKSTOP_TIMEOUT,
                retries=0,
                reconnect_delay=0,  # no background reconnect task: the next read() reconnects
                name=f"temperature {self.port}",
                trace_connect=self._on_connection,
            )
        self._client.close()  # clears what a lost connection left behind
        self._lost = asyncio.Event()
        try:
            async with asyncio.timeout(seconds):
                ok = await self._client.connect()
        except TimeoutError:
            ok = False
        if not ok:
            self._client.close()
        return ok

    def reopen_next_time(self) -> None:
        """After a failure the line may be stale: open the port afresh before the next request."""
        self._reopen = True

    async def request(
        self, call: Callable[[AsyncModbusSerialClient], Awaitable[ModbusPDU]], seconds: float
    ) -> ModbusPDU:
        """One request/response; TimeoutError, _PortLost or a pymodbus exception on failure."""
        client = self._client
        if client is None or not client.connected:
            raise _PortLost
        lost = self._lost

        async def _call() -> ModbusPDU:
            return await call(client)

        response = asyncio.ensure_future(_call())
        watch = asyncio.ensure_future(lost.wait())
        try:
            done, _ = await asyncio.wait(
                {response, watch}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (response, watch):
                if not task.done():
                    task.cancel()
            # Collect both (a cancelled child is returned, not raised; our own cancellation is).
            await asyncio.gather(response, watch, return_exceptions=True)
        if response in done:
            return response.result()
        if watch in done:
            raise _PortLost
        raise TimeoutError

    def close_port(self) -> None:
        if self._client is not None:
            self._client.close()


# Sensors on the same port path share one bus, per event loop (an asyncio client is bound to its
# loop; tests run one loop each).
_buses: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Bus]] = (
    weakref.WeakKeyDictionary()
)


def _attach_bus(port: str, settings: _LineSettings) -> _Bus:
    buses = _buses.setdefault(asyncio.get_running_loop(), {})
    bus = buses.get(port)
    if bus is None:
        bus = buses[port] = _Bus(port, settings)
    elif bus.settings != settings:
        raise ValueError(
            f"sensors on {port} disagree on the serial line settings: {bus.settings} "
            f"vs {settings}; one RS-485 line has one baud rate and framing"
        )
    bus.users += 1
    return bus


def _detach_bus(bus: _Bus) -> None:
    bus.users -= 1
    if bus.users > 0:
        return
    bus.close_port()
    for buses in _buses.values():
        if buses.get(bus.port) is bus:
            del buses[bus.port]


def _exception_name(code: int) -> str:
    try:
        return ExcCodes(code).name
    except ValueError:
        return "unknown"


class ModbusTemperatureSensor:
    """One temperature sensor (one Modbus device id) on a Modbus RTU line.

    ``read()`` waits at most about ``timeout`` to open the port plus ``timeout * (retries + 1)``
    for the answer (plus any time another sensor on the same line holds it).
    """

    def __init__(
        self,
        port: str,
        *,
        device_id: int,
        register: RegisterMap,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        timeout: float = 0.5,
        retries: int = 2,
        name: str = "",
    ) -> None:
        if not 1 <= device_id <= 247:
            raise ValueError(f"device_id must be 1..247, not {device_id}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        self.port = port
        self.device_id = device_id
        self.register = register
        self.timeout = timeout
        self.retries = retries
        self.name = name or f"{port}#{device_id}"
        self._settings = _LineSettings(baudrate, parity, stopbits, bytesize)
        self._bus: _Bus | None = None
        self._ok = False

    def __repr__(self) -> str:
        return f"<ModbusTemperatureSensor {self.name} {self.register}>"

    @property
    def available(self) -> bool:
        """True while the last read succeeded and the port is still open."""
        return self._ok and self._bus is not None and self._bus.connected

    async def connect(self) -> bool:
        """Open the port; False (no exception) if it is absent or cannot be opened."""
        bus = self._attach()
        async with bus.lock:
            return await bus.open(self.timeout)

    async def read(self) -> TemperatureReading:
        """Read the temperature; SensorUnavailable (never hangs) if that is not possible."""
        bus = self._attach()
        self._ok = False
        async with bus.lock:
            if not await bus.open(self.timeout):
                raise SensorUnavailable(
                    f"{self.name}: serial port {self.port} is absent or cannot be opened"
                )
            response = await self._request(bus)
        if response.isError():
            code = response.exception_code
            raise SensorUnavailable(
                f"{self.name}: device {self.device_id} answered {self._what()} with modbus "
                f"exception {code:#04x} {_exception_name(code)}"
            )
        registers = list(response.registers)
        try:
            raw = decode_raw(registers, self.register)
            celsius = decode_registers(registers, self.register)
        except ValueError as exc:
            raise SensorUnavailable(
                f"{self.name}: cannot decode {self._what()}: registers "
                f"{[f'{r:#06x}' for r in registers]}: {exc}"
            ) from exc
        self._ok = True
        return TemperatureReading(celsius=celsius, raw=raw, at=time.monotonic())

    async def close(self) -> None:
        self._ok = False
        if self._bus is not None:
            bus, self._bus = self._bus, None
            _detach_bus(bus)

    async def __aenter__(self) -> ModbusTemperatureSensor:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _attach(self) -> _Bus:
        if self._bus is None:
            self._bus = _attach_bus(self.port, self._settings)
        return self._bus

    def _what(self) -> str:
        reg = self.register
        return f"{reg.table} register {reg.address} ({reg.register_count} x 16 bit)"

    async def _request(self, bus: _Bus) -> ModbusPDU:
        reg = self.register

        def call(client: AsyncModbusSerialClient) -> Awaitable[ModbusPDU]:
            read = (
                client.read_holding_registers
                if reg.table == "holding"
                else client.read_input_registers
            )
            return read(reg.address, count=reg.register_count, device_id=self.device_id)

        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return await bus.request(call, self.timeout)
            except TimeoutError:
                log.debug("%s: no response (attempt %d/%d)", self.name, attempt, attempts)
            except _PortLost:
                bus.reopen_next_time()
                raise SensorUnavailable(
                    f"{self.name}: serial port {self.port} was lost while reading {self._what()}"
                ) from None
            except ModbusException as exc:
                bus.reopen_next_time()
                raise SensorUnavailable(f"{self.name}: modbus error: {exc}") from exc
        bus.reopen_next_time()
        raise SensorUnavailable(
            f"{self.name}: no response from device {self.device_id} on {self.port} "
            f"({attempts} attempts, {self.timeout} s each)"
        )
