"""Modbus RTU temperature sensors, against pymodbus's own serial server over a pty null modem."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Literal

import pytest

from drivers.pty import PseudoSerialPort
from drivers.temperature import (
    ModbusTemperatureSensor,
    RegisterMap,
    SensorUnavailable,
    decode_raw,
    decode_registers,
    encode_temperature,
)
from drivers.temperature.simulator import ModbusTemperatureSimulator

WORKED_EXAMPLE = bytes.fromhex("01 03 00 00 00 01 84 0A")  # PROTOCOLS.md 2c
FROZEN = RegisterMap(address=0)  # signed tenths of a degree in holding register 0
CHILLED = RegisterMap(address=0)


def crc16_modbus(data: bytes) -> bytes:
    """CRC-16/MODBUS (reflected poly 0xA001, init 0xFFFF), low byte first as on the wire."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def with_crc(data: bytes) -> bytes:
    return data + crc16_modbus(data)


MakeSim = Callable[[dict[int, RegisterMap]], Awaitable[ModbusTemperatureSimulator]]
Sensors = list[ModbusTemperatureSensor]


@pytest.fixture
async def make_sim(tmp_path: Path) -> AsyncIterator[MakeSim]:
    sims: list[ModbusTemperatureSimulator] = []

    async def make(devices: dict[int, RegisterMap]) -> ModbusTemperatureSimulator:
        sim = ModbusTemperatureSimulator(devices, link_b=tmp_path / f"ttyTEMP{len(sims)}")
        sims.append(sim)
        await sim.start()
        return sim

    yield make
    for sim in sims:
        await sim.stop()


@pytest.fixture
async def sensors() -> AsyncIterator[Sensors]:
    made: list[ModbusTemperatureSensor] = []
    yield made
    for sensor in made:
        await sensor.close()


def sensor_for(
    made: Sensors,
    port: str,
    device_id: int,
    reg: RegisterMap,
    *,
    timeout: float = 0.3,
    retries: int = 1,
    name: str = "",
    baudrate: int = 9600,
) -> ModbusTemperatureSensor:
    sensor = ModbusTemperatureSensor(
        port,
        device_id=device_id,
        register=reg,
        timeout=timeout,
        retries=retries,
        name=name,
        baudrate=baudrate,
    )
    made.append(sensor)
    return sensor


# -- frame and decoding ------------------------------------------------------------------------


def test_crc16_modbus_of_the_worked_example() -> None:
    assert crc16_modbus(WORKED_EXAMPLE[:-2]) == bytes.fromhex("84 0A")
    assert with_crc(bytes.fromhex("01 03 00 00 00 01")) == WORKED_EXAMPLE


def test_decode_int16_signed_tenths() -> None:
    assert decode_registers([0xFF4C], FROZEN) == -18.0
    assert decode_registers([35], CHILLED) == 3.5
    assert decode_raw([0xFF4C], FROZEN) == -180
    assert decode_registers([0x8000], FROZEN) == -3276.8


def test_decode_uint16_int32_scale_offset() -> None:
    assert decode_registers([0xFF4C], RegisterMap(0, data_type="uint16", scale=1)) == 65356
    kelvin_hundredths = RegisterMap(0, data_type="uint16", scale=0.01, offset=-273.15)
    assert decode_registers([25515], kelvin_hundredths) == -18.0
    int32_big = RegisterMap(0, data_type="int32", scale=0.001)
    assert decode_registers([0xFFFF, 0xB9B0], int32_big) == -18.0
    int32_little = RegisterMap(0, data_type="int32", scale=0.001, word_order="little")
    assert decode_registers([0xB9B0, 0xFFFF], int32_little) == -18.0


def test_decode_float32_both_word_orders() -> None:
    # -18.25 as IEEE 754 single: 0xC1920000
    big = RegisterMap(0, data_type="float32", scale=1)
    little = RegisterMap(0, data_type="float32", scale=1, word_order="little")
    assert decode_registers([0xC192, 0x0000], big) == -18.25
    assert decode_registers([0x0000, 0xC192], little) == -18.25
    assert decode_registers([0x4060, 0x0000], big) == 3.5


def test_decode_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="needs 1 register"):
        decode_registers([1, 2], FROZEN)
    with pytest.raises(ValueError, match="16-bit"):
        decode_registers([0x10000], FROZEN)
    with pytest.raises(ValueError, match="nan"):
        decode_registers([0x7FC0, 0x0000], RegisterMap(0, data_type="float32", scale=1))


