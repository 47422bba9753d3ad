"""The ``/demo`` product page in Debian's headless Chromium, against the real app serving a real
tiny MVCrec model: the widget shows ``/items/{id}/similar``, the strip follows the clicks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.deploy.conftest import ROOT

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# headless, and nothing that reaches out of a closed network; Playwright adds a fresh profile dir
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
SCREENSHOT = ROOT / "docs" / "img" / "demo.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does), "
                    "or point CHROMIUM at another Chromium binary")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shown(page: Page, section: str) -> list[str]:
    items: list[str] = page.eval_on_selector_all(
        f"#{section} a.card", "cards => cards.map(card => card.dataset.item)")
    return items


def answer(api: httpx.Client, method: str, path: str, **kwargs: Any) -> list[str]:
    response = api.request(method, path, **kwargs)
    assert response.status_code == 200, response.text
    return [entry["item"] for entry in response.json()["items"]]


def test_product_page_shows_similar_items_and_follows_clicks(live_server: str,
                                                             browser: Browser) -> None:
    api = httpx.Client(base_url=live_server)
    popular = answer(api, "POST", "/recommend", json={"session": [], "k": 1})[0]
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)

    page.goto(f"{live_server}/demo")
    page.wait_for_selector("#similar[data-state=ready]")
    page.wait_for_selector("#recommended[data-state=ready]")
    assert page.text_content("#product-id") == popular, "no ?item= opens the most popular item"
    k = int(page.get_attribute("#similar", "data-k") or 0)
    k_next = int(page.get_attribute("#recommended", "data-k") or 0)
    similar = shown(page, "similar")
    assert len(similar) == k == 6
    assert similar == answer(api, "GET", f"/items/{popular}/similar", params={"k": k})
    assert shown(page, "recommended") == answer(api, "POST", "/recommend",
                                                json={"session": [popular], "k": k_next})

    clicked = similar[1]
    page.locator("#similar a.card").nth(1).click()
    page.wait_for_selector(f"#recommended[data-session='{popular},{clicked}']"
                           "[data-state=ready]")
    page.wait_for_selector("#similar[data-state=ready]")
    assert page.text_content("#product-id") == clicked
    assert page.url.endswith(f"/demo?item={clicked}")
    strip = shown(page, "recommended")
    assert strip == answer(api, "POST", "/recommend",
                           json={"session": [popular, clicked], "k": k_next})
    assert len(strip) == k_next and not {popular, clicked} & set(strip)
    assert "2 products" in (page.text_content("#recommended .caption") or "")
    assert shown(page, "similar") == answer(api, "GET", f"/items/{clicked}/similar",
                                            params={"k": k})
    assert page.evaluate("JSON.parse(sessionStorage.getItem('mvcrec-demo-session'))") == [
        popular, clicked]
    assert page.locator("#session .chips li").all_text_contents() == [popular, clicked]
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.go_back()
    page.wait_for_function(f"document.getElementById('product-id').textContent === '{popular}'")
    page.wait_for_selector("#recommended[data-state=ready]")
    assert page.evaluate("JSON.parse(sessionStorage.getItem('mvcrec-demo-session'))") == [
        popular, clicked], "going back is not a new view"
    assert not errors, errors


def test_demo_page_explains_an_unknown_item(live_server: str, browser: Browser) -> None:
    page = browser.new_page()
    page.goto(f"{live_server}/demo?item=no-such-item")
    page.wait_for_selector("#similar[data-state=error]")
    assert "404" in (page.text_content("#similar .status") or "")
    page.wait_for_selector("#recommended[data-state=ready]")
    assert len(shown(page, "recommended")) == int(page.get_attribute("#recommended", "data-k")
                                                  or 0)
    assert "most popular" in (page.text_content("#recommended .caption") or "")
