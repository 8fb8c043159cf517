"""Rescoring (`finsent rescore`): stored articles scored with another model version; old scores are kept. Articles
whose headline names two or more companies also get each company's own sentiment (`fill_companies`), including
articles this version scored before the per-company pass existed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.schema import Article, Mention, MentionScore, Score
from model.scorer import ScoreInputError, Scorer
from scoring.pipeline import scoring_text
from scoring.processor import score_companies, score_each, store_mention_scores, store_scores, target_scorer

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


def fill_companies(
    *,
    session_factory: sessionmaker[Session],
    scorer: Scorer,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_size: int = 256,
) -> int:
    """Give each company its own sentiment in stored articles that `scorer`'s version scored, whose headline names
    two or more companies (mentions with a headline span) and that have none yet. Returns the mentions filled; 0
    when the checkpoint has no targeted head."""
    targets = target_scorer(scorer)
    if targets is None:
        return 0
    done, last_id = 0, 0
    spanned = select(Mention.article_id).where(Mention.span_start.is_not(None)).group_by(Mention.article_id)
    spanned = spanned.having(func.count(func.distinct(Mention.ticker)) >= 2)
    while True:
        with session_factory() as session:
            query = (
                select(Score.id, Article.id, Article.title, Article.body)
                .join(Article, Article.id == Score.article_id)
                .where(
                    Score.model_version == scorer.version,
                    Score.id > last_id,
                    Article.id.in_(spanned),
                    ~exists().where(MentionScore.score_id == Score.id),
                )
            )
            if since is not None:
                query = query.where(Article.published_at >= since)
            if until is not None:
                query = query.where(Article.published_at < until)
            rows = session.execute(query.order_by(Score.id).limit(batch_size)).all()
            mentions: dict[int, list] = {r[1]: [] for r in rows}
            if rows:
                for article_id, ticker, start, end in session.execute(
                    select(Mention.article_id, Mention.ticker, Mention.span_start, Mention.span_end)
                    .where(Mention.article_id.in_(list(mentions)), Mention.span_start.is_not(None))
                    .order_by(Mention.article_id, Mention.relevance.desc(), Mention.ticker)
                ):
                    span = SimpleNamespace(ticker=ticker, start=start, end=end, span_in="headline")
                    mentions[article_id].append(span)
        if not rows:
            return done
        texts = [scoring_text(title, body) for _, _, title, body in rows]
        companies = score_companies(targets, texts, [mentions[r[1]] for r in rows], top_k=5)
        with session_factory() as session, session.begin():
            done += store_mention_scores(session, [r[0] for r in rows], companies)
        last_id = rows[-1][0]
