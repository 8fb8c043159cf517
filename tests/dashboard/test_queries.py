"""dashboard.queries against the seeded database, on SQLite and on PostgreSQL (the SQL differs per dialect)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from core.db import make_engine
from core.schema import WindowBucket
from dashboard import queries
from monitor.windows import aggregate_sql, rolling

from .conftest import HOSTILE, ITEMS, VERSION, Seeded, seed, stories_in_buckets


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)],
)
def db(request, seeded):
    """(engine, seeded) on the shared SQLite file, or on a throw-away PostgreSQL database seeded the same way."""
    if request.param == "sqlite":
        engine = make_engine(seeded.url)
        yield engine, seeded
        engine.dispose()
        return
    from tests.conftest import POSTGRES_SERVER, _maintenance_connection

    name = f"finsent_test_{uuid.uuid4().hex[:12]}"
    with _maintenance_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES_SERVER}/{name}"
    try:
        ids = seed(url, seeded.now)
        engine = make_engine(url)
        yield engine, Seeded(url=url, path=None, now=seeded.now, ids=ids)
        engine.dispose()
    finally:
        with _maintenance_connection() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def titles(rows) -> list[str]:
    return [r["title"] for r in rows]


def test_latest_news_rows(db):
    engine, s = db
    with Session(engine) as session:
        rows = queries.latest_news(session, version=VERSION, limit=10)
        everything = queries.latest_news(session, version=VERSION, limit=500)
    assert len(rows) == 10 and len(everything) == len(ITEMS)
    assert titles(rows)[:3] == [
        "Nokia shares plunge after a profit warning",
        "Nokia shares plunge after profit warning",
        "Apple beats quarterly revenue estimates on iPhone demand",
    ]
    assert [r["published_at"] for r in rows] == sorted((r["published_at"] for r in rows), reverse=True)
    dup, first = rows[0], rows[1]
    assert dup["source"] == "cnbc" and dup["tickers"] == ["NOK"] and dup["label"] == "negative"
    assert not dup["is_first_of_story"] and dup["story_id"] == first["article_id"] and dup["similar_before"] == 1
    assert first["is_first_of_story"] and first["story_id"] == first["article_id"]
    assert dup["confidence"] == pytest.approx(0.91) and dup["score"] == pytest.approx(0.09 * 0.3 - 0.91)
    assert sum(dup["probabilities"].values()) == pytest.approx(1.0)
    for row in everything:  # stored offsets index into the headline
        assert row["words"] and all(row["title"][w["start"] : w["end"]] == w["word"] for w in row["words"])
    assert [w["word"] for w in first["words"]] == ["plunge", "warning", "profit"]
    hostile = next(r for r in everything if r["title"] == HOSTILE)
    assert hostile["tickers"] == ["EVIL"] and hostile["source"] == "desk"


def test_latest_news_filters(db):
    engine, s = db
    with Session(engine) as session:
        apple = queries.latest_news(session, version=VERSION, limit=100, tickers=["aapl"])
        two = queries.latest_news(
            session, version=VERSION, limit=100, tickers=["NOK", "MSFT"], since=s.now - timedelta(days=1)
        )
        cnbc_negative = queries.latest_news(session, version=VERSION, limit=100, sources=["cnbc"], labels=["negative"])
        confident = queries.latest_news(session, version=VERSION, limit=100, min_confidence=0.93)
        both = queries.latest_news(session, version=VERSION, limit=7, tickers=["AAPL", "MSFT"])
    assert titles(apple) == [i.title for i in sorted(ITEMS, key=lambda i: i.minutes_ago) if "AAPL" in i.tickers]
    assert len(apple) == 6
    assert titles(two) == [
        "Nokia shares plunge after a profit warning",
        "Nokia shares plunge after profit warning",
        "Microsoft to acquire gaming studio for $7.5 billion",
        "Apple and Microsoft shares flat in early trade",
    ]
    assert titles(cnbc_negative) == [
        "Nokia shares plunge after a profit warning",
        "Intel misses earnings estimates, shares slide",
        "IBM profit warning rattles investors",
    ]
    assert sorted(r["confidence"] for r in confident) == [0.93, 0.94, 0.95]
    # An article about both tickers is listed once, and the limit still holds all seven articles.
    assert titles(both) == [
        i.title for i in sorted(ITEMS, key=lambda i: i.minutes_ago) if {"AAPL", "MSFT"} & set(i.tickers)
    ]
    assert len(both) == 7 and both[4]["tickers"] == ["AAPL", "MSFT"]


def test_search(db):
    engine, s = db
    with Session(engine) as session:

        def find(text, **kw):
            return titles(queries.search(session, version=VERSION, text=text, **kw))

        assert find("profit warning") == [
            "Nokia shares plunge after a profit warning",
            "Nokia shares plunge after profit warning",
            "IBM profit warning rattles investors",
        ]
        assert find("PROFIT Warning", since=s.now - timedelta(days=2)) == find("profit warning")[:2]
        assert find('"after a profit"') == ["Nokia shares plunge after a profit warning"]
        assert find("8%") == ["Disney parks revenue rises 8%"]  # % is a character, not a wildcard
        assert find("_") == [] and find("%") == ["Disney parks revenue rises 8%", "Oracle cloud revenue jumps 20%"]
        assert find("<script>") == [HOSTILE]
        assert find("Nokia", until=s.now - timedelta(days=1)) == ["Nokia wins 5G contract in Japan"]
        assert find("apple", tickers=["MSFT"]) == ["Apple and Microsoft shares flat in early trade"]
        assert find("apple", labels=["negative"]) == ["Apple faces EU antitrust fine over App Store"]
        assert len(queries.search(session, version=VERSION, text="e", limit=3)) == 3


def test_market_series_matches_the_monitor(db):
    """Buckets computed in SQL equal the monitor's stored buckets; complete buckets are read, not recomputed."""
    engine, s = db
    with Session(engine) as session:
        series = queries.market_sentiment(session, version=VERSION, now=s.now, window_s=900, buckets=96)
        assert len(series) == 96 and series["bucket_start"].is_monotonic_increasing
        assert series["items"].sum() == sum(1 for i in ITEMS if i.minutes_ago < 24 * 60 - 15)
        assert series.iloc[-1]["origin"] == "computed"  # the bucket in progress
        assert (series[series["items"] > 0].iloc[:-1]["origin"] == "stored").all()
        hour = queries.market_sentiment(session, version=VERSION, now=s.now, window_s=3600, buckets=24)
        computed = aggregate_sql(
            session=session, keys=["*"], start=s.now - timedelta(days=2), end=s.now, window_s=3600, version=VERSION
        )
        stored = {
            int(b.bucket_start.timestamp()): b
            for b in session.query(WindowBucket).filter(WindowBucket.key == "*", WindowBucket.window_s == 3600)
        }
        both = set(computed) & {("*", e) for e in stored}
        assert len(both) >= 10
        for key, epoch in both:
            b, c = stored[epoch], computed[(key, epoch)]
            assert (c["items"], c["stories"]) == (b.items, b.stories)
            assert c["mean_score"] == pytest.approx(b.mean_score)
            assert (c["share_negative"], c["share_positive"]) == pytest.approx((b.share_negative, b.share_positive))
        now = queries.sentiment_now(session, version=VERSION, now=s.now, window_s=3600)
        exact = rolling(session, key="*", window_s=3600, now=s.now, version=VERSION)
    assert (now["items"], now["stories"]) == (exact.items, exact.stories) == (7, 6)  # one near-duplicate
    assert now["mean_score"] == pytest.approx(exact.mean_score)
    assert now["share_negative"] == pytest.approx(exact.share_negative)
    assert series["stories"].sum() == stories_in_buckets(s.now, window_s=900, buckets=96)
    assert hour["stories"].sum() == stories_in_buckets(s.now, window_s=3600, buckets=24)


