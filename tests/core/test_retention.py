"""Retention (core/retention.py): what a prune removes and what it keeps, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.db import make_session_factory
from core.retention import RetentionError, parse_age, prune
from core.schema import (
    Alert,
    AlertEvent,
    AlertEvidence,
    Article,
    Attribution,
    Mention,
    MentionAttribution,
    MentionScore,
    Notification,
    Reject,
    Score,
    Source,
    WindowBucket,
)

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
OLD = NOW - timedelta(days=500)
RECENT = NOW - timedelta(days=10)
CUTOFF = NOW - timedelta(days=400)


def _article(session, source, title: str, when: datetime, story: Article | None = None) -> Article:
    article = Article(source_id=source.id, title=title, published_at=when, content_hash=title.ljust(64, "0")[:64])
    session.add(article)
    session.flush()
    article.story_id = (story or article).id
    article.is_first_of_story = story is None
    session.add(Mention(article_id=article.id, ticker="AAPL", published_at=when))
    score = Score(article_id=article.id, model_version="v1", label="neutral", p_negative=0.2, p_neutral=0.6,
                  p_positive=0.2, score=0.0, confidence=0.6)  # fmt: skip
    session.add(score)
    session.flush()
    session.add(Attribution(score_id=score.id, method="pooling", rank=0, word="Apple", weight=1.0, start=0, end=5))
    own = MentionScore(score_id=score.id, ticker="AAPL", label="neutral", p_negative=0.2, p_neutral=0.6,
                       p_positive=0.2, score=0.0, confidence=0.6, span_start=0, span_end=5)  # fmt: skip
    session.add(own)
    session.flush()
    session.add(MentionAttribution(mention_score_id=own.id, rank=1, word="Apple", weight=1.0, start=0, end=5))
    return article


def _alert(session, name: str, status: str, ends_at: datetime | None, evidence: Article) -> Alert:
    alert = Alert(fingerprint=name[:16], rule=name, severity="warning", labels="{}", annotations="{}", status=status,
                  active_at=evidence.published_at, ends_at=ends_at)  # fmt: skip
    session.add(alert)
    session.flush()
    session.add(AlertEvidence(alert_id=alert.id, article_id=evidence.id))
    session.add(AlertEvent(alert_id=alert.id, at=evidence.published_at, event="firing"))
    session.add(Notification(alert_id=alert.id, receiver="desk", kind="firing", payload="{}",
                             next_attempt_at=evidence.published_at, sent_at=evidence.published_at))  # fmt: skip
    return alert


@pytest.fixture
def filled(migrated_engine):
    factory = make_session_factory(migrated_engine)
    with factory() as s, s.begin():
        source = Source(name="wire", kind="file")
        s.add(source)
        s.flush()
        old_first = _article(s, source, "old story first", OLD)
        _article(s, source, "old story second", OLD + timedelta(hours=1), story=old_first)
        recent_follow_up = _article(s, source, "recent follow-up", RECENT, story=old_first)
        held = _article(s, source, "old but evidence of an open alert", OLD)
        gone_evidence = _article(s, source, "old evidence of an old alert", OLD)
        _article(s, source, "recent news", RECENT)
        _alert(s, "old-resolved", "resolved", OLD + timedelta(days=1), gone_evidence)
        _alert(s, "still-firing", "firing", None, held)
        s.add(Notification(alert_id=s.scalar(select(Alert.id).where(Alert.rule == "still-firing")), receiver="late",
                           kind="reminder", payload="{}", next_attempt_at=OLD))  # owed, never sent  # fmt: skip
        s.add_all([Reject(stage="decode", reason="malformed JSON", created_at=OLD, origin="a:1"),
                   Reject(stage="decode", reason="malformed JSON", created_at=RECENT, origin="a:2")])  # fmt: skip
        s.add_all([WindowBucket(key="AAPL", window_s=3600, bucket_start=when, items=1, stories=1,
                                share_negative=0.0, share_positive=0.0) for when in (OLD, RECENT)])  # fmt: skip
        follow_up_id = recent_follow_up.id
    return factory, follow_up_id


def _rows(factory) -> dict[str, int]:
    with factory() as s:
        models = (Article, Mention, Score, Attribution, MentionScore, MentionAttribution, Alert, AlertEvent,
                  AlertEvidence, Notification, Reject, WindowBucket)  # fmt: skip
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in models}


def test_prune_removes_old_news_and_resolved_alerts_and_keeps_what_an_open_alert_needs(filled):
    factory, follow_up_id = filled
    before = _rows(factory)
    dry = prune(factory, CUTOFF, dry_run=True)
    assert _rows(factory) == before  # a dry run changes nothing
    expected = {"articles": 3, "mentions": 3, "scores": 3, "attributions": 3, "mention_scores": 3,
                "mention_attributions": 3, "alerts": 1, "alert_events": 1,
                "alert_evidence": 1, "notifications": 2, "rejects": 1, "window_buckets": 1}  # fmt: skip
    assert dry.removed == expected
    done = prune(factory, CUTOFF)
    assert done.removed == expected and not done.dry_run
    after = _rows(factory)
    assert {k: before[k] - after[k] for k in before} == expected
    with factory() as s:
        titles = set(s.scalars(select(Article.title)))
        assert titles == {"recent follow-up", "old but evidence of an open alert", "recent news"}
        assert s.scalars(select(Alert.rule)).all() == ["still-firing"]
        assert s.scalar(select(func.count()).select_from(AlertEvidence)) == 1  # the open alert still shows why
        assert s.scalars(select(Notification.receiver)).all() == ["late"]  # still owed
        # The follow-up's story began with a removed article: it keeps its row, not the link.
        assert s.get(Article, follow_up_id).story_id is None
    assert prune(factory, CUTOFF).removed == dict.fromkeys(expected, 0)  # again: nothing left to remove
    assert done.lines()[0].startswith("older than 2025-11-01T12:00:00+00:00: removed") and "removed" in done.lines()[0]


@pytest.mark.parametrize(("text", "days"), [("400d", 400), ("8w", 56), ("2y", 730), (" 1d ", 1)])
def test_ages(text, days):
    assert parse_age(text) == timedelta(days=days)


@pytest.mark.parametrize("text", ["", "400", "0d", "12h", "-3d", "1.5y", "forever"])
def test_bad_ages_are_refused_with_the_expected_form(text):
    with pytest.raises(RetentionError, match="older-than"):
        parse_age(text)
