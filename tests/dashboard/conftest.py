"""A migrated database seeded with realistic rows, and AppTest runs of the dashboard against it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core.db import make_engine, upgrade
from core.schema import (
    Alert,
    AlertEvent,
    AlertEvidence,
    Article,
    Attribution,
    Mention,
    Reject,
    Score,
    Silence,
    Source,
)

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
VERSION = (REPO / "model" / "weights" / "DEFAULT").read_text().strip()
HOSTILE = "Evil <script>alert(1)</script> <img src=x onerror=alert(1)> Corp falls"


@dataclass(frozen=True)
class Item:
    """One seeded article: minutes before `now`, source, headline, tickers, label, confidence, attended words."""

    minutes_ago: float
    source: str
    title: str
    tickers: tuple[str, ...]
    label: str
    confidence: float
    words: tuple[tuple[str, float], ...]
    duplicate_of: str | None = None  # the title of the story's first article


ITEMS = [
    Item(5, "benzinga", "Nokia shares plunge after profit warning", ("NOK",), "negative", 0.93,
         (("plunge", 0.41), ("warning", 0.22), ("profit", 0.09))),
    Item(4, "cnbc", "Nokia shares plunge after a profit warning", ("NOK",), "negative", 0.91,
         (("plunge", 0.39), ("warning", 0.24), ("profit", 0.08)),
         duplicate_of="Nokia shares plunge after profit warning"),
    Item(12, "benzinga", "Apple beats quarterly revenue estimates on iPhone demand", ("AAPL",), "positive", 0.91,
         (("beats", 0.44), ("demand", 0.12), ("estimates", 0.1))),
    Item(20, "desk", HOSTILE, ("EVIL",), "negative", 0.8, (("falls", 0.5), ("Evil", 0.2), ("script", 0.05))),
    Item(30, "benzinga", "Tesla recalls 2 million vehicles over autopilot safety", ("TSLA",), "negative", 0.88,
         (("recalls", 0.47), ("safety", 0.15), ("autopilot", 0.08))),
    Item(45, "cnbc", "Microsoft to acquire gaming studio for $7.5 billion", ("MSFT",), "positive", 0.72,
         (("acquire", 0.35), ("billion", 0.12), ("gaming", 0.06))),
    Item(50, "benzinga", "Amazon opens new logistics hub in Ohio", ("AMZN",), "neutral", 0.86,
         (("opens", 0.3), ("hub", 0.2), ("logistics", 0.1))),
    Item(70, "benzinga", "Boeing cuts delivery forecast as supply issues persist", ("BA",), "negative", 0.9,
         (("cuts", 0.42), ("issues", 0.18), ("forecast", 0.1))),
    Item(95, "cnbc", "Fed holds rates steady, signals patience", (), "neutral", 0.81,
         (("holds", 0.3), ("steady", 0.25), ("patience", 0.1))),
    Item(130, "benzinga", "Apple raises dividend and expands buyback", ("AAPL",), "positive", 0.94,
         (("raises", 0.38), ("expands", 0.2), ("dividend", 0.12))),
    Item(150, "benzinga", "Nvidia surges to record high on AI chip demand", ("NVDA",), "positive", 0.95,
         (("surges", 0.45), ("record", 0.2), ("demand", 0.08))),
    Item(180, "cnbc", "Intel misses earnings estimates, shares slide", ("INTC",), "negative", 0.92,
         (("misses", 0.4), ("slide", 0.25), ("earnings", 0.08))),
    Item(200, "benzinga", "JPMorgan reports steady loan growth", ("JPM",), "neutral", 0.64,
         (("steady", 0.33), ("growth", 0.22), ("loan", 0.1))),
    Item(240, "benzinga", "Pfizer wins approval for new vaccine", ("PFE",), "positive", 0.9,
         (("wins", 0.4), ("approval", 0.3), ("vaccine", 0.06))),
    Item(300, "benzinga", "Apple faces EU antitrust fine over App Store", ("AAPL",), "negative", 0.87,
         (("fine", 0.42), ("antitrust", 0.3), ("faces", 0.1))),
    Item(310, "cnbc", "Apple and Microsoft shares flat in early trade", ("AAPL", "MSFT"), "neutral", 0.77,
         (("flat", 0.45), ("early", 0.12), ("shares", 0.08))),
    Item(360, "benzinga", "Exxon profit drops as oil prices slump", ("XOM",), "negative", 0.89,
         (("drops", 0.41), ("slump", 0.3), ("profit", 0.05))),
    Item(420, "benzinga", "Walmart sees strong holiday sales", ("WMT",), "positive", 0.86,
         (("strong", 0.4), ("sees", 0.1), ("sales", 0.09))),
    Item(480, "cnbc", "Netflix subscriber growth beats expectations", ("NFLX",), "positive", 0.9,
         (("beats", 0.46), ("growth", 0.2), ("expectations", 0.07))),
    Item(540, "benzinga", "Ford to cut 3,000 jobs in restructuring", ("F",), "negative", 0.83,
         (("cut", 0.44), ("restructuring", 0.2), ("jobs", 0.12))),
    Item(600, "benzinga", "Meta unveils new VR headset", ("META",), "neutral", 0.7,
         (("unveils", 0.3), ("headset", 0.2), ("VR", 0.1))),
    Item(720, "cnbc", "Goldman Sachs upgrades Apple to buy", ("AAPL", "GS"), "positive", 0.84,
         (("upgrades", 0.5), ("buy", 0.2), ("Goldman", 0.05))),
    Item(900, "benzinga", "Disney parks revenue rises 8%", ("DIS",), "positive", 0.82,
         (("rises", 0.45), ("revenue", 0.15), ("parks", 0.08))),
    Item(1080, "benzinga", "Starbucks warns of slowing China sales", ("SBUX",), "negative", 0.86,
         (("warns", 0.43), ("slowing", 0.3), ("China", 0.05))),
    Item(1200, "cnbc", "Apple supplier Foxconn reports record revenue", ("AAPL",), "positive", 0.79,
         (("record", 0.4), ("reports", 0.1), ("supplier", 0.08))),
    # Older news: outside the day, found by Search only with a wide date range.
    Item(3 * 1440, "benzinga", "Oracle cloud revenue jumps 20%", ("ORCL",), "positive", 0.9,
         (("jumps", 0.45), ("cloud", 0.15), ("revenue", 0.1))),
    Item(3 * 1440 + 30, "benzinga", "Nokia wins 5G contract in Japan", ("NOK",), "positive", 0.88,
         (("wins", 0.44), ("contract", 0.2), ("5G", 0.1))),
    Item(10 * 1440, "cnbc", "IBM profit warning rattles investors", ("IBM",), "negative", 0.9,
         (("warning", 0.4), ("rattles", 0.3), ("profit", 0.07))),
    Item(40 * 1440, "benzinga", "Cisco announces layoffs", ("CSCO",), "negative", 0.85,
         (("layoffs", 0.5), ("announces", 0.1))),
]  # fmt: skip


def stories_in_buckets(now: datetime, *, window_s: int, buckets: int) -> int:
    """Stories summed over the `buckets` epoch-aligned buckets up to `now`, as a sentiment series counts them.

    A story counts once in every bucket that holds one of its articles, so the Nokia pair (4 and 5 minutes
    old) is one story when both fall in one bucket and two when a bucket boundary passes between them.
    """
    first = (int(now.timestamp()) // window_s - buckets + 1) * window_s
    pairs = set()
    for item in ITEMS:
        published = int((now - timedelta(minutes=item.minutes_ago)).timestamp())
        if published >= first:
            pairs.add((published // window_s, item.duplicate_of or item.title))
    return len(pairs)


def probabilities(label: str, confidence: float) -> dict[str, float]:
    """The three probabilities of a verdict: the label gets `confidence`, the rest splits 70/30 away from it."""
    rest = 1.0 - confidence
    order = {
        "negative": ("neutral", "positive"),
        "neutral": ("negative", "positive"),
        "positive": ("neutral", "negative"),
    }
    near, far = order[label]
    return {label: confidence, near: rest * 0.7, far: rest * 0.3}


def seed(url: str, now: datetime) -> dict[str, int]:
    """Migrate the database at `url` and store the seeded rows; returns article ids by title (and a few others)."""
    upgrade(url)
    engine = make_engine(url)
    ids: dict[str, int] = {}
    with Session(engine) as session, session.begin():
        sources = {
            "benzinga": Source(
                name="benzinga",
                kind="rss",
                created_at=now - timedelta(days=60),
                items_seen=812,
                last_success_at=now - timedelta(minutes=1),
            ),
            "cnbc": Source(
                name="cnbc",
                kind="rss",
                created_at=now - timedelta(days=60),
                items_seen=455,
                last_success_at=now - timedelta(hours=2),
                last_error_at=now - timedelta(minutes=6),
                last_error="HTTP 503 Service Unavailable",
            ),
            "desk": Source(
                name="desk",
                kind="kafka",
                created_at=now - timedelta(days=2),
                items_seen=3,
                last_success_at=now - timedelta(minutes=20),
            ),
            "sec-filings": Source(name="sec-filings", kind="rss", created_at=now - timedelta(hours=1)),
        }
        session.add_all(sources.values())
        session.flush()
        for item in sorted(ITEMS, key=lambda i: -i.minutes_ago):  # oldest first, as the pipeline stores them
            published = now - timedelta(minutes=item.minutes_ago)
            article = Article(
                source_id=sources[item.source].id,
                external_id=hashlib.sha1(item.title.encode()).hexdigest()[:12],
                url=f"https://news.example.com/{item.source}/{len(ids) + 1}",
                title=item.title,
                body=f"{item.title}. More details in the full story.",
                published_at=published,
                ingested_at=published + timedelta(milliseconds=400),
                content_hash=hashlib.sha256(item.title.encode()).hexdigest(),
                is_first_of_story=item.duplicate_of is None,
                similar_before=0 if item.duplicate_of is None else 1,
            )
            session.add(article)
            session.flush()
            article.story_id = ids[item.duplicate_of] if item.duplicate_of else article.id
            ids[item.title] = article.id
            for ticker in item.tickers:
                session.add(
                    Mention(
                        article_id=article.id, ticker=ticker, published_at=published, relevance=1.0, in_headline=True
                    )
                )
            p = probabilities(item.label, item.confidence)
            score = Score(
                article_id=article.id,
                model_version=VERSION,
                label=item.label,
                p_negative=p["negative"],
                p_neutral=p["neutral"],
                p_positive=p["positive"],
                score=p["positive"] - p["negative"],
                confidence=item.confidence,
                scored_at=published + timedelta(seconds=1),
                latency_ms=150.0 + len(ids),
            )
            session.add(score)
            session.flush()
            for rank, (word, weight) in enumerate(item.words, start=1):
                start = item.title.index(word)
                session.add(
                    Attribution(
                        score_id=score.id,
                        method="pooling",
                        rank=rank,
                        word=word,
                        weight=weight,
                        start=start,
                        end=start + len(word),
                    )
                )
        # An old version's verdict on one article: the dashboard shows the current version only.
        session.add(
            Score(
                article_id=ids["Apple raises dividend and expands buyback"],
                model_version="minilm6-attnpool-old",
                label="neutral",
                p_negative=0.1,
                p_neutral=0.8,
                p_positive=0.1,
                score=0.0,
                confidence=0.8,
                scored_at=now - timedelta(days=5),
            )
        )
        rejects = [
            ("decode", "title: missing (required)", "desk", now - timedelta(minutes=10)),
            ("decode", "invalid UTF-8 at byte 29: invalid continuation byte", "desk", now - timedelta(minutes=25)),
            (
                "normalize",
                "published_at: before 1900 (1850-01-01T00:00:00+00:00)",
                "benzinga",
                now - timedelta(minutes=40),
            ),
            ("decode", "malformed JSON: Expecting value", "cnbc", now - timedelta(hours=3)),
        ]
        for n, (stage, reason, source, at) in enumerate(rejects):
            session.add(
                Reject(
                    stage=stage,
                    reason=reason,
                    source=source,
                    topic="news.raw",
                    partition=0,
                    offset=n,
                    payload=b"\xff{",
                    created_at=at,
                    origin=f"news.raw:0:{n}",
                )
            )

        def alert(rule, severity, ticker, status, *, active, starts=None, ends=None, value, summary, evidence=()):
            labels = {"alertname": rule, "severity": severity, "ticker": ticker}
            row = Alert(
                fingerprint=hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16],
                rule=rule,
                severity=severity,
                ticker=ticker,
                labels=json.dumps(labels, sort_keys=True),
                annotations=json.dumps({"summary": summary}),
                status=status,
                value=value,
                active_at=active,
                starts_at=starts,
                ends_at=ends,
                last_notified_at=starts,
                updated_at=ends or starts or active,
            )
            session.add(row)
            session.flush()
            session.add(AlertEvent(alert_id=row.id, at=active, event="pending", detail=f"value {value:.3g}"))
            if starts:
                session.add(AlertEvent(alert_id=row.id, at=starts, event="firing", detail=f"value {value:.3g}"))
            if ends:
                session.add(AlertEvent(alert_id=row.id, at=ends, event="resolved", detail="condition no longer holds"))
            for title in evidence:
                item = next(i for i in ITEMS if i.title == title)
                p = probabilities(item.label, item.confidence)
                session.add(
                    AlertEvidence(
                        alert_id=row.id,
                        article_id=ids[title],
                        score=p["positive"] - p["negative"],
                        words=json.dumps([[w, x] for w, x in item.words]),
                    )
                )
            return row.id

        ids["alert:firing"] = alert(
            "negative_burst",
            "critical",
            "NOK",
            "firing",
            active=now - timedelta(minutes=4),
            starts=now - timedelta(minutes=3),
            value=2.0,
            summary="2 negative stories about NOK in 15m",
            evidence=("Nokia shares plunge after profit warning", "Nokia shares plunge after a profit warning"),
        )
        ids["alert:resolved"] = alert(
            "volume_spike",
            "warning",
            "AAPL",
            "resolved",
            active=now - timedelta(minutes=305),
            starts=now - timedelta(minutes=300),
            ends=now - timedelta(minutes=240),
            value=4.0,
            summary="AAPL story volume 4x its baseline",
            evidence=("Apple faces EU antitrust fine over App Store", "Apple and Microsoft shares flat in early trade"),
        )
        ids["alert:pending"] = alert(
            "negative_burst",
            "critical",
            "EVIL",
            "pending",
            active=now - timedelta(minutes=2),
            value=1.0,
            summary="1 negative story about EVIL in 15m",
            evidence=(HOSTILE,),
        )
        session.add(
            Silence(
                matchers=json.dumps([{"name": "ticker", "op": "=", "value": "BA"}]),
                author="ana",
                comment="earnings day",
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(hours=3),
                created_at=now - timedelta(hours=1),
            )
        )
        session.add(
            Silence(
                matchers=json.dumps([{"name": "ticker", "op": "=", "value": "NOK"}]),
                author="bo",
                comment="old",
                starts_at=now - timedelta(days=2),
                ends_at=now - timedelta(days=1),
                created_at=now - timedelta(days=2),
            )
        )
    # The monitor's buckets, as `finsent monitor` keeps them (15m, 1h, 1d), for everything stored so far.
    from monitor.windows import update_buckets

    with Session(engine) as session, session.begin():
        update_buckets(session, windows=[900, 3600, 86400], version=VERSION)
    engine.dispose()
    return ids


@dataclass
class Seeded:
    url: str
    path: Path
    now: datetime
    ids: dict[str, int]


@pytest.fixture(scope="session")
def seeded(tmp_path_factory) -> Seeded:
    """The seeded SQLite database shared by tests that only read."""
    path = tmp_path_factory.mktemp("dashboard") / "seeded.db"
    now = datetime.now(UTC).replace(microsecond=0)
    url = f"sqlite:///{path}"
    return Seeded(url=url, path=path, now=now, ids=seed(url, now))


@pytest.fixture
def fresh_seeded(tmp_path) -> Seeded:
    """The seed in a new SQLite file at this moment, for a page whose figures are relative to the wall clock
    ("last item 4 min ago"): the shared seed may be many minutes old by the time a slow run reaches the test."""
    path = tmp_path / "fresh.db"
    now = datetime.now(UTC).replace(microsecond=0)
    url = f"sqlite:///{path}"
    return Seeded(url=url, path=path, now=now, ids=seed(url, now))


@pytest.fixture
def writable(seeded, tmp_path) -> Seeded:
    """A private copy of the seeded database, for tests that change it."""
    path = tmp_path / "copy.db"
    with sqlite3.connect(seeded.path) as source, sqlite3.connect(path) as target:
        source.backup(target)
    return Seeded(url=f"sqlite:///{path}", path=path, now=seeded.now, ids=seeded.ids)


@pytest.fixture
def app(monkeypatch):
    """`app(url, page="ticker", query={...})`: the dashboard run by AppTest against `url`, switched to a page."""
    from streamlit.testing.v1 import AppTest

    def run(url: str, page: str | None = None, query: dict | None = None) -> AppTest:
        monkeypatch.setenv("FINSENT_DATABASE_URL", url)
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        if page is not None:
            at.switch_page(f"views/{page}.py")
            at.query_params.update(query or {})
            at.run()
            assert not at.exception, at.exception
        return at

    return run
