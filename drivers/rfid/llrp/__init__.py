"""LLRP network readers (Impinj Speedway/R700, Zebra FX...): codec and driver.

There is no simulator here: the tests use the MIT-licensed ``llrpkit`` emulator as the peer,
and the runtime never imports it.
"""

from .codec import (
    AISpecEvent,
    Capabilities,
    LlrpDecodeError,
    LlrpStatus,
    Message,
    MessageDecoder,
    TagReport,
)
from .driver import ROSPEC_ID, LlrpReader, LlrpRejected

__all__ = [
    "ROSPEC_ID",
    "AISpecEvent",
    "Capabilities",
    "LlrpDecodeError",
    "LlrpReader",
    "LlrpRejected",
    "LlrpStatus",
    "Message",
    "MessageDecoder",
    "TagReport",
]
