"""A door that does not open: the resident is told so at the kiosk, in a sentence, with what
to do next."""

# The kiosk speaks Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.web.browser import PORTRAIT, Screenshot, ServedSite
from tests.web.kiosk_support import deposit_by_api, open_kiosk


async def test_a_jammed_door_is_explained_at_the_kiosk(
    served_site: ServedSite, browser: Any, screenshot: Screenshot
) -> None:
    compartment, code = await deposit_by_api(served_site, "JAMMED-1")
    simulator, board, lock = served_site.site.simulator_for(compartment)
    simulator.set_stuck(board, lock, True)  # the lock clicks, the door stays shut

    kiosk = await open_kiosk(browser, served_site, PORTRAIT)
    page = kiosk.page
    await page.get_by_role("button", name="取件").click()
    await kiosk.type_on("取件码", code)
    await page.get_by_role("button", name="开门取件").click()
    await expect(page.get_by_text("柜门没有打开：请再试一次，或拨打客服电话。")).to_be_visible(
        timeout=20_000
    )
    await screenshot(page, "door-did-not-open")
    assert not simulator.is_open(board, lock)
    assert kiosk.errors == []
