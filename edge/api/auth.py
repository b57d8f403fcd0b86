"""Who is calling: a kiosk (by its token), a courier signed in at a kiosk, or an operator."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from edge.lockers.service import CourierSession


def _app(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.edge


def kiosk_terminal(request: Request, x_kiosk_token: Annotated[str | None, Header()] = None) -> str:
    """The kiosk's id; kiosk endpoints accept only kiosk actions."""
    if x_kiosk_token:
        for kiosk in _app(request).config.kiosks:
            if hmac.compare_digest(kiosk.token.get_secret_value(), x_kiosk_token):
                return str(kiosk.id)
    raise HTTPException(
        401, detail={"code": "not_a_kiosk", "message": "A valid X-Kiosk-Token header is required."}
    )


Terminal = Annotated[str, Depends(kiosk_terminal)]


def courier_session(
    request: Request,
    terminal: Terminal,
    x_courier_session: Annotated[str | None, Header()] = None,
) -> CourierSession:
    session = _app(request).lockers.courier_session(x_courier_session or "")
    if session.terminal != terminal:
        raise HTTPException(
            401, detail={"code": "not_authenticated", "message": "Sign in at this kiosk."}
        )
    result: CourierSession = session
    return result


Courier = Annotated[CourierSession, Depends(courier_session)]


def operator(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    token = _app(request).config.http.operator_token
    if token is None:
        raise HTTPException(
            503,
            detail={
                "code": "operator_api_disabled",
                "message": "Set http.operator_token to use this.",
            },
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, token.get_secret_value()):
        raise HTTPException(
            401,
            detail={
                "code": "not_authenticated",
                "message": "A valid operator bearer token is required.",
            },
            headers={"WWW-Authenticate": "Bearer"},
        )
    return "operator"


Operator = Annotated[str, Depends(operator)]
