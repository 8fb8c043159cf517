"""Rolling sentiment per ticker and market-wide, and the trailing baseline each window is judged against.

- `rolling`: the exact window [now - w, now) from the stored rows (what rules test).
- `update_buckets`: tumbling buckets of each window length, kept up to date incrementally: every article stored
  since the last run (live or backfilled, in any time order) marks its buckets for recomputation.
- `baseline`: mean and spread of the buckets over the trailing `days` before the current window.
- `aggregate_sql`: the same numbers computed in the database, for readers (the dashboard) that must not load rows.

Stories, not copies: near-duplicates (one `story_id`) count once. A story's score is the mean of its articles'
scores; the window mean weights each story by relevance x confidence; a story's label is that of its most confident
article. The market-wide key is "*". `aggregate` (Python, over `_rows`) and `aggregate_sql` (SQL) are the two
implementations of this one definition; tests/monitor/test_windows.py holds them equal on the same data.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from sqlalchemy import BigInteger, Float, Integer, String, and_, case, cast, delete, func, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.schema import Article, Mention, MentionScore, MonitorState, Score, WindowBucket
from core.sentiment import own, with_own

MARKET = "*"
_BUCKETS_VERSION = "buckets_version"  # monitor_state: which model version the stored buckets were computed from
DEFAULT_WINDOWS = {"15m": 900, "1h": 3600, "1d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The longest window, hold or repeat interval a rule may name: a year (and a leap day). Longer is a typo, and past
# timedelta's range (999,999,999 days) it would crash the evaluation rather than the config check.
MAX_DURATION_S = 366 * 86400


def parse_duration(text: str) -> int:
    """Seconds in "90s", "15m", "1h", "1d" (at most 366d); ValueError naming the text otherwise."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration (use e.g. 30s, 15m, 1h, 1d)")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{text!r} is longer than the longest duration allowed, 366d")
    return int(seconds)


@dataclass(slots=True)
class WindowStats:
    """One key over one window."""

    key: str
    window_s: int
    start: datetime
    end: datetime
    items: int = 0
    stories: int = 0
    mean_score: float | None = None
    share_negative: float = 0.0
    share_positive: float = 0.0
    negative_stories: list[int] = field(default_factory=list)  # a representative article id per story
    story_articles: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Baseline:
    """Mean and spread of the bucketed history (`n` buckets, `active` of them with at least one story)."""

    mean_score: float | None
    std_score: float | None
    mean_stories: float
    std_stories: float
    n: int
    active: int


def _version_id(version: str) -> int:
    """A stable 60-bit number naming a model version (monitor_state holds integers)."""
    return int(hashlib.sha256(version.encode()).hexdigest()[:15], 16)


def buckets_hold(session: Session, version: str) -> bool:
    """True when the stored window_buckets were computed from `version`'s scores (so a reader of it may use them)."""
    state = session.get(MonitorState, _BUCKETS_VERSION)
    return state is not None and state.value == _version_id(version)


def forget_buckets(session: Session, version: str) -> bool:
    """Mark the stored buckets stale when they were computed from `version`, whose scores of stored articles just
    changed (a rescore filled a range): readers stop using them and the next `update_buckets` folds the whole
    history again (new articles alone would not touch those buckets). True when they were marked."""
    if not buckets_hold(session, version):
        return False
    session.get(MonitorState, _BUCKETS_VERSION).value = 0
    return True


DAY_S = 86_400


def _intraday(window_s: int | None) -> bool:
    """Windows shorter than a day leave out articles whose source gave only a date (`time_precision` "day"): at
    00:00 UTC they would count in the first hour of a day they may belong to at any time."""
    return bool(window_s) and window_s < DAY_S  # type: ignore[operator]


def _timed(window_s: int | None) -> list:
    """The condition that keeps date-only articles out of a window of `window_s` (none for a day or longer)."""
    return [or_(Article.time_precision.is_(None), Article.time_precision != "day")] if _intraday(window_s) else []


