"""What every byte-stream frame parser starts from, whatever the device."""

from __future__ import annotations

from collections.abc import Callable


class StreamBuffer:
    """The byte buffer a frame parser works on, with its fault callbacks.

    ``on_garbage`` hears bytes that cannot start a frame, ``on_corrupt`` a frame whose checksum
    fails; a partial frame stays buffered until the rest arrives or ``clear()`` drops it.
    """

    def __init__(
        self,
        on_corrupt: Callable[[bytes], None] | None = None,
        on_garbage: Callable[[bytes], None] | None = None,
    ) -> None:
        self._buf = bytearray()
        self._on_corrupt = on_corrupt
        self._on_garbage = on_garbage

    @property
    def pending(self) -> bytes:
        return bytes(self._buf)

    def clear(self) -> bytes:
        """Drop buffered bytes (a partial frame that will never complete); returns them."""
        dropped = bytes(self._buf)
        self._buf.clear()
        return dropped
