"""The dashboard's read-only queries: plain functions taking a Session and returning plain data.

Written for a database with millions of articles (PostgreSQL in production, SQLite for a laptop):
- every list is bounded by a LIMIT and walks an index in its ORDER BY (`articles.published_at`,
  `mentions(ticker, published_at)`, `alerts.updated_at`); details for the listed rows (tickers, words) are fetched
  by primary or unique key for exactly those rows;
- aggregates are computed in SQL (GROUP BY), never by loading rows into Python; time series read the monitor's
  `window_buckets` where they are complete and aggregate only the rest with the monitor's own SQL
  (`monitor.windows.aggregate_sql`: story-weighted sentiment is defined there, once);
- one model version is shown, the one every query is given (`version`: FINSENT_MODEL_VERSION, else the shipped
  default; dashboard/cache.py passes it), so a rescore never mixes two models into one view and a candidate's
  scores never take over a page. Where a range holds only another version's scores, `version_note` says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from core.export import stored_tickers as _stored_tickers
from core.schema import (
    Alert,
    AlertEvent,
    AlertEvidence,
    Article,
    Attribution,
    Mention,
    MentionScore,
    Reject,
    Score,
    Silence,
    Source,
    WindowBucket,
)
from core.sentiment import company_words
from core.versions import version_note as _version_note
from monitor.alerts import STATES, AlertFilter, find_alerts, matchers_text, matches
from monitor.evidence import load_evidence
from monitor.windows import MARKET, aggregate_sql, bucket_epoch, bucket_start, buckets_hold

MAX_ROWS = 1000  # the most rows any list returns, whatever the caller asks
MAX_BUCKETS = 2000  # per key and series: a longer range needs a longer window
MAX_KEYS = 20
SERIES_COLUMNS = [
    "key",
    "bucket_start",
    "items",
    "stories",
    "mean_score",
    "share_negative",
    "share_positive",
    "origin",
]


def _limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_ROWS))


def _tickers(tickers) -> list[str]:
    return sorted({t.strip().upper() for t in (tickers or []) if t and t.strip()})


# ----------------------------------------------------------------------------------------------------- news rows


def _news_select(version: str):
    """Articles with this version's score and their source: the columns of a news row."""
    return (
        select(
            Article.id.label("article_id"),
            Article.published_at,
            Article.time_precision,
            Article.title,
            Article.url,
            Article.story_id,
            Article.is_first_of_story,
            Article.similar_before,
            Source.name.label("source"),
            Score.id.label("score_id"),
            Score.model_version,
            Score.label,
            Score.score,
            Score.confidence,
            Score.p_negative,
            Score.p_neutral,
            Score.p_positive,
        )
        .join(Score, and_(Score.article_id == Article.id, Score.model_version == version))
        .join(Source, Source.id == Article.source_id)
    )


def companies_of(session: Session, score_ids: list[int]) -> dict[int, dict[str, dict]]:
    """{score id: {ticker: the company's own sentiment}} for scores of headlines naming two or more companies:
    label, score, confidence, probabilities, span (start, end) and words (with offsets into the headline)."""
    out: dict[int, dict[str, dict]] = {}
    if not score_ids:
        return out
    by_id: dict[int, dict] = {}
    for m in session.scalars(select(MentionScore).where(MentionScore.score_id.in_(score_ids))):
        entry = {
            "label": m.label, "score": m.score, "confidence": m.confidence,
            "probabilities": {"negative": m.p_negative, "neutral": m.p_neutral, "positive": m.p_positive},
            "start": m.span_start, "end": m.span_end, "words": [],
        }  # fmt: skip
        out.setdefault(m.score_id, {})[m.ticker] = entry
        by_id[m.id] = entry
    for m, words in company_words(session, by_id).items():
        by_id[m]["words"] = [{"word": w.word, "weight": w.weight, "start": w.start, "end": w.end} for w in words]
    return out


