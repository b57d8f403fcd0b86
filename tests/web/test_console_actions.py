"""The operator's actions from the console: opening, disabling and enabling a compartment, an
error from the controller, and held cabinet sessions voided and settled again.

Same set-up as test_console.py (page helpers in console_support.py, fixtures in conftest.py):
Chromium on the controller serving a simulated site; the shopper and the hardware are played
through the real HTTP API and the simulators.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
from playwright.async_api import expect

from edge.db import Transaction
from edge.demo.site import add_demo_catalog
from tests.web.browser import KIOSK_TOKEN, OPERATOR_TOKEN, Screenshot, ServedSite, next_event
from tests.web.console_support import Console, signed_in

KIOSK = {"X-Kiosk-Token": KIOSK_TOKEN}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def test_operator_opens_disables_and_enables_a_compartment(
    served_site: ServedSite, console: Console, http: httpx.AsyncClient, screenshot: Screenshot
) -> None:
    page = console.page
    boards = served_site.site.boards
    assert boards is not None
    await signed_in(console, served_site)
    await console.tile("A05").click()
    details = page.get_by_role("dialog", name="Compartment A05")
    await expect(details).to_be_visible()

    # No reason, no opening.
    await details.get_by_role("button", name="Open door").click()
    await expect(details.get_by_role("status")).to_have_text(re.compile("Give a reason"))
    assert not boards.is_open(1, 5)

    await details.get_by_label("Reason").fill("customer left a phone inside")
    await details.get_by_role("button", name="Open door").click()
    confirm = page.get_by_role("dialog", name="Open compartment A05?")
    await expect(confirm).to_contain_text("customer left a phone inside")
    await screenshot(page, "confirm-open")
    await confirm.get_by_role("button", name="Open door").click()
    await expect(details.get_by_role("status")).to_have_text(re.compile("door of A05 is open"))
    assert boards.is_open(1, 5)
    commanded = console.events().locator("li[data-type='door.commanded']").first
    await expect(commanded).to_contain_text("A05")
    await expect(commanded).to_contain_text("operator_open")
    await expect(details).to_contain_text("Open")

    served_site.site.close_door("A05")
    await expect(
        console.events().locator("li[data-type='compartment.operator_closed']")
    ).to_contain_text("A05")

    await details.get_by_role("button", name="Disable").click()
    await expect(details.get_by_role("status")).to_have_text(re.compile("A05 is out of service"))
    r = await http.get("/api/v1/compartments", headers=OPERATOR)
    assert next(c for c in r.json() if c["id"] == "A05")["enabled"] is False
    await expect(console.tile("A05")).to_contain_text("Disabled")
    await screenshot(page, "compartment-disabled")

    await details.get_by_role("button", name="Enable").click()
    await expect(details.get_by_role("status")).to_have_text(re.compile("A05 is in service"))
    r = await http.get("/api/v1/compartments", headers=OPERATOR)
    assert next(c for c in r.json() if c["id"] == "A05")["enabled"] is True
    await details.get_by_role("button", name="Close").click()
    await expect(console.tile("A05")).to_have_attribute("data-state", "free")
    await expect(console.events().locator("li[data-type='compartment.enabled']")).to_contain_text(
        "operator"
    )
    assert console.errors == []


async def test_an_error_from_the_controller_is_shown_in_a_sentence(
    served_site: ServedSite, console: Console
) -> None:
    boards = served_site.site.boards
    assert boards is not None
    await signed_in(console, served_site)
    await console.tile("A06").click()
    details = console.page.get_by_role("dialog", name="Compartment A06")
    await details.get_by_label("Reason").fill("check the lock")
    # The lock is jammed: the controller says why in its error, the console shows it.
    boards.set_stuck(1, 6, True)
    try:
        await details.get_by_role("button", name="Open door").click()
        await (
            console.page.get_by_role("dialog", name="Open compartment A06?")
            .get_by_role("button", name="Open door")
            .click()
        )
        status = details.get_by_role("status")
        await expect(status).to_have_text("Compartment A06 did not open.", timeout=30000)
        await expect(status).to_have_class(re.compile(r"\bbad\b"))
    finally:
        boards.set_stuck(1, 6, False)
    assert not boards.is_open(1, 6)
    # Taken out of service by the fault: a critical alarm, and the tile says so.
    await details.get_by_role("button", name="Close").click()
    alarm = console.alarms().locator("li[data-kind='compartment_fault']")
    await expect(alarm).to_contain_text("A06")
    await expect(alarm).to_contain_text("Critical")
    await expect(console.tile("A06")).to_contain_text("Fault")
    # The browser logs the refused request itself; nothing else may go wrong.
    assert [e for e in console.errors if "status of 5" not in e and "status of 4" not in e] == []


async def hold_a_session(served: ServedSite, client: httpx.AsyncClient) -> str:
    """A shopper takes an item the site has no price for: the session is held for review."""
    app, site = served.app, served.site
    with app.feed.watch() as watcher:
        while not app.cabinets.cabinets["K1"].open_for_shoppers:
            await asyncio.wait_for(watcher.next(), 30)  # the reader's first count, a void
        r = await client.post(
            "/api/v1/kiosk/cabinets/K1/sessions",
            headers=KIOSK,
            json={"member_id": "member-7", "member_source": "qr"},
        )
        assert r.status_code == 201, r.text
        session_id: str = r.json()["id"]
        await next_event(watcher, "door.opened", lambda e: e.data.get("session_id") == session_id)
    site.tags.remove(sorted(site.tags.epcs())[0])
    site.close_cabinet()
    view = await app.cabinets.wait_finished(session_id, 30)
    assert view.state == "held" and view.hold_reason == "unpriced_items"
    return session_id


async def test_held_cabinet_sessions_are_voided_and_settled_from_the_console(
    served_site: ServedSite, console: Console, http: httpx.AsyncClient, screenshot: Screenshot
) -> None:
    page = console.page
    await signed_in(console, served_site)
    first = await hold_a_session(served_site, http)

    held = page.locator(f"li[data-session='{first}']")
    await expect(held).to_contain_text("items without a price were taken")
    await expect(console.alarms()).to_contain_text("Cabinet session held")
    await expect(page.get_by_role("region", name="Cabinets")).to_contain_text(
        "waiting for an operator"
    )
    await screenshot(page, "held-session")

    await held.get_by_role("button", name="Void").click()
    confirm = page.get_by_role("dialog", name=re.compile("Void session"))
    await confirm.get_by_role("button", name="Void").click()
    await expect(confirm.get_by_role("alert")).to_have_text(re.compile("Give a reason"))
    await confirm.get_by_label("Reason").fill("staff gave the item away")
    await confirm.get_by_role("button", name="Void").click()
    await expect(page.locator("#held-result")).to_have_text(re.compile("closed"))
    await expect(held).to_have_count(0)
    r = await http.get("/api/v1/cabinet-sessions", headers=OPERATOR, params={"state": "held"})
    assert r.json() == []
    await expect(
        console.events().locator("li[data-type='cabinet.session_closed']").first
    ).to_contain_text("voided")

    # Held again; then the prices arrive, and settling again charges the shopper.
    second = await hold_a_session(served_site, http)
    held = page.locator(f"li[data-session='{second}']")
    await expect(held).to_be_visible()
    since = served_site.app.db.clock.now() - timedelta(hours=1)

    def catalog(tx: Transaction) -> None:
        add_demo_catalog(tx, since)

    await served_site.app.db.transact(catalog)
    served_site.app.prices.changed()
    await held.get_by_role("button", name="Settle again").click()
    await (
        page.get_by_role("dialog", name=re.compile("Settle session"))
        .get_by_role("button", name="Settle again")
        .click()
    )
    await expect(page.locator("#held-result")).to_have_text(
        re.compile("settled: closed, the shopper is charged"), timeout=30000
    )
    await expect(held).to_have_count(0)
    await expect(page.get_by_text("All clear")).to_be_visible()
    await expect(
        console.events().locator("li[data-type='cabinet.session_closed']").first
    ).to_contain_text("charged")
    r = await http.get(f"/api/v1/cabinet-sessions/{second}", headers=OPERATOR)
    assert r.json()["state"] == "closed" and r.json()["order_id"] is not None
    assert console.errors == []
