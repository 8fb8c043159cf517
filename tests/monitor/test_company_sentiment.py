"""Issue 20: a headline naming a rising and a falling company counts each in its own direction, in windows, rules,
alert evidence and exports; a mention without its own sentiment keeps its headline's, marked as such. A synthetic
two-company stream stored through the real database (the worker's own storage function for the companies' results)."""

from __future__ import annotations

import io
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.db import make_session_factory
from core.export import ExportQuery, export
from core.schema import Alert, AlertEvidence, Article, Attribution, Mention, MentionScore, Score, Source
from model.scorer import Attribution as Word
from model.target import TargetResult
from monitor.alerts import run_evaluation
from monitor.rules import MonitorConfig
from monitor.windows import aggregate_sql, rolling_all
from scoring.processor import store_mention_scores

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
VERSION = "test-model"
_ids = itertools.count(1)


@pytest.fixture
def factory(migrated_engine):
    return make_session_factory(migrated_engine)


def probabilities(label: str, confidence: float = 0.9) -> dict[str, float]:
    rest = (1 - confidence) / 2
    return {k: confidence if k == label else rest for k in ("negative", "neutral", "positive")}


def result(title: str, name: str, label: str, word: str) -> TargetResult:
    start = title.index(name)
    at = title.index(word)
    p = probabilities(label)
    return TargetResult(name, start, start + len(name), label, p, p["positive"] - p["negative"],
                        [Word(1, word, 0.6, at, at + len(word))], True, [])  # fmt: skip


def two_company_story(factory, when: datetime, *, own: bool = True) -> int:
    """'Pfizer soars as Moderna slumps': the headline's score is positive (what one label per headline gave), and,
    with `own`, each company's own result: Pfizer positive ('soars'), Moderna negative ('slumps')."""
    n = next(_ids)
    title = f"Pfizer soars as Moderna slumps ({n})"
    with factory() as s, s.begin():
        src = s.scalar(select(Source).where(Source.name == "wire")) or Source(name="wire", kind="stream")
        s.add(src)
        s.flush()
        article = Article(source_id=src.id, title=title, published_at=when, ingested_at=when, content_hash=f"c{n}")
        s.add(article)
        s.flush()
        article.story_id = article.id
        for ticker, name in (("PFE", "Pfizer"), ("MRNA", "Moderna")):
            start = title.index(name)
            s.add(Mention(article_id=article.id, ticker=ticker, published_at=when, relevance=0.9, in_headline=True,
                          role="subject", rule="name", span_start=start, span_end=start + len(name)))  # fmt: skip
        p = probabilities("positive", 0.8)
        score = Score(article_id=article.id, model_version=VERSION, label="positive", p_negative=p["negative"],
                      p_neutral=p["neutral"], p_positive=p["positive"], score=p["positive"] - p["negative"],
                      confidence=0.8, scored_at=when)  # fmt: skip
        s.add(score)
        s.flush()
        s.add(Attribution(score_id=score.id, method="pooling", rank=1, word="soars", weight=0.5, start=7, end=12))
        if own:
            companies = {0: [("PFE", result(title, "Pfizer", "positive", "soars")),
                             ("MRNA", result(title, "Moderna", "negative", "slumps"))]}  # fmt: skip
            assert store_mention_scores(s, [score.id], companies) == 2
        return article.id


def config() -> MonitorConfig:
    return MonitorConfig.model_validate({
        "rule": [{"name": "burst", "type": "negative_burst", "window": "1d", "min_stories": 3, "min_confidence": 0.8}],
        "receiver": [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x"}],
        "route_receivers": ["hook"],
    })  # fmt: skip


def test_the_rising_company_rises_and_the_falling_one_falls(factory):
    for i in range(4):
        two_company_story(factory, T0 - timedelta(hours=3 - i))
    with factory() as s:
        rolling = rolling_all(s, window_s=86400, now=T0, version=VERSION)
        buckets = aggregate_sql(session=s, keys=["PFE", "MRNA"], start=T0 - timedelta(days=1), end=T0,
                                window_s=86400, version=VERSION)  # fmt: skip
    assert rolling["PFE"].mean_score > 0.5 and rolling["MRNA"].mean_score < -0.5
    assert rolling["MRNA"].share_negative == 1.0 and rolling["PFE"].share_negative == 0.0
    by_key = {key: stats for (key, _), stats in buckets.items()}
    assert by_key["PFE"]["mean_score"] > 0.5 and by_key["MRNA"]["mean_score"] < -0.5
    # The market counts the headline once, with the headline's own verdict.
    assert rolling["*"].mean_score > 0

    # negative_burst fires for the falling company only, with its own words as evidence.
    run_evaluation(session_factory=factory, config=config(), version=VERSION, now=T0)
    with factory() as s:
        alerts = list(s.scalars(select(Alert)))
        assert [a.ticker for a in alerts] == ["MRNA"]
        words = [json.loads(e.words) for e in s.scalars(select(AlertEvidence))]
    assert words and all(w == [["slumps", 0.6]] for w in words)


def test_a_mention_without_its_own_sentiment_keeps_the_headlines_marked_as_such(factory):
    two_company_story(factory, T0 - timedelta(hours=2), own=False)  # stored before the per-company pass
    two_company_story(factory, T0 - timedelta(hours=1))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(MentionScore)) == 2
        rolling = rolling_all(s, window_s=86400, now=T0, version=VERSION)
    # One story each way for Moderna, weighted by confidence: the old headline's +0.7 (0.8), its own -0.85 (0.9).
    assert rolling["MRNA"].mean_score == pytest.approx((0.7 * 0.8 - 0.85 * 0.9) / (0.8 + 0.9), abs=1e-6)

    out = io.BytesIO()
    with factory() as s:
        export(session=s, query=ExportQuery(version=VERSION, tickers=["MRNA"]), fmt="jsonl", out=out)
    rows = [json.loads(line) for line in out.getvalue().decode().splitlines()]
    assert [(r["label"], r["sentiment_of"]) for r in rows] == [("positive", "headline"), ("negative", "company")]
    assert [w["word"] for w in rows[0]["top_words"]] == ["soars"]
    assert [w["word"] for w in rows[1]["top_words"]] == ["slumps"]


def test_the_dashboard_shows_each_company_its_own_sentiment(factory):
    from dashboard import queries

    article_id = two_company_story(factory, T0 - timedelta(hours=1))
    with factory() as s:
        (pfe,) = queries.ticker_stories(s, version=VERSION, ticker="PFE", since=T0 - timedelta(days=1), until=T0)
        (mrna,) = queries.ticker_stories(s, version=VERSION, ticker="mrna", since=T0 - timedelta(days=1), until=T0)
        item = queries.article(s, version=VERSION, article_id=article_id)
    assert (pfe["label"], pfe["sentiment_of"]) == ("positive", "company")
    assert (mrna["label"], mrna["sentiment_of"], [w["word"] for w in mrna["words"]]) == (
        "negative", "company", ["slumps"],
    )  # fmt: skip
    assert set(mrna["companies"]) == {"PFE", "MRNA"}
    own = {t["ticker"]: t["sentiment"]["label"] for t in item["tickers"]}
    assert own == {"PFE": "positive", "MRNA": "negative"} and item["score"]["label"] == "positive"
