"""Why a command was not applied: the stable codes of ``command.result`` errors."""

from __future__ import annotations

# Verification (edge.commands.verify): no receipt is written, a forged message burns no id.
TOO_LARGE = "too_large"
MALFORMED = "malformed"
INVALID_ENVELOPE = "invalid_envelope"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
LIFETIME_TOO_LONG = "lifetime_too_long"
WRONG_SITE = "wrong_site"
# Dispatch (edge.commands.dispatcher), for verified commands.
UNKNOWN_TYPE = "unknown_type"
REPLAYED = "replayed"
INVALID_DATA = "invalid_data"
# Failures while applying; handlers raise CommandFailed with codes of their own too.
APPLY_FAILED = "apply_failed"
INTERRUPTED = "interrupted"

REJECTION_CODES = frozenset(
    {
        TOO_LARGE,
        MALFORMED,
        INVALID_ENVELOPE,
        UNKNOWN_KEY,
        BAD_SIGNATURE,
        EXPIRED,
        NOT_YET_VALID,
        LIFETIME_TOO_LONG,
        WRONG_SITE,
        UNKNOWN_TYPE,
        REPLAYED,
        INVALID_DATA,
    }
)


class CommandRejected(Exception):
    """The command is not applied; ``command_id`` and ``type`` when the envelope showed them."""

    def __init__(
        self,
        code: str,
        message: str,
        command_id: str | None = None,
        type: str | None = None,  # the envelope's field name
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.command_id = command_id
        self.type = type


class CommandFailed(Exception):
    """Raised by a handler: the command was valid but could not be applied here and now."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
