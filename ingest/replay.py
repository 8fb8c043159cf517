"""Replay a news file as a live stream (`finsent run --replay FILE --speed N [--since D --until D]`).

Items are published to `news.raw` in file order, spaced by their original gaps divided by `speed` (each pause
capped at `max_gap_s`, so a quiet night in the data does not stall a demo). With `shift=True` (the default) every
item is moved by one constant offset, chosen so that the last item of the slice lands at the moment the replay
starts: the gaps between items stay exactly as they were, so the dedup window, the rolling windows and the
baselines see the stream's real rhythm, and the dashboard shows the slice as the last days. The original time is
kept in the message's extras as `original_published_at`.

`ReplayClock` is the stream's own time: the newest publication time replayed so far while the replay runs, the
wall clock afterwards. `finsent run --replay` evaluates the alert rules at it, so a window of one hour is one
hour of the stream, whatever the speed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ingest.sources.files import FieldMapping, read_file
from ingest.sources.record import RawRecord

log = logging.getLogger(__name__)


def _wall() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class ReplayReport:
    published: int = 0
    errors: int = 0
    offset: timedelta = timedelta(0)  # added to every original time (zero without shift)


class ReplayClock:
    """The time of a replayed stream: the newest publication time replayed so far, then (after `finish`) the wall
    clock. `started` is set once the replay knows where the stream starts (before it publishes anything)."""

    def __init__(self, wall: Callable[[], datetime] = _wall) -> None:
        self._wall = wall
        self._stream: datetime | None = None
        self._done = False
        self.started = threading.Event()

    def advance(self, when: datetime) -> None:
        """The stream has reached `when` (it never goes back)."""
        self._stream = when if self._stream is None else max(self._stream, when)
        self.started.set()

    def finish(self) -> None:
        """The replay is over: from now on the wall clock."""
        self._done = True
        self.started.set()

    @property
    def replaying(self) -> bool:
        """Whether `now` is still the stream's time."""
        return not self._done and self._stream is not None

    def now(self) -> datetime:
        """The stream's time while it replays, else the wall clock."""
        stream = self._stream
        return stream if stream is not None and not self._done else self._wall()


def _original_time(value: bytes) -> datetime | None:
    raw = json.loads(value).get("published_at")
    return datetime.fromisoformat(raw) if raw else None


def shifted(value: bytes, when: datetime) -> bytes:
    """The message with published_at set to `when`, the original kept in extras."""
    data = json.loads(value)
    extras = data.get("extras") or {}
    extras["original_published_at"] = data.get("published_at")
    data["extras"] = extras
    data["published_at"] = when.isoformat()
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _in_slice(when: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    if since is None and until is None:
        return True
    return when is not None and (since is None or when >= since) and (until is None or when < until)


def _slice(
    path: str | Path, mapping: FieldMapping | None, since: datetime | None, until: datetime | None
) -> Iterator[tuple[RawRecord, datetime | None]]:
    """The file's records with their original times: unreadable ones, and readable ones inside [since, until)."""
    for record in read_file(path, mapping=mapping):
        if record.error is not None:
            yield record, None
            continue
        when = _original_time(record.value)
        if _in_slice(when, since, until):
            yield record, when


def replay(
    path: str | Path,
    *,
    publish: Callable[[bytes | None, bytes], None],
    reject: Callable[[RawRecord], None],
    speed: float = 1.0,
    max_gap_s: float = 1.0,
    shift: bool = True,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    stop: threading.Event | None = None,
    mapping: FieldMapping | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], datetime] = _wall,
    stream: ReplayClock | None = None,
) -> ReplayReport:
    """Publish the file's rows in [since, until) (original times) as a stream; bad rows go to `reject`.

    `stream`, if given, follows the replay (and is finished when it returns). Stops early when `stop` is set.
    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    stop = stop or threading.Event()
    sleep = sleep or stop.wait
    report = ReplayReport()
    try:
        if shift:  # a first pass for the slice's last time: the offset that makes it land now
            times = [w for record, w in _slice(path, mapping, since, until) if record.error is None]
            times = times[:limit] if limit is not None else times
            known = [w for w in times if w is not None]
            report.offset = clock() - max(known) if known else timedelta(0)
            if stream is not None:
                stream.advance(min(known) + report.offset if known else clock())
        previous: datetime | None = None
        for record, when in _slice(path, mapping, since, until):
            if stop.is_set() or (limit is not None and report.published >= limit):
                break
            if record.error is not None:
                report.errors += 1
                reject(record)
                continue
            if previous is not None and when is not None:
                gap = max(0.0, (when - previous).total_seconds()) / speed
                if gap > 0:
                    sleep(min(gap, max_gap_s))
            previous = when or previous
            value = record.value
            if shift:  # an item without a time takes the stream's: it was published where it stands
                at = (when or previous or clock() - report.offset) + report.offset
                value = shifted(record.value, at)
            else:
                at = when
            publish(f"{record.source}:{record.position}".encode(), value)
            if stream is not None and at is not None:
                stream.advance(at)
            report.published += 1
    finally:
        if stream is not None:
            stream.finish()
    return report