def as_company(row: dict, ticker: str) -> dict:
    """A news row shown for one company: its own sentiment and words where it has them (`sentiment_of` "company"),
    else the headline's ("headline")."""
    own = row.get("companies", {}).get(ticker)
    if own is None:
        return row | {"sentiment_of": "headline"}
    keep = ("label", "score", "confidence", "probabilities", "words")
    return row | {k: own[k] for k in keep} | {"sentiment_of": "company"}


def _news_rows(session: Session, rows) -> list[dict]:
    """Plain dicts for news rows, with their tickers and pooling words fetched by key for these rows only."""
    rows = list(rows)
    if not rows:
        return []
    article_ids = [r.article_id for r in rows]
    score_ids = [r.score_id for r in rows]
    tickers: dict[int, list[str]] = {a: [] for a in article_ids}
    for article_id, ticker in session.execute(
        select(Mention.article_id, Mention.ticker)
        .where(Mention.article_id.in_(article_ids))
        .order_by(Mention.article_id, Mention.relevance.desc(), Mention.ticker)
    ):
        tickers[article_id].append(ticker)
    words: dict[int, list[dict]] = {s: [] for s in score_ids}
    for score_id, word, weight, start, end in session.execute(
        select(Attribution.score_id, Attribution.word, Attribution.weight, Attribution.start, Attribution.end)
        .where(Attribution.score_id.in_(score_ids), Attribution.method == "pooling")
        .order_by(Attribution.score_id, Attribution.rank)
    ):
        words[score_id].append({"word": word, "weight": weight, "start": start, "end": end})
    companies = companies_of(session, score_ids)
    out = []
    for r in rows:
        row = dict(r._mapping)
        row["probabilities"] = {
            "negative": row.pop("p_negative"),
            "neutral": row.pop("p_neutral"),
            "positive": row.pop("p_positive"),
        }
        row["tickers"] = tickers[r.article_id]
        row["words"] = words[r.score_id]
        row["companies"] = companies.get(r.score_id, {})  # each company's own sentiment, where the pass gave one
        out.append(row)
    return out


def _filtered_news(
    session: Session,
    *,
    version: str,
    limit: int,
    tickers: list[str] | None = None,
    sources: list[str] | None = None,
    labels: list[str] | None = None,
    min_confidence: float = 0.0,
    since: datetime | None = None,
    until: datetime | None = None,
    title_terms: list[str] = (),
) -> list[dict]:
    """News rows matching every filter, newest first, at most `limit`.

    Without tickers the query walks the articles.published_at index backwards and stops at LIMIT. With tickers
    it walks mentions(ticker, published_at) instead (a rare ticker would otherwise mean probing the mentions of
    every recent article); an article mentioning two chosen tickers comes twice, so up to limit x tickers rows are
    read and the copies dropped. A filter that matches little (a high confidence) reads back until it has `limit`
    rows, or to `since`: callers showing live news pass a window.
    """
    limit = _limit(limit)
    query = _news_select(version)
    tickers = _tickers(tickers)
    if tickers:
        time_column = Mention.published_at
        query = query.join(Mention, Mention.article_id == Article.id).where(Mention.ticker.in_(tickers))
    else:
        time_column = Article.published_at
    if since is not None:
        query = query.where(time_column >= since)
    if until is not None:
        query = query.where(time_column < until)
    if sources:
        query = query.where(Source.name.in_(list(sources)))
    if labels:
        query = query.where(Score.label.in_(list(labels)))
    if min_confidence and min_confidence > 0:
        query = query.where(Score.confidence >= float(min_confidence))
    for term in title_terms:
        query = query.where(Article.title.ilike(_like_pattern(term), escape="\\"))
    query = query.order_by(time_column.desc(), Article.id.desc()).limit(limit * max(1, len(tickers)))
    rows, seen = [], set()
    for row in session.execute(query):
        if row.article_id not in seen:
            seen.add(row.article_id)
            rows.append(row)
    return _news_rows(session, rows[:limit])


