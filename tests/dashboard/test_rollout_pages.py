"""The dashboard pages with FINSENT_MODEL_VERSION pinned, run by AppTest on a database two versions scored
(tests/support/versions.py): the pages show the pinned version's verdicts, say so when the dates asked for were
scored only by the other version, and refuse an unknown version with one message instead of empty pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.db import make_engine, upgrade
from dashboard.render import md_escape
from tests.support.versions import ACTIVE, CANDIDATE, OLD_DAYS, seed_two_versions

from .conftest import VERSION


@pytest.fixture
def two_versions(tmp_path) -> str:
    """A SQLite file scored by both versions, relative to the wall clock (the pages' date inputs are)."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_two_versions(engine, datetime.now(UTC).replace(microsecond=0))
    engine.dispose()
    return url


def test_search_shows_the_pinned_version_and_names_the_other_for_dates_only_it_scored(two_versions, app, monkeypatch):
    labels = {}
    for version in (ACTIVE, CANDIDATE):
        monkeypatch.setenv("FINSENT_MODEL_VERSION", version)
        at = app(two_versions, page="search")
        at.text_input(key="q").set_value("nokia").run()
        labels[version] = at.dataframe[0].value["label"].tolist()
    assert labels == {ACTIVE: ["positive"] * 3, CANDIDATE: ["negative"] * 3}

    monkeypatch.setenv("FINSENT_MODEL_VERSION", ACTIVE)
    at = app(two_versions, page="search")
    at.text_input(key="q").set_value("IBM").run()
    assert "No headline matches IBM" in at.info[0].value  # the last 30 days: the active version scored news there
    today = datetime.now(UTC).date()
    at.date_input(key="dates").set_value((today - timedelta(days=OLD_DAYS + 1), today - timedelta(days=OLD_DAYS - 1)))
    at.run()
    assert not at.info and not at.dataframe
    (warning,) = at.warning
    # Markdown-escaped, so that it shows as typed.
    assert md_escape(f"scored only by {CANDIDATE}, not by {ACTIVE}, the model version shown") in warning.value
    assert md_escape(f"finsent rescore --model {ACTIVE} --since") in warning.value
    assert md_escape(f"or set FINSENT_MODEL_VERSION={CANDIDATE} to show that version.") in warning.value


def test_explain_shows_no_other_versions_verdict(two_versions, app, monkeypatch):
    monkeypatch.setenv("FINSENT_MODEL_VERSION", CANDIDATE)
    at = app(two_versions, page="explain", query={"article": "9"})  # JPMorgan: scored only by the active version
    assert not at.metric
    assert md_escape(f"scored only by {ACTIVE}, not by {CANDIDATE}") in at.warning[0].value


def test_an_unknown_version_is_one_message_not_empty_pages(two_versions, app, monkeypatch):
    monkeypatch.setenv("FINSENT_MODEL_VERSION", "rollout-zzz")
    at = app(two_versions)
    (error,) = at.error
    assert md_escape("rollout-zzz: no such model version") in error.value and not at.dataframe and not at.metric
    monkeypatch.setenv("FINSENT_MODEL_VERSION", "../weights")
    at = app(two_versions)
    assert md_escape("bad FINSENT_ setting: model_version") in at.error[0].value


def test_live_page_with_the_default_names_the_versions_that_scored_the_news(two_versions, app, monkeypatch):
    """FINSENT_MODEL_VERSION unset: the shipped version, which scored nothing here; the page says who did."""
    monkeypatch.delenv("FINSENT_MODEL_VERSION", raising=False)
    at = app(two_versions)  # the Live page
    assert not at.info and not at.html
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 2  # the news list and the market chart, each for its own range
    assert all(md_escape(f"scored only by {ACTIVE}, {CANDIDATE}, not by {VERSION}") in w for w in warnings)