def _select(version: str, *, market: bool):
    """(article id, story id, ticker, relevance, score, confidence, label, placed at, time precision) of scored
    articles: the market's rows (no ticker, relevance 1) placed in time by the article, a ticker's by its mention."""
    scored = and_(Score.article_id == Article.id, Score.model_version == version)
    if market:
        return select(
            Article.id, Article.story_id, literal(None, String).label("ticker"), literal(1.0, Float).label("relevance"),
            Score.score, Score.confidence, Score.label, Article.published_at, Article.time_precision,
        ).join(Score, scored)  # fmt: skip
    return with_own(
        select(Article.id, Article.story_id, Mention.ticker, Mention.relevance, own("score"), own("confidence"),
               own("label"), Mention.published_at, Article.time_precision)
        .join(Mention, Mention.article_id == Article.id)
        .join(Score, scored)
    )  # fmt: skip


def _rows(session: Session, *, key: str | None, start: datetime, end: datetime, version: str):
    """`_select`'s rows for articles in [start, end): the market's, one ticker's, or every ticker's (key None)."""
    if key == MARKET:
        query = _select(version, market=True).where(Article.published_at >= start, Article.published_at < end)
    else:
        query = _select(version, market=False).where(Mention.published_at >= start, Mention.published_at < end)
        if key is not None:
            query = query.where(Mention.ticker == key)
    return session.execute(query).all()


def aggregate(rows, *, key: str, window_s: int, start: datetime, end: datetime) -> WindowStats:
    """Story-level aggregates of rows from `_rows` for one key (a window shorter than a day without the articles
    that carry only a date)."""
    if _intraday(window_s):
        rows = [r for r in rows if r[8] != "day"]
    stats = WindowStats(key=key, window_s=window_s, start=start, end=end, items=len(rows))
    stories: dict[int, list] = defaultdict(list)
    for row in rows:
        stories[row[1] or row[0]].append(row)
    if not stories:
        return stats
    total_w, total = 0.0, 0.0
    negative = positive = 0
    for members in stories.values():
        weight = sum(r[3] * r[5] for r in members) / len(members)
        score = sum(r[4] for r in members) / len(members)
        total_w += weight
        total += weight * score
        lead = max(members, key=lambda r: (r[5], -r[0]))  # the most confident article speaks for the story
        stats.story_articles.append(lead[0])
        if lead[6] == "negative":
            negative += 1
            stats.negative_stories.append(lead[0])
        elif lead[6] == "positive":
            positive += 1
    stats.stories = len(stories)
    stats.mean_score = total / total_w if total_w > 0 else None
    stats.share_negative = negative / len(stories)
    stats.share_positive = positive / len(stories)
    return stats


class BucketStats(TypedDict):
    """One (key, bucket) as `aggregate_sql` computes it: the numbers of `WindowStats`, without the article ids."""

    items: int
    stories: int
    mean_score: float | None
    share_negative: float
    share_positive: float


