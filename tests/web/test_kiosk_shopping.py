"""Shopping at the cabinet with face payment, played at the kiosk's screen: the shopper chooses
the cabinet, looks at the camera and does what the screen asks (the MJPEG camera simulator
shows a real photo that blinks and turns), takes two items, closes the door and reads her
receipt with the payment's result. And a face the site does not know: the screen says so and
offers the member QR code instead."""

# The screens speak Chinese: its full-width punctuation is meant.
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout
from playwright.async_api import expect

from edge.app import EdgeApp
from edge.demo.facepay import MEMBER_ID, REACTION_S, RETRY_S, FaceDemo, enroll, prepare_face_demo
from edge.demo.run import UpstreamLink
from edge.demo.shopper import SimulatedShopper
from edge.demo.site import DEMO_PRODUCTS, KIOSK_ID, SimulatedSite, add_demo_catalog
from tests.web.browser import (
    PORTRAIT,
    Screenshot,
    ServedSite,
    accessibility_violations,
    next_event,
)
from tests.web.kiosk_support import Kiosk, open_kiosk

PER_PRODUCT = 5
CABINET_NAME = "Snacks and drinks"
# What the screen asks for each challenge step the controller chooses (edge/web/kiosk/i18n.js).
PROMPT_TEXT = {"blink": "请眨眨眼", "turn_left": "请向左转头", "turn_right": "请向右转头"}
LOOKING = "请看向摄像头"
DOOR_OPEN = "柜门已打开：请拿取商品，然后关好柜门"
CHECK_ENDED = re.compile(r"^(验证成功，正在开门…|柜门已打开：请拿取商品，然后关好柜门|刷脸未成功)$")
# The first prompt comes once the face is found and searched in the gallery: a second or two.
FIRST_PROMPT_MS = 15_000
MAX_ACTIONS = 12


@dataclass
class FaceSite:
    """A simulated site whose kiosk pays by face, served over HTTP, with prices loaded."""

    served: ServedSite
    face: FaceDemo
    upstream: UpstreamLink
    placed: list[str]
    """The cabinet's tagged items, in DEMO_PRODUCTS order, PER_PRODUCT of each."""

    @property
    def app(self) -> EdgeApp:
        return self.served.app

    @property
    def shopper(self) -> SimulatedShopper:
        return self.face.shopper

    async def enroll_the_shopper(self) -> None:
        """Upstream enrols the face the camera shows (a signed member.enroll, as the demo)."""
        async with httpx.AsyncClient(base_url=self.served.base_url, timeout=30) as http:
            await enroll(http, self.upstream, self.app, self.face)


async def _load_prices(app: EdgeApp) -> None:
    since = app.db.clock.now() - timedelta(hours=1)
    await app.db.transact(lambda tx: add_demo_catalog(tx, since))
    app.prices.changed()  # written behind the command path's back: reload by hand
    await app.prices.current()


async def _until_ready_to_shop(app: EdgeApp) -> None:
    """The camera sends frames and the cabinet's first inventory is counted."""
    assert app.facepay is not None
    await app.facepay.terminals[KIOSK_ID].camera.next_frame(0, timeout=10)
    with app.feed.watch() as watcher:
        while not app.cabinets.cabinets["K1"].open_for_shoppers:
            await asyncio.wait_for(watcher.next(), 30)  # the reader's first count


@pytest.fixture
async def face_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> AsyncIterator[FaceSite]:
    workdir = tmp_path / "site"
    workdir.mkdir()
    face = await prepare_face_demo(workdir)
    if face is None:  # prepare_face_demo said why, in one line
        why = [line for line in capsys.readouterr().out.splitlines() if "skipped" in line]
        pytest.skip(why[-1].strip() if why else "face payment cannot be prepared here")
    site = SimulatedSite(workdir, with_cabinet=True)
    app: EdgeApp | None = None
    try:
        await site.start()
        placed = site.stock_cabinet(PER_PRODUCT)
        upstream = UpstreamLink(workdir, None)  # no broker: commands go to the dispatcher
        site.facepay = face.config()
        app = EdgeApp(site.config(http_port=0, **upstream.config()))
        await app.start()
        await app.wait_checked()
        await _load_prices(app)
        await _until_ready_to_shop(app)
        served = ServedSite(site, app, f"http://127.0.0.1:{app.http_port}")
        yield FaceSite(served, face, upstream, placed)
    finally:
        if app is not None:
            await app.stop()
        await face.stop()
        await site.stop()


async def choose_the_cabinet(kiosk: Kiosk, screenshot: Screenshot) -> None:
    page = kiosk.page
    await expect(page.get_by_role("heading", name="您好，请选择服务")).to_be_visible()
    await page.get_by_role("button", name="购物").click()
    await expect(page.get_by_role("heading", name="请选择货柜")).to_be_visible()
    cabinet = page.get_by_role("button", name=CABINET_NAME)
    await expect(cabinet).to_be_enabled()
    await expect(cabinet).to_contain_text(f"{PER_PRODUCT * len(DEMO_PRODUCTS)} 件商品")
    await screenshot(page, "1-cabinets")
    await cabinet.click()


