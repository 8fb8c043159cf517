"""An alert's evidence: recorded once per article (at most MAX_EVIDENCE), read in one place by the feed, the
notification payloads and the dashboard, and read safely when a stored value is malformed."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.db import make_session_factory
from core.schema import Alert, AlertEvidence, Score
from monitor.evidence import MAX_EVIDENCE, Evidence, load_evidence, record_evidence
from tests.monitor.test_alerts import VERSION, add_story

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def factory(migrated_engine):
    return make_session_factory(migrated_engine)


def new_alert(session, name: str) -> int:
    alert = Alert(fingerprint=name, rule=name, severity="warning", ticker="AAPL", labels="{}", annotations="{}",
                  status="firing", value=1.0, active_at=T0, updated_at=T0)  # fmt: skip
    session.add(alert)
    session.flush()
    return alert.id


def test_recorded_once_each_up_to_the_cap_and_read_newest_first(factory):
    articles = [
        add_story(factory, ticker="AAPL", when=T0 - timedelta(minutes=m), title=f"Apple story {m}", score=-0.9)
        for m in range(MAX_EVIDENCE + 3)
    ]
    with factory() as s, s.begin():
        first, other = new_alert(s, "first"), new_alert(s, "other")
        record_evidence(session=s, alert_id=first, article_ids=articles[:3], version=VERSION)
        record_evidence(session=s, alert_id=first, article_ids=articles, version=VERSION)  # the first 3 again
        record_evidence(session=s, alert_id=other, article_ids=articles[-1:], version=None)
    with factory() as s:
        evidence = load_evidence(session=s, alert_ids=[first, other, 999])
    assert [len(evidence[i]) for i in (first, other, 999)] == [MAX_EVIDENCE, 1, 0]
    assert [e.article_id for e in evidence[first]] == articles[:MAX_EVIDENCE]  # newest first: minutes ago 0, 1, ...
    item = evidence[first][0]
    assert item == Evidence(articles[0], "Apple story 0", "wire", T0, -0.9, None, [["plunge", 0.4]])
    assert item.as_json() == {
        "article_id": articles[0], "title": "Apple story 0", "source": "wire", "published_at": T0.isoformat(),
        "score": -0.9, "words": [["plunge", 0.4]],
    }  # fmt: skip
    with factory() as s:
        assert load_evidence(session=s, alert_ids=[]) == {}


def test_label_by_the_version_asked_for(factory):
    """The dashboard shows each article's label by the version it shows; the feed has no label."""
    article = add_story(factory, ticker="AAPL", when=T0, label="negative")
    with factory() as s, s.begin():
        alert = new_alert(s, "labelled")
        record_evidence(session=s, alert_id=alert, article_ids=[article], version=VERSION)
        s.add(Score(article_id=article, model_version="newer", label="neutral", p_negative=0.2, p_neutral=0.7,
                    p_positive=0.1, score=-0.1, confidence=0.7, scored_at=T0 + timedelta(hours=1)))  # fmt: skip
    with factory() as s:
        assert [e.label for e in load_evidence(session=s, alert_ids=[alert])[alert]] == [None]
        assert [e.label for e in load_evidence(session=s, alert_ids=[alert], version=VERSION)[alert]] == ["negative"]
        assert [e.label for e in load_evidence(session=s, alert_ids=[alert], version="newer")[alert]] == ["neutral"]
        assert [e.label for e in load_evidence(session=s, alert_ids=[alert], version="none")[alert]] == [None]
        assert "label" not in load_evidence(session=s, alert_ids=[alert], version=VERSION)[alert][0].as_json()


def test_malformed_stored_values_are_read_as_unknown_not_raised(factory, caplog):
    """Words that are not JSON, not pairs or not finite are dropped (and logged); a score JSON cannot carry is null
    in the JSON form and kept as stored otherwise."""
    articles = [add_story(factory, ticker="AAPL", when=T0 - timedelta(minutes=m)) for m in range(3)]
    with factory() as s, s.begin():
        alert = new_alert(s, "broken")
        record_evidence(session=s, alert_id=alert, article_ids=articles, version=VERSION)
        rows = {r.article_id: r for r in s.scalars(select(AlertEvidence).where(AlertEvidence.alert_id == alert))}
        rows[articles[0]].words = "[not json"
        rows[articles[1]].words = '[["ok", 0.5], ["nan", NaN], ["three", 1, 2], "word", ["inf", Infinity]]'
        rows[articles[2]].score = math.inf
    with caplog.at_level(logging.ERROR, logger="monitor.evidence"), factory() as s:
        items = load_evidence(session=s, alert_ids=[alert])[alert]
    assert [e.words for e in items] == [[], [["ok", 0.5]], [["plunge", 0.4]]]
    assert f"alert {alert}: evidence words is not valid JSON" in caplog.text
    assert items[2].score == math.inf and items[2].as_json()["score"] is None
