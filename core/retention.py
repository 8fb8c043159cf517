"""Retention: `finsent prune --older-than 400d` removes what is older than the cutoff, so tables stop growing.

What goes, and what stays (docs/operations.md, "Retention"):

- articles published before the cutoff, with their mentions, scores, top words and companies' own sentiment (the
  foreign keys cascade); a
  later article whose story began with a removed one keeps its row and loses only the link (`story_id` NULL);
- alerts resolved before the cutoff, with their events, evidence and notifications. An alert still open, or resolved
  after the cutoff, is kept whole: its evidence, and the articles that evidence points to, stay however old they are
  (an analyst opening the alert sees why it fired);
- rejects recorded before the cutoff, and notifications delivered before it (undelivered ones stay: they are still
  owed);
- the monitor's window buckets that start before it (aggregates of removed articles; baselines reach back days, not
  a year).

Kept always: sources, silences, backfill progress (a re-run of a file pruned since still says it was done), the
monitor's state. Deletes go in batches of `BATCH` rows, each its own transaction, so a large first prune neither
holds one huge transaction nor loses its progress when stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

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
    WindowBucket,
)

BATCH = 1000
MIN_AGE = timedelta(days=1)
_AGE = re.compile(r"\s*(\d+)\s*([dwy])\s*")
_UNIT = {"d": 1, "w": 7, "y": 365}


class RetentionError(ValueError):
    """An age that cannot be used: the message names it and says what is expected."""


def parse_age(text: str) -> timedelta:
    """'400d', '8w' or '2y' (a year is 365 days) -> a timedelta of at least a day."""
    match = _AGE.fullmatch(text or "")
    if not match:
        raise RetentionError(f"--older-than {text!r}: expected a number of days, weeks or years such as 400d, 8w, 2y")
    age = timedelta(days=int(match.group(1)) * _UNIT[match.group(2)])
    if age < MIN_AGE:
        raise RetentionError(f"--older-than {text!r}: at least 1d (a shorter age would remove today's news)")
    return age


@dataclass
class PruneReport:
    """What a prune removed (or, with `dry_run`, would remove), per table."""

    cutoff: datetime
    dry_run: bool
    removed: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        head = f"older than {self.cutoff.isoformat()}: {verb}"
        return [head] + [f"  {table:16} {n:>10,}" for table, n in self.removed.items()]


def _old_alerts(cutoff: datetime):
    return select(Alert.id).where(Alert.status == "resolved", Alert.ends_at < cutoff)


def _kept_evidence(cutoff: datetime):
    """Articles that an alert which stays points to."""
    return (
        select(AlertEvidence.article_id)
        .join(Alert, Alert.id == AlertEvidence.alert_id)
        .where(or_(Alert.status != "resolved", Alert.ends_at.is_(None), Alert.ends_at >= cutoff))
    )


def _old_articles(cutoff: datetime):
    return select(Article.id).where(Article.published_at < cutoff, Article.id.not_in(_kept_evidence(cutoff)))


def _count(session: Session, stmt) -> int:
    return session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def _counts(session: Session, cutoff: datetime) -> dict[str, int]:
    articles = _old_articles(cutoff)
    alerts = _old_alerts(cutoff)
    scores = select(Score.id).where(Score.article_id.in_(articles))
    own = select(MentionScore.id).where(MentionScore.score_id.in_(scores))  # go with their scores (ON DELETE CASCADE)
    return {
        "articles": _count(session, articles),
        "mentions": _count(session, select(Mention.id).where(Mention.article_id.in_(articles))),
        "scores": _count(session, scores),
        "attributions": _count(session, select(Attribution.id).where(Attribution.score_id.in_(scores))),
        "mention_scores": _count(session, own),
        "mention_attributions": _count(
            session, select(MentionAttribution.id).where(MentionAttribution.mention_score_id.in_(own))
        ),
        "alerts": _count(session, alerts),
        "alert_events": _count(session, select(AlertEvent.id).where(AlertEvent.alert_id.in_(alerts))),
        "alert_evidence": _count(session, select(AlertEvidence.id).where(AlertEvidence.alert_id.in_(alerts))),
        "notifications": _count(session, _old_notifications(cutoff)),
        "rejects": _count(session, select(Reject.id).where(Reject.created_at < cutoff)),
        "window_buckets": _count(session, select(WindowBucket.id).where(WindowBucket.bucket_start < cutoff)),
    }


def _old_notifications(cutoff: datetime):
    """Delivered before the cutoff, or belonging to an alert that goes."""
    return select(Notification.id).where(
        or_(
            and_(Notification.sent_at.is_not(None), Notification.sent_at < cutoff),
            Notification.alert_id.in_(_old_alerts(cutoff)),
        )  # fmt: skip
    )


def _delete_in_batches(factory: sessionmaker[Session], model, ids_stmt) -> None:
    while True:
        with factory() as session, session.begin():
            ids = session.scalars(ids_stmt.limit(BATCH)).all()
            if not ids:
                return
            session.execute(delete(model).where(model.id.in_(ids)))


def prune(factory: sessionmaker[Session], cutoff: datetime, *, dry_run: bool = False) -> PruneReport:
    """Remove everything older than `cutoff` that the module docstring lists; counts first, so the report of a dry run
    and of the real run agree."""
    with factory() as session:
        report = PruneReport(cutoff=cutoff, dry_run=dry_run, removed=_counts(session, cutoff))
    if dry_run:
        return report
    # Alerts first (their evidence goes with them), so the articles they held are free to go next.
    _delete_in_batches(factory, Notification, _old_notifications(cutoff))
    _delete_in_batches(factory, Alert, _old_alerts(cutoff))
    _delete_in_batches(factory, Article, _old_articles(cutoff).order_by(Article.id))
    _delete_in_batches(factory, Reject, select(Reject.id).where(Reject.created_at < cutoff))
    _delete_in_batches(factory, WindowBucket, select(WindowBucket.id).where(WindowBucket.bucket_start < cutoff))
    return report
