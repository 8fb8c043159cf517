"""A real headless Chromium (Debian's package, driven by Playwright; no browser download) loads the running dashboard,
visits every page, checks key elements, and saves screenshots to tests/artifacts/. A hostile headline must show
as text and run nothing."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dashboard.conftest import HOSTILE

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGES = [("", "Live news"), ("ticker", "Ticker"), ("alerts", "Alerts"), ("explain", "Explain"),
         ("model", "Model card"), ("search", "Search")]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(seeded, tmp_path_factory):
    """`finsent dashboard` on a free port against the seeded database."""
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "dashboard", "--port", str(port), "--database-url", seeded.url],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not start within 60 s"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: `make browser` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_every_page_renders_in_a_real_browser(dashboard, browser, seeded):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path, title in PAGES:
        page.goto(f"{dashboard}/{path}", wait_until="domcontentloaded")
        page.get_by_role("heading", name=title).first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)  # let fragments and charts draw before the screenshot
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{path or 'live'}.png"), full_page=True)
        text = page.inner_text("body")
        assert "Traceback" not in text and "Page not found" not in text, path
    # The live page lists the hostile headline as text; nothing from it ran (no alert dialog, no injected element).
    page.goto(f"{dashboard}/", wait_until="domcontentloaded")
    page.get_by_text("Corp falls").first.wait_for(timeout=30_000)
    body = page.inner_text("body")
    assert "<script>alert(1)</script>" in body and "onerror=alert(1)" in body
    assert page.locator("img[src=x]").count() == 0
    assert dialogs == []
    page.close()


def test_search_page_finds_a_headline(dashboard, browser):
    page = browser.new_page()
    page.goto(f"{dashboard}/search", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Search").first.wait_for(timeout=30_000)
    box = page.get_by_role("textbox").first
    box.fill("Corp falls")
    box.press("Enter")
    page.get_by_text("Corp falls").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-search-result.png"), full_page=True)
    assert HOSTILE.split()[0] in page.inner_text("body")
    page.close()
