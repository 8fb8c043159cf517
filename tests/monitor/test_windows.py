"""update_buckets reads and writes buckets set-based; every stored bucket must still equal `aggregate` over that key's
own rows, for many keys over many periods, with ids out of time order and window lengths that do not nest. And the
SQL version the dashboard reads, `aggregate_sql`, gives the numbers `aggregate` gives on the same rows."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

import monitor.windows
from core.db import make_session_factory
from core.schema import Article, Mention, MonitorState, Score, Source, WindowBucket
from monitor.windows import MARKET, _rows, aggregate, aggregate_sql, bucket_start, update_buckets

VERSION = "test-model"
T0 = datetime(2026, 3, 2, tzinfo=UTC)
TICKERS = ["AAPL", "MSFT", "NOK", "TSLA", "KO", "GE", "A", "XOM", "JPM", "NVDA", "AMZN", "T001"]
# 50 min and 7 h divide neither 1 h nor 1 d, so their buckets straddle the larger windows' boundaries.
WINDOWS = [900, 3000, 3600, 25200, 86400]


@pytest.fixture
def factory(migrated_engine):
    return make_session_factory(migrated_engine)


def random_times(rng: random.Random, n: int, days: int) -> list[datetime]:
    """Times over `days` days, a few exactly on or a microsecond before bucket boundaries of every window."""
    edges = [T0 + timedelta(seconds=w * k) for w in WINDOWS for k in (1, 5)]
    out = [e - timedelta(microseconds=d) for e in edges for d in (0, 1)]
    out += [T0 + timedelta(seconds=rng.uniform(0, days * 86400)) for _ in range(n - len(out))]
    rng.shuffle(out)  # ids out of time order, as after a backfill
    return out


def store_articles(factory, rng: random.Random, times: list[datetime], tag: str) -> None:
    """Scored articles at `times`: 0-2 tickers, some near-duplicates of earlier stories (often in another bucket),
    some unscored or scored by another model version only."""
    with factory() as s, s.begin():
        src = s.scalar(select(Source).where(Source.name == "wire")) or Source(name="wire", kind="stream")
        s.add(src)
        s.flush()
        earlier = list(s.scalars(select(Article.id)))
        for n, when in enumerate(times):
            article = Article(source_id=src.id, title=f"{tag} {n}", published_at=when, ingested_at=when,
                              content_hash=f"{tag}-{n}")  # fmt: skip
            s.add(article)
            s.flush()
            article.story_id = rng.choice(earlier) if earlier and rng.random() < 0.2 else article.id
            earlier.append(article.id)
            for ticker in rng.sample(TICKERS, rng.choice([0, 1, 1, 1, 2])):
                s.add(Mention(article_id=article.id, ticker=ticker, published_at=when,
                              relevance=round(rng.uniform(0.3, 1.0), 3)))  # fmt: skip
            fate = rng.random()
            if fate < 0.08:
                continue  # not scored yet: its buckets are recomputed all the same, without it
            p = [rng.random() for _ in range(3)]
            p = [x / sum(p) for x in p]
            label = ("negative", "neutral", "positive")[p.index(max(p))]
            s.add(Score(article_id=article.id, model_version="old-model" if fate < 0.12 else VERSION, label=label,
                        p_negative=p[0], p_neutral=p[1], p_positive=p[2], score=p[2] - p[0],
                        confidence=round(max(p), 2), scored_at=when))  # fmt: skip


def touched_per_batch(factory, *, after: int, batch: int) -> list[set]:
    """The buckets update_buckets must recompute: per batch of `batch` ids past `after`, the (key, window, start) of
    each of its articles' keys (the market and every ticker) and windows."""
    with factory() as s:
        arts = s.execute(select(Article.id, Article.published_at).where(Article.id > after).order_by(Article.id)).all()
        tickers = defaultdict(set)
        for article_id, ticker in s.execute(select(Mention.article_id, Mention.ticker)):
            tickers[article_id].add(ticker)
    return [
        {(key, w, bucket_start(when, w)) for aid, when in arts[i : i + batch] for w in WINDOWS
         for key in (MARKET, *tickers[aid])}
        for i in range(0, len(arts), batch)
    ]  # fmt: skip


def assert_every_bucket_is_its_own_aggregate(factory) -> int:
    with factory() as s:
        want_keys = set()
        for aid, when in s.execute(select(Article.id, Article.published_at)):
            keys = {MARKET, *s.scalars(select(Mention.ticker).where(Mention.article_id == aid))}
            want_keys |= {(k, w, bucket_start(when, w)) for k in keys for w in WINDOWS}
        buckets = s.scalars(select(WindowBucket)).all()
        got = {}
        for b in buckets:
            start = b.bucket_start if b.bucket_start.tzinfo else b.bucket_start.replace(tzinfo=UTC)
            got[(b.key, b.window_s, start)] = b
        assert len(got) == len(buckets)
        assert set(got) == want_keys  # every touched bucket stored, nothing else, nothing lost to a later fold
        for (key, w, start), b in got.items():
            end = start + timedelta(seconds=w)
            want = aggregate(_rows(s, key=key, start=start, end=end, version=VERSION), key=key, window_s=w,
                             start=start, end=end)  # fmt: skip
            where = (key, w, start.isoformat())
            assert (b.items, b.stories, b.share_negative, b.share_positive) == (
                want.items, want.stories, want.share_negative, want.share_positive,
            ), where  # fmt: skip
            if want.mean_score is None:
                assert b.mean_score is None, where
            else:
                assert b.mean_score == pytest.approx(want.mean_score, rel=1e-12, abs=1e-12), where
        return len(got)


