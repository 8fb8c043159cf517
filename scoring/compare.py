"""`finsent model compare`: how a candidate model version's verdicts differ from those of the version the readers
show, on the stored articles both scored, before anyone switches (docs/model.md, "Rolling out a model version").

Counted in the database (GROUP BY over the scores' unique (article_id, model_version) index), never by loading rows:
agreement, the label shift matrix (active label → candidate label) and the mean score change; the articles only one
of the two scored are counted and reported, not skipped; a handful of flips, the largest score changes first, are
read back with their headlines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from core.schema import LABELS, Article, Score
from core.versions import VersionError, has_scores, scored_versions


@dataclass(frozen=True, slots=True)
class Flip:
    """One article whose label the candidate changes."""

    article_id: int
    published_at: datetime
    title: str
    active_label: str
    candidate_label: str
    active_score: float
    candidate_score: float


@dataclass(slots=True)
class Comparison:
    """The active version against a candidate over the articles published in [since, until) (None: open)."""

    active: str
    candidate: str
    since: datetime | None = None
    until: datetime | None = None
    compared: int = 0  # articles scored by both
    agreed: int = 0  # of those, with the same label
    shift: dict[str, dict[str, int]] = field(default_factory=lambda: {a: dict.fromkeys(LABELS, 0) for a in LABELS})
    mean_score_change: float | None = None  # candidate score - active score, mean over the compared articles
    only_active: int = 0  # scored by the active version and not by the candidate
    only_candidate: int = 0  # scored by the candidate and not by the active version
    flips: list[Flip] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        """Share of the compared articles given the same label (None when none was compared)."""
        return self.agreed / self.compared if self.compared else None

    def as_json(self) -> dict[str, Any]:
        """The comparison as plain JSON types (times ISO 8601)."""
        return {
            "active": self.active,
            "candidate": self.candidate,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "compared": self.compared,
            "agreed": self.agreed,
            "agreement": self.agreement,
            "shift": self.shift,
            "mean_score_change": self.mean_score_change,
            "only_active": self.only_active,
            "only_candidate": self.only_candidate,
            "flips": [
                {
                    "article_id": f.article_id,
                    "published_at": f.published_at.isoformat(),
                    "title": f.title,
                    "active_label": f.active_label,
                    "candidate_label": f.candidate_label,
                    "active_score": f.active_score,
                    "candidate_score": f.candidate_score,
                }
                for f in self.flips
            ],
        }


def _in_range(query, article_id, since: datetime | None, until: datetime | None):
    """`query` limited to articles published in [since, until), joined through `article_id`."""
    if since is None and until is None:
        return query
    query = query.join(Article, Article.id == article_id)
    if since is not None:
        query = query.where(Article.published_at >= since)
    if until is not None:
        query = query.where(Article.published_at < until)
    return query


def _only(session: Session, version: str, other: str, since: datetime | None, until: datetime | None) -> int:
    """Articles in the range scored by `version` and not by `other`."""
    mine, theirs = aliased(Score), aliased(Score)
    query = (
        select(func.count())
        .select_from(mine)
        .where(
            mine.model_version == version,
            ~exists().where(theirs.article_id == mine.article_id, theirs.model_version == other),
        )
    )
    return int(session.scalar(_in_range(query, mine.article_id, since, until)) or 0)


def compare_versions(
    *,
    session: Session,
    active: str,
    candidate: str,
    since: datetime | None = None,
    until: datetime | None = None,
    examples: int = 8,
) -> Comparison:
    """How `candidate` differs from `active` on the articles published in [since, until) that both scored.

    VersionError when the database holds no score by `candidate` at all (it has to be scored first), ValueError when
    the two are the same version."""
    if candidate == active:
        raise ValueError(f"{candidate} is the active version itself: name another version to compare with it")
    if not has_scores(session, candidate):
        known = scored_versions(session, exclude=[active])
        raise VersionError(
            f"model version {candidate} has no scores in the database"
            + (f" (other versions with scores: {', '.join(known)})" if known else "")
            + f": score the stored articles with it first, `finsent rescore --model {candidate}`"
        )
    result = Comparison(active=active, candidate=candidate, since=since, until=until)
    a, c = aliased(Score), aliased(Score)
    both = and_(c.article_id == a.article_id, c.model_version == candidate)
    counts = select(a.label, c.label, func.count(), func.sum(c.score - a.score)).select_from(a).join(c, both)
    counts = _in_range(counts.where(a.model_version == active), a.article_id, since, until)
    total_change = 0.0
    for active_label, candidate_label, n, change in session.execute(counts.group_by(a.label, c.label)):
        result.shift[active_label][candidate_label] = int(n)
        result.compared += int(n)
        result.agreed += int(n) if active_label == candidate_label else 0
        total_change += float(change or 0.0)
    result.mean_score_change = total_change / result.compared if result.compared else None
    result.only_active = _only(session, active, candidate, since, until)
    result.only_candidate = _only(session, candidate, active, since, until)
    if result.compared > result.agreed and examples > 0:
        flips = (
            select(Article.id, Article.published_at, Article.title, a.label, c.label, a.score, c.score)
            .select_from(a)
            .join(c, both)
            .join(Article, Article.id == a.article_id)
            .where(a.model_version == active, a.label != c.label)
        )
        if since is not None:
            flips = flips.where(Article.published_at >= since)
        if until is not None:
            flips = flips.where(Article.published_at < until)
        flips = flips.order_by(func.abs(c.score - a.score).desc(), Article.id).limit(examples)
        result.flips = [Flip(*row) for row in session.execute(flips)]
    return result
