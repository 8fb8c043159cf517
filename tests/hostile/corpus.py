"""The hostile-input corpus: one list of cases per class, each with the outcome the pipeline documents for it.

Generated, not stored: the 10 MB fields and the 100,000-level JSON are built here on demand (README.md in this folder
lists every class and its documented handling). `Case.expect` is what `BatchProcessor.process` must do with the
item: store it, reject it (at `stage`, with a reason containing `reason`), or count it as a duplicate.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MB10 = 10 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One input (the exact bytes of a news.raw value, None for a Kafka tombstone) and its documented outcome."""

    name: str
    value: bytes | None
    expect: Literal["stored", "rejected", "duplicate"]
    stage: str | None = None  # for rejects: decode | normalize | score
    reason: str | None = None  # for rejects: a piece of the reason, naming the field and the problem
    title: str | None = None  # for stored items: the stored headline, exactly
    check: Callable[[dict[str, Any]], None] | None = None  # for stored items: more checks on the stored row


def msg(title: Any = "Nokia shares plunge after profit warning", source: Any = "hostile", **fields: Any) -> bytes:
    """A news.raw value (compact JSON, non-ASCII as \\u escapes, as most producers write it)."""
    return json.dumps({"source": source, "title": title, **fields}).encode()


def stored(name: str, value: bytes, title: str, check: Callable[[dict[str, Any]], None] | None = None) -> Case:
    return Case(name, value, "stored", title=title, check=check)


def rejected(name: str, value: bytes | None, stage: str, reason: str) -> Case:
    return Case(name, value, "rejected", stage=stage, reason=reason)


def _nested(depth: int, opener: str = "[", closer: str = "]", inner: str = "1") -> str:
    return opener * depth + inner + closer * depth


def _expect(field: str, predicate: Callable[[Any], bool], what: str) -> Callable[[dict[str, Any]], None]:
    def check(row: dict[str, Any]) -> None:
        assert predicate(row[field]), f"{field} {what}: {row[field]!r:.200}"

    return check


def _all(*checks: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def check(row: dict[str, Any]) -> None:
        for c in checks:
            c(row)

    return check


def _tickers(*expected: str) -> Callable[[dict[str, Any]], None]:
    return _expect("tickers", lambda t: sorted(t) == sorted(expected), f"should be {sorted(expected)}")


def _no_controls(row: dict[str, Any]) -> None:
    for field in ("title", "body"):
        assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in row[field]), (field, row[field][:80])


# -------------------------------------------------------------------------------------------------------- classes


def invalid_utf8() -> list[Case]:
    return [
        rejected("latin-1 byte in a title", b'{"source": "hostile", "title": "caf\xe9 prices"}', "decode",
                 "invalid UTF-8 at byte 35"),
        rejected("UTF-16 with a byte-order mark", "\ufeff{}".encode("utf-16"), "decode", "invalid UTF-8 at byte 0"),
        rejected("overlong encoding of /", b'{"source": "hostile", "title": "a\xc0\xafb"}', "decode", "invalid UTF-8"),
        rejected("surrogate encoded as UTF-8 (CESU)", b'{"source": "hostile", "title": "\xed\xa0\x80"}', "decode",
                 "invalid UTF-8"),
        rejected("truncated multi-byte sequence", b'{"source": "hostile", "title": "\xe2\x82"}', "decode",
                 "invalid UTF-8"),
        rejected("lone surrogate as a JSON escape", b'{"source": "hostile", "title": "x \\ud800 y"}', "decode",
                 "title: Input should be a valid string"),
        rejected("UTF-8 byte-order mark", b"\xef\xbb\xbf" + msg("BOM headline"), "decode", "malformed JSON"),
        stored("valid multi-byte UTF-8", msg("Société Générale 株価 📉 falls"), "Société Générale 株価 📉 falls"),
    ]  # fmt: skip


