"""A real headless Chromium (Debian's package, driven by Playwright; no browser download) loads the running dashboard,
visits every page, checks key elements, and saves screenshots to tests/artifacts/. A hostile headline must show
as text and run nothing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core.db import make_engine
from core.schema import AlertEvidence, Article, Attribution, Mention, Score, Source
from dashboard.auth import PASSWORD_ENV
from tests.dashboard.conftest import HOSTILE, VERSION

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGES = [("", "Live news"), ("live", "Live news"), ("ticker", "Ticker"), ("alerts", "Alerts"), ("explain", "Explain"),
         ("model", "Model card"), ("search", "Search")]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LONG_WORD = ("Megacorp" * 120)[:900]  # issue 17, D8: one such word made the tables 7,337 px wide
LONG_TITLE = f"Acme {LONG_WORD} shares plunge"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Database:
    url: str
    ids: dict[str, int]
    long_word: int  # the article whose headline holds LONG_WORD


def add_long_word_article(url: str, now, *, alert_id: int) -> int:
    """A negative NOK headline with LONG_WORD as its top attended word, cited as evidence by `alert_id`."""
    engine = make_engine(url)
    start = LONG_TITLE.index(LONG_WORD)
    with Session(engine) as session, session.begin():
        source = session.query(Source).filter_by(name="desk").one()
        published = now - timedelta(seconds=30)  # the newest item: the first row of the Live page
        article = Article(
            source_id=source.id, external_id="long-word", url="https://news.example.com/desk/long", title=LONG_TITLE,
            body=f"{LONG_TITLE}. More details in the full story.", published_at=published, ingested_at=published,
            content_hash="long-word", is_first_of_story=True, similar_before=0,
        )  # fmt: skip
        session.add(article)
        session.flush()
        article.story_id = article.id
        session.add(Mention(article_id=article.id, ticker="NOK", published_at=published, relevance=1.0,
                            in_headline=True))  # fmt: skip
        score = Score(
            article_id=article.id, model_version=VERSION, label="negative", p_negative=0.9, p_neutral=0.06,
            p_positive=0.04, score=-0.86, confidence=0.9, scored_at=published, latency_ms=120.0,
        )  # fmt: skip
        session.add(score)
        session.flush()
        session.add(Attribution(score_id=score.id, method="pooling", rank=1, word=LONG_WORD, weight=0.5, start=start,
                                end=start + len(LONG_WORD)))  # fmt: skip
        session.add(AlertEvidence(alert_id=alert_id, article_id=article.id, score=-0.86,
                                  words=json.dumps([[LONG_WORD, 0.5]])))  # fmt: skip
        article_id = article.id
    engine.dispose()
    return article_id


@pytest.fixture(scope="module")
def database(seeded, tmp_path_factory) -> Database:
    """A copy of the seeded database with the long-word article added."""
    path = tmp_path_factory.mktemp("browser") / "browser.db"
    with sqlite3.connect(seeded.path) as source, sqlite3.connect(path) as target:
        source.backup(target)
    url = f"sqlite:///{path}"
    return Database(
        url=url, ids=seeded.ids, long_word=add_long_word_article(url, seeded.now, alert_id=seeded.ids["alert:firing"])
    )


@contextmanager
def serve(url: str, log: Path, **env: str):
    """`finsent dashboard` on a free port against `url`, with these FINSENT_* variables; yields its base URL."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")} | env
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "dashboard", "--port", str(port), "--database-url", url],
            stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=REPO,
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
def dashboard(database, tmp_path_factory):
    """`finsent dashboard` on a free port against the seeded database (and the long-word article)."""
    with serve(database.url, tmp_path_factory.mktemp("streamlit") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def gated_dashboard(database, tmp_path_factory):
    """The same, behind FINSENT_DASHBOARD_PASSWORD."""
    with serve(database.url, tmp_path_factory.mktemp("streamlit") / "gated.log", **{PASSWORD_ENV: PASSWORD}) as url:
        yield url


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
        assert page.get_by_role("button", name="Deploy").count() == 0, path  # a minimal toolbar for analysts
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


def log_in(page, password: str = PASSWORD) -> None:
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_why_keeps_the_session_behind_a_password(gated_dashboard, browser, database):
    """Issue 17, D7: each "why?" link loaded a new page, a new session: the login again, then the Live page."""
    apple = database.ids["Apple beats quarterly revenue estimates on iPhone demand"]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{gated_dashboard}/", wait_until="domcontentloaded")
    log_in(page)
    page.get_by_role("heading", name="Live news").first.wait_for(timeout=30_000)
    page.locator(f'tr.fs-row[data-article="{apple}"]').get_by_role("link", name="why?").click()
    page.get_by_role("heading", name="Explain").first.wait_for(timeout=30_000)
    explained = page.locator(".fs-explain").first
    explained.wait_for(timeout=30_000)
    assert explained.inner_text() == "Apple beats quarterly revenue estimates on iPhone demand"
    assert page.url.endswith(f"/explain?article={apple}")
    assert page.get_by_label("Password", exact=True).count() == 0  # still logged in
    assert page.get_by_role("button", name="Log out").count() == 1
    # The same link from the Alerts page's evidence, and back with the browser: still the same session.
    nokia = database.ids["Nokia shares plunge after profit warning"]
    page.get_by_role("link", name="Alerts").click()
    page.get_by_role("heading", name="Alerts").first.wait_for(timeout=30_000)
    page.locator(f'tr.fs-evidence[data-article="{nokia}"]').first.get_by_role("link", name="why?").click()
    page.locator(".fs-explain", has_text="Nokia shares plunge after profit warning").wait_for(timeout=30_000)
    page.go_back()
    page.get_by_role("heading", name="Alerts").first.wait_for(timeout=30_000)
    assert page.get_by_label("Password", exact=True).count() == 0
    page.close()


def test_a_why_link_opened_in_a_new_tab_asks_for_the_password_then_shows_that_item(gated_dashboard, browser, database):
    """A new tab is a new session: the login form and nothing else, then the article asked for, not the Live page."""
    apple = database.ids["Apple beats quarterly revenue estimates on iPhone demand"]
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{gated_dashboard}/explain?article={apple}", wait_until="domcontentloaded")
    page.get_by_label("Password", exact=True).wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    assert "Apple" not in page.inner_text("body") and page.locator(".fs-explain").count() == 0
    log_in(page, "wrong")
    page.get_by_text("Wrong password.").wait_for(timeout=30_000)
    assert page.locator(".fs-explain").count() == 0
    log_in(page)
    page.locator(".fs-explain").first.wait_for(timeout=30_000)
    assert page.locator(".fs-explain").first.inner_text() == "Apple beats quarterly revenue estimates on iPhone demand"
    assert page.url.endswith(f"/explain?article={apple}")
    context.close()


# Widths of the page's main area and of the long-word row's label badge, as the browser laid them out.
MEASURE = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const labels = [...document.querySelectorAll('tr[data-article="ID"] .fs-label')];
    return {
        window: window.innerWidth,
        document: document.scrollingElement.scrollWidth,
        main: main.scrollWidth,
        mainVisible: main.clientWidth,
        labels: labels.map((e) => e.getBoundingClientRect().right),
        explain: [...document.querySelectorAll('.fs-explain, .fs-meta')].map((e) => e.scrollWidth - e.clientWidth),
    };
}"""


def test_a_900_character_word_keeps_every_page_within_the_window(dashboard, browser, database):
    """Issue 17, D8: the word made the Live, Ticker and Search tables 7,337 px wide; label, score and story
    columns went off-screen for every row. Each page that shows headlines or words now fits the window."""
    article = database.long_word
    page = browser.new_page(viewport={"width": 1400, "height": 1000})

    def fits(name: str, *, rows: bool = True) -> None:
        page.wait_for_timeout(1000)  # let the tables and charts settle
        page.screenshot(path=str(ARTIFACTS / f"dashboard-long-word-{name}.png"))
        m = page.evaluate(MEASURE.replace("ID", str(article)))
        assert m["document"] <= m["window"] + 2 and m["main"] <= m["mainVisible"] + 2, (name, m)
        if rows:  # the label of the long-word row is on screen
            assert m["labels"] and all(0 < right <= m["window"] for right in m["labels"]), (name, m)
        assert all(extra <= 2 for extra in m["explain"]), (name, m)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, path in [("live", ""), ("ticker", "ticker?ticker=NOK"), ("alerts", "alerts")]:
        page.goto(f"{dashboard}/{path}", wait_until="domcontentloaded")
        page.locator(f'tr[data-article="{article}"]').first.wait_for(timeout=30_000)
        fits(name)
    page.goto(f"{dashboard}/search", wait_until="domcontentloaded")
    box = page.get_by_role("textbox").first
    box.fill("Megacorp")
    box.press("Enter")
    page.locator(f'tr[data-article="{article}"]').first.wait_for(timeout=30_000)
    fits("search")
    page.goto(f"{dashboard}/explain?article={article}", wait_until="domcontentloaded")
    page.locator(".fs-explain").first.wait_for(timeout=30_000)
    page.get_by_text("Body").first.click()  # the body, with the word, in its expander
    page.get_by_text("More details in the full story").first.wait_for(timeout=30_000)
    fits("explain", rows=False)
    page.close()


@pytest.fixture(scope="module")
def backfilled_2020(tmp_path_factory):
    """What an analyst has after `finsent backfill` of March 2020 from the bundled sample and `finsent alerts
    replay` over it: real scores, mentions, stories and replayed alerts with their evidence."""
    folder = tmp_path_factory.mktemp("walk")
    url = f"sqlite:///{folder / 'history.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")} | {"FINSENT_DATABASE_URL": url}
    for args in (
        ["backfill", str(REPO / "ingest" / "samples" / "news_sample.csv"), "--since", "2020-03-01", "--until",
         "2020-04-01"],
        ["alerts", "replay", "--config", str(REPO / "monitor.example.toml"), "--since", "2020-03-01", "--until",
         "2020-04-01", "--step", "1h"],
    ):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env,
                              cwd=folder, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
    with serve(url, folder / "streamlit.log") as base:
        yield base


def test_the_analyst_walks_a_2020_event(backfilled_2020, browser):
    """Issue 22: pick a ticker, set a 2020 range, see its series, open the stories behind a point, open an alert's
    evidence; a screenshot at each step (tests/artifacts/walk-*.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})

    def shot(name: str) -> str:
        page.wait_for_timeout(1500)  # charts and tables settle
        page.screenshot(path=str(ARTIFACTS / f"walk-{name}.png"), full_page=True)
        text = page.inner_text("body")
        assert "Traceback" not in text and "Page not found" not in text, name
        return text

    page.goto(f"{backfilled_2020}/ticker", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Ticker").first.wait_for(timeout=30_000)
    # Pick a ticker: AAPL, typed into the ticker list (its news is years older than the default period).
    tickers = page.locator(".st-key-tickers input").first
    tickers.click()
    page.keyboard.press("Backspace")  # the pre-chosen most-mentioned ticker goes
    tickers.fill("AAPL")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")  # close the list
    # Set a 2020 range: the period picker's "Date range", its two dates typed in.
    period = page.locator(".st-key-period input").first
    period.click()
    period.fill("Date range")
    page.keyboard.press("Enter")
    dates = page.locator(".st-key-period_range [role=spinbutton]")  # year, month, day of each end
    dates.first.wait_for(timeout=30_000)
    dates.nth(0).click()
    page.keyboard.type("20200301")
    dates.nth(3).click()
    page.keyboard.type("20200331")
    page.keyboard.press("Escape")
    page.get_by_role("heading", name="Ticker").first.click()  # leave the field: the range is committed
    page.get_by_text("Stories · 2020-03-01 to 2020-03-31").first.wait_for(timeout=30_000)
    page.get_by_text("alerts fired in this period").first.wait_for(timeout=30_000)
    text = shot("1-series")
    assert "Rolling sentiment and volume" in text and "Story volume" in text and "No stored news mentions" not in text
    assert "since=2020-03-01" in page.url and "until=2020-03-31" in page.url and "ticker=AAPL" in page.url
    # The stories behind one point: the newest bucket with AAPL news.
    whole = page.locator("tr.fs-row").count()
    page.locator(".st-key-bucket input").first.click()
    page.keyboard.press("ArrowDown")  # opens the list of hours with AAPL news, newest first
    newest = page.get_by_role("option").nth(1)
    hour = newest.inner_text()
    newest.click()
    page.get_by_text("articles about AAPL").first.wait_for(timeout=30_000)
    page.wait_for_timeout(2000)
    shot("2-stories")
    assert page.locator(".st-key-bucket input").first.input_value() == hour
    assert 1 <= page.locator("tr.fs-row").count() < whole  # that hour's stories, not the whole month's
    # An alert's evidence: the replayed history of March 2020 on the Alerts page.
    page.goto(f"{backfilled_2020}/alerts", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Alerts").first.wait_for(timeout=30_000)
    page.get_by_text("Include replayed history").first.click()
    replayed = page.locator("summary", has_text="REPLAYED").first
    replayed.wait_for(timeout=30_000)
    replayed.click()  # opens the newest replayed alert (resolved ones start closed)
    page.locator("details[open]", has_text="REPLAYED").get_by_text("Evidence:").first.wait_for(timeout=30_000)
    text = shot("3-alert-evidence")
    assert page.locator(".fs-evidence").count() >= 1
    page.close()
