"""The news.raw schema: round trips, and decode errors that name the field and the problem."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.messages import MAX_MESSAGE_BYTES, MessageError, NewsMessage, decode, encode

GOOD = {
    "source": "kcat",
    "external_id": "a-1",
    "url": "https://example.com/a-1",
    "title": "Nokia shares plunge after profit warning",
    "body": "Nokia cut its outlook on Thursday.",
    "published_at": "2024-05-01T15:00:00+03:00",
    "tickers": ["nok", "NOK", " ericb.st "],
}


def raw(**changes) -> bytes:
    data = {k: v for k, v in (GOOD | changes).items() if v is not ...}
    return json.dumps(data).encode()


def test_round_trip_and_normalisation():
    message = decode(raw(sentiment_hint="neg", extras={"lang": "en"}))
    assert message.published_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert message.tickers == ["NOK", "ERICB.ST"]  # upper-cased, stripped, de-duplicated in order
    assert message.extras == {"sentiment_hint": "neg", "lang": "en"}  # unknown keys kept, not dropped
    assert decode(encode(message)) == message


def test_minimal_message():
    message = decode(b'{"source": "s", "title": "t"}')
    assert (message.body, message.published_at, message.tickers, message.external_id) == ("", None, [], None)


def test_naive_time_is_read_as_utc():
    assert decode(raw(published_at="2024-05-01T12:00:00")).published_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_unicode_survives():
    message = NewsMessage(source="s", title="Café Ø — 株価 📉", body="naïve")
    assert decode(encode(message)) == message


@pytest.mark.parametrize(
    ("value", "field", "text"),
    [
        (b"", None, "empty message"),
        (None, None, "empty message"),
        (b'{"source": "s", "title": ', None, "malformed JSON at line 1 column 26"),
        (b'{"source": "s", "title": "t", "x": NaN}', None, "NaN is not valid JSON"),
        (b'{"source": "s", "title": "caf\xe9"}', None, "invalid UTF-8 at byte 29: invalid continuation byte"),
        (b'["source", "title"]', None, "expected a JSON object, got list"),
        (raw(title=...), "title", "title: missing (required)"),
        (raw(title="   "), "title", "title: String should have at least 1 character"),
        (raw(title=42), "title", "title: Input should be a valid string (got int)"),
        (raw(tickers="NOK"), "tickers", "tickers: Input should be a valid list (got str)"),
        (raw(tickers=["NOK", 7]), "tickers.1", "tickers.1: Input should be a valid string (got int)"),
        (raw(tickers=["two words"]), "tickers", "'TWO WORDS' is not a ticker"),
        (raw(published_at="yesterday"), "published_at", "published_at: cannot read 'yesterday' as a date"),
        (raw(source=...), "source", "source: missing (required)"),
        (raw(v=2), "v", "v: Input should be 1"),
        (raw(extras=[1]), "extras", "extras: Input should be a valid dictionary"),
        (raw(source="wire\u0000"), "source", "source: contains the control character U+0000"),
        (raw(external_id="a\nb"), "external_id", "external_id: contains the control character U+000A"),
        (raw(published_at="9999-12-31T23:59:59-14:00"), "published_at", "out of range when converted to UTC"),
        (raw(extras={"x": json.loads("[" * 31 + "]" * 31)}), "extras", "extras: nested deeper than 32 levels"),
        (b"[" * 100_000 + b"]" * 100_000, None, "malformed JSON: nested deeper than 32 levels"),
    ],
)
def test_decode_errors_name_the_problem(value, field, text):
    with pytest.raises(MessageError) as info:
        decode(value)
    assert info.value.field == field
    assert text in str(info.value)


def test_several_problems_are_all_named():
    with pytest.raises(MessageError) as info:
        decode(b'{"title": 1}')
    assert "title: Input should be a valid string" in str(info.value) and "source: missing" in str(info.value)


def test_huge_message_is_refused_before_parsing():
    """Over 1 MiB (Kafka's default max message size) is refused by size; below it the body is kept whole."""
    body = "x" * (MAX_MESSAGE_BYTES - 1000)
    assert decode(raw(body=body)).body == body  # long bodies are the scorer's job (it chunks them)
    with pytest.raises(MessageError, match=r"message is 1,04[89],\d{3} bytes, over the 1,048,576-byte limit"):
        decode(raw(body="x" * MAX_MESSAGE_BYTES))
    with pytest.raises(MessageError, match="over the 100-byte limit"):
        decode(raw(), max_bytes=100)


def test_overlong_title_is_refused():
    with pytest.raises(MessageError, match="title: String should have at most 1000 characters"):
        decode(raw(title="t" * 1001))


def test_time_precision_is_said_or_read_from_a_bare_date():
    def message(**fields) -> NewsMessage:
        return decode(json.dumps({"source": "s", "title": "t", **fields}).encode())

    assert message(published_at="2019-01-30").time_precision == "day"  # a date without a time says so itself
    assert message(published_at="2019-01-30T00:00:00Z").time_precision is None  # a time: as exact as written
    assert message(published_at="2019-01-30T00:00:00Z", time_precision="day").time_precision == "day"
    assert message(published_at="2019-01-30T14:05:00Z", time_precision="").time_precision is None
    with pytest.raises(MessageError, match="time_precision"):
        message(published_at="2019-01-30T14:05:00Z", time_precision="hour")