def control_chars() -> list[Case]:
    return [
        stored("NUL, BEL and an ANSI escape in the title", msg("Nokia\u0000 shares\u0007 fall\u001b[31m today"),
               "Nokia shares fall[31m today", _no_controls),
        stored("NULs in the body", msg("Ericsson body with NULs", body="lead\u0000 text\u0000"),
               "Ericsson body with NULs", _all(_no_controls, _expect("body", lambda b: b == "lead text", "cleaned"))),
        stored("bidi override and zero-width characters", msg("Apple\u200b shares \u202egnimoc\u202c up\ufeff"),
               "Apple shares gnimoc up"),
        stored("CR, LF and tabs", msg("Tesla\r\nrecalls\tcars\u2028again"), "Tesla recalls cars again"),
        rejected("a title of control characters only", msg("\u0000\u0007\u001b\u200b"), "normalize",
                 "title: missing or empty after cleanup"),
        rejected("NUL in the source name", msg(source="wire\u0000"), "decode",
                 "source: contains the control character U+0000"),
        rejected("BEL in the url", msg(url="https://x.test/\u0007"), "decode",
                 "url: contains the control character U+0007"),
        rejected("newline in the external id", msg(external_id="id\n2"), "decode",
                 "external_id: contains the control character U+000A"),
    ]  # fmt: skip


def huge_fields() -> list[Case]:
    big = "x" * MB10
    lead = "Nokia quarterly report. "
    return [
        rejected("10 MB title", msg(big), "decode", "over the 1,048,576-byte limit"),
        rejected("10 MB body", msg("Ten megabyte body", body=big), "decode", "over the 1,048,576-byte limit"),
        rejected("10 MB url", msg("Ten megabyte url", url="https://x.test/" + big), "decode",
                 "over the 1,048,576-byte limit"),
        rejected("1,001-character title", msg("t" * 1001), "decode", "title: String should have at most 1000"),
        stored("900 KB plain body", msg("Nine hundred kilobyte body", body=lead * 37_000), "Nine hundred kilobyte body",
               _expect("body", lambda b: len(b) > 800_000, "kept whole")),
        stored("900 KB of dense HTML in the body", msg("Dense HTML body", body="<b>x</b><i>y</i> " * 50_000),
               "Dense HTML body", _expect("body", lambda b: "<" not in b and b.startswith("x y x y"), "as text")),
        stored("900 KB of extras", msg("Big extras", extras={"blob": "z" * 900_000}), "Big extras"),
        stored("title that NFKC lengthens 18x", msg("\ufdfa" * 1000),
               unicodedata.normalize("NFKC", "\ufdfa" * 1000)[:1000].rstrip(),  # cut to 1,000 characters
               _expect("title", lambda t: len(t) == 1000, "is cut to 1,000 characters")),
        rejected("source that NFKC lengthens past 200", msg(source="\ufdfa" * 12), "normalize",
                 "source: over 200 characters after cleanup"),
        rejected("5,000-digit number", msg(extras={"n": 1}).replace(b'"n": 1', b'"n": ' + b"9" * 5000), "decode",
                 "malformed JSON: Exceeds the limit (4300 digits)"),
    ]  # fmt: skip


def deep_json() -> list[Case]:
    return [
        rejected("array nested 100,000 levels", _nested(100_000).encode(), "decode", "nested deeper than 32 levels"),
        rejected("object nested 100,000 levels", _nested(100_000, '{"a":', "}").encode(), "decode",
                 "nested deeper than 32 levels"),
        rejected("extras nested 100,000 levels",
                 msg(extras={}).replace(b'"extras": {}', b'"extras": ' + _nested(100_000, '{"a":', "}").encode()),
                 "decode", "nested deeper than 32 levels"),
        rejected("extras nested 40 levels", msg(extras={"x": json.loads(_nested(40))}), "decode",
                 "extras: nested deeper than 32 levels"),
        rejected("unknown field nested 500 levels", msg(deep=json.loads(_nested(500))), "decode",
                 "deep: nested deeper than 32 levels"),
        stored("extras nested 10 levels", msg("Shallow extras", extras={"x": json.loads(_nested(10))}),
               "Shallow extras"),
    ]  # fmt: skip


