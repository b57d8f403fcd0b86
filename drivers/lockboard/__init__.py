"""RS-485 locker lock boards: family 2a ("485 lock control board") and 2b (Kerong KR-CU16).

``LockBus`` owns one serial port shared by several boards of one family. The simulator lives in
``drivers.lockboard.simulator`` and is not imported here, so the runtime never loads pty code.
"""

from .bus import LockBus
from .common import (
    BoardFamily,
    BoardTimeout,
    BoardUnavailable,
    BusMetrics,
    LockBoardError,
    LockStatus,
)

__all__ = [
    "BoardFamily",
    "BoardTimeout",
    "BoardUnavailable",
    "BusMetrics",
    "LockBoardError",
    "LockBus",
    "LockStatus",
]
