"""The operator console in Chromium against a controller serving a simulated site.

The test plays the operator at the console, and the rest of the world through the real HTTP API
(a courier at the kiosk, a shopper at the cabinet) and the simulators (doors closed by hand, a
bus unplugged). Waiting is on the page (Playwright's expect) or on the controller's event feed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.app import EdgeApp
from edge.demo.site import COURIER_CREDENTIAL, COURIER_ID, SimulatedSite
from tests.web.browser import (
    KIOSK_TOKEN,
    OPERATOR_TOKEN,
    Screenshot,
    ServedSite,
    accessibility_violations,
)
from tests.web.console_support import Console, console_page, signed_in

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

TABLET = {"width": 1024, "height": 768}
KIOSK = {"X-Kiosk-Token": KIOSK_TOKEN}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


# ---- sign in ---------------------------------------------------------------------------------


async def test_a_wrong_token_is_refused_and_the_right_one_shows_the_overview(
    served_site: ServedSite, console: Console, screenshot: Screenshot
) -> None:
    page = console.page
    await page.goto(served_site.console_url)
    assert await accessibility_violations(page) == []
    await screenshot(page, "login-1440")

    await console.sign_in(served_site, "not-the-token")
    await expect(page.get_by_role("alert")).to_have_text(re.compile("token was not accepted"))
    assert await page.evaluate("sessionStorage.length") == 0
    # The browser logs the refused request itself; nothing else may go wrong.
    console.errors = [e for e in console.errors if "status of 401" not in e]

    await page.get_by_label("Operator token").fill(OPERATOR_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Compartments")).to_be_visible()
    await expect(page.get_by_text("All clear")).to_be_visible()
    await expect(page.get_by_text("Live", exact=True)).to_be_visible()
    await expect(console.tile("F04")).to_contain_text("Free")
    assert await page.evaluate("localStorage.getItem('edge.console.token')") is None
    assert await page.evaluate("sessionStorage.getItem('edge.console.token')") == OPERATOR_TOKEN
    await expect(page.get_by_role("link", name="Metrics")).to_have_attribute("href", "/metrics")
    await expect(page.get_by_role("link", name="API docs")).to_have_attribute("href", "/docs")
    assert await accessibility_violations(page) == []
    await screenshot(page, "overview-1440")

    # A reload keeps the tab signed in; signing out forgets the token.
    await page.reload()
    await expect(page.get_by_role("heading", name="Compartments")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Operator token")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    assert console.errors == []


async def test_the_console_fits_a_tablet_and_speaks_chinese(
    served_site: ServedSite, browser: Any, screenshot: Screenshot
) -> None:
    context = await browser.new_context(viewport=TABLET)
    try:
        console = Console(await context.new_page())
        page = console.page
        await page.goto(served_site.console_url)
        await screenshot(page, "login-1024")
        await signed_in(console, served_site)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= TABLET["width"], "the overview scrolls sideways on a tablet"
        await screenshot(page, "overview-1024")

        await page.get_by_role("button", name="中文").click()
        await expect(page.get_by_role("heading", name="运维控制台")).to_be_visible()
        await expect(page.get_by_role("heading", name="格口", exact=True)).to_be_visible()
        await expect(console.tile("A01")).to_contain_text("空闲")
        assert await page.evaluate("document.documentElement.lang") == "zh-CN"
        # Every English label has its Chinese one (and no Chinese label is left over).
        missing = await page.evaluate(
            """async () => {
                const { DICTIONARIES } = await import('./i18n.js');
                const en = Object.keys(DICTIONARIES.en), zh = Object.keys(DICTIONARIES['zh-CN']);
                return en.filter(k => !zh.includes(k)).concat(zh.filter(k => !en.includes(k)));
            }"""
        )
        assert missing == []
        await screenshot(page, "overview-1024-zh")
        await page.get_by_role("button", name="English").click()
        await expect(page.get_by_role("heading", name="Operator console")).to_be_visible()
        assert console.errors == []
    finally:
        await context.close()


async def test_a_disabled_operator_api_says_what_to_configure(tmp_path: Path, browser: Any) -> None:
    """A controller configured without ``http.operator_token`` refuses every operator call;
    the console says which setting to add."""
    site = SimulatedSite(tmp_path / "site")
    await site.start()
    app = EdgeApp(site.config(http={"host": "127.0.0.1", "port": 0}))
    try:
        await app.start()
        served = ServedSite(site, app, f"http://127.0.0.1:{app.http_port}")
        async with console_page(browser) as console:
            await console.sign_in(served)
            await expect(console.page.get_by_role("alert")).to_have_text(
                re.compile("set http.operator_token in the configuration")
            )
            assert [e for e in console.errors if "status of 503" not in e] == []
    finally:
        await app.stop()
        await site.stop()


# ---- live updates ----------------------------------------------------------------------------


async def test_a_deposit_shows_up_live(
    served_site: ServedSite, console: Console, http: httpx.AsyncClient
) -> None:
    await signed_in(console, served_site)
    await console.page.evaluate("window.notReloaded = true")

    r = await http.post(
        "/api/v1/kiosk/courier/sessions",
        headers=KIOSK,
        json={"courier_id": COURIER_ID, "credential": COURIER_CREDENTIAL},
    )
    r.raise_for_status()
    courier = {**KIOSK, "X-Courier-Session": r.json()["token"]}
    r = await http.post(
        "/api/v1/kiosk/deposits", headers=courier, json={"parcel_code": "SF-CONSOLE-1", "size": "M"}
    )
    r.raise_for_status()
    deposit = r.json()
    compartment = deposit["compartment"]
    await expect(console.tile(compartment)).to_contain_text("Door open")
    served_site.site.close_door(compartment)
    r = await http.get(
        f"/api/v1/kiosk/operations/{deposit['operation_id']}", headers=KIOSK, params={"wait": 20}
    )
    assert r.json()["state"] == "completed"

    # Well within the 30 s refresh: the stream brought it.
    await expect(console.tile(compartment)).to_have_attribute(
        "data-state", "occupied", timeout=10000
    )
    await expect(console.tile(compartment)).to_contain_text("Occupied")
    deposited = console.events().locator("li[data-type='parcel.deposited']")
    await expect(deposited).to_contain_text("SF-CONSOLE-1")
    await expect(console.events().locator("li").first).to_have_attribute(
        "data-type", re.compile(r"parcel\.deposited|door\.closed")
    )
    assert await console.page.evaluate("window.notReloaded") is True
    assert console.errors == []


# ---- temperatures, devices, accessibility ----------------------------------------------------


async def test_the_temperature_chart_is_drawn_with_a_text_alternative(
    served_site: ServedSite, console: Console
) -> None:
    await signed_in(console, served_site)
    for sensor in ("chiller", "freezer-probe"):
        chart = console.page.get_by_role("img", name=re.compile(f"^{sensor}, last 24 hours"))
        await expect(chart).to_be_visible()
        await expect(chart.locator("circle, path.line").first).to_be_attached()
        await expect(chart.locator("rect.band")).to_have_count(1)
    figure = console.page.locator("figure[data-sensor='chiller']")
    await expect(figure).to_contain_text("3.5 °C")
    await expect(figure).to_contain_text("Allowed 0.0 °C to 4.0 °C")
    await expect(figure).to_contain_text("Collecting data")
    await expect(figure.locator("figcaption")).to_contain_text("Minutes outside the band: 0")
    assert console.errors == []


async def test_a_device_going_offline_raises_an_alarm(
    served_site: ServedSite, console: Console, screenshot: Screenshot
) -> None:
    frozen = served_site.site.frozen
    assert frozen is not None
    await signed_in(console, served_site)
    await expect(console.page.get_by_text("All clear")).to_be_visible()
    frozen.unplug()
    alarm = console.alarms().locator("li[data-kind='device_offline']").first
    await expect(alarm).to_contain_text("freezer")
    await expect(alarm).to_contain_text("Warning")
    await expect(console.page.locator("tr[data-device='freezer']")).to_contain_text("Down")
    assert await accessibility_violations(console.page) == []
    await screenshot(console.page, "device-offline")
    assert console.errors == []