def html_script() -> list[Case]:
    return [
        stored("script and bold tags", msg("<script>alert(1)</script>Shares of <b>Tesla</b> rise"),
               "Shares of Tesla rise"),
        stored("img onerror", msg("<img src=x onerror=alert(1)>Apple falls"), "Apple falls"),
        stored("svg onload and iframe", msg('<svg onload=alert(1)>x</svg><iframe src="javascript:alert(1)"></iframe>'
                                            "Intel gains"), "Intel gains"),
        stored("entity-encoded script (text that looks like markup)",
               msg("&lt;script&gt;alert(1)&lt;/script&gt; Apple falls"), "<script>alert(1)</script> Apple falls"),
        stored("entity-encoded img onerror", msg("&lt;img src=x onerror=alert(1)&gt; Nvidia jumps"),
               "<img src=x onerror=alert(1)> Nvidia jumps"),
        stored("entity-encoded Slack mentions and links",
               msg("&lt;!channel&gt; &lt;https://evil.example|click&gt; &lt;@U123&gt; Nokia warns"),
               "<!channel> <https://evil.example|click> <@U123> Nokia warns"),
        stored("raw Slack user mention", msg("<@U123> Amazon slides"), "<@U123> Amazon slides"),
        stored("ampersands", msg("AT&amp;T &amp; Verizon & T-Mobile merge talks"),
               "AT&T & Verizon & T-Mobile merge talks"),
        stored("javascript: url", msg("Netflix url test", url="javascript:alert(1)"), "Netflix url test",
               _expect("url", lambda u: u == "javascript:alert(1)", "kept verbatim (rendered as text, never a link)")),
        stored("template and markdown syntax", msg("{{7*7}} ${7*7} **bold** [x](javascript:alert(1)) `code` Oracle"),
               "{{7*7}} ${7*7} **bold** [x](javascript:alert(1)) `code` Oracle"),
        rejected("style only", msg("<style>body{display:none}</style>"), "normalize",
                 "title: missing or empty after cleanup"),
    ]  # fmt: skip


SQL_TITLE = "Robert'); DROP TABLE articles;-- shares fall"


def sql_strings() -> list[Case]:
    return [
        stored("DROP TABLE in the title", msg(SQL_TITLE), SQL_TITLE),
        stored("DELETE in the source name", msg("Source name injection", source="wire'; DELETE FROM sources;--"),
               "Source name injection", _expect("source", lambda s: s == "wire'; DELETE FROM sources;--", "verbatim")),
        stored("tautology", msg("1' OR '1'='1"), "1' OR '1'='1"),
        stored("UNION in the external id", msg("External id injection", external_id="x' UNION SELECT * FROM rejects--"),
               "External id injection"),
        stored("driver placeholders", msg("Placeholders %s %(x)s {0} $1 :name ?", body="%s %% %(title)s"),
               "Placeholders %s %(x)s {0} $1 :name ?"),
        stored("backslashes and E-strings", msg("E'\\\\' \\x00 \\' done"), "E'\\\\' \\x00 \\' done"),
        stored("comment and semicolon in the url", msg("Url injection", url="https://x.test/a';--"), "Url injection"),
    ]  # fmt: skip


def homoglyph_tickers() -> list[Case]:
    return [
        stored("Cyrillic A in a cashtag", msg("$\u0410APL soars", tickers=["\u0410APL"]), "$\u0410APL soars",
               _tickers()),
        stored("Greek Alpha after an exchange prefix", msg("NASDAQ:\u0391APL record"), "NASDAQ:\u0391APL record",
               _tickers()),
        stored("Cyrillic A in the company name", msg("\u0410pple shares jump"), "\u0410pple shares jump", _tickers()),
        stored("Cyrillic O in a provided symbol", msg("Search giant results", tickers=["G\u041eOGL"]),
               "Search giant results", _tickers()),
        stored("fullwidth letters fold to ASCII (NFKC)", msg("$\uff21\uff21PL beats"), "$AAPL beats", _tickers("AAPL")),
        stored("the real thing", msg("$AAPL falls after Apple warns"), "$AAPL falls after Apple warns",
               _tickers("AAPL")),
    ]  # fmt: skip


