"""Replay a news file as a live stream (`finsent run --replay FILE --speed N`).

Items are published to `news.raw` in file order, spaced by their original gaps divided by `speed` (each gap
capped at `max_gap_s`, so a quiet weekend in the data does not stall a demo). With `shift=True` (the default)
each item's `published_at` becomes the moment it is replayed, so the dashboard and the monitor see live news;
the original time is kept in the message's extras as `original_published_at`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest.sources.files import FieldMapping, read_file
from ingest.sources.record import RawRecord

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplayReport:
    published: int = 0
    errors: int = 0


def _original_time(value: bytes) -> datetime | None:
    raw = json.loads(value).get("published_at")
    return datetime.fromisoformat(raw) if raw else None


def shifted(value: bytes, now: datetime) -> bytes:
    """The message with published_at set to `now`, the original kept in extras."""
    data = json.loads(value)
    extras = data.get("extras") or {}
    extras["original_published_at"] = data.get("published_at")
    data["extras"] = extras
    data["published_at"] = now.isoformat()
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def replay(
    path: str | Path,
    *,
    publish: Callable[[bytes | None, bytes], None],
    reject: Callable[[RawRecord], None],
    speed: float = 1.0,
    max_gap_s: float = 1.0,
    shift: bool = True,
    limit: int | None = None,
    stop: threading.Event | None = None,
    mapping: FieldMapping | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReplayReport:
    """Publish the file's rows as a stream; bad rows go to `reject`. Stops early when `stop` is set."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    stop = stop or threading.Event()
    sleep = sleep or stop.wait
    report = ReplayReport()
    previous: datetime | None = None
    for record in read_file(path, mapping=mapping):
        if stop.is_set() or (limit is not None and report.published >= limit):
            break
        if record.error is not None:
            report.errors += 1
            reject(record)
            continue
        when = _original_time(record.value)
        if previous is not None and when is not None:
            gap = max(0.0, (when - previous).total_seconds()) / speed
            if gap > 0:
                sleep(min(gap, max_gap_s))
        previous = when or previous
        value = shifted(record.value, clock()) if shift else record.value
        publish(f"{record.source}:{record.position}".encode(), value)
        report.published += 1
    return report
