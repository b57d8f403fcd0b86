"""Register maps of Modbus temperature sensors and the conversion between registers and degrees.

Register layouts are vendor specific, so they are configuration (:class:`RegisterMap`), not code.
The driver decodes with :func:`decode_registers`; the simulator encodes with
:func:`encode_temperature`, so both sides share one definition of every format.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal

Table = Literal["holding", "input"]
DataType = Literal["int16", "uint16", "int32", "float32"]
WordOrder = Literal["big", "little"]

# struct format (big endian, whole value) and number of 16-bit registers per data type.
_FORMATS: dict[str, tuple[str, int]] = {
    "int16": (">h", 1),
    "uint16": (">H", 1),
    "int32": (">i", 2),
    "float32": (">f", 2),
}
# Decimal places kept in a reading: removes binary noise such as 35 * 0.1 = 3.5000000000000004
# without losing anything a temperature sensor can resolve.
_DECIMALS = 6


@dataclass(frozen=True)
class RegisterMap:
    """Where and how one sensor publishes its temperature.

    ``celsius = raw * scale + offset``; the default is the common "signed tenths of a degree in
    holding register N" convention.
    """

    address: int  # register address, 0-based as on the wire
    table: Table = "holding"  # "holding": function 0x03, "input": function 0x04
    data_type: DataType = "int16"
    scale: float = 0.1
    offset: float = 0.0
    word_order: WordOrder = "big"  # for the 32-bit types: which register holds the high word

    def __post_init__(self) -> None:
        if self.table not in ("holding", "input"):
            raise ValueError(f"table must be 'holding' or 'input', not {self.table!r}")
        if self.data_type not in _FORMATS:
            raise ValueError(f"data_type must be one of {sorted(_FORMATS)}, not {self.data_type!r}")
        if self.word_order not in ("big", "little"):
            raise ValueError(f"word_order must be 'big' or 'little', not {self.word_order!r}")
        if not 0 <= self.address <= 0xFFFF - (self.register_count - 1):
            raise ValueError(f"address {self.address} out of range for {self.data_type}")
        if not math.isfinite(self.scale) or self.scale == 0:
            raise ValueError(f"scale must be finite and non-zero, not {self.scale!r}")
        if not math.isfinite(self.offset):
            raise ValueError(f"offset must be finite, not {self.offset!r}")

    @property
    def register_count(self) -> int:
        """How many consecutive registers one value occupies."""
        return _FORMATS[self.data_type][1]

    @property
    def function_code(self) -> int:
        return 0x03 if self.table == "holding" else 0x04


def decode_raw(registers: list[int], register_map: RegisterMap) -> int | float:
    """The raw value (before scale and offset) held in ``registers``.

    Raises ``ValueError`` on a wrong register count, a register outside 0..0xFFFF or a float that
    is not finite (NaN is what many sensors report for a broken probe).
    """
    fmt, count = _FORMATS[register_map.data_type]
    if len(registers) != count:
        raise ValueError(
            f"{register_map.data_type} needs {count} register(s), got {len(registers)}"
        )
    for value in registers:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"register value {value!r} is not a 16-bit word")
    words = list(registers)
    if register_map.word_order == "little":
        words.reverse()
    raw: int | float = struct.unpack(fmt, b"".join(w.to_bytes(2, "big") for w in words))[0]
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueError(f"{register_map.data_type} value is {raw}")
    return raw


def decode_registers(registers: list[int], register_map: RegisterMap) -> float:
    """Degrees Celsius from the registers read at ``register_map.address``."""
    raw = decode_raw(registers, register_map)
    return round(raw * register_map.scale + register_map.offset, _DECIMALS)


def encode_temperature(celsius: float, register_map: RegisterMap) -> list[int]:
    """The registers a device following ``register_map`` holds for ``celsius``.

    Integer types round to the nearest step of ``scale``; ``ValueError`` if the value does not
    fit. Non-finite values are only representable as float32 (for simulating a broken probe).
    """
    fmt, _count = _FORMATS[register_map.data_type]
    raw_value = (celsius - register_map.offset) / register_map.scale
    try:
        if register_map.data_type == "float32":
            packed = struct.pack(fmt, raw_value)
        else:
            if not math.isfinite(raw_value):
                raise ValueError(f"{celsius} is not representable as {register_map.data_type}")
            packed = struct.pack(fmt, round(raw_value))
    except (struct.error, OverflowError) as exc:
        raise ValueError(
            f"{celsius} degC does not fit {register_map.data_type} with scale "
            f"{register_map.scale} and offset {register_map.offset}"
        ) from exc
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
    if register_map.word_order == "little":
        words.reverse()
    return words