def timestamps() -> list[Case]:
    return [
        rejected("year 1850", msg("Victorian news", published_at="1850-01-01T00:00:00Z"), "normalize",
                 "published_at: before 1900-01-01"),
        rejected("year 2999", msg("Far future", published_at="2999-01-01T00:00:00Z"), "normalize",
                 "published_at: more than 1 day"),
        stored("negative epoch -1 (a Unix time, 1969-12-31T23:59:59Z)", msg("Epoch minus one", published_at=-1),
               "Epoch minus one", _expect("published_at", lambda t: t == datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
                                          "is 1969-12-31T23:59:59Z")),
        rejected("negative epoch before 1900", msg("Epoch 1874", published_at=-3_000_000_000), "normalize",
                 "published_at: before 1900-01-01"),
        rejected("NaN", msg("Not a time").replace(b"}", b', "published_at": NaN}'), "decode",
                 "NaN is not valid JSON"),
        rejected("Infinity", msg("Infinite time").replace(b"}", b', "published_at": Infinity}'), "decode",
                 "Infinity is not valid JSON"),
        rejected("1e400 (a float overflow)", msg("Huge float time").replace(b"}", b', "published_at": 1e400}'),
                 "decode", "published_at: inf is not a time"),
        rejected("the string NaN", msg("NaN string", published_at="NaN"), "decode",
                 "published_at: cannot read 'NaN' as a date"),
        rejected("past year 9999 in UTC", msg("Overflow", published_at="9999-12-31T23:59:59-14:00"), "decode",
                 "published_at: out of range when converted to UTC"),
        rejected("before year 1 in UTC", msg("Underflow", published_at="0001-01-01T00:00:00+14:00"), "decode",
                 "published_at: out of range when converted to UTC"),
        stored("empty string: missing, the ingest time, flagged", msg("Empty time", published_at=""), "Empty time",
               _all(_expect("published_at", lambda t: t == NOW, "is the ingest time"),
                    _expect("published_at_fallback", bool, "is flagged"))),
        rejected("boolean", msg("Boolean time", published_at=True), "decode",
                 "published_at: expected a date string or a Unix time, got a boolean"),
        rejected("a zone that is not one", msg("Unknown zone", published_at="2026-11-24 09:30 XYZ"), "decode",
                 "published_at: '2026-11-24 09:30 XYZ': unknown time zone 'XYZ'"),
        rejected("a time without a date (never today's)", msg("No date", published_at="12:00"), "decode",
                 "published_at: '12:00' has no year and no month and no day"),
        stored("a zone abbreviation by the table", msg("Eastern time", published_at="2026-11-24 09:30 EST"),
               "Eastern time", _expect("published_at", lambda t: t == datetime(2026, 11, 24, 14, 30, tzinfo=UTC),
                                       "is 14:30Z")),
        stored("UTC+3 is three hours ahead", msg("Plus three", published_at="2026-11-24 09:30 UTC+3"),
               "Plus three", _expect("published_at", lambda t: t == datetime(2026, 11, 24, 6, 30, tzinfo=UTC),
                                     "is 06:30Z")),
        stored("null: the ingest time, flagged", msg("No time given", published_at=None), "No time given",
               _all(_expect("published_at", lambda t: t == NOW, "is the ingest time"),
                    _expect("published_at_fallback", bool, "is flagged"))),
        stored("23 hours ahead (within the one-day allowance)",
               msg("Slightly ahead", published_at=(NOW + timedelta(hours=23)).isoformat()), "Slightly ahead"),
        stored("an offset is converted to UTC", msg("Offset time", published_at="2026-11-24T09:00:00+14:00"),
               "Offset time", _expect("published_at", lambda t: t == datetime(2026, 11, 23, 19, tzinfo=UTC), "in UTC")),
    ]  # fmt: skip


FLOOD_COPIES = 1000


def duplicate_flood() -> list[Case]:
    value = msg("Flooded headline: Nokia cuts outlook", external_id="flood-1", url="https://x.test/flood")
    return [stored("first copy", value, "Flooded headline: Nokia cuts outlook")] + [
        Case(f"copy {i}", value, "duplicate") for i in range(1, FLOOD_COPIES)
    ]