@pytest.mark.parametrize(
    "reg",
    [
        RegisterMap(7),
        RegisterMap(7, data_type="uint16", scale=0.5, offset=-40),
        RegisterMap(7, data_type="int32", scale=0.01, word_order="little"),
        RegisterMap(7, data_type="float32", scale=1, word_order="little"),
        RegisterMap(7, data_type="float32", scale=1),
    ],
)
def test_encode_decode_round_trip(reg: RegisterMap) -> None:
    for celsius in (-18.0, -25.5, 3.5, 4.0):
        registers = encode_temperature(celsius, reg)
        assert len(registers) == reg.register_count
        assert decode_registers(registers, reg) == pytest.approx(celsius)


def test_register_map_is_validated() -> None:
    with pytest.raises(ValueError, match="address"):
        RegisterMap(0xFFFF, data_type="int32")
    with pytest.raises(ValueError, match="scale"):
        RegisterMap(0, scale=0)
    with pytest.raises(ValueError, match="data_type"):
        RegisterMap(0, data_type="int8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not fit"):
        encode_temperature(5000.0, RegisterMap(0))


# -- the wire ----------------------------------------------------------------------------------


async def test_request_bytes_match_worked_example_and_reply_is_decoded(tmp_path: Path) -> None:
    """The driver against a bare pty: capture its request, answer by hand."""
    received = bytearray()
    request_seen: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    device: PseudoSerialPort

    def on_data(data: bytes) -> None:
        received.extend(data)
        if len(received) >= len(WORKED_EXAMPLE) and not request_seen.done():
            request_seen.set_result(bytes(received))
            device.write(with_crc(bytes.fromhex("01 03 02 FF 4C")))

    device = PseudoSerialPort(on_data, link=tmp_path / "ttyRAW")
    device.open()
    sensor = ModbusTemperatureSensor(device.path, device_id=1, register=FROZEN, retries=0)
    try:
        reading = await sensor.read()
        assert await asyncio.wait_for(request_seen, 1) == WORKED_EXAMPLE
        assert reading.celsius == -18.0
        assert reading.raw == -180
    finally:
        await sensor.close()
        device.close()


async def test_server_receives_the_worked_example(make_sim: MakeSim, sensors: Sensors) -> None:
    sim = await make_sim({1: FROZEN})
    sim.set_temperature(1, -18.0)
    sensor = sensor_for(sensors, sim.port, 1, FROZEN)
    assert (await sensor.read()).celsius == -18.0
    assert sim.received_frames[-1] == WORKED_EXAMPLE


# -- readings through pymodbus's server ----------------------------------------------------------


async def test_frozen_and_chilled_int16(make_sim: MakeSim, sensors: Sensors) -> None:
    sim = await make_sim({1: FROZEN})
    sensor = sensor_for(sensors, sim.port, 1, FROZEN)
    assert await sensor.connect() is True
    assert not sensor.available  # open, but not read yet
    sim.set_temperature(1, -18.0)
    before = time.monotonic()
    reading = await sensor.read()
    assert (reading.celsius, reading.raw) == (-18.0, -180)
    assert before <= reading.at <= time.monotonic()
    assert sensor.available
    sim.set_temperature(1, 3.5)
    assert (await sensor.read()).celsius == 3.5
    assert sim.registers(1) == [35]


async def test_input_register(make_sim: MakeSim, sensors: Sensors) -> None:
    reg = RegisterMap(address=3, table="input")
    sim = await make_sim({1: reg})
    sim.set_temperature(1, -21.4)
    assert (await sensor_for(sensors, sim.port, 1, reg).read()).celsius == -21.4
    # The same address in the holding table does not exist on this device.
    holding = RegisterMap(address=3)
    with pytest.raises(SensorUnavailable, match="ILLEGAL_ADDRESS"):
        await sensor_for(sensors, sim.port, 1, holding).read()


@pytest.mark.parametrize("word_order", ["big", "little"])
async def test_float32(
    make_sim: MakeSim, sensors: Sensors, word_order: Literal["big", "little"]
) -> None:
    reg = RegisterMap(10, data_type="float32", scale=1, word_order=word_order)
    sim = await make_sim({5: reg})
    sim.set_temperature(5, -18.25)
    reading = await sensor_for(sensors, sim.port, 5, reg).read()
    assert reading.celsius == -18.25
    assert reading.raw == -18.25
    expected = [0xC192, 0x0000] if word_order == "big" else [0x0000, 0xC192]
    assert sim.registers(5) == expected