def latest_news(
    session: Session,
    *,
    version: str,
    limit: int = 50,
    tickers: list[str] | None = None,
    sources: list[str] | None = None,
    labels: list[str] | None = None,
    min_confidence: float = 0.0,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict]:
    """The newest articles scored by `version` (published before `until` when given), newest first, at most `limit`
    (1000 at most).

    Each row: article_id, published_at, source, tickers, title, url, model_version, label, score, confidence,
    probabilities, words (top pooling words: word, weight, start, end into the title), is_first_of_story,
    similar_before, story_id. Pass `since` with selective filters (see `_filtered_news`): it bounds how far back
    the query may read.
    """
    return _filtered_news(
        session,
        version=version,
        limit=limit,
        tickers=tickers,
        sources=sources,
        labels=labels,
        min_confidence=min_confidence,
        since=since,
        until=until,
    )


def _search_terms(text: str) -> list[str]:
    """Words and "quoted phrases" of a search box."""
    return [a or b for a, b in re.findall(r'"([^"]+)"|(\S+)', text or "") if (a or b).strip()]


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(
    session: Session,
    *,
    version: str,
    text: str,
    since: datetime | None = None,
    until: datetime | None = None,
    tickers: list[str] | None = None,
    labels: list[str] | None = None,
    limit: int = 200,
) -> list[dict]:
    """Headlines containing every word (or "quoted phrase") of `text`, case-insensitively, newest first.

    Matching is `ILIKE '%term%'` (on SQLite `lower(title) LIKE lower(...)`) with `%`, `_` and `\\` escaped, on
    both backends. PostgreSQL's `to_tsvector('english', title) @@ websearch_to_tsquery(...)` would need a GIN
    expression index to be fast, and the schema is Alembic's alone (no migration from the dashboard); without
    that index it computes a tsvector for every row it reads. ILIKE instead is evaluated while walking the
    published_at index (or mentions(ticker, published_at) with tickers) newest first and stops at LIMIT, bounded
    by the date range: fast for the terms people search (recent, common), at worst one pass over the range
    (docs/performance.md, "Dashboard pages at 1,000,000 articles"). Substring matching also finds tickers and word
    fragments ("downgrad") that stemming would not. Rows have the shape of `latest_news`.
    """
    return _filtered_news(
        session,
        version=version,
        limit=limit,
        tickers=tickers,
        labels=labels,
        since=since,
        until=until,
        title_terms=_search_terms(text),
    )


def ticker_stories(
    session: Session, *, version: str, ticker: str, since: datetime, until: datetime, limit: int = 100
) -> list[dict]:
    """The articles about one ticker in [since, until), newest first (range scan of mentions(ticker, published_at)).

    Rows have the shape of `latest_news` plus `relevance`; near-duplicates share `story_id`. Label, score, words:
    the ticker's own where the headline names two or more companies (`sentiment_of`: company | headline).
    """
    ticker = ticker.strip().upper()
    query = (
        _news_select(version)
        .add_columns(Mention.relevance)
        .join(Mention, Mention.article_id == Article.id)
        .where(Mention.ticker == ticker, Mention.published_at >= since, Mention.published_at < until)
        .order_by(Mention.published_at.desc(), Article.id.desc())
        .limit(_limit(limit))
    )
    return [as_company(row, ticker) for row in _news_rows(session, session.execute(query))]


def version_note(
    session: Session, *, version: str, since: datetime | None = None, until: datetime | None = None
) -> str | None:
    """What a page says instead of an empty list or chart when [since, until) was scored only by other versions
    (`core.versions.version_note`); None when `version` scored news there or nothing did."""
    return _version_note(session, version=version, since=since, until=until)


def known_tickers(session: Session, *, since: datetime | None, limit: int = MAX_ROWS) -> list[str]:
    """Tickers with news since `since` (None: every stored mention, however old), most mentioned first; read from
    the mentions' own (ticker, published_at) index, without the articles."""
    count = func.count().label("n")
    query = select(Mention.ticker, count).group_by(Mention.ticker).order_by(count.desc(), Mention.ticker)
    if since is not None:
        query = query.where(Mention.published_at >= since)
    return [r.ticker for r in session.execute(query.limit(_limit(limit)))]


