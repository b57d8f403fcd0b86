"""Impinj R2000 / IND903 serial readers ("0xA0 frames", PROTOCOLS.md section 1a).

The simulator lives in ``drivers.rfid.r2000.simulator`` and is not imported here, so the runtime
never loads pty code.
"""

from .driver import DEFAULT_BAUDRATE, R2000Reader
from .protocol import (
    BROADCAST,
    R2000Frame,
    R2000Parser,
    RoundEndFrame,
    checksum,
    decode_round_end,
    encode,
    encode_realtime_inventory,
    encode_round_end,
    encode_tag,
    is_inventory_end,
)

__all__ = [
    "BROADCAST",
    "DEFAULT_BAUDRATE",
    "R2000Frame",
    "R2000Parser",
    "R2000Reader",
    "RoundEndFrame",
    "checksum",
    "decode_round_end",
    "encode",
    "encode_realtime_inventory",
    "encode_round_end",
    "encode_tag",
    "is_inventory_end",
]