async def test_two_sensors_on_one_bus(make_sim: MakeSim, sensors: Sensors) -> None:
    sim = await make_sim({1: FROZEN, 2: CHILLED})
    sim.set_temperature(1, -18.0)
    sim.set_temperature(2, 3.5)
    frozen = sensor_for(sensors, sim.port, 1, FROZEN, name="frozen")
    chilled = sensor_for(sensors, sim.port, 2, CHILLED, name="chilled")
    assert await frozen.connect() and await chilled.connect()
    results = await asyncio.gather(*(s.read() for s in (frozen, chilled, frozen, chilled)))
    assert [r.celsius for r in results] == [-18.0, 3.5, -18.0, 3.5]
    assert {frame[0] for frame in sim.received_frames} == {1, 2}
    # Closing one sensor leaves the shared line open for the other.
    await frozen.close()
    assert (await chilled.read()).celsius == 3.5


async def test_sensors_on_one_bus_must_agree_on_line_settings(
    make_sim: MakeSim, sensors: Sensors
) -> None:
    sim = await make_sim({1: FROZEN})
    assert await sensor_for(sensors, sim.port, 1, FROZEN).connect()
    other = sensor_for(sensors, sim.port, 2, FROZEN, baudrate=19200)
    with pytest.raises(ValueError, match="serial line settings"):
        await other.connect()


# -- failures ----------------------------------------------------------------------------------


async def test_missing_device_times_out_quickly(make_sim: MakeSim, sensors: Sensors) -> None:
    sim = await make_sim({1: FROZEN})
    sensor = sensor_for(sensors, sim.port, 9, FROZEN, timeout=0.2, retries=1)
    start = time.monotonic()
    with pytest.raises(SensorUnavailable, match="no response from device 9"):
        await sensor.read()
    elapsed = time.monotonic() - start
    assert 0.35 <= elapsed < 0.2 * 2 + 1
    assert len(sim.received_frames) == 2  # the request and one retry reached the line
    assert not sensor.available
    # The line itself is fine: a present device still answers.
    assert (await sensor_for(sensors, sim.port, 1, FROZEN).read()).celsius == 0.0


async def test_modbus_exception_for_address_outside_the_device(
    make_sim: MakeSim, sensors: Sensors
) -> None:
    sim = await make_sim({1: FROZEN})
    sensor = sensor_for(sensors, sim.port, 1, RegisterMap(address=500))
    with pytest.raises(SensorUnavailable, match=r"exception 0x02 ILLEGAL_ADDRESS") as info:
        await sensor.read()
    assert "holding register 500" in str(info.value)


async def test_undecodable_value(make_sim: MakeSim, sensors: Sensors) -> None:
    reg = RegisterMap(address=0, data_type="float32", scale=1)
    sim = await make_sim({1: reg})
    sim.set_temperature(1, math.nan)  # what a broken probe reports
    with pytest.raises(SensorUnavailable, match="cannot decode"):
        await sensor_for(sensors, sim.port, 1, reg).read()


async def test_absent_port(tmp_path: Path, sensors: Sensors) -> None:
    sensor = sensor_for(sensors, str(tmp_path / "ttyUSB9"), 1, FROZEN)
    assert await sensor.connect() is False
    start = time.monotonic()
    with pytest.raises(SensorUnavailable, match="absent"):
        await sensor.read()
    assert time.monotonic() - start < 1
    assert not sensor.available


async def test_unplug_then_replug(make_sim: MakeSim, sensors: Sensors) -> None:
    sim = await make_sim({1: FROZEN})
    sim.set_temperature(1, -18.0)
    timeout, retries = 0.3, 2
    sensor = sensor_for(sensors, sim.port, 1, FROZEN, timeout=timeout, retries=retries)
    assert (await sensor.read()).celsius == -18.0

    sim.unplug()
    assert not Path(sim.port).exists()
    start = time.monotonic()
    with pytest.raises(SensorUnavailable, match=r"lost|absent"):
        await sensor.read()
    assert time.monotonic() - start < timeout * (retries + 1) + 1
    assert not sensor.available
    with pytest.raises(SensorUnavailable, match="absent"):
        await sensor.read()

    sim.replug()
    sim.set_temperature(1, -19.5)
    assert (await sensor.read()).celsius == -19.5
    assert sensor.available


async def test_unplug_during_a_request_fails_at_once(tmp_path: Path) -> None:
    """A device that never answers is pulled while the driver waits: no waiting out the timeout."""
    request_seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_data(_data: bytes) -> None:
        if not request_seen.done():
            request_seen.set_result(None)

    device = PseudoSerialPort(on_data, link=tmp_path / "ttyMUTE")
    device.open()
    sensor = ModbusTemperatureSensor(device.path, device_id=1, register=FROZEN, timeout=5)
    try:
        reading = asyncio.ensure_future(sensor.read())
        await asyncio.wait_for(request_seen, 1)
        start = time.monotonic()
        device.unplug()
        with pytest.raises(SensorUnavailable, match="was lost"):
            await asyncio.wait_for(reading, 1)
        assert time.monotonic() - start < 0.5
    finally:
        await sensor.close()
        device.close()
