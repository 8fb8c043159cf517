"""Which sentiment a company's mention carries: its own (the model's targeted result, `mention_scores`, for articles
naming two or more companies) or, where it has none, its article's (the headline's `scores` row). Every reader that
counts sentiment per ticker (windows, rules, alert evidence, exports, the dashboard) joins with these, so one
headline naming a rising and a falling company counts each in its own direction (issue 20).

    query.join(Score, ...).join(Mention, ...)  # as before
    query = with_own(query)                     # LEFT JOIN mention_scores on (score, ticker)
    select(..., *own_columns())                 # label, p_*, score, confidence; `sentiment_of`: company | headline
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from core.schema import Mention, MentionAttribution, MentionScore, Score

OF_COMPANY = "company"  # the mention's own result (targeted pass)
OF_HEADLINE = "headline"  # the article's result: one company in the headline, or stored before the targeted pass


def with_own(query, mention=Mention, score=Score):
    """LEFT JOIN each (score, mention) row with the mention's own result, if it has one."""
    return query.outerjoin(MentionScore, and_(MentionScore.score_id == score.id, MentionScore.ticker == mention.ticker))


def own(column: str, score=Score):
    """The mention's own value of a `scores` column, else the article's, labelled with the column's name."""
    return func.coalesce(getattr(MentionScore, column), getattr(score, column)).label(column)


def own_columns(score=Score) -> list:
    """label, p_negative, p_neutral, p_positive, score, confidence and sentiment_of, mention first."""
    names = ("label", "p_negative", "p_neutral", "p_positive", "score", "confidence")
    return [*(own(n, score) for n in names), sentiment_of()]


def sentiment_of():
    return case((MentionScore.id.is_(None), literal(OF_HEADLINE)), else_=literal(OF_COMPANY)).label("sentiment_of")


def company_words(session: Session, mention_score_ids: Iterable[int]) -> dict[int, list[MentionAttribution]]:
    """Each company result's words by rank, keyed by its `mention_scores` id (every id asked for gets a list)."""
    out: dict[int, list[MentionAttribution]] = {i: [] for i in mention_score_ids}
    if out:
        for w in session.scalars(
            select(MentionAttribution)
            .where(MentionAttribution.mention_score_id.in_(list(out)))
            .order_by(MentionAttribution.mention_score_id, MentionAttribution.rank)
        ):
            out[w.mention_score_id].append(w)
    return out