def empty_whitespace() -> list[Case]:
    return [
        rejected("empty value", b"", "decode", "empty message"),
        rejected("tombstone (no value)", None, "decode", "empty message"),
        rejected("spaces only", b"   \n\t ", "decode", "malformed JSON at line"),
        rejected("empty object", b"{}", "decode", "source: missing (required); title: missing (required)"),
        rejected("blank title", msg("   "), "decode", "title: String should have at least 1 character"),
        rejected("ideographic-space title", msg("\u3000\u3000"), "decode", "title: String should have at least 1"),
        rejected("zero-width title", msg("\u200b\u200b\ufeff"), "normalize", "title: missing or empty after cleanup"),
        rejected("empty paragraph title", msg("<p> </p>&nbsp;"), "normalize", "title: missing or empty after cleanup"),
        rejected("blank source", msg(source="  "), "decode", "source: String should have at least 1 character"),
        stored("empty body", msg("Empty body is fine", body=""), "Empty body is fine"),
    ]  # fmt: skip


def wrong_types() -> list[Case]:
    return [
        rejected("title is a number", msg(42), "decode", "title: Input should be a valid string (got int)"),
        rejected("title is a list", msg(["a"]), "decode", "title: Input should be a valid string (got list)"),
        rejected("body is null", msg(body=None), "decode", "body: Input should be a valid string (got NoneType)"),
        rejected("tickers is a string", msg(tickers="AAPL"), "decode", "tickers: Input should be a valid list"),
        rejected("a ticker is a number", msg(tickers=["AAPL", 7]), "decode",
                 "tickers.1: Input should be a valid string"),
        rejected("51 tickers", msg(tickers=[f"T{i}" for i in range(51)]), "decode",
                 "tickers: List should have at most 50 items"),
        rejected("extras is a list", msg(extras=[1]), "decode", "extras: Input should be a valid dictionary"),
        rejected("published_at is an object", msg(published_at={}), "decode",
                 "published_at: expected a date string or a Unix time, got dict"),
        rejected("schema version 2", msg(v=2), "decode", "v: Input should be 1"),
        rejected("a JSON array", b'["source", "title"]', "decode", "expected a JSON object, got list"),
        rejected("a JSON string", b'"Nokia falls"', "decode", "expected a JSON object, got str"),
        rejected("a JSON number", b"1", "decode", "expected a JSON object, got int"),
        rejected("JSON null", b"null", "decode", "expected a JSON object, got NoneType"),
        rejected("truncated JSON", msg()[:-5], "decode", "malformed JSON at line 1"),
        stored("unknown fields go to extras", msg("Unknown fields kept", desk="nordics", priority=1),
               "Unknown fields kept"),
    ]  # fmt: skip


BATCH_SIZE = 1000


def oversized_batch() -> list[Case]:
    cases = []
    for i in range(BATCH_SIZE):
        if i % 100 == 99:
            cases.append(rejected(f"bad item {i}", b"{oops " + str(i).encode(), "decode", "malformed JSON"))
        else:
            title = f"Company {i} reports quarterly results number {i}"
            cases.append(stored(f"item {i}", msg(title, source="batch", external_id=f"b-{i}"), title))
    return cases


# Each class goes through the worker path as one call of BatchProcessor.process, except the flood (batches of 32,
# so most copies meet the stored one in the database) and the oversized batch (one call of 1,000).
CLASSES: dict[str, Callable[[], list[Case]]] = {
    "invalid_utf8": invalid_utf8,
    "control_chars": control_chars,
    "huge_fields": huge_fields,
    "deep_json": deep_json,
    "html_script": html_script,
    "sql_strings": sql_strings,
    "homoglyph_tickers": homoglyph_tickers,
    "timestamps": timestamps,
    "duplicate_flood": duplicate_flood,
    "empty_whitespace": empty_whitespace,
    "wrong_types": wrong_types,
    "oversized_batch": oversized_batch,
}
BATCH_OF = {"duplicate_flood": 32}