def test_many_keys_many_periods_out_of_order_with_windows_that_do_not_nest(factory):
    rng = random.Random(11)
    store_articles(factory, rng, random_times(rng, 160, days=4), "first")
    batches = touched_per_batch(factory, after=0, batch=23)
    assert len(batches) > 5
    with factory() as s, s.begin():
        # max_buckets=1: each batch's buckets are recomputed before the next batch is read
        assert update_buckets(s, windows=WINDOWS, version=VERSION, batch=23, max_buckets=1) == sum(map(len, batches))
    n = assert_every_bucket_is_its_own_aggregate(factory)
    assert n > 800  # many keys x periods x windows

    # A backfill into the same days and beyond, stored later with higher ids: the buckets it touches are recomputed
    # (stories joining earlier ones included), the others are kept as they were.
    with factory() as s:
        last = s.scalar(select(func.max(Article.id)))
        before = {(b.key, b.window_s, b.bucket_start): b.updated_at for b in s.scalars(select(WindowBucket))}
    store_articles(factory, rng, random_times(rng, 60, days=6), "backfill")
    (touched,) = touched_per_batch(factory, after=last, batch=5000)
    with factory() as s, s.begin():
        assert update_buckets(s, windows=WINDOWS, version=VERSION) == len(touched)
    assert assert_every_bucket_is_its_own_aggregate(factory) > n
    with factory() as s:
        after = {(b.key, b.window_s, b.bucket_start): b.updated_at for b in s.scalars(select(WindowBucket))}
    untouched = {k for k in before if (k[0], k[1], k[2].replace(tzinfo=UTC)) not in touched}
    assert untouched and all(after[k] == before[k] for k in untouched)

    with factory() as s, s.begin():
        assert update_buckets(s, windows=WINDOWS, version=VERSION) == 0  # nothing new


@pytest.mark.parametrize("max_buckets", [300, 200_000])
def test_batches_out_of_time_order_are_gathered_and_each_bucket_recomputed_once(factory, monkeypatch, max_buckets):
    """A history stored out of time order: the buckets of many id batches are recomputed together (each once per
    gathering, not once per batch), up to `max_buckets` at a time, and the fold's position only passes articles
    whose buckets are stored."""
    rng = random.Random(5)
    store_articles(factory, rng, random_times(rng, 200, days=3), "bulk")
    batches = touched_per_batch(factory, after=0, batch=20)
    union = set().union(*batches)
    assert sum(map(len, batches)) > 1.5 * len(union)  # batches share buckets, as with history out of order
    stores: list[int] = []
    positions: list[int] = []  # the fold's stored position when each gathering is recomputed
    store = monitor.windows._store_buckets

    def counted(session, touched, **kw):
        stores.append(len(touched))
        positions.append(session.get(MonitorState, "buckets_article_id").value or 0)
        store(session, touched, **kw)

    monkeypatch.setattr(monitor.windows, "_store_buckets", counted)
    with factory() as s:
        max_id = s.scalar(select(func.max(Article.id)))
    with factory() as s, s.begin():
        recomputed = update_buckets(s, windows=WINDOWS, version=VERSION, batch=20, max_buckets=max_buckets)
    assert assert_every_bucket_is_its_own_aggregate(factory) == len(union)
    assert recomputed == sum(stores)
    if max_buckets >= len(union):
        assert stores == [len(union)]  # one gathering for all ten batches
    else:
        assert 1 < len(stores) < len(batches) and all(n < max_buckets + len(max(batches, key=len)) for n in stores)
    # It moved only when a gathering was stored: 0 before the first, past each one's last article after it.
    assert positions[0] == 0 and positions == sorted(set(positions)) and positions[-1] < max_id
    with factory() as s:
        assert s.get(MonitorState, "buckets_article_id").value == max_id
        assert update_buckets(s, windows=WINDOWS, version=VERSION) == 0


def test_one_article_touches_one_bucket_per_key_and_window(factory):
    """Live traffic: a single new article recomputes its market and ticker buckets only."""
    rng = random.Random(3)
    store_articles(factory, rng, [T0 + timedelta(hours=5, minutes=m) for m in (1, 17, 44)], "live")
    with factory() as s, s.begin():
        update_buckets(s, windows=WINDOWS, version=VERSION)
    with factory() as s, s.begin():
        src = s.scalar(select(Source))
        a = Article(source_id=src.id, title="one more", published_at=T0 + timedelta(hours=5, minutes=50),
                    content_hash="one-more")  # fmt: skip
        s.add(a)
        s.flush()
        a.story_id = a.id
        s.add_all([Mention(article_id=a.id, ticker="ZZZ", published_at=a.published_at),
                   Score(article_id=a.id, model_version=VERSION, label="negative", p_negative=0.9, p_neutral=0.05,
                         p_positive=0.05, score=-0.85, confidence=0.9, scored_at=a.published_at)])  # fmt: skip
    with factory() as s, s.begin():
        assert update_buckets(s, windows=WINDOWS, version=VERSION) == 2 * len(WINDOWS)
    assert_every_bucket_is_its_own_aggregate(factory)


