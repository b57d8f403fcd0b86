"""What browser tests share: where Chromium is, screen sizes, the served site, axe-core."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.api.feed import Watcher
from edge.app import EdgeApp
from edge.demo.site import KIOSK_TOKEN, OPERATOR_TOKEN, SimulatedSite
from edge.outbox.store import Envelope

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("EDGE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# The ``screenshot`` fixture: ``await screenshot(page, "door-open")``.
Screenshot = Callable[[Any, str], Awaitable[Path]]
# Chromium on a closed network: no background lookups (they fail, many at a time), no sandbox
# (the tests may run as root), no GPU (there is no screen).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

PORTRAIT = {"width": 1080, "height": 1920}
LANDSCAPE = {"width": 1920, "height": 1080}
CONSOLE = {"width": 1440, "height": 1000}


@dataclass
class ServedSite:
    site: SimulatedSite
    app: EdgeApp
    base_url: str

    @property
    def kiosk_url(self) -> str:
        """What the kiosk's browser is started with: the token rides in the fragment, which
        the browser never sends to a server (so it is in no access log)."""
        return f"{self.base_url}/kiosk/#token={KIOSK_TOKEN}"

    @property
    def console_url(self) -> str:
        return f"{self.base_url}/console/"


async def accessibility_violations(page: Any, *, exclude: list[str] | None = None) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    lines = []
    for violation in results.response["violations"]:
        if violation["impact"] not in ("serious", "critical"):
            continue
        if exclude and violation["id"] in exclude:
            continue
        targets = ", ".join(str(n["target"]) for n in violation["nodes"][:3])
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return lines


async def next_event(
    watcher: Watcher, type_: str, where: Callable[[Envelope], bool] = lambda _e: True
) -> Envelope:
    """The next committed event of ``type_`` that matches, from the controller's own feed."""
    async with asyncio.timeout(30):
        while True:
            event = await watcher.next()
            if event.type == type_ and where(event):
                return event


__all__ = ["KIOSK_TOKEN", "OPERATOR_TOKEN"]
