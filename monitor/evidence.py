"""What an alert cites: the articles that made it fire, each with its score and its top-attended words.

The lifecycle records evidence when a rule's finding creates or updates an alert (`record_evidence`); everything
that shows it reads it here (`load_evidence`): the feed, the notification payloads and the dashboard. `as_json` is
the evidence object of `/alerts.json` and of the webhook payloads (monitor/alerts.schema.json).
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, null, select
from sqlalchemy.orm import Session

from core.schema import (
    Alert,
    AlertEvidence,
    Article,
    Attribution,
    Mention,
    MentionScore,
    Score,
    Source,
)
from core.sentiment import company_words, own, with_own

log = logging.getLogger(__name__)

MAX_EVIDENCE = 10  # articles kept per alert episode: enough to judge it, few enough for a chat message


@dataclass(frozen=True, slots=True)
class Evidence:
    """One article an alert cites."""

    article_id: int
    title: str
    source: str
    published_at: datetime
    score: float | None  # the article's score when the alert recorded it
    label: str | None  # its label by the model version `load_evidence` was asked for (None without one)
    words: list[list]  # [word, weight] pairs of its top pooling words, heaviest first

    def as_json(self) -> dict[str, Any]:
        """The evidence object of the feed and the webhook payloads (no label: the schema has none)."""
        return {
            "article_id": self.article_id,
            "title": self.title,
            "source": self.source,
            "published_at": json_time(self.published_at),
            "score": json_number(self.score),
            "words": [list(pair) for pair in self.words],
        }


def json_time(when: datetime | None) -> str | None:
    """A time as the feed and the payloads write it: ISO 8601 in UTC, None when unset."""
    return when.astimezone(UTC).isoformat() if when else None


def json_number(value: float | None) -> float | None:
    """A number as the feed and the payloads write it: JSON has no NaN or Infinity, so those are unknown (None)."""
    return value if value is None or math.isfinite(value) else None


def _words(text: str | None, *, alert_id: int) -> list[list]:
    """The stored [word, weight] pairs; a malformed value is logged and read as no words, never failing a reader."""
    try:
        value = json.loads(text) if text else []
    except ValueError:
        log.error("alert %d: evidence words is not valid JSON; shown as empty", alert_id)
        return []
    pairs = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], int | float):
            if math.isfinite(item[1]):
                pairs.append([str(item[0]), float(item[1])])
    return pairs


def load_evidence(*, session: Session, alert_ids: list[int], version: str | None = None) -> dict[int, list[Evidence]]:
    """Each alert's evidence, newest article first, in one query for all the alerts (every id gets a list).

    With `version`, each article's label is that of its score by this model version."""
    evidence: dict[int, list[Evidence]] = {alert_id: [] for alert_id in alert_ids}
    if not evidence:
        return evidence
    query = (
        select(
            AlertEvidence.alert_id,
            Article.id,
            Article.title,
            Source.name,
            Article.published_at,
            AlertEvidence.score,
            own("label") if version is not None else null().label("label"),
            AlertEvidence.words,
        )
        .join(Article, Article.id == AlertEvidence.article_id)
        .join(Source, Source.id == Article.source_id)
        .where(AlertEvidence.alert_id.in_(list(evidence)))
        .order_by(AlertEvidence.alert_id, Article.published_at.desc(), Article.id)
    )
    if version is not None:  # the label for the alert's company: its own where it has one (core/sentiment.py)
        query = with_own(
            query.join(Alert, Alert.id == AlertEvidence.alert_id)
            .outerjoin(Score, and_(Score.article_id == Article.id, Score.model_version == version))
            .outerjoin(Mention, and_(Mention.article_id == Article.id, Mention.ticker == Alert.ticker))
        )
    for alert_id, article_id, title, source, published_at, score, label, words in session.execute(query):
        evidence[alert_id].append(
            Evidence(article_id, title, source, published_at, score, label, _words(words, alert_id=alert_id))
        )
    return evidence


def record_evidence(
    *, session: Session, alert_id: int, article_ids: list[int], version: str | None, ticker: str | None = None
) -> None:
    """Add articles to an alert's evidence (up to MAX_EVIDENCE in all, each once) with their `version` score and
    top pooling words as they are now: for a ticker's alert, the company's own score and words where the headline
    names two or more companies (core/sentiment.py), else the headline's."""
    have = set(session.scalars(select(AlertEvidence.article_id).where(AlertEvidence.alert_id == alert_id)))
    room = MAX_EVIDENCE - len(have)
    new = [a for a in article_ids if a not in have][: max(0, room)]
    if not new:
        return
    query = select(Score.article_id, Score.id, own("score"), MentionScore.id).where(
        Score.article_id.in_(new), *([Score.model_version == version] if version else [])
    )
    query = with_own(query.outerjoin(Mention, and_(Mention.article_id == Score.article_id, Mention.ticker == ticker)))
    scores = {article_id: (score_id, value, own_id) for article_id, score_id, value, own_id in session.execute(query)}
    words: dict[tuple[str, int], list] = defaultdict(list)
    score_ids = [s for s, _, o in scores.values() if o is None]
    own_ids = [o for _, _, o in scores.values() if o is not None]
    if score_ids:
        for score_id, word, weight in session.execute(
            select(Attribution.score_id, Attribution.word, Attribution.weight)
            .where(Attribution.score_id.in_(score_ids), Attribution.method == "pooling")
            .order_by(Attribution.score_id, Attribution.rank)
        ):
            words[("headline", score_id)].append([word, round(weight, 4)])
    for own_id, found in company_words(session, own_ids).items():
        words[("company", own_id)] = [[w.word, round(w.weight, 4)] for w in found]
    for article_id in new:
        score_id, value, own_id = scores.get(article_id, (None, None, None))
        key = ("company", own_id) if own_id is not None else ("headline", score_id)
        session.add(
            AlertEvidence(alert_id=alert_id, article_id=article_id, score=value, words=json.dumps(words.get(key, [])))
        )
