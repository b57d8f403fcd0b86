"""The pages are served with headers that keep them to their own files."""

from __future__ import annotations

from typing import Any

from tests.web.browser import ServedSite


async def test_pages_are_served_with_a_strict_content_security_policy(
    served_site: ServedSite, browser: Any
) -> None:
    page = await browser.new_page()
    for path in ("/kiosk/", "/console/"):
        response = await page.goto(served_site.base_url + path)
        assert response is not None and response.ok
        headers = await response.all_headers()
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
    root = await page.goto(served_site.base_url + "/")
    assert root is not None and page.url.endswith("/console/")