def test_a_story_split_by_a_bucket_edge_counts_in_both_buckets(tmp_path):
    """Seeded 4.5 minutes past a quarter hour, the Nokia pair (5 and 4 minutes old) straddles a 15-minute edge."""
    quarter = datetime.now(UTC).replace(minute=15, second=0, microsecond=0) - timedelta(hours=1)
    now = quarter + timedelta(minutes=4, seconds=30)
    url = f"sqlite:///{tmp_path / 'edge.db'}"
    seed(url, now)
    engine = make_engine(url)
    with Session(engine) as session:
        quarters = queries.market_sentiment(session, version=VERSION, now=now, window_s=900, buckets=96)
        hours = queries.market_sentiment(session, version=VERSION, now=now, window_s=3600, buckets=24)
    engine.dispose()
    in_the_day = {i.duplicate_of or i.title for i in ITEMS if i.minutes_ago < 24 * 60 - 15}
    assert quarters["stories"].sum() == stories_in_buckets(now, window_s=900, buckets=96) == len(in_the_day) + 1
    assert hours["stories"].sum() == stories_in_buckets(now, window_s=3600, buckets=24) == len(in_the_day)
    assert quarters["stories"].iloc[-2:].tolist() == [2, 1]  # Apple and the pair's first article; its second


def test_series_without_stored_buckets_are_computed(seeded, tmp_path):
    """With no window_buckets (no monitor running), the same series comes from SQL aggregation alone."""
    import sqlite3

    path = tmp_path / "nobuckets.db"
    with sqlite3.connect(seeded.path) as source, sqlite3.connect(path) as target:
        source.backup(target)
    engine = make_engine(f"sqlite:///{path}")
    with Session(make_engine(seeded.url)) as session:
        with_buckets = queries.market_sentiment(session, version=VERSION, now=seeded.now, window_s=900, buckets=96)
    with Session(engine) as session:
        session.execute(delete(WindowBucket))
        session.commit()
        without = queries.market_sentiment(session, version=VERSION, now=seeded.now, window_s=900, buckets=96)
    engine.dispose()
    assert (without["origin"] == "computed").all()
    assert without["stories"].tolist() == with_buckets["stories"].tolist()
    assert without["mean_score"].fillna(9).tolist() == pytest.approx(with_buckets["mean_score"].fillna(9).tolist())


