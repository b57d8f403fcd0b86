"""What each kiosk flow does with a scanned code.

Signed codes (a courier's credential, a resident's pickup QR, a member's QR) are verified
offline with the upstream keys before anything is believed; a parcel label's tracking code is
read from its GS1 element string (the SSCC) or its plain Code 128/39 text. Every refusal names
a stable code and a sentence for the screen, and acts on nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.cabinet.errors import CabinetError
from edge.cabinet.service import CabinetService, SessionKind
from edge.clock import Clock
from edge.lockers.errors import LockerError
from edge.lockers.service import LockerService
from edge.scans.flows import ActiveFlow, Flow, Refused, ScanRouter
from edge.scans.gs1 import ParcelCodeError, parcel_code_of, parse_gs1
from edge.scans.hub import Scan
from edge.scans.payloads import PayloadError, PayloadType, VerifiedPayload, verify_payload


class FlowHandlers:
    def __init__(
        self,
        lockers: LockerService,
        cabinets: CabinetService,
        keys: Mapping[str, Ed25519PublicKey],
        site_id: str,
        clock: Clock,
        clock_skew_s: float,
    ) -> None:
        self.lockers = lockers
        self.cabinets = cabinets
        self.keys = keys
        self.site_id = site_id
        self.clock = clock
        self.clock_skew_s = clock_skew_s

    def register(self, router: ScanRouter) -> None:
        router.handle(Flow.COURIER_SIGN_IN, self.courier_sign_in)
        router.handle(Flow.PARCEL_CODE, self.parcel_code)
        router.handle(Flow.PICKUP, self.pickup)
        router.handle(Flow.CABINET_MEMBER, self.cabinet_member)

    def _verified(self, scan: Scan, expected: PayloadType) -> VerifiedPayload:
        try:
            return verify_payload(
                scan.text,
                self.keys,
                self.site_id,
                self.clock.now(),
                self.clock_skew_s,
                expected_type=expected,
            )
        except PayloadError as exc:
            message = {
                "not_ours": "This code is not one this kiosk accepts here.",
                "expired": "This code has expired: open the app for a new one.",
            }.get(exc.code, f"This code cannot be accepted ({exc.message}).")
            raise Refused(exc.code, message) from exc

    async def courier_sign_in(self, scan: Scan, _flow: ActiveFlow) -> dict[str, Any]:
        payload = self._verified(scan, "courier")
        assert payload.courier_id is not None
        try:
            session = await self.lockers.courier_login_signed(scan.kiosk, payload.courier_id)
        except LockerError as exc:
            raise Refused(exc.code, exc.message) from exc
        return {
            "token": session.token,
            "courier_id": session.courier_id,
            "courier_name": session.courier_name,
            "expires_in_s": self.lockers.rules.courier_session_s,
        }

    async def parcel_code(self, scan: Scan, flow: ActiveFlow) -> dict[str, Any]:
        try:
            self.lockers.courier_session(flow.courier_token or "")
        except LockerError as exc:
            raise Refused(exc.code, exc.message) from exc
        try:
            code = parcel_code_of(scan.text, scan.symbology)
            gs1 = parse_gs1(scan.text)
        except ParcelCodeError as exc:
            raise Refused("unreadable_label", f"This label cannot be read: {exc}") from exc
        result: dict[str, Any] = {"parcel_code": code}
        if gs1 is not None:
            result["gs1"] = {
                "sscc": gs1.sscc,
                "gtin": gs1.gtin,
                "expiry": gs1.expiry.isoformat() if gs1.expiry else None,
                "best_before": gs1.best_before.isoformat() if gs1.best_before else None,
                "batch": gs1.batch,
            }
        return result

    async def pickup(self, scan: Scan, _flow: ActiveFlow) -> dict[str, Any]:
        payload = self._verified(scan, "pickup")
        assert payload.parcel_id is not None
        try:
            door = await self.lockers.start_pickup_signed(scan.kiosk, payload.parcel_id)
        except LockerError as exc:
            raise Refused(exc.code, exc.message) from exc
        return {
            "operation_id": door.operation_id,
            "compartment": door.compartment_id,
            "kind": door.kind,
        }

    async def cabinet_member(self, scan: Scan, flow: ActiveFlow) -> dict[str, Any]:
        payload = self._verified(scan, "member")
        assert payload.member_id is not None and flow.cabinet is not None
        try:
            view = await self.cabinets.start_session(
                flow.cabinet,
                kind=SessionKind.PURCHASE,
                actor=f"terminal:{scan.kiosk}",
                member_id=payload.member_id,
                member_source="qr",
            )
        except CabinetError as exc:
            raise Refused(exc.code, exc.message) from exc
        return {"session_id": view.id, "cabinet": view.cabinet_id, "member_id": view.member_id}
