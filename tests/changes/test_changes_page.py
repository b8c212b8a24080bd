"""``GET /changes`` in a real headless browser: Debian's chromium driven by Selenium (the system
chromedriver; nothing downloaded). The page is behind the bearer auth (sent with every request through
the DevTools protocol), filters by order and caller, and shows each field's before and after side by
side; a screenshot of the diff shows both sides rendered."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from odmcp.testing import serve_http

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TOKENS = [
    {"name": "alice", "token": "alice-token-0123456789"},
    {"name": "bob", "token": "bob-token-0123456789"},
    {"name": "owner", "token": "owner-token-0123456789", "grants": ["changes:all"]},
]


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is not installed (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@contextlib.asynccontextmanager
async def _mcp(base: str, token: str) -> AsyncIterator[Any]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, Client(streamable_http_client(base + "/mcp", http_client=http)) as client:
        yield client


def _pixels(png: bytes) -> list[tuple[int, int, int]]:
    """The RGB pixels of a non-interlaced 8-bit RGB/RGBA PNG (what chromium's screenshots are)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, kind = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        tag, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if tag == b"IHDR":
            width, height, depth, kind, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert depth == 8 and kind in (2, 6) and interlace == 0
        elif tag == b"IDAT":
            idat += data
        pos += 12 + length
    raw, bpp = zlib.decompress(idat), 4 if kind == 6 else 3
    stride, out, prev = width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.extend(tuple(line[x * bpp : x * bpp + 3]) for x in range(width))
        prev = line
    return out  # type: ignore[return-value]


def _browse(base: str, visits: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Visit each ``(token, path)`` in one fresh headless chromium; the last token then uses the form."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="undo-chromium-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        seen = []
        for token, path in visits:
            driver.execute_cdp_cmd(
                "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {token}"}}
            )
            driver.get(base + path)
            changes = driver.find_elements(By.CSS_SELECTOR, "#changes > .change")
            page: dict[str, Any] = {
                "ids": [c.get_attribute("data-change") for c in changes],
                "text": driver.find_element(By.TAG_NAME, "body").text,
            }
            diffs = driver.find_elements(By.CSS_SELECTOR, "table.diff")
            if diffs:
                before = diffs[0].find_element(By.CSS_SELECTOR, "td.before")
                after = diffs[0].find_element(By.CSS_SELECTOR, "td.after")
                page["side_by_side"] = (
                    before.rect["x"] + before.rect["width"] <= after.rect["x"] + 1
                    and abs(before.rect["y"] - after.rect["y"]) < 2
                )
                page["diff_png"] = diffs[0].screenshot_as_png
            seen.append(page)
        # the filter form, as a person uses it
        driver.get(base + "/changes")
        box = driver.find_element(By.NAME, "order")
        box.send_keys("200012")
        box.submit()
        found = driver.find_elements(By.CSS_SELECTOR, "#changes > .change")
        seen.append({"ids": [c.get_attribute("data-change") for c in found], "url": driver.current_url})
        return seen
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


async def test_the_changes_page_in_a_headless_browser(gateway_factory: Any, orderdesk_sandbox: Any) -> None:
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    gw = gateway_factory(overrides={"http.tokens": TOKENS, "http.changes_page": True})
    async with serve_http(gw) as base:
        for who, oid in (("alice", "200011"), ("bob", "200012")):
            async with _mcp(base, f"{who}-token-0123456789") as c:
                r = await c.call_tool(
                    "orders_update", {"order_id": oid, "changes": {"email": f"{who}@example.com"}}
                )
                assert not r.is_error, r.content[0].text
        async with _mcp(base, "owner-token-0123456789") as c:
            everything = (await c.call_tool("changes_list", {})).structured_content["changes"]
        by_caller = {e["caller"]: e["change_id"] for e in everything}
        async with aiohttp.ClientSession() as s, s.get(base + "/changes") as r:
            assert r.status == 401  # the same bearer auth as MCP
        owner_token, alice_token = "owner-token-0123456789", "alice-token-0123456789"
        alice, owner, by_order, alice_only, form = await asyncio.to_thread(
            _browse,
            base,
            [
                (alice_token, "/changes"),
                (owner_token, "/changes"),
                (owner_token, "/changes?order=200011"),
                (owner_token, "/changes?caller=bob"),
            ],
        )
    assert owner["ids"] == [by_caller["bob"], by_caller["alice"]]
    assert by_order["ids"] == [by_caller["alice"]] and alice_only["ids"] == [by_caller["bob"]]
    assert form["ids"] == [by_caller["bob"]] and "order=200012" in form["url"]
    assert alice["ids"] == [by_caller["alice"]]  # a caller without changes:all sees only its own
    assert "bob@example.com" in owner["text"] and "revertible" in owner["text"]
    assert owner["side_by_side"]
    # the diff rendered: its screenshot shows the before (red) and after (green) cells, and dark text
    pixels = _pixels(owner["diff_png"])
    reds = sum(1 for r, g, b in pixels if r > 240 and 215 < g < 235 and 215 < b < 235)
    greens = sum(1 for r, g, b in pixels if 215 < r < 235 and g > 240 and 215 < b < 235)
    dark = sum(1 for r, g, b in pixels if r + g + b < 200)
    assert reds > 500 and greens > 500 and dark > 50, (reds, greens, dark)
