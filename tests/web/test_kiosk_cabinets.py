"""The cabinet list follows the cabinet: one in use shows why it is not available, and becomes
choosable by itself when it is free again, without the shopper leaving the screen."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import expect

from tests.web.browser import OPERATOR_TOKEN, PORTRAIT, ServedSite
from tests.web.kiosk_support import open_kiosk

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def test_a_cabinet_in_use_becomes_choosable_when_it_is_free(
    served_site: ServedSite, browser: Any
) -> None:
    async with httpx.AsyncClient(base_url=served_site.base_url, timeout=30) as http:
        r = await http.post("/api/v1/cabinets/K1/restock", headers=OPERATOR, json={})
        assert r.status_code == 201, r.text
        assert r.json()["state"] in ("unlocking", "open")

        kiosk = await open_kiosk(browser, served_site, PORTRAIT)
        page = kiosk.page
        await page.get_by_role("button", name="购物").click()
        cabinet = page.get_by_role("button", name="Snacks and drinks")
        await expect(cabinet).to_be_disabled()
        await expect(cabinet).to_contain_text("正在使用中")

        served_site.site.close_cabinet()  # the operator shuts the door: the restock settles
        await expect(cabinet).to_be_enabled(timeout=30_000)
        await expect(cabinet).to_contain_text("件商品")
        assert kiosk.errors == []
