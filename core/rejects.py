"""Rejected inputs: kept with their reason and exact bytes in the `rejects` table and sent to `news.dlq`.

Every stage rejects the same way, so an operator finds every refused item in one place and can replay it.
The `news.dlq` value is a JSON object (the payload may be invalid UTF-8, so it travels base64-encoded):
`{"stage", "reason", "source", "origin", "rejected_at", "payload_base64"}`; the key is the original key.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.schema import Reject, utcnow

# A reject keeps at most this much of the payload: enough to see and replay any valid message (1 MiB), while a
# 10 MB hostile body cannot bloat the table.
MAX_KEPT_PAYLOAD = 1_048_576 + 1024


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused input: which stage refused it, why (naming the field), and where it came from."""

    stage: str  # read | decode | normalize | score | internal (an unexpected failure isolated to this input)
    reason: str
    payload: bytes | None
    origin: str | None = None  # "news.raw:2:118" or "file.csv:17"
    source: str | None = None
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    rejected_at: datetime = field(default_factory=utcnow)


def record_rejects(*, session: Session, rejections: list[Rejection]) -> int:
    """Insert rejections not stored before (by origin); returns how many are new. The caller commits."""
    if not rejections:
        return 0
    origins = [r.origin for r in rejections if r.origin]
    known: set[str] = set()
    for start in range(0, len(origins), 500):
        chunk = origins[start : start + 500]
        known.update(session.scalars(select(Reject.origin).where(Reject.origin.in_(chunk))))
    new = 0
    for r in rejections:
        if r.origin and r.origin in known:
            continue  # delivered again after a crash, or a file backfilled twice: counted once
        if r.origin:
            known.add(r.origin)
        payload = r.payload[:MAX_KEPT_PAYLOAD] if r.payload is not None else None
        session.add(
            Reject(
                stage=r.stage,
                reason=r.reason[:4000],
                source=(r.source or None) and r.source[:200],
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                payload=payload,
                created_at=r.rejected_at,
                origin=r.origin and r.origin[:1024],
            )
        )
        new += 1
    return new


def dlq_value(rejection: Rejection) -> bytes:
    """The `news.dlq` message for a rejection."""
    payload = rejection.payload[:MAX_KEPT_PAYLOAD] if rejection.payload is not None else None
    return json.dumps(
        {
            "stage": rejection.stage,
            "reason": rejection.reason,
            "source": rejection.source,
            "origin": rejection.origin,
            "rejected_at": rejection.rejected_at.isoformat(),
            "payload_base64": base64.b64encode(payload).decode("ascii") if payload is not None else None,
        }
    ).encode("utf-8")
