"""Camera errors: each message is one sentence naming the camera, what went wrong and what to do."""

from __future__ import annotations


class CameraError(Exception):
    """Base of every camera error."""


class CameraOpenError(CameraError):
    """The device, stream or file could not be opened (missing, busy, unreachable, unreadable)."""


class CameraStreamError(CameraError):
    """An opened source stopped delivering: read failure, end of stream or file, stall."""


class CameraTimeout(CameraError):
    """No (new) frame, or no wanted state, within the time a caller allowed."""
