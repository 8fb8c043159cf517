"""Issue 18, point 6, rollout by version: every reader shows one model version (FINSENT_MODEL_VERSION, else the
shipped default), never whichever version scored last.

On a database scored by two versions (tests/support/versions.py; the candidate's scores are the newer ones, which
the readers used to follow), each reader is read with each version pinned: the dashboard's queries, the monitor's
windows and buckets, the alert rules and their replay, the feed. A range scored only by the other version yields the
sentence naming both versions; the commands take the version from the setting, and an unknown one is one error line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from core.db import make_engine, make_session_factory, upgrade
from core.schema import WindowBucket
from dashboard import queries
from monitor.alerts import replay_history, run_evaluation
from monitor.feed import make_server
from monitor.rules import MonitorConfig
from monitor.windows import buckets_hold, rolling, update_buckets
from tests.support.versions import ACTIVE, CANDIDATE, OLD_DAYS, seed_two_versions

REPO = Path(__file__).resolve().parent.parent
T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # the recent stories lie in the hour before, in the 11:00 bucket
HOUR = T - timedelta(hours=1)
OLD = (T - timedelta(days=OLD_DAYS + 1), T - timedelta(days=OLD_DAYS - 1))  # only the candidate scored these days
BURST = MonitorConfig.model_validate(
    {"rule": [{"name": "burst", "type": "negative_burst", "window": "1h", "min_stories": 3, "min_confidence": 0.6,
               "for": "0s"}]}
)  # fmt: skip


@pytest.fixture
def two(migrated_engine):
    """(session factory, {headline: article id}) of the two-version database, on SQLite and on PostgreSQL."""
    ids = seed_two_versions(migrated_engine, T)
    return make_session_factory(migrated_engine), ids


def by_title(rows: list[dict]) -> dict[str, tuple[str, float, str]]:
    return {r["title"]: (r["label"], r["score"], r["model_version"]) for r in rows}


def test_dashboard_queries_show_the_version_they_are_given(two):
    factory, ids = two
    with factory() as s:
        news = {v: by_title(queries.latest_news(s, version=v, since=HOUR, limit=50)) for v in (ACTIVE, CANDIDATE)}
        nokia = {v: by_title(queries.search(s, version=v, text="nokia")) for v in (ACTIVE, CANDIDATE)}
        apple = {v: queries.sentiment_now(s, version=v, now=T, window_s=3600, key="AAPL") for v in (ACTIVE, CANDIDATE)}
        words = {v: queries.ticker_words(s, version=v, ticker="AAPL", since=HOUR, until=T) for v in (ACTIVE, CANDIDATE)}
        stories = queries.ticker_stories(s, version=CANDIDATE, ticker="NOK", since=HOUR, until=T)
        jpm = queries.article(s, version=CANDIDATE, article_id=ids["JPMorgan names new finance chief"])
        apple_a = queries.article(s, version=ACTIVE, article_id=ids["Apple cuts iPhone forecast"])
    # 9 recent stories by the active version (JPMorgan only by it), 8 by the candidate; never a mix.
    assert len(news[ACTIVE]) == 9 and len(news[CANDIDATE]) == 8
    assert {v for _, _, v in news[ACTIVE].values()} == {ACTIVE}
    assert {v for _, _, v in news[CANDIDATE].values()} == {CANDIDATE}
    assert news[ACTIVE]["Apple cuts iPhone forecast"] == ("negative", -0.8, ACTIVE)
    assert news[CANDIDATE]["Apple cuts iPhone forecast"] == ("neutral", 0.0, CANDIDATE)
    assert sorted(nokia[ACTIVE].values()) == [("positive", 0.75, ACTIVE)] * 3
    assert sorted(nokia[CANDIDATE].values()) == [("negative", -0.6, CANDIDATE)] * 3
    assert (apple[ACTIVE]["stories"], apple[ACTIVE]["share_negative"]) == (3, 1.0)
    assert apple[ACTIVE]["mean_score"] == pytest.approx(-0.8) and apple[ACTIVE]["version"] == ACTIVE
    assert (apple[CANDIDATE]["stories"], apple[CANDIDATE]["share_negative"]) == (3, 0.0)
    assert apple[CANDIDATE]["mean_score"] == pytest.approx(0.0)
    assert set(words[ACTIVE]["label"]) == {"negative"} and set(words[CANDIDATE]["label"]) == {"neutral"}
    assert [(r["label"], r["model_version"]) for r in stories] == [("negative", CANDIDATE)] * 3
    # The Explain page: the version's own verdict or none, never another version's in its place.
    assert jpm["score"] is None and [x["model_version"] for x in jpm["scores"]] == [ACTIVE]
    assert apple_a["score"]["label"] == "negative" and apple_a["score"]["model_version"] == ACTIVE


def test_a_range_scored_only_by_another_version_says_so(two):
    factory, _ = two
    with factory() as s:
        found = queries.search(s, version=ACTIVE, text="IBM", since=OLD[0], until=OLD[1])
        note = queries.version_note(s, version=ACTIVE, since=OLD[0], until=OLD[1])
        assert queries.search(s, version=CANDIDATE, text="IBM", since=OLD[0], until=OLD[1])  # the news is there
        assert queries.version_note(s, version=CANDIDATE, since=OLD[0], until=OLD[1]) is None
        assert queries.version_note(s, version=ACTIVE, since=HOUR, until=T) is None  # the version scored the hour
        assert queries.version_note(s, version=ACTIVE, since=T, until=T + timedelta(days=1)) is None  # no news
        series = queries.ticker_series(s, version=ACTIVE, tickers=["IBM"], since=OLD[0], until=OLD[1], window_s=3600)
    assert found == [] and series["series"]["stories"].sum() == 0
    assert note == (
        f"The news published {OLD[0]:%Y-%m-%d %H:%M} .. {OLD[1]:%Y-%m-%d %H:%M} UTC was scored only by {CANDIDATE}, "
        f"not by {ACTIVE}, the model version shown (FINSENT_MODEL_VERSION). Rescore it with `finsent rescore --model "
        f"{ACTIVE} --since {OLD[0]:%Y-%m-%dT%H:%M:%SZ} --until {OLD[1]:%Y-%m-%dT%H:%M:%SZ}`, or set "
        f"FINSENT_MODEL_VERSION={CANDIDATE} to show that version."
    )


def test_windows_and_stored_buckets_follow_the_version(two):
    factory, _ = two
    with factory() as s, s.begin():
        nok = {v: rolling(s, key="NOK", window_s=3600, now=T, version=v) for v in (ACTIVE, CANDIDATE)}
        assert update_buckets(s, windows=[3600], version=ACTIVE) > 0
        assert buckets_hold(s, ACTIVE) and not buckets_hold(s, CANDIDATE)
        market_a = queries.market_sentiment(s, version=ACTIVE, now=T, window_s=3600, buckets=2)
        # Buckets computed from the active version are not read for the candidate: its numbers come from its scores.
        market_b = queries.market_sentiment(s, version=CANDIDATE, now=T, window_s=3600, buckets=2)
        nok_bucket = select(WindowBucket.share_negative).where(WindowBucket.key == "NOK")
        before = s.scalars(nok_bucket).all()
        assert update_buckets(s, windows=[3600], version=ACTIVE) == 0  # nothing new
        assert update_buckets(s, windows=[3600], version=CANDIDATE) > 0  # another version: folded again
        assert buckets_hold(s, CANDIDATE) and not buckets_hold(s, ACTIVE)
        after = s.scalars(nok_bucket).all()
    assert (nok[ACTIVE].stories, nok[ACTIVE].share_negative) == (3, 0.0)
    assert nok[ACTIVE].mean_score == pytest.approx(0.75)
    assert (nok[CANDIDATE].stories, nok[CANDIDATE].share_negative) == (3, 1.0)
    assert nok[CANDIDATE].mean_score == pytest.approx(-0.6)
    assert before == [0.0] and after == [1.0]
    hour_a, hour_b = market_a.iloc[0], market_b.iloc[0]  # the complete 11:00 bucket
    assert (hour_a["origin"], hour_a["stories"], hour_a["share_negative"]) == ("stored", 9, pytest.approx(3 / 9))
    assert (hour_b["origin"], hour_b["stories"], hour_b["share_negative"]) == ("computed", 8, pytest.approx(3 / 8))


def feed_alerts(factory) -> dict[str, tuple[str, list[float]]]:
    """GET /alerts.json from a running feed server: {ticker: (status, evidence scores)}."""
    server = make_server(session_factory=factory, port=0)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        body = httpx.get(f"http://127.0.0.1:{server.server_address[1]}/alerts.json", timeout=10).json()
    finally:
        server.shutdown()
        server.server_close()
    return {a["ticker"]: (a["status"], [e["score"] for e in a["evidence"]]) for a in body["alerts"]}


def test_alert_rules_and_the_feed_follow_the_version(two):
    factory, _ = two
    run_evaluation(session_factory=factory, config=BURST, now=T, version=ACTIVE)
    assert feed_alerts(factory) == {"AAPL": ("firing", [-0.8, -0.8, -0.8])}
    # Pinned to the candidate: its verdicts decide, Apple's burst resolves and Nokia's fires, with its scores cited.
    run_evaluation(session_factory=factory, config=BURST, now=T + timedelta(seconds=1), version=CANDIDATE)
    assert feed_alerts(factory) == {"NOK": ("firing", [-0.6, -0.6, -0.6]), "AAPL": ("resolved", [-0.8, -0.8, -0.8])}
    with factory() as s:
        shown = queries.alerts(s, version=CANDIDATE, limit=10)
    nokia = next(a for a in shown if a["ticker"] == "NOK")
    assert [e["label"] for e in nokia["evidence"]] == ["negative"] * 3


def test_replay_follows_the_version_and_says_when_it_replayed_nothing_scored(two):
    factory, _ = two
    replay = {"session_factory": factory, "config": BURST, "step": timedelta(hours=1)}
    a = replay_history(since=HOUR, until=T, version=ACTIVE, **replay)
    b = replay_history(since=HOUR, until=T, version=CANDIDATE, **replay)
    old = replay_history(since=OLD[0], until=OLD[1], version=ACTIVE, **replay)
    assert (a.fired, a.resolved, a.evaluations) == (1, 0, 2)  # Apple's burst
    # Nokia's; Apple's (replayed on the active version over the same period) is replaced, not carried on
    assert (b.fired, b.resolved, b.evaluations, b.replaced) == (1, 0, 2, 1)
    assert (old.fired, old.evaluations) == (0, 49) and f"scored only by {CANDIDATE}, not by {ACTIVE}" in old.note


# ------------------------------------------------------------------------------------------ the commands


def finsent(*args: str, version: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    if version is not None:
        env["FINSENT_MODEL_VERSION"] = version
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=180,
                          env=env, cwd=REPO, stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture(scope="module")
def db_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('rollout') / 'two.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_two_versions(engine, T)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """BURST as a monitor TOML file."""
    path = tmp_path_factory.mktemp("rollout-config") / "burst.toml"
    path.write_text('[[rule]]\nname = "burst"\ntype = "negative_burst"\nwindow = "1h"\nmin_stories = 3\n'
                    'min_confidence = 0.6\nfor = "0s"\n')  # fmt: skip
    return path


def one_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def test_model_compare_reports_agreement_shifts_and_flips(db_url):
    out = finsent("model", "compare", "--candidate", CANDIDATE, "--json", "--database-url", db_url, version=ACTIVE)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["active"], report["candidate"]) == (ACTIVE, CANDIDATE)
    assert (report["compared"], report["agreed"], report["agreement"]) == (8, 2, 0.25)
    assert (report["only_active"], report["only_candidate"]) == (1, 4)  # JPMorgan; the old IBM day
    assert report["mean_score_change"] == pytest.approx((3 * 0.8 + 3 * -1.35 + 2 * -0.1) / 8)
    assert report["shift"]["negative"] == {"negative": 0, "neutral": 3, "positive": 0}
    assert report["shift"]["positive"] == {"negative": 3, "neutral": 0, "positive": 2}
    flips = [(f["title"].split()[0], f["active_label"], f["candidate_label"]) for f in report["flips"]]
    assert flips == [("Nokia", "positive", "negative")] * 3 + [("Apple", "negative", "neutral")] * 3

    text = finsent("model", "compare", "--candidate", CANDIDATE, "--since", (T - timedelta(days=1)).isoformat(),
                   "--examples", "2", "--database-url", db_url, version=ACTIVE)  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert "compared    8 articles scored by both" in text.stdout
    assert f"not compared  1 scored only by {ACTIVE}, 0 only by {CANDIDATE}" in text.stdout  # the range
    assert "agreement   25.0% (2 of 8; 6 labels change)" in text.stdout
    assert "mean change -0.231 (candidate - active)" in text.stdout
    assert "Nokia wins 5G deal in India" in text.stdout and "Apple cuts iPhone forecast" not in text.stdout


def test_replay_and_alerts_follow_the_setting(db_url, config):
    window = ("--since", HOUR.isoformat(), "--until", T.isoformat(), "--step", "1h", "--database-url", db_url)
    first = finsent("alerts", "replay", "--config", str(config), *window, version=ACTIVE)
    assert first.returncode == 0, first.stderr
    assert f"on {ACTIVE}: 1 alerts fired, 0 resolved" in first.stdout
    listed = json.loads(finsent("alerts", "list", "--json", "--database-url", db_url).stdout)
    assert [(a["ticker"], a["status"]) for a in listed] == [("AAPL", "firing")]
    second = finsent("alerts", "replay", "--config", str(config), *window, version=CANDIDATE)
    # The same period replayed again replaces the first replay's alerts: the candidate's history, not both mixed.
    assert f"on {CANDIDATE}: 1 alerts fired, 0 resolved" in second.stdout
    listed = json.loads(finsent("alerts", "list", "--json", "--database-url", db_url).stdout)
    assert [(a["ticker"], a["status"], a["evidence"][0]["score"]) for a in listed] == [("NOK", "firing", -0.6)]
    old = ("--since", OLD[0].isoformat(), "--until", OLD[1].isoformat(), "--step", "1d", "--database-url", db_url)
    nothing = finsent("alerts", "replay", "--config", str(config), *old, version=ACTIVE)
    assert nothing.returncode == 0 and "0 alerts fired" in nothing.stdout
    assert f"note: The news published {OLD[0]:%Y-%m-%d %H:%M}" in nothing.stdout
    assert f"scored only by {CANDIDATE}, not by {ACTIVE}" in nothing.stdout


def test_unknown_versions_are_one_error_line(db_url, config, tmp_path):
    window = ("--since", HOUR.isoformat(), "--until", T.isoformat(), "--database-url", db_url)
    line = one_error(finsent("alerts", "replay", "--config", str(config), *window, version="rollout-zzz"))
    assert line == (
        "error: FINSENT_MODEL_VERSION=rollout-zzz: no such model version: no checkpoint model/weights/rollout-zzz "
        f"here and no score by it in the database (versions with scores: {ACTIVE}, {CANDIDATE})"
    )
    line = one_error(finsent("model", "compare", "--candidate", "rollout-zzz", "--database-url", db_url,
                             version=ACTIVE))  # fmt: skip
    assert line.startswith("error: --candidate rollout-zzz: model version rollout-zzz has no scores in the database")
    assert "`finsent rescore --model rollout-zzz`" in line and CANDIDATE in line
    line = one_error(finsent("model", "compare", "--candidate", ACTIVE, "--database-url", db_url, version=ACTIVE))
    assert "is the active version itself" in line
    line = one_error(finsent("monitor", "--config", str(config), "--once", "--database-url", db_url, version="../x"))
    assert line.startswith("error: bad FINSENT_ setting: model_version:")
    # Scoring needs the checkpoint of the version the readers show: the candidate's scores were made elsewhere.
    news = tmp_path / "news.csv"
    news.write_text("headline,published_at\nApple beats estimates,2026-03-02T10:00:00Z\n")
    line = one_error(finsent("backfill", str(news), "--database-url", db_url, version=CANDIDATE))
    assert line == (
        f"error: FINSENT_MODEL_VERSION={CANDIDATE}: no checkpoint model/weights/{CANDIDATE} here for the scoring "
        "workers: put it there, or pass --checkpoint"
    )


def test_a_rescore_with_the_version_the_buckets_hold_has_them_folded_again(tmp_path, tiny_checkpoint):
    """Filling a range with the shown version's scores (what the message advises) must reach the monitor's buckets,
    though no new article arrived: the rescore marks them stale, the dashboard stops reading them, the next fold
    recomputes them."""
    from model.scorer import load_network

    version = load_network(tiny_checkpoint)[1]["version"]
    url = f"sqlite:///{tmp_path / 'rescore.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_two_versions(engine, T)
    factory = make_session_factory(engine)
    ibm = select(WindowBucket.stories).where(WindowBucket.key == "IBM")
    with factory() as s, s.begin():
        update_buckets(s, windows=[86400], version=version)  # nothing scored by it yet: no stories anywhere
        assert buckets_hold(s, version) and s.scalars(ibm).all() == [0]
    out = finsent("rescore", "--model", str(tiny_checkpoint), "--database-url", url)
    assert out.returncode == 0, out.stderr
    assert f"scored 13 articles with {version}" in out.stdout
    assert f"the monitor's buckets of {version} are folded again at its next evaluation" in out.stdout
    with factory() as s, s.begin():
        assert not buckets_hold(s, version)
        assert update_buckets(s, windows=[86400], version=version) > 0 and s.scalars(ibm).all() == [4]
    engine.dispose()