def aggregate_sql(
    *, session: Session, keys: list[str], start: datetime, end: datetime, window_s: int | None, version: str
) -> dict[tuple[str, int], BucketStats]:
    """`aggregate`'s numbers per key and tumbling bucket of [start, end), computed by the database.

    Keyed by (key, bucket start as Unix time); `window_s=None`: all of [start, end) as one bucket, keyed 0. Rows are
    those of `_rows` (the market's by the article's time, a ticker's by its mention's), stories are grouped, weighted
    and labelled as in `aggregate`; only keys with rows appear."""
    market = MARKET in keys
    tickers = [k for k in keys if k != MARKET]

    def bucket(column):
        return literal(0) if window_s is None else bucket_epoch(session, column, window_s)

    timed = _timed(window_s)

    parts = []
    if market:
        parts.append(
            select(
                literal(MARKET).label("key"),
                bucket(Article.published_at).label("bucket"),
                func.coalesce(Article.story_id, Article.id).label("story"),
                Article.id.label("article_id"),
                literal(1.0).label("relevance"),
                Score.score,
                Score.confidence,
                Score.label,
            )
            .join(Score, and_(Score.article_id == Article.id, Score.model_version == version))
            .where(Article.published_at >= start, Article.published_at < end, *timed)
        )
    if tickers:
        parts.append(
            select(
                Mention.ticker.label("key"),
                bucket(Mention.published_at).label("bucket"),
                func.coalesce(Article.story_id, Article.id).label("story"),
                Article.id.label("article_id"),
                Mention.relevance.label("relevance"),
                own("score"),
                own("confidence"),
                own("label"),
            )
            .join(Article, Article.id == Mention.article_id)
            .join(Score, and_(Score.article_id == Article.id, Score.model_version == version))
            .outerjoin(MentionScore, and_(MentionScore.score_id == Score.id, MentionScore.ticker == Mention.ticker))
            .where(
                Mention.ticker.in_(tickers),
                Mention.published_at >= start,
                Mention.published_at < end,
                *timed,
            )  # fmt: skip
        )
    out: dict[tuple[str, int], BucketStats] = {}
    for part in parts:
        rows = part.subquery("r")
        ranked = select(
            rows,
            func.row_number()
            .over(
                partition_by=(rows.c.key, rows.c.bucket, rows.c.story),
                order_by=(rows.c.confidence.desc(), rows.c.article_id),
            )
            .label("rn"),
        ).subquery("ranked")
        lead = ranked.c.rn == 1  # the story's most confident article, as `aggregate`'s `lead`
        stories = (
            select(
                ranked.c.key,
                ranked.c.bucket,
                func.count().label("n"),
                func.avg(ranked.c.score).label("s"),
                func.avg(ranked.c.relevance * ranked.c.confidence).label("w"),
                func.max(case((and_(lead, ranked.c.label == "negative"), 1), else_=0)).label("neg"),
                func.max(case((and_(lead, ranked.c.label == "positive"), 1), else_=0)).label("pos"),
            )
            .group_by(ranked.c.key, ranked.c.bucket, ranked.c.story)
            .subquery("stories")
        )
        total_w = func.sum(stories.c.w)
        query = select(
            stories.c.key,
            stories.c.bucket,
            func.sum(stories.c.n).label("items"),
            func.count().label("stories"),
            total_w.label("total_w"),
            func.sum(stories.c.w * stories.c.s).label("total"),
            func.sum(stories.c.neg).label("neg"),
            func.sum(stories.c.pos).label("pos"),
        ).group_by(stories.c.key, stories.c.bucket)
        for r in session.execute(query):
            total_w = float(r.total_w or 0.0)
            out[(r.key, int(r.bucket))] = {
                "items": int(r.items),
                "stories": int(r.stories),
                "mean_score": float(r.total) / total_w if total_w > 0 else None,
                "share_negative": int(r.neg) / int(r.stories),
                "share_positive": int(r.pos) / int(r.stories),
            }
    return out


def rolling(session: Session, *, key: str, window_s: int, now: datetime, version: str) -> WindowStats:
    """The exact window [now - window_s, now) for one ticker or the market."""
    start = now - timedelta(seconds=window_s)
    return aggregate(_rows(session, key=key, start=start, end=now, version=version), key=key, window_s=window_s,
                     start=start, end=now)  # fmt: skip


def rolling_all(session: Session, *, window_s: int, now: datetime, version: str) -> dict[str, WindowStats]:
    """Every ticker with news in [now - window_s, now), and the market."""
    start = now - timedelta(seconds=window_s)
    by_ticker: dict[str, list] = defaultdict(list)
    for row in _rows(session, key=None, start=start, end=now, version=version):
        by_ticker[row[2]].append(row)
    out = {t: aggregate(rows, key=t, window_s=window_s, start=start, end=now) for t, rows in by_ticker.items()}
    out[MARKET] = rolling(session, key=MARKET, window_s=window_s, now=now, version=version)
    return out


