"""Properties of the news.raw schema: valid messages round-trip; any other bytes are a MessageError, nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import example, given
from hypothesis import strategies as st

from core.messages import MAX_JSON_DEPTH, MAX_TICKERS, MAX_TITLE_CHARS, MessageError, NewsMessage, decode, encode

from .strategies import FEW, PROPERTY

# Identifiers carry no control characters (Cc) and no surrogates; titles and bodies may hold anything but surrogates.
NAME_CHARS = st.characters(exclude_categories=("Cc", "Cs"))
NAMES = st.text(NAME_CHARS, min_size=1, max_size=60).filter(str.strip)
OFFSETS = st.integers(min_value=-(18 * 60), max_value=18 * 60).map(lambda m: timezone(timedelta(minutes=m)))
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63), st.floats(allow_nan=False,
    allow_infinity=False), st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
TICKERS = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=16)
MESSAGES = st.builds(
    NewsMessage,
    source=NAMES,
    title=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=MAX_TITLE_CHARS).filter(str.strip),
    body=st.text(st.characters(exclude_categories=("Cs",)), max_size=500),
    external_id=st.one_of(st.none(), NAMES),
    url=st.one_of(st.none(), NAMES.map(lambda s: "https://x.test/" + s)),
    published_at=st.one_of(
        st.none(),
        st.datetimes(timezones=st.just(UTC)),
        # a one-day margin: an offset must not push the time past year 9999 or before year 1 in UTC
        st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=OFFSETS),
    ),
    tickers=st.lists(TICKERS, max_size=MAX_TICKERS),
    extras=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5),
)


@PROPERTY
@given(MESSAGES)
def test_valid_messages_round_trip(message):
    value = encode(message)
    assert decode(value) == message
    assert encode(decode(value)) == value  # and the bytes are stable
    assert all(t == t.strip().upper() for t in message.tickers) and len(set(message.tickers)) == len(message.tickers)
    assert message.published_at is None or message.published_at.utcoffset() == timedelta(0)


def decodes_or_message_error(value: bytes) -> None:
    try:
        message = decode(value)
    except MessageError as exc:
        assert str(exc) and len(str(exc)) < 2000
        assert exc.field is None or str(exc).startswith(f"{exc.field}: ")
        return
    assert isinstance(message, NewsMessage)
    assert message.source.strip() and message.title.strip()


@PROPERTY
@example(b"[" * 100_000 + b"]" * 100_000)  # RecursionError in json.loads before decode caught it
@example(b'{"source": "s", "title": "t", "published_at": "9999-12-31T23:59:59-14:00"}')  # OverflowError, likewise
@example(b'{"source": "s\\u0000", "title": "t"}')  # NUL: PostgreSQL text cannot store it
@example(b'{"source": "s", "title": "t", "n": ' + b"9" * 5000 + b"}")  # over Python's int digit limit
@example(b"\xef\xbb\xbf{}")  # a byte-order mark
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_a_message_or_a_message_error(value):
    decodes_or_message_error(value)


FIELDS = st.sampled_from(["source", "title", "body", "external_id", "url", "published_at", "tickers", "extras", "v"])


@PROPERTY
@given(st.dictionaries(st.one_of(FIELDS, st.text(max_size=8)), JSON_VALUES, max_size=9))
def test_arbitrary_json_objects_are_a_message_or_a_message_error(data):
    decodes_or_message_error(json.dumps(data).encode())


@PROPERTY
@given(MESSAGES, FIELDS, JSON_VALUES)
def test_one_wrong_field_is_named(message, field, value):
    """Replacing one field of a valid message with any JSON value: still a message, or an error naming that field."""
    data = json.loads(encode(message)) | {field: value}
    try:
        decode(json.dumps(data).encode())
    except MessageError as exc:
        assert exc.field is not None and exc.field.split(".")[0] == field, str(exc)


@FEW
@example(depth=MAX_JSON_DEPTH - 2, opener="[")  # the deepest accepted: object, extras, then 30 lists
@example(depth=MAX_JSON_DEPTH - 1, opener="[")
@example(depth=100_000, opener="[")  # deep enough to exhaust json.loads' recursion
@given(depth=st.integers(min_value=1, max_value=5000), opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused_by_depth(depth, opener):
    closer = "]" if opener == "[" else "}"
    value = f'{{"source": "s", "title": "t", "extras": {{"x": {opener * depth}1{closer * depth}}}}}'.encode()
    nesting = 2 + depth  # the message object, `extras`, then the generated levels
    try:
        decode(value)
    except MessageError as exc:
        assert "nested deeper than" in str(exc) and nesting > MAX_JSON_DEPTH
    else:
        assert nesting <= MAX_JSON_DEPTH