def stored_tickers(session: Session, *, tickers: list[str]) -> list[str]:
    """Which of `tickers` (any case) any stored article mentions, at any time (`core.export.stored_tickers`)."""
    return _stored_tickers(session, tickers)


def source_names(session: Session, *, limit: int = 500) -> list[str]:
    """Names of the known sources (a small table, bounded anyway)."""
    return list(session.scalars(select(Source.name).order_by(Source.name).limit(_limit(limit))))


# ------------------------------------------------------------------------------------------------- time series


def _series(
    session: Session, *, version: str, keys: list[str], start: datetime, end: datetime, window_s: int, now: datetime
) -> pd.DataFrame:
    """One row per key and bucket in [start, end): the monitor's stored bucket where it is complete (its bucket
    ended before `now`) and was computed from `version`, else aggregated in SQL; buckets without news have 0
    stories and no mean."""
    window_s = int(window_s)
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    if len(keys) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} tickers at once, got {len(keys)}")
    first = bucket_start(start, window_s)
    n = max(0, int((end - first).total_seconds() + window_s - 1) // window_s)
    if n > MAX_BUCKETS:
        raise ValueError(
            f"{n} buckets of {window_s} s between {start:%Y-%m-%d} and {end:%Y-%m-%d}: use a longer window"
        )
    starts = [first + timedelta(seconds=i * window_s) for i in range(n)]
    if not starts or not keys:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    stored: dict[tuple[str, int], WindowBucket] = {}
    if buckets_hold(session, version):  # not buckets computed from another version (the setting changed since)
        query = select(WindowBucket).where(
            WindowBucket.key.in_(keys),
            WindowBucket.window_s == window_s,
            WindowBucket.bucket_start >= first,
            WindowBucket.bucket_start < end,
        )
        for b in session.scalars(query.limit(MAX_BUCKETS * MAX_KEYS)):
            stored[(b.key, int(b.bucket_start.timestamp()))] = b

    def complete(key: str, when: datetime) -> bool:
        return (key, int(when.timestamp())) in stored and when + timedelta(seconds=window_s) <= now

    missing = [s for s in starts for k in keys if not complete(k, s)]
    computed = (
        aggregate_sql(session=session, keys=keys, start=min(missing), end=end, window_s=window_s, version=version)
        if missing
        else {}
    )
    rows = []
    for key in keys:
        for when in starts:
            epoch = int(when.timestamp())
            if complete(key, when):
                b = stored[(key, epoch)]
                stats = {
                    "items": b.items,
                    "stories": b.stories,
                    "mean_score": b.mean_score,
                    "share_negative": b.share_negative,
                    "share_positive": b.share_positive,
                    "origin": "stored",
                }
            else:
                empty = {"items": 0, "stories": 0, "mean_score": None, "share_negative": 0.0, "share_positive": 0.0}
                stats = computed.get((key, epoch), empty) | {"origin": "computed"}
            rows.append({"key": key, "bucket_start": when, **stats})
    frame = pd.DataFrame(rows, columns=SERIES_COLUMNS)
    frame["mean_score"] = frame["mean_score"].astype(float)
    return frame


def market_sentiment(
    session: Session, *, version: str, now: datetime, window_s: int = 900, buckets: int = 96
) -> pd.DataFrame:
    """Market-wide ("*") sentiment over the last `buckets` tumbling buckets of `window_s` up to `now`.

    Columns: key, bucket_start, items, stories, mean_score, share_negative, share_positive, origin ("stored": the
    monitor's window_buckets row; "computed": aggregated in SQL, always so for the bucket still in progress).
    """
    end = bucket_start(now, window_s) + timedelta(seconds=window_s)
    start = end - timedelta(seconds=window_s * max(1, int(buckets)))
    return _series(session, version=version, keys=[MARKET], start=start, end=end, window_s=window_s, now=now)


def sentiment_now(session: Session, *, version: str, now: datetime, window_s: int = 3600, key: str = MARKET) -> dict:
    """The rolling window [now - window_s, now) for the market or one ticker, aggregated in SQL like the monitor's
    rules see it: items, stories, mean_score, share_negative, share_positive (and the version shown)."""
    result = {
        "key": key,
        "window_s": window_s,
        "version": version,
        "items": 0,
        "stories": 0,
        "mean_score": None,
        "share_negative": 0.0,
        "share_positive": 0.0,
    }
    start = now - timedelta(seconds=window_s)
    buckets = aggregate_sql(session=session, keys=[key], start=start, end=now, window_s=None, version=version)
    return result | buckets.get((key, 0), {})


def ticker_series(
    session: Session,
    *,
    version: str,
    tickers: list[str],
    since: datetime,
    until: datetime,
    window_s: int = 3600,
    now: datetime | None = None,
) -> dict[str, pd.DataFrame]:
    """Per-ticker sentiment per bucket over [since, until) and the alerts that fired for them in that range.

    `series`: the columns of `market_sentiment` with `ticker` for `key` (mean score weighted by relevance x
    confidence, stories once). `alerts`: alert_id, ticker, rule, severity, status, starts_at, value, replayed (the
    markers; replayed history included and marked).
    `now` (default: the clock) decides which buckets are complete enough to read from window_buckets.
    """
    tickers = _tickers(tickers)
    now = min(now or datetime.now(UTC), until)
    series = _series(session, version=version, keys=tickers, start=since, end=until, window_s=window_s, now=now)
    series = series.rename(columns={"key": "ticker"})
    alert_rows = session.execute(
        select(
            Alert.id.label("alert_id"),
            Alert.ticker,
            Alert.rule,
            Alert.severity,
            Alert.status,
            Alert.starts_at,
            Alert.value,
            Alert.replayed,
        )
        .where(Alert.ticker.in_(tickers), Alert.starts_at >= since, Alert.starts_at < until)
        .order_by(Alert.starts_at)
        .limit(MAX_ROWS)
    ).all()
    alerts = pd.DataFrame(
        [dict(r._mapping) for r in alert_rows],
        columns=["alert_id", "ticker", "rule", "severity", "status", "starts_at", "value", "replayed"],
    )
    return {"series": series, "alerts": alerts}


def ticker_words(
    session: Session, *, version: str, ticker: str, since: datetime, until: datetime, top: int = 15
) -> pd.DataFrame:
    """The attended (pooling) words over the ticker's stories in [since, until), split by the article's label.

    One article per story (near-duplicates would count the same words twice); words lower-cased. Columns: label,
    word, weight (sum of pooling weights), count (stories in whose top words it is). The `top` heaviest per label.
    """
    columns = ["label", "word", "weight", "count"]
    story_leads = (
        select(func.min(Article.id).label("article_id"))
        .select_from(Mention)
        .join(Article, Article.id == Mention.article_id)
        .join(Score, and_(Score.article_id == Article.id, Score.model_version == version))
        .where(Mention.ticker == ticker.strip().upper(), Mention.published_at >= since, Mention.published_at < until)
        .group_by(func.coalesce(Article.story_id, Article.id))
        .subquery("leads")
    )
    word = func.lower(Attribution.word)
    weight = func.sum(Attribution.weight)
    grouped = (
        select(
            Score.label,
            word.label("word"),
            weight.label("weight"),
            func.count().label("count"),
            func.row_number().over(partition_by=Score.label, order_by=(weight.desc(), word)).label("rn"),
        )
        .select_from(story_leads)
        .join(Score, and_(Score.article_id == story_leads.c.article_id, Score.model_version == version))
        .join(Attribution, and_(Attribution.score_id == Score.id, Attribution.method == "pooling"))
        .group_by(Score.label, word)
        .subquery("grouped")
    )
    rows = session.execute(
        select(grouped.c.label, grouped.c.word, grouped.c.weight, grouped.c.count)
        .where(grouped.c.rn <= max(1, min(int(top), 100)))
        .order_by(grouped.c.label, grouped.c.weight.desc(), grouped.c.word)
    ).all()
    return pd.DataFrame([dict(r._mapping) for r in rows], columns=columns)


# ------------------------------------------------------------------------------------------------ the pipeline


def pipeline_status(session: Session, *, now: datetime) -> dict:
    """How the pipeline is doing at `now`.

    items_per_minute (DataFrame minute, items: articles stored in each of the last 15 minutes), items_last_15m,
    rate_per_min, scored_last_15m, mean_latency_ms, last_item_at, last_item_age_s, rejects_last_hour,
    rejects_by_stage (list of stage, count), recent_rejects, sources (health rows).
    """
    start = now - timedelta(minutes=15)
    first_minute = bucket_start(start, 60) + timedelta(minutes=1)
    minute = bucket_epoch(session, Article.ingested_at, 60).label("minute")
    counts = {
        int(m): int(n)
        for m, n in session.execute(
            select(minute, func.count())
            .where(Article.ingested_at >= first_minute, Article.ingested_at < now)
            .group_by(minute)
        )
    }
    minutes = [first_minute + timedelta(minutes=i) for i in range(15)]
    per_minute = pd.DataFrame(
        {"minute": minutes, "items": [counts.get(int(m.timestamp()), 0) for m in minutes]}, columns=["minute", "items"]
    )
    items_15 = session.scalar(select(func.count()).where(Article.ingested_at >= start, Article.ingested_at < now))
    scored_15, latency = session.execute(
        select(func.count(), func.avg(Score.latency_ms)).where(Score.scored_at >= start, Score.scored_at < now)
    ).one()
    last_item_at = session.scalar(select(Article.ingested_at).order_by(Article.ingested_at.desc()).limit(1))
    hour_ago = now - timedelta(hours=1)
    by_stage = [
        {"stage": stage, "count": int(n)}
        for stage, n in session.execute(
            select(Reject.stage, func.count())
            .where(Reject.created_at >= hour_ago, Reject.created_at < now)
            .group_by(Reject.stage)
            .order_by(func.count().desc(), Reject.stage)
        )
    ]
    recent = [
        dict(r._mapping)
        for r in session.execute(
            select(Reject.created_at, Reject.stage, Reject.source, Reject.reason, Reject.origin)
            .order_by(Reject.created_at.desc())
            .limit(20)
        )
    ]
    sources = []
    for s in session.scalars(select(Source).order_by(Source.name).limit(500)):
        failing = s.last_error_at is not None and (s.last_success_at is None or s.last_error_at > s.last_success_at)
        sources.append(
            {
                "source": s.name,
                "kind": s.kind,
                "status": "error" if failing else ("ok" if s.last_success_at else "no data yet"),
                "items_seen": s.items_seen,
                "last_success_at": s.last_success_at,
                "last_success_age_s": (now - s.last_success_at).total_seconds() if s.last_success_at else None,
                "last_error_at": s.last_error_at,
                "last_error": s.last_error,
            }
        )
    return {
        "items_per_minute": per_minute,
        "items_last_15m": int(items_15 or 0),
        "rate_per_min": int(items_15 or 0) / 15.0,
        "scored_last_15m": int(scored_15 or 0),
        "mean_latency_ms": float(latency) if latency is not None else None,
        "last_item_at": last_item_at,
        "last_item_age_s": (now - last_item_at).total_seconds() if last_item_at else None,
        "rejects_last_hour": sum(s["count"] for s in by_stage),
        "rejects_by_stage": by_stage,
        "recent_rejects": recent,
        "sources": sources,
    }


# ------------------------------------------------------------------------------------------------------ alerts


def silences(session: Session, *, now: datetime, include_expired: bool = True, limit: int = 100) -> list[dict]:
    """Silences, newest first: id, matchers (list), matchers_text, author, comment, starts_at, ends_at,
    expired_early_at, active."""
    query = select(Silence).order_by(Silence.created_at.desc(), Silence.id.desc()).limit(_limit(limit))
    if not include_expired:
        query = query.where(Silence.starts_at <= now, Silence.ends_at > now)
    out = []
    for s in session.scalars(query):
        matchers = json.loads(s.matchers)
        out.append(
            {
                "id": s.id,
                "matchers": matchers,
                "matchers_text": matchers_text(matchers),
                "author": s.author,
                "comment": s.comment,
                "starts_at": s.starts_at,
                "ends_at": s.ends_at,
                "expired_early_at": s.expired_early_at,
                "active": s.starts_at <= now < s.ends_at,
            }
        )
    return out


def alerts(
    session: Session,
    *,
    version: str,
    statuses: list[str] | tuple[str, ...] = STATES,
    limit: int = 50,
    now: datetime | None = None,
    include_replayed: bool = False,
    tickers: list[str] | tuple[str, ...] = (),
) -> list[dict]:
    """Alerts, most recently changed first (index on updated_at), each with its evidence and latest events; only
    those about `tickers` when given (any case), and replayed history too with `include_replayed`.

    evidence: article_id, title, source, published_at, score (when the alert recorded it), label (by `version`),
    words ([word, weight] pairs). events: the 20 latest (at, event, detail). With `now`, `silenced_by` lists the
    active silences whose matchers hold.
    """
    filters = AlertFilter(statuses=tuple(statuses or ()), limit=_limit(limit), replayed=include_replayed,
                          tickers=tuple(_tickers(tickers)))  # fmt: skip
    found = find_alerts(session=session, filters=filters)
    if not found:
        return []
    ids = [a.id for a in found]
    evidence = {
        alert_id: [asdict(e) for e in items]
        for alert_id, items in load_evidence(session=session, alert_ids=ids, version=version).items()
    }
    ranked = (
        select(
            AlertEvent.alert_id,
            AlertEvent.at,
            AlertEvent.event,
            AlertEvent.detail,
            func.row_number()
            .over(partition_by=AlertEvent.alert_id, order_by=(AlertEvent.at.desc(), AlertEvent.id.desc()))
            .label("rn"),
        )
        .where(AlertEvent.alert_id.in_(ids))
        .subquery("ranked")
    )
    events: dict[int, list[dict]] = {i: [] for i in ids}
    for r in session.execute(
        select(ranked.c.alert_id, ranked.c.at, ranked.c.event, ranked.c.detail)
        .where(ranked.c.rn <= 20)
        .order_by(ranked.c.alert_id, ranked.c.rn)
    ):
        events[r.alert_id].append({"at": r.at, "event": r.event, "detail": r.detail})
    active = silences(session, now=now, include_expired=False, limit=MAX_ROWS) if now is not None else []
    out = []
    for a in found:
        labels = json.loads(a.labels)
        out.append(
            {
                "id": a.id,
                "fingerprint": a.fingerprint,
                "rule": a.rule,
                "severity": a.severity,
                "ticker": a.ticker,
                "labels": labels,
                "annotations": json.loads(a.annotations),
                "status": a.status,
                "value": a.value,
                "active_at": a.active_at,
                "starts_at": a.starts_at,
                "ends_at": a.ends_at,
                "last_notified_at": a.last_notified_at,
                "acked_by": a.acked_by,
                "acked_at": a.acked_at,
                "replayed": a.replayed,
                "updated_at": a.updated_at,
                "evidence": evidence[a.id],
                "events": events[a.id],
                "silenced_by": [s["id"] for s in active if matches(s["matchers"], labels)],
            }
        )
    return out


# ----------------------------------------------------------------------------------------------------- explain


def article(session: Session, *, version: str, article_id: int) -> dict | None:
    """Everything the Explain page shows about one article, or None if there is no such article.

    Keys: article_id, title, body, url, source, published_at, ingested_at, published_at_fallback, story_id,
    is_first_of_story, similar_before, tickers (ticker, relevance, in_headline), version, score (`version`'s score,
    None without one: label, score, confidence, probabilities, n_chunks, model_version, scored_at, words with
    offsets), scores (every version's, newest first), story (other articles of the story), alerts (that cite it).
    """
    row = session.execute(
        select(Article, Source.name).join(Source, Source.id == Article.source_id).where(Article.id == int(article_id))
    ).one_or_none()
    if row is None:
        return None
    a, source = row
    all_scores = list(
        session.scalars(select(Score).where(Score.article_id == a.id).order_by(Score.scored_at.desc(), Score.id.desc()))
    )
    shown = next((s for s in all_scores if s.model_version == version), None)  # never another version's
    score = None
    if shown is not None:
        words = [
            {"rank": w.rank, "word": w.word, "weight": w.weight, "start": w.start, "end": w.end}
            for w in session.scalars(
                select(Attribution)
                .where(Attribution.score_id == shown.id, Attribution.method == "pooling")
                .order_by(Attribution.rank)
            )
        ]
        score = {
            "model_version": shown.model_version,
            "label": shown.label,
            "score": shown.score,
            "confidence": shown.confidence,
            "probabilities": {"negative": shown.p_negative, "neutral": shown.p_neutral, "positive": shown.p_positive},
            "n_chunks": shown.n_chunks,
            "scored_at": shown.scored_at,
            "latency_ms": shown.latency_ms,
            "words": words,
        }
    own = companies_of(session, [shown.id]).get(shown.id, {}) if shown is not None else {}
    story_key = a.story_id or a.id
    story = [
        dict(r._mapping)
        for r in session.execute(
            select(Article.id.label("article_id"), Article.title, Source.name.label("source"), Article.published_at)
            .join(Source, Source.id == Article.source_id)
            .where(Article.story_id == story_key, Article.id != a.id)
            .order_by(Article.published_at, Article.id)
            .limit(20)
        )
    ]
    if a.story_id and a.story_id != a.id:  # the story's first article, when it is not this one
        first = session.execute(
            select(Article.id.label("article_id"), Article.title, Source.name.label("source"), Article.published_at)
            .join(Source, Source.id == Article.source_id)
            .where(Article.id == a.story_id)
        ).one_or_none()
        if first is not None and all(s["article_id"] != first.article_id for s in story):
            story.insert(0, dict(first._mapping))
    cited = [
        dict(r._mapping)
        for r in session.execute(
            select(Alert.id.label("alert_id"), Alert.rule, Alert.status, Alert.ticker, Alert.severity)
            .join(AlertEvidence, AlertEvidence.alert_id == Alert.id)
            .where(AlertEvidence.article_id == a.id)
            .order_by(Alert.id.desc())
            .limit(20)
        )
    ]
    tickers = [
        {
            "ticker": m.ticker,
            "relevance": m.relevance,
            "in_headline": m.in_headline,
            "role": m.role,
            "rule": m.rule,
            "words": a.title[m.span_start : m.span_end] if m.span_start is not None and m.span_end else None,
            "sentiment": own.get(m.ticker),  # the company's own (label, score, words...), or None: the headline's
        }  # fmt: skip
        for m in session.scalars(
            select(Mention).where(Mention.article_id == a.id).order_by(Mention.relevance.desc(), Mention.ticker)
        )
    ]
    return {
        "article_id": a.id,
        "title": a.title,
        "body": a.body,
        "url": a.url,
        "source": source,
        "published_at": a.published_at,
        "ingested_at": a.ingested_at,
        "published_at_fallback": a.published_at_fallback,
        "story_id": a.story_id,
        "is_first_of_story": a.is_first_of_story,
        "similar_before": a.similar_before,
        "tickers": tickers,
        "version": version,
        "score": score,
        "scores": [
            {
                "model_version": s.model_version,
                "label": s.label,
                "score": s.score,
                "confidence": s.confidence,
                "scored_at": s.scored_at,
            }
            for s in all_scores
        ],
        "story": story,
        "alerts": cited,
    }
