"""Properties of normalisation: it raises only NormalizeError, and what it returns is clean, bounded and in range."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import example, given
from hypothesis import strategies as st

from scoring.normalize import (
    EARLIEST,
    MAX_BODY_BYTES,
    MAX_FUTURE,
    MAX_SOURCE_CHARS,
    MAX_TITLE_CHARS,
    NormalizedItem,
    NormalizeError,
    clean_text,
    normalize,
    parse_time,
    title_key,
)

from .strategies import HOSTILE_TEXT, PROPERTY

NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)

OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
ANY_DATETIME = st.one_of(
    st.datetimes(),  # naive: read as UTC
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=OFFSETS),  # includes 0001-01-01-23:59 and 9999-12-31+23:59: out of range in UTC
)
TIME_TEXT = st.one_of(
    HOSTILE_TEXT,
    ANY_DATETIME.map(lambda d: d.isoformat()),
    ANY_DATETIME.map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S ") + (d.strftime("%z") or "GMT")),
    st.sampled_from(
        ["1850-01-01", "2999-12-31T23:59:59Z", "-1", "NaN", "0", "99999999999", "Fri, 31 Dec 9999 23:59:59 -1400"]
    ),
)
PUBLISHED = st.one_of(st.none(), ANY_DATETIME, TIME_TEXT)


def assert_clean(text: str) -> None:
    """No control, format, private-use, unassigned or surrogate character; single spaces; trimmed."""
    assert all(unicodedata.category(ch)[0] != "C" for ch in text), ascii(text)
    assert text == text.strip() and not re.search(r"\s\s", text), ascii(text)


@PROPERTY
# Found by these tests (both crashed with OverflowError or overflowed sources.name before they were fixed):
@example(title="t", body=None, published="Fri, 31 Dec 9999 23:59:59 -1400", url=None, source="s")
@example(title="t", body=None, published=None, url=None, source="\ufdfa" * 12)  # NFKC: 12 -> 216 characters
@example(title="t", body="&amp;\ud800", published=None, url=None, source="s")  # BeautifulSoup: UnicodeEncodeError
@given(title=st.one_of(st.none(), HOSTILE_TEXT), body=st.one_of(st.none(), HOSTILE_TEXT), published=PUBLISHED,
       url=st.one_of(st.none(), HOSTILE_TEXT), source=HOSTILE_TEXT)  # fmt: skip
def test_normalize_raises_only_normalize_error_and_its_output_is_clean(title, body, published, url, source):
    try:
        item = normalize(title=title, body=body, published_at=published, url=url, source=source, now=NOW)
    except NormalizeError as exc:
        assert exc.field in {"title", "body", "published_at", "source"}
        assert str(exc).startswith(f"{exc.field}: ") and len(str(exc)) < 400
        return
    assert isinstance(item, NormalizedItem)
    for text in (item.title, item.body, item.source):
        assert_clean(text)
    assert item.title and item.source
    assert len(item.title) <= MAX_TITLE_CHARS and len(item.source) <= MAX_SOURCE_CHARS
    assert len(item.body.encode("utf-8")) <= MAX_BODY_BYTES
    assert item.published_at.tzinfo is not None and item.published_at.utcoffset() == timedelta(0)
    assert EARLIEST <= item.published_at <= NOW + MAX_FUTURE
    assert not item.time_fallback or item.published_at == NOW
    assert re.fullmatch(r"[0-9a-f]{64}", item.content_hash)
    assert item.title_key == title_key(item.title)
    assert item.url is None or (item.url and item.url == item.url.strip())


@PROPERTY
@given(title=HOSTILE_TEXT, body=HOSTILE_TEXT, published=PUBLISHED, source=HOSTILE_TEXT)
def test_normalising_normalised_text_changes_nothing(title, body, published, source):
    """Idempotent on its own output, for text with no markup or entities left in it to decode a second time."""
    try:
        first = normalize(title=title, body=body, published_at=published, source=source, now=NOW)
    except NormalizeError:
        return
    if any(c in text for text in (first.title, first.body, first.source) for c in "<&"):
        return  # "&amp;lt;" is "&lt;" after one pass and "<" after two: decoding is not idempotent, by design
    again = normalize(title=first.title, body=first.body, published_at=first.published_at, source=first.source,
                      now=NOW)  # fmt: skip
    # The time is given explicitly the second time, so it is no longer a fallback; everything else is unchanged.
    assert replace(again, time_fallback=first.time_fallback) == first


@PROPERTY
@given(HOSTILE_TEXT)
def test_clean_text_is_idempotent_on_plain_text(text):
    cleaned = clean_text(text.replace("<", "").replace("&", ""))
    assert_clean(cleaned)
    assert clean_text(cleaned) == cleaned


@PROPERTY
@given(HOSTILE_TEXT)
def test_title_key_is_idempotent(text):
    key = title_key(text)
    assert title_key(key) == key


@PROPERTY
@given(PUBLISHED)
def test_parse_time_is_utc_in_range_or_a_normalize_error(value):
    try:
        when, fell_back = parse_time(value, now=NOW)
    except NormalizeError as exc:
        assert exc.field == "published_at"
        return
    assert when.utcoffset() == timedelta(0) and EARLIEST <= when <= NOW + MAX_FUTURE
    assert not fell_back or when == NOW