async def answer_the_prompts(
    kiosk: Kiosk, shopper: SimulatedShopper, screenshot: Screenshot
) -> list[str]:
    """Do what each prompt on the screen asks, as a shopper would (again, if the prompt is
    still shown a while later), until the check ends; the prompts asked, in order."""
    page = kiosk.page
    prompt = page.locator("p.prompt")
    ended = page.get_by_role("heading", name=CHECK_ENDED)
    asked: list[str] = []
    for _ in range(MAX_ACTIONS):
        last = asked[-1] if asked else ""
        new_prompt = page.locator(f"p.prompt:not([data-prompt='']):not([data-prompt='{last}'])")
        try:
            await new_prompt.or_(ended).first.wait_for(
                timeout=RETRY_S * 1000 if asked else FIRST_PROMPT_MS
            )
        except PlaywrightTimeout:
            assert asked, "no prompt was shown"
            shopper.act(last)  # the prompt is still there: she does it again
            continue
        if await ended.is_visible():
            failed = page.get_by_role("heading", name="刷脸未成功")
            if await failed.is_visible():
                why = await page.get_by_role("alert").all_inner_texts()
                raise AssertionError(f"the face check failed after prompts {asked}: {why}")
            return asked
        step = await prompt.get_attribute("data-prompt")
        assert step in PROMPT_TEXT, step
        await expect(prompt).to_have_text(PROMPT_TEXT[step])
        await expect(page.get_by_role("heading", name=LOOKING)).to_be_visible()
        await screenshot(page, f"2-prompt-{len(asked) + 1}-{step}")
        await asyncio.sleep(REACTION_S)  # a person's reaction: the liveness check needs one
        shopper.act(step)
        asked.append(step)
    raise AssertionError(f"the face check never ended after prompts {asked}")


async def test_a_member_pays_by_face_for_two_items_taken_from_the_cabinet(
    face_site: FaceSite, browser: Any, screenshot: Screenshot
) -> None:
    app, site = face_site.app, face_site.served.site
    await face_site.enroll_the_shopper()
    kiosk = await open_kiosk(browser, face_site.served, PORTRAIT)
    page = kiosk.page
    with app.feed.watch() as watcher:
        await choose_the_cabinet(kiosk, screenshot)
        await expect(page.get_by_role("heading", name=LOOKING)).to_be_visible()

        asked = await answer_the_prompts(kiosk, face_site.shopper, screenshot)
        # The controller's challenge: two different steps, each shown as its own sentence.
        assert len(asked) == 2 and asked[0] != asked[1], asked

        await expect(page.get_by_role("heading", name=DOOR_OPEN)).to_be_visible()
        opened = await next_event(watcher, "door.opened", lambda e: "session_id" in e.data)
        session_id = opened.data["session_id"]
        await screenshot(page, "3-door-open")

        # She takes a bottle of water and a bag of crisps, and shuts the door.
        water, crisps = face_site.placed[0], face_site.placed[2 * PER_PRODUCT]
        site.tags.remove(water)
        site.tags.remove(crisps)
        site.close_cabinet()

        await expect(page.get_by_role("heading", name="购物小票")).to_be_visible(timeout=30_000)
        paid = await next_event(watcher, "payment.authorized")

    lines = page.locator("table.receipt tbody tr")
    await expect(lines).to_have_count(2)
    cells = sorted(
        [tuple(await line.locator("td").all_inner_texts()) for line in await lines.all()]
    )
    assert cells == [("乐事薯片 原味 70g", "¥7.90"), ("农夫山泉 550ml", "¥2.00")]
    total = page.locator("table.receipt tfoot tr")
    await expect(total.get_by_role("rowheader")).to_have_text("合计")
    await expect(total.locator("td.amount")).to_have_text("¥9.90")
    await expect(page.locator(".message-success")).to_have_text("支付成功。")
    await screenshot(page, "4-receipt")
    assert await accessibility_violations(page) == []

    # The screen told what the controller decided: this member paid 9.90 by face.
    assert paid.data["member_id"] == MEMBER_ID and paid.data["method"] == "face"
    assert paid.data["amount"] == 990
    view = await app.cabinets.get_session(session_id)
    assert view.order_id == paid.data["order_id"] and view.total == 990

    await page.get_by_role("button", name="完成").click()
    await expect(page.get_by_role("heading", name="您好，请选择服务")).to_be_visible()
    assert kiosk.errors == []


async def test_a_face_the_site_does_not_know_is_told_and_offered_the_member_code(
    face_site: FaceSite, browser: Any, screenshot: Screenshot
) -> None:
    # Nobody is enrolled: the camera shows a face the site has never seen.
    kiosk = await open_kiosk(browser, face_site.served, PORTRAIT)
    page = kiosk.page
    await choose_the_cabinet(kiosk, screenshot)

    await expect(page.get_by_role("heading", name="刷脸未成功")).to_be_visible(
        timeout=FIRST_PROMPT_MS
    )
    await expect(page.get_by_role("alert")).to_have_text("没有认出您：请改用会员码。")
    await expect(page.get_by_role("button", name="再试一次")).to_be_visible()
    await expect(page.get_by_role("button", name="取消")).to_be_visible()
    await screenshot(page, "2-not-recognised")
    assert await accessibility_violations(page) == []

    await page.get_by_role("button", name="改用会员码").click()
    await expect(page.get_by_role("heading", name="请出示会员码")).to_be_visible()
    await expect(page.get_by_text("请在 App 中打开会员码，对准扫码口。")).to_be_visible()
    await screenshot(page, "3-member-qr")
    await page.get_by_role("button", name="取消").click()
    await expect(page.get_by_role("heading", name="您好，请选择服务")).to_be_visible()
    assert kiosk.errors == []