def bucket_start(when: datetime, window_s: int) -> datetime:
    """The start of the tumbling bucket holding `when` (buckets are aligned to the Unix epoch)."""
    return datetime.fromtimestamp(_bucket_ts(when.timestamp(), window_s), UTC)


def _bucket_ts(ts: float, window_s: int) -> float:
    """`bucket_start` in Unix seconds, for loops over many rows (the SQL twin is `bucket_epoch`)."""
    return ts - ts % window_s


def bucket_epoch(session: Session, column, window_s: int):
    """SQL for `bucket_start` of `column` as Unix time: the start of its tumbling bucket (aligned to the epoch)."""
    w = int(window_s)
    if session.get_bind().dialect.name == "sqlite":
        # UTC text without offset: strftime('%s') reads it as UTC; integer division floors for positive times. Only
        # the whole seconds go in: strftime rounds to milliseconds, which moved 23:59:59.9999 into the next bucket.
        seconds = func.substr(column, 1, 19)
        return cast(func.strftime("%s", seconds), Integer) // w * w  # `//`: SQLAlchemy's `/` is true division
    return cast(func.floor(func.extract("epoch", column) / w) * w, BigInteger)


def update_buckets(
    session: Session, *, windows: list[int], version: str, batch: int = 5000, max_buckets: int = 200_000
) -> int:
    """Fold articles stored since the last call into the buckets of `version`; returns how many were recomputed.

    New articles are read `batch` ids at a time, and the buckets they touch are gathered over batches, up to
    `max_buckets`, before they are recomputed: history stored out of time order (a backfill of several files, a
    bulk load) touches most market days in every batch, and recomputing per batch re-read those days every time
    (docs/performance.md, "Alert buckets after a bulk load"). Buckets of another model version (the setting
    changed) are dropped and the whole history folded again: a baseline never mixes two versions.
    """
    state = session.get(MonitorState, "buckets_article_id") or MonitorState(name="buckets_article_id", value=0)
    session.add(state)
    held = session.get(MonitorState, _BUCKETS_VERSION) or MonitorState(name=_BUCKETS_VERSION, value=0)
    session.add(held)
    if held.value != _version_id(version):
        session.execute(delete(WindowBucket))
        state.value, held.value = 0, _version_id(version)
        session.flush()
    recomputed, last = 0, state.value
    touched: set[tuple[str, int, datetime]] = set()
    while True:
        new = session.execute(
            select(Article.id, Article.published_at).where(Article.id > last).order_by(Article.id).limit(batch)
        ).all()
        if new:
            touched |= _touched_buckets(session, new, windows=windows)
            last = new[-1][0]
        done = len(new) < batch
        if touched and (done or len(touched) >= max_buckets):
            _store_buckets(session, touched, version=version)
            recomputed += len(touched)
            touched = set()
        if last != state.value and not touched:  # advanced only past articles whose buckets are stored
            state.value = last
            session.flush()
        if done:
            return recomputed


def _touched_buckets(session: Session, new, *, windows: list[int]) -> set[tuple[str, int, datetime]]:
    """(key, window_s, bucket_start) of every bucket the (article id, published_at) rows in `new` fall in."""
    tickers: dict[int, set[str]] = defaultdict(set)
    for article_id, ticker in session.execute(
        select(Mention.article_id, Mention.ticker).where(Mention.article_id.in_([r[0] for r in new]))
    ):
        tickers[article_id].add(ticker)
    touched: set[tuple[str, int, datetime]] = set()
    for article_id, published_at in new:
        for w in windows:
            start = bucket_start(published_at, w)
            for key in (MARKET, *tickers[article_id]):
                touched.add((key, w, start))
    return touched


