"""What can go wrong when a shopper or operator opens a cabinet, each with a stable code."""

from __future__ import annotations


class CabinetError(Exception):
    code = "cabinet_error"
    status = 400

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class UnknownCabinet(CabinetError):
    code = "unknown_cabinet"
    status = 404


class UnknownSession(CabinetError):
    code = "unknown_session"
    status = 404


class CabinetBusy(CabinetError):
    """Another session is open, or one is held for an operator's review."""

    code = "cabinet_busy"
    status = 409


class CabinetDisabled(CabinetError):
    code = "cabinet_disabled"
    status = 409


class InventoryNotReady(CabinetError):
    """The reader is down or has not yet read enough rounds: nothing could be charged fairly."""

    code = "inventory_not_ready"
    status = 503


class DoorUnavailable(CabinetError):
    code = "door_unavailable"
    status = 503


class NotHeld(CabinetError):
    code = "not_held"
    status = 409


class ShuttingDown(CabinetError):
    code = "shutting_down"
    status = 503
