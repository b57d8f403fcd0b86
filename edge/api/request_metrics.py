"""Request counts and times per route, for the operator's graphs (kiosk errors show up here)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from edge.metrics import Metrics

# Streams last as long as a screen is open: their duration says nothing about the API's speed.
UNTIMED = ("/api/v1/stream", "/api/v1/kiosk/stream")


def count_requests(api: FastAPI, metrics: Metrics) -> None:
    @api.middleware("http")
    async def measured(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_of(request)
        if route not in UNTIMED:
            metrics.observe_request(
                request.method, route, response.status_code, time.perf_counter() - started
            )
        return response


def _route_of(request: Request) -> str:
    """The route's template (``/api/v1/kiosk/operations/{operation_id}``), never the raw path:
    ids in label values would make a new time series per request. Routing has filled in the
    scope by now: each path parameter's value goes back to its ``{name}``."""
    scope = request.scope
    if "endpoint" not in scope and "route" not in scope:
        return "unmatched"
    path = request.url.path
    for name, value in scope.get("path_params", {}).items():
        text = str(value)
        if text and path.endswith(text):
            path = path[: len(path) - len(text)] + "{" + name + "}"
        elif text:
            path = path.replace(f"/{text}/", "/{" + name + "}/", 1)
    return path
