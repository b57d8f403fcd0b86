"""What can go wrong in a locker flow, each with a stable code the kiosk and API show."""

from __future__ import annotations


class LockerError(Exception):
    code = "locker_error"
    status = 400

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotAuthenticated(LockerError):
    code = "not_authenticated"
    status = 401


class NoFreeCompartment(LockerError):
    code = "no_free_compartment"
    status = 409


class AlreadyDeposited(LockerError):
    code = "already_deposited"
    status = 409


class SizeRequired(LockerError):
    code = "size_required"
    status = 422


class UnknownSize(LockerError):
    code = "unknown_size"
    status = 422


class OpenNotDetected(LockerError):
    code = "open_not_detected"
    status = 504


class BoardUnreachable(LockerError):
    code = "board_unreachable"
    status = 503


class WrongCode(LockerError):
    code = "wrong_code"
    status = 403


class CodeInputLocked(LockerError):
    code = "code_input_locked"
    status = 429


class ParcelExpired(LockerError):
    code = "parcel_expired"
    status = 410


class NotFound(LockerError):
    code = "not_found"
    status = 404


class InvalidState(LockerError):
    code = "invalid_state"
    status = 409


class ShuttingDown(LockerError):
    code = "shutting_down"
    status = 503
