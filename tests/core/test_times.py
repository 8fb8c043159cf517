"""Publication times: one set of explicit rules for files, feeds and news.raw (core.times, issue 17 D3/D14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.messages import MessageError, decode
from core.times import AMBIGUOUS, ZONES, TimeError, parse_time
from ingest.sources.record import FieldError, parse_published_at
from tests.properties.strategies import PROPERTY

AT = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01 09:30 EST", AT + timedelta(hours=5)),
        ("2024-05-01 09:30 PST", AT + timedelta(hours=8)),
        ("2024-05-01 09:30 CEST", AT - timedelta(hours=2)),
        ("May 1, 2024 9:30 AM EDT", AT + timedelta(hours=4)),
        ("2024-05-01 09:30 UTC+3", AT - timedelta(hours=3)),  # three hours ahead of UTC, not POSIX's inverted sign
        ("2024-05-01 09:30 GMT+3", AT - timedelta(hours=3)),
        ("2024-05-01 09:30 GMT-4", AT + timedelta(hours=4)),
        ("2024-05-01 09:30 UTC+05:30", AT - timedelta(hours=5, minutes=30)),
        ("Wed, 01 May 2024 09:30:00 GMT", AT),
        ("Wed, 01 May 2024 09:30:00 +0200", AT - timedelta(hours=2)),
        ("2024-05-01T09:30:00+02:00", AT - timedelta(hours=2)),
        ("2024-05-01T09:30:00", AT),  # no zone: UTC
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("20240501", datetime(2024, 5, 1, tzinfo=UTC)),
        (1714555800, AT),  # a number is Unix time
        (1714555800000, AT),  # in milliseconds above 2e10
        (datetime(2024, 5, 1, 9, 30), AT),  # naive: UTC
    ],
)
def test_times_with_their_zone_are_converted_to_utc(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2024-05-01 09:30 IST", "ambiguous"),
        ("2024-05-01 09:30 XYZ", "unknown time zone 'XYZ'"),
        ("12:00", "has no year and no month and no day"),  # never today's date
        ("May 2024", "has no day"),  # never today's day
        ("1 May", "has no year"),
        ("-1", "bare number"),
        ("1714555800", "bare number"),
        ("not a date", "cannot read"),
        ("2024-13-45", "cannot read"),
        ("9999-12-31T23:59:59-14:00", "out of range"),
        ("0001-01-01T00:00:00+14:00", "out of range"),
        (float("nan"), "not a time"),
        (True, "boolean"),
        ({"a": 1}, "got dict"),
        ("9" * 101, "101 characters"),
    ],
)
def test_what_is_not_a_time_is_refused_with_the_reason(text, reason):
    with pytest.raises(TimeError, match=reason):
        parse_time(text)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_is_none(value):
    assert parse_time(value) is None


def test_files_feeds_and_the_message_follow_the_same_rules():
    for value in ("2024-05-01 09:30 EST", "2024-05-01 09:30 UTC+3", 1714555800, "2024-05-01T09:30:00+02:00"):
        message = decode(f'{{"source": "s", "title": "t", "published_at": {value!r}}}'.replace("'", '"').encode())
        assert message.published_at == parse_published_at(value) == parse_time(value)
    for value in ("12:00", "2024-05-01 09:30 XYZ", "-1"):
        with pytest.raises(MessageError, match="published_at: ") as from_message:
            decode(f'{{"source": "s", "title": "t", "published_at": "{value}"}}'.encode())
        with pytest.raises(FieldError, match="published_at: ") as from_file:
            parse_published_at(value)
        assert str(from_file.value).removeprefix("published_at: ") in str(from_message.value)


@pytest.mark.parametrize("name", sorted(ZONES))
def test_every_zone_in_the_table_is_read_with_its_offset(name):
    assert parse_time(f"2024-05-01 09:30 {name}") == AT - ZONES[name].utcoffset(None)


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_every_ambiguous_zone_is_refused(name):
    with pytest.raises(TimeError, match="ambiguous"):
        parse_time(f"2024-05-01 09:30 {name}")


# ---------------------------------------------------------------------------------------------------- properties


@PROPERTY
@given(st.one_of(st.text(max_size=120), st.integers(), st.floats(), st.booleans(), st.none()))
def test_any_value_is_a_utc_time_none_or_a_time_error(value):
    try:
        when = parse_time(value)
    except TimeError as exc:
        assert str(exc)
        return
    assert when is None or when.utcoffset() == timedelta(0)


@PROPERTY
@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30)), st.integers(-14 * 4, 14 * 4))
def test_iso_8601_round_trips(moment, quarters):
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=15 * quarters)))
    assert parse_time(aware.isoformat()) == aware.astimezone(UTC)


@PROPERTY
@given(st.sampled_from(["UTC", "GMT"]), st.sampled_from("+-"), st.integers(0, 14), st.sampled_from([0, 30, 45]))
def test_a_named_offset_means_ahead_of_utc(name, sign, hours, minutes):
    offset = timedelta(hours=hours, minutes=minutes) * (1 if sign == "+" else -1)
    assert parse_time(f"2024-05-01 09:30 {name}{sign}{hours}:{minutes:02d}") == AT - offset


@PROPERTY
@given(st.sampled_from(["%H:%M", "%B %Y", "%d %B", "%I:%M %p", "%b %d"]), st.datetimes())
def test_a_time_without_year_month_or_day_is_refused(fmt, moment):
    with pytest.raises(TimeError, match="has no"):
        parse_time(moment.strftime(fmt))