def python_buckets(session, *, start, end, window_s) -> dict[tuple[str, int], object]:
    """`aggregate` per (key, bucket start as Unix time) over the rows `_rows` gives each key in [start, end)."""
    grouped: dict[tuple[str, int], list] = defaultdict(list)
    for key, rows in ((MARKET, _rows(session, key=MARKET, start=start, end=end, version=VERSION)),
                      (None, _rows(session, key=None, start=start, end=end, version=VERSION))):  # fmt: skip
        for row in rows:
            at = 0 if window_s is None else int(bucket_start(row[7], window_s).timestamp())
            grouped[(key or row[2], at)].append(row)
    return {
        (key, at): aggregate(rows, key=key, window_s=window_s or 0, start=start, end=end)
        for (key, at), rows in grouped.items()
    }


@pytest.mark.parametrize("window_s", [900, 3000, 86400, None])
def test_the_sql_aggregate_gives_the_python_aggregates_numbers(factory, window_s):
    """The one definition of story-weighted sentiment, twice: every key and bucket has the same items, stories,
    shares and mean from the database as from `aggregate` (near-duplicates across buckets, unscored and other-version
    articles, bucket edges, several tickers per article included)."""
    rng = random.Random(23)
    store_articles(factory, rng, random_times(rng, 240, days=3), "agree")
    start, end = T0 + timedelta(hours=5, minutes=7), T0 + timedelta(days=2, hours=20)  # not on bucket edges
    with factory() as s:
        want = python_buckets(s, start=start, end=end, window_s=window_s)
        got = aggregate_sql(session=s, keys=[MARKET, *TICKERS], start=start, end=end, window_s=window_s,
                            version=VERSION)  # fmt: skip
    assert set(got) == set(want) and len(got) >= {None: 13, 86400: 30}.get(window_s, 100)
    for bucket, stats in want.items():
        sql = got[bucket]
        assert (sql["items"], sql["stories"]) == (stats.items, stats.stories), bucket
        assert (sql["share_negative"], sql["share_positive"]) == pytest.approx(
            (stats.share_negative, stats.share_positive), rel=1e-12
        ), bucket
        if stats.mean_score is None:
            assert sql["mean_score"] is None, bucket
        else:
            assert sql["mean_score"] == pytest.approx(stats.mean_score, rel=1e-9, abs=1e-12), bucket


def test_an_article_with_only_a_date_stays_out_of_windows_shorter_than_a_day(factory):
    """Issue 22: the Guardian's items carry a date only, stored at 00:00 UTC; they drove the hourly windows (and
    alerts at 01:00). A day's window counts them; an hour's, rolling, bucketed or aggregated in SQL, does not."""
    from monitor.windows import rolling
    from tests.monitor.test_alerts import VERSION as ALERTS_VERSION
    from tests.monitor.test_alerts import add_story

    midnight = datetime(2026, 3, 3, tzinfo=UTC)
    dated = add_story(factory, ticker="TSCO.L", when=midnight, label="negative")
    add_story(factory, ticker="TSCO.L", when=midnight + timedelta(minutes=20), label="negative")
    with factory() as s, s.begin():
        s.get(Article, dated).time_precision = "day"
    with factory() as s:
        hour = rolling(s, key="TSCO.L", window_s=3600, now=midnight + timedelta(minutes=30), version=ALERTS_VERSION)
        day = rolling(s, key="TSCO.L", window_s=86400, now=midnight + timedelta(hours=1), version=ALERTS_VERSION)
        assert (hour.items, day.items) == (1, 2) and dated not in hour.story_articles and dated in day.story_articles
        sql = aggregate_sql(session=s, keys=["TSCO.L", MARKET], start=midnight, end=midnight + timedelta(days=1),
                            window_s=3600, version=ALERTS_VERSION)  # fmt: skip
        assert sql[("TSCO.L", int(midnight.timestamp()))]["items"] == 1
        assert sql[(MARKET, int(midnight.timestamp()))]["items"] == 1
        daily = aggregate_sql(session=s, keys=["TSCO.L"], start=midnight, end=midnight + timedelta(days=1),
                              window_s=86400, version=ALERTS_VERSION)  # fmt: skip
        assert daily[("TSCO.L", int(midnight.timestamp()))]["items"] == 2
    with factory() as s, s.begin():
        update_buckets(s, windows=[3600, 86400], version=ALERTS_VERSION)
    with factory() as s:
        stored = {b.window_s: b.items for b in s.scalars(select(WindowBucket).where(WindowBucket.key == "TSCO.L"))}
        assert stored == {3600: 1, 86400: 2}