# Reading: one SELECT ORs at most _CLAUSES_PER_QUERY (time range, tickers IN (...)) clauses, naming at most
# _KEYS_PER_QUERY tickers in all; the market is read one contiguous time range (of at most _CLAUSES_PER_QUERY merged
# spans) at a time.
_CLAUSES_PER_QUERY = 64
_KEYS_PER_QUERY = 500


def _store_buckets(session: Session, touched: set[tuple[str, int, datetime]], *, version: str) -> None:
    """Recompute the `touched` (key, window_s, bucket_start) buckets from the stored rows and store them.

    Each bucket gets exactly the rows `_rows(key, start, end)` would give it (ticker rows by the mention's
    published_at, market rows by the article's) and `aggregate` makes its numbers, so it comes out as if recomputed
    on its own, but with a few set-based statements instead of a SELECT, DELETE and INSERT per bucket. Per key, the
    touched buckets are merged where they overlap into spans: with windows that divide each other (15m, 1h, 1d) a
    span is a touched bucket of the largest window; windows that do not nest give wider spans. Every bucket lies in
    exactly one span of its key, so reading each span once reads every row once. Tickers with the same span are read
    together, `ticker IN (...)` and the span's range (what ix_mentions_ticker_published_at serves), many spans ORed
    into one SELECT; the market's spans are read as contiguous ranges of ix_articles_published_at. A bucket is
    aggregated as soon as the query that read its span is done, so only that query's rows are held.
    """
    if not touched:
        return
    # A bucket is (key, window, start in epoch seconds): the float `bucket_start` computes, so rows map exactly.
    rows_of: dict[tuple[str, int, float], list] = {}
    windows_of: dict[str, set[int]] = defaultdict(set)
    buckets_of: dict[str, list[tuple[float, float, tuple[str, int, float]]]] = defaultdict(list)
    for key, w, start in touched:
        bucket = (key, w, start.timestamp())
        rows_of[bucket] = []
        windows_of[key].add(w)
        buckets_of[key].append((bucket[2], bucket[2] + w, bucket))
    tickers_of_span: dict[tuple[float, float], list[tuple[str, list]]] = defaultdict(list)
    market_spans: list[tuple[float, float, list]] = []
    for key, buckets in buckets_of.items():
        for lo, hi, members in _spans(buckets):
            if key == MARKET:
                market_spans.append((lo, hi, members))
            else:
                tickers_of_span[(lo, hi)].append((key, members))
    clauses = []  # (lo, hi, tickers, their buckets), at most _KEYS_PER_QUERY tickers each
    for (lo, hi), entries in sorted(tickers_of_span.items()):
        entries.sort()
        for i in range(0, len(entries), _KEYS_PER_QUERY):
            chunk = entries[i : i + _KEYS_PER_QUERY]
            clauses.append((lo, hi, [k for k, _ in chunk], [b for _, members in chunk for b in members]))

    now = datetime.now(UTC)
    values: list[dict] = []

    def fold(result, market: bool, buckets) -> None:
        """File each row under its buckets, then aggregate the buckets (all their rows came in this result)."""
        for row in result:
            key = MARKET if market else row[2]
            ts = row[7].timestamp()
            for w in windows_of[key]:
                rows = rows_of.get((key, w, _bucket_ts(ts, w)))
                if rows is not None:
                    rows.append(row)
        for bucket in buckets:
            key, w, s = bucket
            start = _at(s)
            stats = aggregate(rows_of.pop(bucket), key=key, window_s=w, start=start, end=_at(s + w))
            values.append(
                {"key": key, "window_s": w, "bucket_start": start, "items": stats.items, "stories": stats.stories,
                 "mean_score": stats.mean_score, "share_negative": stats.share_negative,
                 "share_positive": stats.share_positive, "updated_at": now}
            )  # fmt: skip

    # Ordered, so that a bucket's stories are summed in the same order whatever plan the database picks.
    for group in _groups(clauses, lambda c: len(c[2]), _CLAUSES_PER_QUERY, _KEYS_PER_QUERY):
        spans = [and_(Mention.ticker.in_(ks), Mention.published_at >= _at(lo), Mention.published_at < _at(hi))
                 for lo, hi, ks, _ in group]  # fmt: skip
        query = _select(version, market=False).where(or_(*spans)).order_by(Mention.published_at, Article.id)
        fold(session.execute(query), False, [b for *_, members in group for b in members])
    for run in _runs(market_spans):
        query = (
            _select(version, market=True)
            .where(Article.published_at >= _at(run[0][0]), Article.published_at < _at(run[-1][1]))
            .order_by(Article.published_at, Article.id)
        )
        fold(session.execute(query), True, [b for *_, members in run for b in members])

    # One upsert per bucket, sent as one executemany (psycopg pipelines it, sqlite3 loops in C): the conflict target
    # is the unique (key, window_s, bucket_start) index, looked up per row whatever the planner thinks of the table.
    # A DELETE of the recomputed buckets first went by its plan, and while window_buckets grows from empty within the
    # one transaction of a first fold, stale statistics made PostgreSQL filter whole (key, window) prefixes instead.
    table = WindowBucket.__table__
    upsert = (postgresql.insert if session.connection().dialect.name == "postgresql" else sqlite.insert)(table)
    upsert = upsert.on_conflict_do_update(
        index_elements=[table.c.key, table.c.window_s, table.c.bucket_start],
        set_={c: upsert.excluded[c] for c in _STATS},
    )
    session.execute(upsert, values)


