"""Replay: a slice of a file as a live stream, moved by one offset so its gaps stay real, and the stream's clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ingest.replay import ReplayClock, replay

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
ROWS = [
    ("2020-05-04T09:00:00Z", "Monday opens quietly"),
    ("2020-05-04T09:10:00Z", "Ten minutes later"),
    ("2020-05-05T09:10:00Z", "A day later"),
    ("2020-05-06T10:00:00Z", "Wednesday news"),
    ("2020-05-07T10:00:00Z", "Outside the slice"),
]


@pytest.fixture
def news(tmp_path):
    path = tmp_path / "news.csv"
    lines = ["published_at,headline,source"] + [f"{t},{h},wire" for t, h in ROWS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def play(path, **options):
    published, sleeps = [], []
    report = replay(path, publish=lambda k, v: published.append(json.loads(v)), reject=lambda r: None,
                    sleep=sleeps.append, clock=lambda: NOW, **options)  # fmt: skip
    return report, published, sleeps


def times(messages):
    return [datetime.fromisoformat(m["published_at"]) for m in messages]


def test_a_slice_is_moved_by_one_offset_so_its_last_item_lands_now_and_every_gap_is_kept(news):
    since, until = datetime(2020, 5, 4, tzinfo=UTC), datetime(2020, 5, 7, tzinfo=UTC)
    report, published, sleeps = play(news, since=since, until=until, speed=600, max_gap_s=60)
    assert [m["title"] for m in published] == [h for _, h in ROWS[:4]]
    shifted = times(published)
    original = [datetime.fromisoformat(m["extras"]["original_published_at"]) for m in published]
    assert shifted[-1] == NOW and report.offset == NOW - original[-1]
    assert [b - a for a, b in zip(shifted, shifted[1:], strict=False)] == [
        b - a for a, b in zip(original, original[1:], strict=False)
    ]
    # Pauses are the original gaps over the speed (10 minutes at 600x: one second), each capped at max_gap_s.
    assert sleeps == [1.0, 60, 60]


def test_without_shift_the_original_times_are_published(news):
    _, published, _ = play(news, shift=False, limit=2)
    assert times(published) == [datetime(2020, 5, 4, 9, tzinfo=UTC), datetime(2020, 5, 4, 9, 10, tzinfo=UTC)]
    assert "original_published_at" not in (published[0].get("extras") or {})


def test_the_limit_takes_the_first_items_and_the_last_of_them_lands_now(news):
    _, published, _ = play(news, limit=2)
    assert times(published) == [NOW - timedelta(minutes=10), NOW]


def test_the_stream_clock_follows_the_replay_then_the_wall_clock(news):
    seen = []
    clock = ReplayClock(wall=lambda: NOW + timedelta(hours=1))

    def publish(key, value):
        seen.append((clock.now(), clock.replaying))

    start = datetime(2020, 5, 4, tzinfo=UTC)
    replay(news, publish=publish, reject=lambda r: None, sleep=lambda s: None, clock=lambda: NOW, since=start,
           until=start + timedelta(days=3), stream=clock)  # fmt: skip
    offset = NOW - datetime(2020, 5, 6, 10, tzinfo=UTC)
    # While an item is published, the clock stands at the item before it (the stream's newest so far).
    assert [t for t, _ in seen] == [datetime.fromisoformat(t) + offset for t, _ in [ROWS[0], *ROWS[:3]]]
    assert all(replaying for _, replaying in seen)
    assert clock.started.is_set() and not clock.replaying and clock.now() == NOW + timedelta(hours=1)


def test_a_slice_with_nothing_in_it_publishes_nothing_and_finishes_the_clock(news):
    clock = ReplayClock(wall=lambda: NOW)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    report, published, _ = play(news, since=start, stream=clock)
    assert (report.published, published, clock.now()) == (0, [], NOW)
