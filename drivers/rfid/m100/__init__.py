"""MagicRF M100 / JRD-100 / YRM100 UHF modules (PROTOCOLS.md section 1c).

The simulator lives in ``drivers.rfid.m100.simulator`` and is not imported here, so the runtime
never loads pty code.
"""

from .driver import M100Reader
from .protocol import (
    DEFAULT_BAUDRATE,
    Frame,
    M100Parser,
    TagNotification,
    checksum,
    decode_frame,
    decode_tag,
    encode_error,
    encode_frame,
    encode_info,
    encode_multi_poll,
    encode_set_power,
    encode_set_region,
    encode_single_poll,
    encode_stop,
    encode_tag_notification,
    gen2_crc,
)

__all__ = [
    "DEFAULT_BAUDRATE",
    "Frame",
    "M100Parser",
    "M100Reader",
    "TagNotification",
    "checksum",
    "decode_frame",
    "decode_tag",
    "encode_error",
    "encode_frame",
    "encode_info",
    "encode_multi_poll",
    "encode_set_power",
    "encode_set_region",
    "encode_single_poll",
    "encode_stop",
    "encode_tag_notification",
    "gen2_crc",
]
