"""Chafon / UHFReader18 family UHF readers (PROTOCOLS.md section 1b).

The simulator lives in ``drivers.rfid.chafon.simulator`` and is not imported here, so the
runtime never loads pty code.
"""

from .driver import ChafonReader
from .protocol import (
    BROADCAST,
    DEFAULT_ADDRESS,
    DEFAULT_BAUDRATE,
    ChafonParser,
    Frame,
    ReaderInfo,
    crc16,
    decode_frame,
    decode_inventory_data,
    encode_inventory,
    encode_inventory_replies,
    encode_reader_info,
    encode_reply,
    encode_request,
    encode_set_power,
)

__all__ = [
    "BROADCAST",
    "DEFAULT_ADDRESS",
    "DEFAULT_BAUDRATE",
    "ChafonParser",
    "ChafonReader",
    "Frame",
    "ReaderInfo",
    "crc16",
    "decode_frame",
    "decode_inventory_data",
    "encode_inventory",
    "encode_inventory_replies",
    "encode_reader_info",
    "encode_reply",
    "encode_request",
    "encode_set_power",
]
