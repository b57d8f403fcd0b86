"""What any electronic shelf label backend offers, and how a caller knows an image reached a label.

A backend is the server that owns the labels' radio: the OpenEPaperLink access point today
(``drivers.esl.openepaperlink``), a commercial ESL server (SES-imagotag VUSION, SoluM AIMS,
Hanshow) later. ``LabelBackend`` is a structural ``Protocol``: a backend implements the methods,
it does not inherit anything.

Confirming delivery
-------------------
Labels sleep and check in on their own schedule (OpenEPaperLink: every 40 s up to the AP's
"maxsleep" minutes), so an upload is only a request. The backend later reports, per label, what
the label has confirmed. ``upload`` returns an ``Upload`` that records everything needed to judge
a later ``TagState`` of the same label:

* ``expected_hash``: the hash the label will report once it shows this image, for backends that
  can know it up front. OpenEPaperLink cannot (the AP hashes its own conversion of the JPEG), so
  it leaves this ``None``.
* ``baseline``: the label's state just before the upload. Without an expected hash, delivery is
  "a transfer completed after this upload and nothing is left queued" (``update_count`` grew and
  ``pending`` is false), provided the backend has already prepared the upload (``preparing``).

``delivery_status(upload, state)`` turns that into one of four answers, ``is_delivered`` into a
bool. ``state`` must have been read after ``upload`` returned. Only the newest upload per label
is meaningful: a later upload to the same label supersedes an earlier one, which may be skipped
or delivered and overwritten, so a delivery queue keeps one outstanding upload per label.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class EslError(Exception):
    """Base of every shelf label backend error. ``retryable``: the same call may succeed later."""

    retryable: bool = False


class InvalidLabelId(EslError, ValueError):
    """The label id is malformed; rejected before any request."""


class AccessPointBusy(EslError):
    """The backend refuses work for now (OpenEPaperLink: HTTP 409 while the AP is not running)."""

    retryable = True


class AccessPointUnreachable(EslError):
    """No answer: connection refused or reset, or a timeout. A timed-out upload may still have
    been applied; uploading the same image again is harmless (see ``DeliveryStatus.NOT_QUEUED``)."""

    retryable = True


class UnknownLabel(EslError):
    """The backend does not know this label."""


class BadResponse(EslError):
    """An answer the driver does not understand, or an error status it has no better name for."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        # A server error may pass; a malformed answer to a valid request will not.
        self.retryable = status is not None and status >= 500


@dataclass(frozen=True)
class TagState:
    """One label as the backend last heard from it. ``None`` = the backend does not say."""

    label_id: str
    hash: str | None  # id of the content the label confirmed; None = none known
    pending: bool  # transfers are queued for the label and not yet confirmed
    last_seen: datetime | None  # last check-in (UTC); None = never seen
    battery_mv: int | None
    rssi: int | None
    hw_type: int | None
    pending_count: int = 0
    next_checkin: datetime | None = None  # when the backend expects the next check-in
    update_count: int | None = None  # transfers the label has confirmed, ever
    updated_at: datetime | None = None  # time of the last confirmed transfer
    # The backend holds content for the label that it has not yet turned into a transfer
    # (OpenEPaperLink: ``nextupdate == 0``). None = the backend does not say.
    preparing: bool | None = None
    alias: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Upload:
    """An accepted upload: what ``delivery_status`` needs to judge later states of the label."""

    label_id: str
    expected_hash: str | None  # what the label will report once it shows this image, if known
    baseline: TagState | None  # the label just before the upload
    accepted_at: datetime  # local clock, UTC


class DeliveryStatus(StrEnum):
    PREPARING = "preparing"  # accepted, not yet turned into a transfer for the label
    WAITING_FOR_LABEL = "waiting_for_label"  # queued; the label has not fetched it yet
    DELIVERED = "delivered"  # the label confirmed the transfer and nothing is left queued
    # Nothing queued for the label: the backend found the image equal to what the label already
    # shows (it compares hashes), or failed to prepare it (bad JPEG, unknown label type, lost in
    # a reboot), or dropped the upload (an OpenEPaperLink AP that was not running answers 200
    # all the same on current firmware). The label shows what it showed before. A caller that
    # last confirmed this same content on this label (same ``hash``) may count it as delivered;
    # otherwise it uploads again (with backoff) or gives up.
    NOT_QUEUED = "not_queued"


def delivery_status(upload: Upload, state: TagState) -> DeliveryStatus:
    """Where ``upload`` stands, judged from ``state``, read after the upload returned."""
    if state.label_id != upload.label_id:
        raise ValueError(f"state of {state.label_id} cannot judge an upload to {upload.label_id}")
    if upload.expected_hash is not None:
        if state.pending:
            return DeliveryStatus.WAITING_FOR_LABEL
        if state.hash == upload.expected_hash:
            return DeliveryStatus.DELIVERED
        return DeliveryStatus.PREPARING
    if state.preparing is not False:
        return DeliveryStatus.PREPARING  # or unknowable: keep waiting until the caller gives up
    if state.pending:
        return DeliveryStatus.WAITING_FOR_LABEL
    if _transfer_completed_since(upload.baseline, state):
        return DeliveryStatus.DELIVERED
    return DeliveryStatus.NOT_QUEUED


def is_delivered(upload: Upload, state: TagState) -> bool:
    """True once the label has confirmed this upload (or a later one) and nothing is queued."""
    return delivery_status(upload, state) is DeliveryStatus.DELIVERED


def _transfer_completed_since(baseline: TagState | None, state: TagState) -> bool:
    if baseline is None:
        return False
    if baseline.update_count is not None and state.update_count is not None:
        return state.update_count > baseline.update_count
    # Firmware without a transfer counter: a new, known hash is the only sign.
    return state.hash is not None and state.hash != baseline.hash


class LabelBackend(Protocol):
    """A server that puts images on shelf labels. Label ids are backend specific."""

    name: str

    def normalize_label_id(self, label_id: str) -> str:
        """The id as the backend reports it (the keys of ``states``); ``InvalidLabelId`` if bad."""
        ...

    async def upload(
        self,
        label_id: str,
        image_jpeg: bytes,
        *,
        dither: bool = False,
        baseline: TagState | None = None,
    ) -> Upload:
        """Hand one image to the backend for one label. One request, no retries. ``baseline``:
        the label's state read just before (from ``states``), which the caller may have
        recorded first, so that a crash between recording and uploading loses nothing."""
        ...

    async def states(self, label_ids: Collection[str] | None = None) -> dict[str, TagState]:
        """Every label the backend knows, or the given ones (unknown ones are left out)."""
        ...

    async def command(self, label_id: str, cmd: str) -> None:
        """A label command: refresh, clear, reboot, scan, ledflash..."""
        ...

    async def close(self) -> None: ...
