"""The screens: kiosk pages (``/kiosk/``) and the operator console (``/console/``).

Plain files with no build step, served as they are. Every script and style is a file of its
own, so a strict Content-Security-Policy holds: nothing inline, nothing from elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).resolve().parent.parent / "web"
PAGES = ("/kiosk", "/console")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A new release's pages are used at once: the browser revalidates every file.
    "Cache-Control": "no-cache",
}


def mount_pages(api: FastAPI) -> None:
    api.mount("/kiosk", StaticFiles(directory=WEB / "kiosk", html=True), name="kiosk")
    api.mount("/console", StaticFiles(directory=WEB / "console", html=True), name="console")

    @api.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    @api.middleware("http")
    async def page_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith(PAGES):
            response.headers.update(SECURITY_HEADERS)
        return response