def test_ticker_series_stories_and_words(db):
    engine, s = db
    # Whole hours, so the day is 25 buckets whatever the minute the seed was made at (the edge of the last
    # minute of an hour once made it 26).
    hour = s.now.replace(minute=0, second=0)
    since, until = hour - timedelta(days=1), hour + timedelta(hours=1)
    # The Nokia pair is 5 and 4 minutes old: a seed made in the fifth minute of an hour puts an hour's edge
    # between them, and each bucket then holds one copy of the story.
    nok_split = (s.now - timedelta(minutes=5)).hour != (s.now - timedelta(minutes=4)).hour
    with Session(engine) as session:
        data = queries.ticker_series(
            session, version=VERSION, tickers=["AAPL", "nok"], since=since, until=until, window_s=3600
        )
        stories = queries.ticker_stories(
            session, version=VERSION, ticker="NOK", since=s.now - timedelta(days=7), until=until
        )
        words = queries.ticker_words(
            session, version=VERSION, ticker="NOK", since=s.now - timedelta(days=7), until=until
        )
        apple_words = queries.ticker_words(session, version=VERSION, ticker="AAPL", since=since, until=until, top=2)
    series = data["series"]
    assert set(series["ticker"]) == {"AAPL", "NOK"} and len(series) == 2 * 25
    assert series.groupby("ticker")["stories"].sum().to_dict() == {"AAPL": 6, "NOK": 2 if nok_split else 1}
    assert series.groupby("ticker")["items"].sum().to_dict() == {"AAPL": 6, "NOK": 2}  # a story of two copies
    nok = series[(series["ticker"] == "NOK") & (series["stories"] > 0)].iloc[0]
    first_copy, second_copy = 0.07 * 0.3 - 0.93, 0.09 * 0.3 - 0.91
    if nok_split:  # the older copy alone in its bucket
        assert nok["mean_score"] == pytest.approx(first_copy)
    else:  # one story of two copies: its score is their mean, the story counted once
        assert nok["mean_score"] == pytest.approx((first_copy + second_copy) / 2)
    alerts = data["alerts"]
    assert alerts[["ticker", "rule", "status"]].values.tolist() == [
        ["AAPL", "volume_spike", "resolved"],
        ["NOK", "negative_burst", "firing"],
    ]  # by the time they fired; the pending EVIL alert never fired and is no marker
    assert titles(stories) == [
        "Nokia shares plunge after a profit warning",
        "Nokia shares plunge after profit warning",
        "Nokia wins 5G contract in Japan",
    ]
    assert stories[0]["relevance"] == 1.0
    negative = words[words["label"] == "negative"].set_index("word")
    assert negative.loc["plunge", "weight"] == pytest.approx(0.41) and negative.loc["plunge", "count"] == 1
    assert set(words[words["label"] == "positive"]["word"]) == {"wins", "contract", "5g"}
    assert apple_words.groupby("label").size().to_dict() == {"negative": 2, "neutral": 2, "positive": 2}
    top_positive = apple_words[apple_words["label"] == "positive"]
    assert top_positive["word"].tolist()[0] == "upgrades"  # 0.5, the heaviest positive word over Apple's stories


