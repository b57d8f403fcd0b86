"""What the kiosk browser tests share (no tests of its own): opening the kiosk, typing on its
keys, the HTTP side."""

# The screens speak Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from playwright.async_api import expect

from edge.demo.site import COURIER_CREDENTIAL, COURIER_ID, KIOSK_TOKEN, OPERATOR_TOKEN
from tests.web.browser import Screenshot, ServedSite

KIOSK = {"X-Kiosk-Token": KIOSK_TOKEN}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
TIMEOUT_MS = 15_000
DOOR_OPEN = re.compile(r"^柜门 (\S+) 已打开$")
# Chromium reports every 4xx/5xx answer as a console error: the API's refusals (a wrong code)
# are answers the page handles, not errors of the page. Anything else is.
HANDLED_HTTP = re.compile(r"^Failed to load resource: the server responded with a status of \d+")


@dataclass
class Kiosk:
    page: Any
    errors: list[str] = field(default_factory=list)

    async def type_on(self, group: str, text: str) -> None:
        """Press the on-screen keys of the field named ``group``, one per character."""
        name = re.compile(rf"^{re.escape(group)}(键盘| keys)$")
        keys = self.page.get_by_role("group", name=name)
        for char in text:
            await keys.get_by_role("button", name=char, exact=True).click()

    async def heading(self) -> str:
        text: str = await self.page.get_by_role("heading", level=1).inner_text()
        return text


async def open_kiosk(
    browser: Any, served: ServedSite, viewport: dict[str, int], *, fake_clock: bool = False
) -> Kiosk:
    """The kiosk's page, as its browser is started; with ``fake_clock`` the page's time moves
    only when the test says (``page.clock.run_for``)."""
    page = await browser.new_page(viewport=viewport)
    if fake_clock:
        await page.clock.install()
    kiosk = Kiosk(page)

    def console(message: Any) -> None:
        if message.type == "error" and not HANDLED_HTTP.match(message.text):
            kiosk.errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: kiosk.errors.append(f"page error: {error}"))
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(served.kiosk_url)
    return kiosk


async def courier_headers(http: httpx.AsyncClient) -> dict[str, str]:
    r = await http.post(
        "/api/v1/kiosk/courier/sessions",
        headers=KIOSK,
        json={"courier_id": COURIER_ID, "credential": COURIER_CREDENTIAL},
    )
    r.raise_for_status()
    return {**KIOSK, "X-Courier-Session": r.json()["token"]}


async def deposit_by_api(served: ServedSite, parcel_code: str, size: str = "S") -> tuple[str, str]:
    """A courier deposits a parcel through the HTTP API: (compartment, pickup code)."""
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        courier = await courier_headers(http)
        r = await http.post(
            "/api/v1/kiosk/deposits",
            headers=courier,
            json={"parcel_code": parcel_code, "size": size},
        )
        r.raise_for_status()
        opened = r.json()
        served.site.close_door(opened["compartment"])
        r = await http.get(
            f"/api/v1/kiosk/operations/{opened['operation_id']}", headers=KIOSK, params={"wait": 20}
        )
        r.raise_for_status()
        done = r.json()
        assert done["state"] == "completed", done
        return str(opened["compartment"]), str(done["pickup_code"])


async def disable(served: ServedSite, compartments: list[str]) -> None:
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        for compartment in compartments:
            r = await http.post(f"/api/v1/compartments/{compartment}/disable", headers=OPERATOR)
            r.raise_for_status()


async def type_courier_sign_in(kiosk: Kiosk, pin: str = COURIER_CREDENTIAL) -> None:
    """From home: the courier types their ID and ``pin`` on the screen's keys and taps 登录."""
    page = kiosk.page
    await page.get_by_role("button", name="快递员投递").click()
    await expect(page.get_by_role("heading", name="快递员登录")).to_be_visible()
    await page.get_by_role("button", name="输入工号和密码").click()
    await kiosk.type_on("工号", COURIER_ID)
    await expect(page.get_by_role("textbox", name="工号")).to_have_value(COURIER_ID)
    await page.get_by_role("button", name="下一步").click()
    await kiosk.type_on("密码", pin)
    await page.get_by_role("button", name="登录").click()


async def sign_in_by_typing(kiosk: Kiosk) -> None:
    """Signs the demo courier in: the screen then asks for the parcel."""
    await type_courier_sign_in(kiosk)
    await expect(kiosk.page.get_by_role("heading", name="请扫描包裹条码")).to_be_visible()


async def deposit(
    kiosk: Kiosk, served: ServedSite, parcel: str, screenshot: Screenshot, prefix: str
) -> str:
    """From the parcel screen: type the code, choose S, see the door, close it. Returns the
    compartment and leaves the page on the deposited screen."""
    page = kiosk.page
    await screenshot(page, f"{prefix}-2-parcel")
    await kiosk.type_on("运单号", parcel)
    await expect(page.get_by_role("textbox", name="运单号")).to_have_value(parcel)
    await page.get_by_role("button", name="下一步").click()
    await expect(page.get_by_role("heading", name="请选择格口尺寸")).to_be_visible()
    size_s = page.get_by_role("button", name=re.compile(r"^S 常温"))
    await expect(size_s).to_be_enabled()
    await screenshot(page, f"{prefix}-3-sizes")
    await size_s.click()
    door = page.get_by_role("heading", name=DOOR_OPEN)
    await expect(door).to_be_visible()
    match = DOOR_OPEN.match(await door.inner_text())
    assert match is not None
    compartment = match.group(1)
    assert compartment in {"A01", "A02", "A03", "A04"}  # the S compartments of the site
    await expect(page.locator("[data-compartment]")).to_have_text(compartment)
    await expect(page.get_by_text("请放入包裹，然后关好柜门")).to_be_visible()
    await screenshot(page, f"{prefix}-4-door-open")
    served.site.close_door(compartment)
    await expect(page.get_by_role("heading", name=f"已存入 {compartment}")).to_be_visible()
    await expect(page.locator("[data-pickup-code]")).to_have_text(re.compile(r"^\d{6,12}$"))
    await screenshot(page, f"{prefix}-5-deposited")
    return compartment
