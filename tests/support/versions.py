"""A database scored by two model versions, for the rollout tests (issue 18, point 6).

The recent hour is scored by both versions, which disagree: the active one (A) calls the Apple stories negative and
the Nokia ones positive, the candidate (B) the other way round (Apple neutral, Nokia negative); both call Microsoft
positive. One JPMorgan story was scored only by A, and an old IBM day, ten days back, only by B. Every article is its
own story with one ticker; neither version has a checkpoint: readers may show them (they have scores), nothing can
score with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.schema import Article, Attribution, Mention, Score, Source

ACTIVE = "rollout-a"
CANDIDATE = "rollout-b"
OLD_DAYS = 10  # the IBM day only the candidate scored lies this many days before `now`


@dataclass(frozen=True)
class Verdict:
    label: str
    p: tuple[float, float, float]  # negative, neutral, positive

    @property
    def score(self) -> float:
        return round(self.p[2] - self.p[0], 4)

    @property
    def confidence(self) -> float:
        return max(self.p)


NEG_A, NEU_B = Verdict("negative", (0.85, 0.1, 0.05)), Verdict("neutral", (0.1, 0.8, 0.1))  # -0.8 / 0.0
POS_A, NEG_B = Verdict("positive", (0.05, 0.15, 0.8)), Verdict("negative", (0.7, 0.2, 0.1))  # +0.75 / -0.6
MSFT_A, MSFT_B = Verdict("positive", (0.1, 0.2, 0.7)), Verdict("positive", (0.1, 0.3, 0.6))  # +0.6 / +0.5
JPM_A = Verdict("neutral", (0.1, 0.8, 0.1))  # 0.0
IBM_B = Verdict("negative", (0.8, 0.1, 0.1))  # -0.7

# (minutes before now, ticker, headline, {version: verdict}); the word the pooling attended to is the first one.
STORIES = [
    (50, "AAPL", "Apple cuts iPhone forecast", {ACTIVE: NEG_A, CANDIDATE: NEU_B}),
    (40, "AAPL", "Apple supplier warns on demand", {ACTIVE: NEG_A, CANDIDATE: NEU_B}),
    (30, "AAPL", "Apple faces new EU probe", {ACTIVE: NEG_A, CANDIDATE: NEU_B}),
    (45, "NOK", "Nokia wins 5G deal in India", {ACTIVE: POS_A, CANDIDATE: NEG_B}),
    (35, "NOK", "Nokia raises margin target", {ACTIVE: POS_A, CANDIDATE: NEG_B}),
    (25, "NOK", "Nokia shares jump on network orders", {ACTIVE: POS_A, CANDIDATE: NEG_B}),
    (20, "MSFT", "Microsoft beats cloud estimates", {ACTIVE: MSFT_A, CANDIDATE: MSFT_B}),
    (15, "MSFT", "Microsoft expands buyback", {ACTIVE: MSFT_A, CANDIDATE: MSFT_B}),
    (10, "JPM", "JPMorgan names new finance chief", {ACTIVE: JPM_A}),
    *(
        (OLD_DAYS * 1440 + 30 * i, "IBM", title, {CANDIDATE: IBM_B})
        for i, title in enumerate(
            ["IBM cuts outlook", "IBM profit warning rattles investors", "IBM shares fall on slump", "IBM layoffs"]
        )
    ),
]


def seed_two_versions(engine: Engine, now: datetime) -> dict[str, int]:
    """Write STORIES into the migrated database of `engine`, relative to `now`; returns {headline: article id}."""
    ids: dict[str, int] = {}
    with Session(engine) as session, session.begin():
        source = Source(name="wire", kind="stream", created_at=now - timedelta(days=30))
        session.add(source)
        session.flush()
        for n, (minutes, ticker, title, verdicts) in enumerate(STORIES):
            when = now - timedelta(minutes=minutes)
            article = Article(source_id=source.id, title=title, published_at=when, ingested_at=when,
                              content_hash=f"rollout-{n}")  # fmt: skip
            session.add(article)
            session.flush()
            article.story_id, ids[title] = article.id, article.id
            session.add(Mention(article_id=article.id, ticker=ticker, published_at=when, relevance=1.0,
                                in_headline=True))  # fmt: skip
            for version, v in verdicts.items():
                score = Score(article_id=article.id, model_version=version, label=v.label, p_negative=v.p[0],
                              p_neutral=v.p[1], p_positive=v.p[2], score=v.score, confidence=v.confidence,
                              scored_at=when + timedelta(seconds=1 if version == ACTIVE else 3600))  # fmt: skip
                session.add(score)
                session.flush()
                word = title.split()[0]
                session.add(Attribution(score_id=score.id, method="pooling", rank=1, word=word, weight=0.5, start=0,
                                        end=len(word)))  # fmt: skip
    return ids
