"""Source health in the `sources` table: last success, last error, items seen. The caller commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.schema import Source

MAX_ERROR_CHARS = 2000  # an error text is for people; a feed's whole error page is not


def record_health(
    session: Session, *, name: str, kind: str, ok: bool, error: str | None, items: int, now: datetime
) -> None:
    """Upsert the source's row: stamp success or error at `now` and add `items` to items_seen."""
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        source = Source(name=name, kind=kind, created_at=now, items_seen=items)
        session.add(source)
    else:
        source.kind = kind
        # An SQL increment, so two pollers of the same source do not overwrite each other's count.
        source.items_seen = Source.items_seen + items
    if ok:
        source.last_success_at = now
    else:
        source.last_error_at = now
        source.last_error = (error or "unknown error")[:MAX_ERROR_CHARS]
    session.flush()
