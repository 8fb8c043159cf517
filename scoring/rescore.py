"""Rescoring (`finsent rescore`): stored articles scored with another model version; old scores are kept."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from core.schema import Article, Score
from model.scorer import ScoreInputError, Scorer
from scoring.pipeline import scoring_text
from scoring.processor import score_each, store_scores

log = logging.getLogger(__name__)


def rescore(
    *,
    session_factory: sessionmaker[Session],
    scorer: Scorer,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = 256,
) -> int:
    """Score stored articles that have no score of `scorer`'s version yet (old versions' scores are kept).

    Texts go through the live path's `scoring_text`, so a rescore sees what the stream saw.
    """
    done, last_id = 0, 0
    while True:
        with session_factory() as session:
            query = select(Article.id, Article.title, Article.body).where(
                Article.id > last_id,
                ~exists().where(Score.article_id == Article.id, Score.model_version == scorer.version),
            )
            if since is not None:
                query = query.where(Article.published_at >= since)
            if until is not None:
                query = query.where(Article.published_at < until)
            rows = session.execute(query.order_by(Article.id).limit(batch_size)).all()
        if not rows:
            return done
        texts = [scoring_text(title, body) for _, title, body in rows]
        ids = [r[0] for r in rows]
        try:
            results = scorer.score_batch(texts)
        except ScoreInputError:  # a stored text this model will not score: the others are scored, it is logged
            results, kept, refused = score_each(scorer, texts, top_k=5)
            for i, reason in refused:
                log.warning("article %d not rescored: %s", ids[i], reason)
            ids = [ids[i] for i in kept]
        with session_factory() as session, session.begin():
            scored_at = datetime.now(UTC)
            store_scores(session, results, ids, scored_at=scored_at)
        done += len(ids)
        last_id = rows[-1][0]