def test_pipeline_status(db):
    engine, s = db
    with Session(engine) as session:
        status = queries.pipeline_status(session, now=s.now)
    assert status["items_last_15m"] == 3 and status["rate_per_min"] == pytest.approx(0.2)
    assert status["items_per_minute"]["items"].sum() == 3 and len(status["items_per_minute"]) == 15
    assert status["last_item_age_s"] == pytest.approx(4 * 60 - 0.4, abs=0.01)
    assert status["rejects_last_hour"] == 3
    assert status["rejects_by_stage"] == [{"stage": "decode", "count": 2}, {"stage": "normalize", "count": 1}]
    health = {r["source"]: r["status"] for r in status["sources"]}
    assert health == {"benzinga": "ok", "cnbc": "error", "desk": "ok", "sec-filings": "no data yet"}
    assert status["scored_last_15m"] == 3 and status["mean_latency_ms"] > 150


def test_alerts_and_silences(db):
    engine, s = db
    with Session(engine) as session:
        found = queries.alerts(
            session, version=VERSION, statuses=["pending", "firing", "resolved"], limit=10, now=s.now
        )
        firing = queries.alerts(session, version=VERSION, statuses=["firing"], limit=10, now=s.now)
        active = queries.silences(session, now=s.now, include_expired=False)
        every = queries.silences(session, now=s.now)
    assert [a["status"] for a in found] == ["pending", "firing", "resolved"]  # most recently changed first
    [alert] = firing
    assert alert["rule"] == "negative_burst" and alert["ticker"] == "NOK" and alert["labels"]["severity"] == "critical"
    assert [e["title"] for e in alert["evidence"]] == [
        "Nokia shares plunge after a profit warning",
        "Nokia shares plunge after profit warning",
    ]
    assert alert["evidence"][1]["words"][0] == ["plunge", 0.41] and alert["evidence"][0]["label"] == "negative"
    assert [e["event"] for e in alert["events"]] == ["firing", "pending"] and alert["silenced_by"] == []
    assert [x["matchers_text"] for x in active] == ["ticker=BA"] and len(every) == 2
    assert not next(x for x in every if x["author"] == "bo")["active"]


def test_article(db):
    engine, s = db
    with Session(engine) as session:
        first = queries.article(session, version=VERSION, article_id=s.ids["Nokia shares plunge after profit warning"])
        dividend = queries.article(
            session, version=VERSION, article_id=s.ids["Apple raises dividend and expands buyback"]
        )
        copy = queries.article(session, version=VERSION, article_id=s.ids["Nokia shares plunge after a profit warning"])
        assert queries.article(session, version=VERSION, article_id=999999) is None
    assert first["title"] == "Nokia shares plunge after profit warning" and first["source"] == "benzinga"
    assert first["score"]["label"] == "negative" and first["score"]["model_version"] == VERSION
    assert [w["word"] for w in first["score"]["words"]] == ["plunge", "warning", "profit"]
    assert [x["title"] for x in first["story"]] == ["Nokia shares plunge after a profit warning"]
    assert [x["title"] for x in copy["story"]] == ["Nokia shares plunge after profit warning"]
    assert [a["rule"] for a in first["alerts"]] == ["negative_burst"]
    assert first["tickers"] == [
        {
            "ticker": "NOK",
            "relevance": 1.0,
            "in_headline": True,
            "role": None,
            "rule": None,
            "words": None,
            "sentiment": None,
        }
    ]  # stored without a span, as rows from before revision 0006 are
    assert [x["model_version"] for x in dividend["scores"]] == [VERSION, "minilm6-attnpool-old"]
    assert dividend["score"]["model_version"] == VERSION


def test_series_bounds():
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="use a longer window"):
        queries._series(None, version=VERSION, keys=["AAPL"], start=start, end=end, window_s=60, now=end)
    with pytest.raises(ValueError, match="at most 20 tickers"):
        queries._series(
            None, version=VERSION, keys=[f"T{i}" for i in range(21)], start=start, end=end, window_s=86400, now=end
        )
