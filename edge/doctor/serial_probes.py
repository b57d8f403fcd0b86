"""Probes of the devices on serial lines (and LLRP readers): lock boards, temperature sensors,
RFID readers, serial scanners. Each uses the controller's own driver with read-only requests:
a status query, a register read, a reader's identification. Nothing is ever unlocked."""

from __future__ import annotations

import asyncio
import socket

from drivers.lockboard import BoardTimeout, LockBoardError, LockBus
from drivers.rfid.llrp import codec
from drivers.rfid.reader import RfidReader
from drivers.temperature import SensorUnavailable
from edge.config.cabinets import RfidReaderConfig
from edge.config.models import LockBusConfig, TemperatureSensorConfig
from edge.config.scanners import SerialScannerConfig
from edge.doctor.ports import PortProblem, in_use
from edge.doctor.report import Finding, fail, ok
from edge.hardware.locks import lock_bus_for
from edge.hardware.rfid import build_reader
from edge.lockers.temperature import sensor_for

# How long a driver may take to open a port that the preflight could open.
PORT_OPEN_S = 2.0


def port_finding(check: str, target: str, problem: PortProblem) -> Finding:
    return Finding(check, target, problem.result, problem.detail, problem.next_step)


async def probe_lock_bus(config: LockBusConfig) -> list[Finding]:
    """One row per board: its lock/door status read with the query every poll uses."""
    bus = lock_bus_for(config)
    await bus.start()
    try:
        if not await bus.wait_available(PORT_OPEN_S):
            return [
                fail(
                    "lock bus",
                    f"{config.name} ({config.port})",
                    f"{config.port} could not be opened by the lock-board driver",
                    "replug the RS-485 adapter; ls -l /dev/serial/by-id",
                )
            ]
        return [await _probe_board(bus, config, b.address, b.locks) for b in config.boards]
    finally:
        await bus.close()


async def _probe_board(bus: LockBus, config: LockBusConfig, address: int, locks: int) -> Finding:
    target = f"{config.name}/board{address} ({config.port})"
    try:
        statuses = await bus.read_all(address, locks)
    except BoardTimeout:
        return fail(
            "lock board",
            target,
            f"no answer from board {address} ({config.protocol}, "
            f"{config.retries + 1} tries of {config.request_timeout_s:g} s)",
            f"check the RS-485 A/B wiring, the board's power and its address DIP switches "
            f"(must be {address}); check the bus baud rate and protocol ({config.protocol})",
        )
    except LockBoardError as exc:
        return fail("lock board", target, str(exc), "replug the RS-485 adapter and try again")
    opened = sorted(lock for lock, status in statuses.items() if not status.locked)
    doors = f"{len(opened)} open: {', '.join(map(str, opened))}" if opened else "all closed"
    return ok("lock board", target, f"{locks} locks answer, {doors}")


async def probe_temperature(config: TemperatureSensorConfig) -> Finding:
    target = f"{config.name} ({config.port} #{config.device_id})"
    sensor = sensor_for(config)
    try:
        reading = await sensor.read()
    except SensorUnavailable as exc:
        return fail(
            "temperature",
            target,
            str(exc),
            f"check the RS-485 A/B wiring and the sensor's power; its Modbus address must be "
            f"{config.device_id}, {config.baudrate or 9600} baud {config.parity}"
            f"{config.stopbits}, register {config.register_map.address}",
        )
    finally:
        await sensor.close()
    return ok("temperature", target, f"{reading.celsius:.1f} °C ({config.zone} zone)")


async def probe_serial_reader(config: RfidReaderConfig) -> Finding:
    """The driver identifies the reader on connect (firmware / reader info); no inventory."""
    target = f"{config.name} ({config.port})"
    reader = build_reader(config)
    await reader.start()
    try:
        answered = await reader.wait_available(PORT_OPEN_S + 2 * config.command_timeout_s)
        if not answered:
            why = reader.metrics.last_error or "no answer to its identification request"
            return fail(
                "rfid reader",
                target,
                why,
                f"check the reader's power and cable; it must be a {config.protocol} reader "
                f"at {reader_baud(reader)} baud"
                + (f", address {config.address}" if config.address is not None else ""),
            )
        return ok("rfid reader", target, f"{config.protocol} reader answers{_identity(reader)}")
    finally:
        await reader.close()


