"""Properties of the feed's query parameters (`monitor.feed.parse_filters`, called directly: hundreds of examples a
second): any query string is either a filter or a BadParameter naming the parameter (the server's 400), never
another exception; what is accepted is in range and reads back the same from the feed's own canonical query.

tests/hostile/test_feed_requests.py sends the hand-picked cases to the real server; these look for the ones
nobody picked (unicode digits, huge numbers, times whose UTC form leaves years 1-9999, repeats, encodings).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, quote, urlencode

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.alerts import STATES, AlertFilter
from monitor.feed import MAX_LIMIT, MAX_NAME_CHARS, BadParameter, _canonical_query, parse_filters

from .strategies import HOSTILE_TEXT, PROPERTY

NAMES = ("ticker", "severity", "status", "since", "limit", "replayed")
SINGLE = ("since", "limit", "replayed")

# Values that look like what the parameters take, and their near misses.
_DIGITS = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6)  # ², ١٢, ５, ⑦ ...
_NUMBERS = st.one_of(
    st.integers(-10, 2000).map(str),
    st.integers().map(str),
    st.integers(4000, 6000).map(lambda n: "1" + "0" * n),  # past int()'s 4,300-digit limit
)
_MINUTES = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_ZONED = st.datetimes(timezones=_MINUTES)  # every offset a URL can carry, at every time of years 1-9999
_TIMES = st.one_of(
    _ZONED.map(datetime.isoformat),
    _ZONED.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.datetimes().map(datetime.isoformat),  # no zone
    st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "2026-11-24T10:00:00Z\x00x",
                     "2026-11-24T10:00:00+24:00", "2026-W48-2T10:00Z", "2026-11-24", "yesterday", ""]),
)  # fmt: skip
VALUES = st.one_of(
    HOSTILE_TEXT,
    _DIGITS,
    _NUMBERS,
    _TIMES,
    st.sampled_from(["AAPL", "aapl,MSFT", "BRK.B", "^GSPC", "warning", "firing", "pending,resolved", "0", "1", "true",
                     "FALSE", "1000", "0007", " 10 ", "+5", "1e3", "0x10", "1_0", ",", "a,,b", "%", "%2", "%FF"]),
)  # fmt: skip


def _urlencode(pairs: list[tuple[str, str]] | dict[str, str]) -> str:
    return urlencode(pairs, errors="surrogatepass")  # a lone surrogate goes as its bytes (read back as U+FFFD)


def _quote(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogatepass")


def _encoded(pairs: list[tuple[str, str]], how: str) -> str:
    if how == "urlencode":
        return _urlencode(pairs)
    if how == "quote":  # %20 for spaces, "+" kept as itself (arrives as a space)
        return "&".join(f"{_quote(k, '')}={_quote(v, '+')}" for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in pairs)  # raw: what a person types into a URL bar


QUERIES = st.one_of(
    HOSTILE_TEXT,
    st.builds(
        _encoded,
        st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), HOSTILE_TEXT), VALUES), max_size=6),
        st.sampled_from(["urlencode", "quote", "raw"]),
    ),
)


def outcome(query: str) -> AlertFilter | BadParameter:
    """The filter, or the BadParameter; any other exception fails the test (it would be a 500)."""
    try:
        return parse_filters(query)
    except BadParameter as exc:
        return exc


def check_accepted(filters: AlertFilter) -> None:
    assert 1 <= filters.limit <= MAX_LIMIT
    assert set(filters.statuses) <= set(STATES)
    assert all(t == t.upper() and t.isascii() for t in filters.tickers)
    assert len(set(filters.tickers)) == len(filters.tickers)
    if filters.since is not None:
        assert filters.since.utcoffset() == timedelta(0)  # already UTC: nothing overflows later
    # The feed's canonical query (its Atom id and self link) reads back as the same filter.
    assert parse_filters(_canonical_query(filters)) == filters


def check_refused(error: BadParameter, query: str) -> None:
    names = parse_qs(query, keep_blank_values=True)
    assert (
        error.parameter in NAMES or error.parameter == "query" or error.parameter in {n[:MAX_NAME_CHARS] for n in names}
    ), error.parameter
    assert repr(error.parameter) in str(error)
    assert len(str(error)) < 400  # a one-line message, not the value echoed back whole


@given(QUERIES)
@example("since=9999-12-31T23:59:59-23:59")
@example("since=0001-01-01T00:00:00%2B01:00")
@example("since=0001-01-01T00:00:00+01:00")
@example("limit=%C2%B2")
@example("limit=" + "9" * 5000)
@example("&".join(["ticker=A"] * 51))
@example("ticker=aapl,AAPL")
@PROPERTY
def test_any_query_is_a_filter_or_a_bad_parameter_naming_it(query):
    result = outcome(query)
    if isinstance(result, AlertFilter):
        check_accepted(result)
    else:
        check_refused(result, query)


@given(st.sampled_from(NAMES), VALUES, st.sampled_from(["urlencode", "quote"]))  # raw: "&" would add parameters
@PROPERTY
def test_a_bad_value_is_refused_naming_its_own_parameter(name, value, how):
    result = outcome(_encoded([(name, value)], how))
    if isinstance(result, AlertFilter):
        check_accepted(result)
    else:
        # One parameter given: the error names it.
        assert result.parameter == name, (name, value, str(result))


@given(st.one_of(_NUMBERS, _DIGITS, HOSTILE_TEXT))
@example("\u00b2")
@example("9" * 5000)
@PROPERTY
def test_limit_is_accepted_exactly_when_it_is_ascii_digits_from_1_to_1000(value):
    result = outcome(_urlencode({"limit": value}))
    stripped = value.strip()
    expected = stripped.isascii() and stripped.isdigit() and len(stripped) <= 4 and 1 <= int(stripped) <= MAX_LIMIT
    if expected:
        assert isinstance(result, AlertFilter) and result.limit == int(stripped)
    else:
        assert isinstance(result, BadParameter) and result.parameter == "limit", value


@given(_ZONED, st.booleans())
@example(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59))), False)
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), True)
@example(datetime(9999, 12, 31, tzinfo=timezone(timedelta(hours=23, minutes=59))), True)
@PROPERTY
def test_since_is_the_instant_it_names_or_400_when_it_has_no_utc_form(when, encoded_plus):
    text = when.isoformat()
    query = _urlencode({"since": text}) if encoded_plus else f"since={text}"  # raw: "+" arrives as a space
    result = outcome(query)
    try:
        in_utc = when.astimezone(UTC)
    except OverflowError:
        assert isinstance(result, BadParameter) and result.parameter == "since" and "out of range" in str(result)
        return
    assert isinstance(result, AlertFilter), str(result)
    assert result.since == in_utc and result.since.utcoffset() == timedelta(0)


@given(st.sampled_from(SINGLE), st.lists(VALUES, min_size=2, max_size=4))
@PROPERTY
def test_a_single_valued_parameter_given_twice_is_refused(name, values):
    result = outcome(_urlencode([(name, v) for v in values]))
    assert isinstance(result, BadParameter) and result.parameter == name


@given(st.text(st.characters(categories=["Cc", "Cf", "Cs"]), min_size=1, max_size=3), st.integers(0, 20))
@PROPERTY
def test_a_time_with_a_control_or_format_character_anywhere_is_refused(junk, at):
    text = "2026-11-24T10:00:00+00:00"
    at = min(at, len(text))
    result = outcome(_urlencode({"since": text[:at] + junk + text[at:]}))
    assert isinstance(result, BadParameter) and result.parameter == "since"