_STATS = ("items", "stories", "mean_score", "share_negative", "share_positive", "updated_at")


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _spans(intervals) -> list[tuple[float, float, list]]:
    """(lo, hi, item) intervals [lo, hi) merged where they overlap: (lo, hi, items) per merged span, in time order."""
    out: list[tuple[float, float, list]] = []
    for lo, hi, item in sorted(intervals):
        if out and lo < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi), out[-1][2])
            out[-1][2].append(item)
        else:
            out.append((lo, hi, [item]))
    return out


def _runs(spans):
    """The spans (in time order) in runs of at most _CLAUSES_PER_QUERY, each run contiguous (one span's end is the
    next one's start), so that a run is read with one range."""
    run: list = []
    for span in spans:
        if run and (span[0] != run[-1][1] or len(run) >= _CLAUSES_PER_QUERY):
            yield run
            run = []
        run.append(span)
    if run:
        yield run


def _groups(items, weight, max_items: int, max_weight: int):
    """Consecutive runs of at most max_items items that weigh at most max_weight in all (or one heavier item)."""
    group: list = []
    total = 0
    for item in items:
        w = weight(item)
        if group and (len(group) >= max_items or total + w > max_weight):
            yield group
            group, total = [], 0
        group.append(item)
        total += w
    if group:
        yield group


def baseline(session: Session, *, key: str, window_s: int, now: datetime, days: float = 30) -> Baseline:
    """Mean and spread over the buckets of the `days` before the current window (empty buckets count 0 stories)."""
    end = bucket_start(now - timedelta(seconds=window_s), window_s)
    start = end - timedelta(days=days)
    rows = session.execute(
        select(WindowBucket.stories, WindowBucket.mean_score).where(
            WindowBucket.key == key,
            WindowBucket.window_s == window_s,
            WindowBucket.bucket_start >= start,
            WindowBucket.bucket_start < end,
        )
    ).all()
    n = max(1, int((end - start).total_seconds() // window_s))
    counts = [r[0] for r in rows] + [0] * max(0, n - len(rows))
    means = [r[1] for r in rows if r[1] is not None and r[0] > 0]
    mean_c = sum(counts) / n
    std_c = math.sqrt(sum((c - mean_c) ** 2 for c in counts) / n)
    mean_s = sum(means) / len(means) if means else None
    std_s = math.sqrt(sum((m - mean_s) ** 2 for m in means) / len(means)) if len(means) > 1 else None
    return Baseline(mean_s, std_s, mean_c, std_c, n, len(means))
