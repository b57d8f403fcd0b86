"""Which kiosk flow a scan belongs to, and what it does there.

A kiosk screen says which step it is at (``PUT /api/v1/kiosk/scan-flow``): a courier signing
in, a courier scanning a parcel's label during a deposit, a resident at the pickup screen, a
shopper at a cabinet. The next code scanned at that kiosk, by any of its scanners, is handed to
that flow, once; the outcome (accepted with its result, or refused with a clear reason) is
recorded with the scan for the screen to show. A scan with no flow waiting is logged and
ignored: nothing is ever acted on that nobody asked for.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from edge.clock import Clock
from edge.scans.hub import Outcome, Scan, ScanHub

log = logging.getLogger(__name__)

# A flow a screen set and then forgot (the screen crashed, the person walked away) ends.
FLOW_TTL_S = 180.0


class Flow(enum.StrEnum):
    COURIER_SIGN_IN = "courier_sign_in"
    PARCEL_CODE = "parcel_code"
    PICKUP = "pickup"
    CABINET_MEMBER = "cabinet_member"


@dataclass(frozen=True)
class ActiveFlow:
    flow: Flow
    since: float  # clock.monotonic()
    cabinet: str | None = None
    courier_token: str | None = None


class Refused(Exception):
    """A handler's refusal: ``code`` is stable for the kiosk, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[[Scan, ActiveFlow], Awaitable[dict[str, Any]]]


class ScanRouter:
    def __init__(self, hub: ScanHub, clock: Clock) -> None:
        self.hub = hub
        self.clock = clock
        self._flows: dict[str, ActiveFlow] = {}
        self._handlers: dict[Flow, Handler] = {}

    def handle(self, flow: Flow, handler: Handler) -> None:
        self._handlers[flow] = handler

    def set_flow(
        self,
        kiosk: str,
        flow: Flow,
        *,
        cabinet: str | None = None,
        courier_token: str | None = None,
    ) -> ActiveFlow:
        active = ActiveFlow(flow, self.clock.monotonic(), cabinet, courier_token)
        self._flows[kiosk] = active
        return active

    def clear_flow(self, kiosk: str) -> None:
        self._flows.pop(kiosk, None)

    def flow_of(self, kiosk: str) -> ActiveFlow | None:
        active = self._flows.get(kiosk)
        if active is not None and self.clock.monotonic() - active.since > FLOW_TTL_S:
            self._flows.pop(kiosk, None)
            return None
        return active

    async def route(self, scan: Scan) -> Outcome:
        """Hand ``scan`` to its kiosk's flow; the flow is used up by an accepted code."""
        active = self.flow_of(scan.kiosk)
        handler = self._handlers.get(active.flow) if active is not None else None
        if active is None or handler is None:
            outcome = Outcome(None, "ignored", "no_flow", "Nothing is waiting for a scan here.")
            log.info(
                "scan ignored: no flow waiting",
                extra={"kiosk": scan.kiosk, "device": scan.device},
            )
        else:
            try:
                result = await handler(scan, active)
            except Refused as exc:
                outcome = Outcome(active.flow.value, "refused", exc.code, exc.message)
                log.warning(
                    "scan refused",
                    extra={"kiosk": scan.kiosk, "flow": active.flow.value, "code": exc.code},
                )
            else:
                outcome = Outcome(active.flow.value, "accepted", result=result)
                if self._flows.get(scan.kiosk) is active:
                    self._flows.pop(scan.kiosk, None)  # one code per flow step
        self.hub.record_outcome(scan, outcome)
        return outcome
