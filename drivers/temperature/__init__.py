"""Temperature sensors of chilled and frozen locker compartments, over Modbus RTU (pymodbus)."""

from .registers import RegisterMap, decode_raw, decode_registers, encode_temperature
from .sensor import ModbusTemperatureSensor, SensorUnavailable, TemperatureReading

__all__ = [
    "ModbusTemperatureSensor",
    "RegisterMap",
    "SensorUnavailable",
    "TemperatureReading",
    "decode_raw",
    "decode_registers",
    "encode_temperature",
]