def reader_baud(reader: RfidReader) -> str:
    return str(getattr(reader, "baudrate", "?"))


def _identity(reader: RfidReader) -> str:
    firmware = getattr(reader, "firmware", None)  # R2000
    if isinstance(firmware, tuple):
        return f", firmware {'.'.join(map(str, firmware))}"
    info = getattr(reader, "info", None)  # Chafon: ReaderInfo; M100: text
    if isinstance(info, str) and info.strip():
        return f", {info.strip()}"
    version = getattr(info, "version", None)
    if isinstance(version, tuple):
        return f", version {'.'.join(map(str, version))}, power {getattr(info, 'power', '?')} dBm"
    return ""


async def probe_llrp_reader(config: RfidReaderConfig) -> Finding:
    """Connect, read the capabilities, close: the driver would configure the reader (and delete
    the ROSpecs of a running controller), so this one talks the protocol directly."""
    assert config.host is not None
    target = f"{config.name} ({config.host}:{config.tcp_port})"
    fix = (
        f"check the reader's power and network, that {config.host} is its address and that LLRP "
        f"is enabled on port {config.tcp_port}"
    )
    try:
        async with asyncio.timeout(config.command_timeout_s):
            reader, writer = await asyncio.open_connection(config.host, config.tcp_port)
    except socket.gaierror:
        return fail(
            "rfid reader",
            target,
            f"cannot resolve {config.host}",
            "check rfid_readers[].host and the DNS settings (or give the reader's IP address)",
        )
    except ConnectionRefusedError:
        return fail("rfid reader", target, "connection refused", fix)
    except (OSError, TimeoutError) as exc:
        return fail("rfid reader", target, f"cannot connect: {exc or 'timeout'}", fix)
    decoder = codec.MessageDecoder()
    try:
        event = await _next_message(reader, decoder, codec.READER_EVENT_NOTIFICATION, config)
        status = codec.decode_reader_event(event.body).connection_attempt
        if status in (1, 2):  # a connection already exists: the controller's, usually
            problem = in_use(f"{config.host}:{config.tcp_port}", "another LLRP client")
            return Finding("rfid reader", target, problem.result, problem.detail, problem.next_step)
        if status != codec.CONNECTION_SUCCESS:
            name = codec.CONNECTION_STATUS_NAMES.get(status or 0, "unknown")
            return fail("rfid reader", target, f"the reader refused the connection: {name}", fix)
        writer.write(codec.encode_get_reader_capabilities(1))
        reply = await _next_message(reader, decoder, codec.GET_READER_CAPABILITIES_RESPONSE, config)
        status_of_reply = codec.response_status(reply)
        writer.write(codec.encode_close_connection(2))
        if not status_of_reply.ok:
            return fail(
                "rfid reader",
                target,
                f"the reader refused to describe itself: {status_of_reply}",
                "check the reader's LLRP settings in its web interface",
            )
        caps = codec.decode_capabilities(reply.body)
    except (TimeoutError, ConnectionError, codec.LlrpDecodeError) as exc:
        return fail("rfid reader", target, f"no valid LLRP answer: {exc or 'timeout'}", fix)
    finally:
        writer.close()
    antennas = f", {caps.max_antennas} antenna ports" if caps.max_antennas else ""
    firmware = f", firmware {caps.firmware}" if caps.firmware else ""
    return ok("rfid reader", target, f"LLRP reader answers{firmware}{antennas}")


async def _next_message(
    reader: asyncio.StreamReader,
    decoder: codec.MessageDecoder,
    msg_type: int,
    config: RfidReaderConfig,
) -> codec.Message:
    async with asyncio.timeout(config.command_timeout_s):
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the reader closed the connection")
            for message in decoder.feed(data):
                if message.type in (msg_type, codec.ERROR_MESSAGE):
                    return message


def probe_serial_scanner(config: SerialScannerConfig) -> Finding:
    """The port opened in the preflight; a scanner only speaks when it reads a code."""
    return ok(
        "scanner",
        f"{config.name} ({config.port})",
        f"port opens at {config.baudrate} baud (scan a code at kiosk {config.kiosk} to test "
        "the scanner itself)",
    )
