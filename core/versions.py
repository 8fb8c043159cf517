"""Model versions as the database holds them: which versions scored the news of a time range, whether a version can
be shown at all, and what a reader says when the range it was asked for was scored only by other versions than the
one it shows (FINSENT_MODEL_VERSION, one for every reader; docs/model.md, "Rolling out a model version").

A reader reads one version and never mixes in another, so a range scored only by another version reads as empty;
`version_note` is the sentence it shows instead of an empty page or a silent zero.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.schema import Article, Score

SETTING = "FINSENT_MODEL_VERSION"


class VersionError(LookupError):
    """A model version that cannot be used: nothing scored by it, and (for readers) no checkpoint of it either."""


def _scored(version_filter, *, since: datetime | None, until: datetime | None):
    """Scores passing `version_filter` of articles published in [since, until) (either end open when None)."""
    query = select(Score.model_version).where(version_filter)
    if since is not None or until is not None:
        query = query.join(Article, Article.id == Score.article_id)
        if since is not None:
            query = query.where(Article.published_at >= since)
        if until is not None:
            query = query.where(Article.published_at < until)
    return query.limit(1)


def has_scores(session: Session, version: str, *, since: datetime | None = None, until: datetime | None = None) -> bool:
    """True when `version` scored at least one article published in [since, until) (any time when both are None)."""
    return session.scalar(_scored(Score.model_version == version, since=since, until=until)) is not None


def scored_versions(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    exclude: tuple[str, ...] | list[str] = (),
    at_most: int = 5,
) -> list[str]:
    """Up to `at_most` versions (sorted) that scored articles published in [since, until), other than `exclude`.

    Each version is found by a query that stops at its first row: there are few versions, and a reader asks only
    when its own version came back empty."""
    found: list[str] = []
    while len(found) < at_most:
        version = session.scalar(_scored(Score.model_version.notin_([*exclude, *found]), since=since, until=until))
        if version is None:
            break
        found.append(version)
    return sorted(found)


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _range_text(since: datetime | None, until: datetime | None) -> str:
    since, until = (_utc(t) if t is not None else None for t in (since, until))
    day = "%Y-%m-%d %H:%M"
    if since is not None and until is not None:
        return f"The news published {since:{day}} .. {until:{day}} UTC"
    if since is not None:
        return f"The news published since {since:{day}} UTC"
    if until is not None:
        return f"The news published before {until:{day}} UTC"
    return "The stored news"


def version_note(
    session: Session, *, version: str, since: datetime | None = None, until: datetime | None = None
) -> str | None:
    """The sentence a reader shows when [since, until) holds no score by `version` but some by other versions:
    both versions named and what to do. None when `version` scored news there, or when nothing was scored there."""
    if has_scores(session, version, since=since, until=until):
        return None
    others = scored_versions(session, since=since, until=until, exclude=[version])
    if not others:
        return None
    rescore = f"finsent rescore --model {version}"
    for option, when in (("since", since), ("until", until)):
        if when is not None:
            rescore += f" --{option} {_utc(when):%Y-%m-%dT%H:%M:%SZ}"
    return (
        f"{_range_text(since, until)} was scored only by {', '.join(others)}, not by {version}, the model version "
        f"shown ({SETTING}). Rescore it with `{rescore}`, or set {SETTING}={others[0]} to show that version."
    )


def check_version(session: Session, version: str, *, has_checkpoint: bool) -> None:
    """VersionError unless readers can show `version`: a checkpoint of it is here (it will score) or it has scores.

    A version with stored scores and no local checkpoint is legitimate for reading (history scored elsewhere)."""
    if has_checkpoint or has_scores(session, version):
        return
    known = scored_versions(session)
    scored = f"versions with scores: {', '.join(known)}" if known else "it holds no scores yet"
    raise VersionError(
        f"{SETTING}={version}: no such model version: no checkpoint model/weights/{version} here and no score by "
        f"it in the database ({scored})"
    )
