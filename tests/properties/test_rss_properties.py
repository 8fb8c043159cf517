"""Properties of feed parsing: any response body gives an `ok` poll with records or an `error` poll with a reason.

The HTTP exchange is httpx's in-memory MockTransport here (hundreds of examples); the real-server behaviour of the
poller (timeouts, conditional GET, backoff) is tested against a real HTTP server in tests/ingest/test_sources_rss.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import escape

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.messages import MessageError, decode
from ingest.sources.rss import FeedPoller, entry_fields

from .strategies import HOSTILE_TEXT, PROPERTY

# feedparser warns about its own updated -> published fallback on every Atom entry without <published>.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:feedparser")

NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
URL = "https://feeds.example/markets.xml"
CONTENT_TYPES = st.sampled_from(
    ["application/rss+xml; charset=utf-8", "application/atom+xml", "text/xml; charset=iso-8859-1", "text/html",
     "application/octet-stream", "application/xml; charset=utf-16"]
)  # fmt: skip


def poll_once(body: bytes, content_type: str):
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, content=body)

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        return FeedPoller("wire", URL, client=client).poll(NOW)


def check(result) -> None:
    assert result.status in ("ok", "error")
    if result.status == "error":
        assert result.error.startswith(URL) and "unexpected" not in result.error, result.error
        assert not result.records
        return
    for record in result.records:
        assert record.source == "wire" and record.raw
        if record.ok:
            try:
                decode(record.value)
            except MessageError as exc:  # what a source publishes must be a valid news.raw message
                raise AssertionError(f"record does not decode: {exc}") from None
        else:
            assert record.error.startswith("entry ") and "unexpected" not in record.error, record.error


@PROPERTY
@example(b"", "application/rss+xml")
@example(b"\x00" * 64, "application/xml")
@example(b"\xff\xfe<\x00r\x00s\x00s\x00", "application/xml; charset=utf-16")
@example(b"<!DOCTYPE x [<!ENTITY a '" + b"A" * 100 + b"'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>]><rss><c>&b;</c></rss>",
         "application/rss+xml")  # fmt: skip
@given(st.binary(max_size=400), CONTENT_TYPES)
def test_arbitrary_bytes_are_a_feed_or_an_error(body, content_type):
    check(poll_once(body, content_type))


def rss_item(title: str, body: str, date: str, link: str, guid: str, category: str, raw: bool) -> str:
    text = (lambda s: s) if raw else escape  # raw: markup-ish text straight into the XML, often breaking it
    return (
        f"<item><title>{text(title)}</title><description>{text(body)}</description><pubDate>{text(date)}</pubDate>"
        f"<link>{text(link)}</link><guid>{text(guid)}</guid><category>{text(category)}</category></item>"
    )


DATES = st.one_of(
    HOSTILE_TEXT,
    st.sampled_from(
        ["Mon, 03 Jun 2024 10:00:00 +0200", "Fri, 31 Dec 9999 23:59:59 -1400", "Mon, 01 Jan 0001 00:00:00 +1400",
         "Sat, 01 Jan 1850 00:00:00 GMT", "Tue, 31 Dec 2999 23:59:59 GMT", "2024-06-03T10:00:00Z", "-1", "NaN", ""]
    ),
)  # fmt: skip
ITEMS = st.builds(
    rss_item, HOSTILE_TEXT, HOSTILE_TEXT, DATES, HOSTILE_TEXT, HOSTILE_TEXT,
    st.one_of(HOSTILE_TEXT, st.just("$AAPL"), st.just("$\u0410APL")), st.booleans(),
)  # fmt: skip


@PROPERTY
@given(st.lists(ITEMS, max_size=5), st.sampled_from(["rss", "atom"]), CONTENT_TYPES)
def test_xmlish_feeds_are_records_or_an_error(items, kind, content_type):
    if kind == "rss":
        doc = f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{"".join(items)}</channel></rss>'
    else:  # the same fields as Atom entries
        entries = "".join(
            i.replace("<item>", "<entry>").replace("</item>", "</entry>").replace("description>", "summary>")
            .replace("pubDate>", "updated>").replace("guid>", "id>") for i in items
        )  # fmt: skip
        doc = f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>{entries}</feed>'
    check(poll_once(doc.encode("utf-8", "surrogatepass"), content_type))


OPTIONAL_TEXT = st.one_of(st.none(), HOSTILE_TEXT)
STRUCT_TIMES = st.one_of(st.none(), st.tuples(*[st.integers(min_value=-(2**40), max_value=2**40)] * 9))
ENTRIES = st.fixed_dictionaries(
    {},
    optional={
        "title": OPTIONAL_TEXT, "summary": OPTIONAL_TEXT, "link": OPTIONAL_TEXT, "id": OPTIONAL_TEXT,
        "published": OPTIONAL_TEXT, "updated": OPTIONAL_TEXT,
        "published_parsed": STRUCT_TIMES, "updated_parsed": STRUCT_TIMES,
        "content": st.lists(st.fixed_dictionaries({"value": OPTIONAL_TEXT}), min_size=1, max_size=2),
        "tags": st.lists(st.fixed_dictionaries({"term": OPTIONAL_TEXT}), max_size=3),
    },
)  # fmt: skip


@PROPERTY
@example({"published_parsed": (2**31, 1, 1, 0, 0, 0, 0, 1, 0)})  # OverflowError before entry_fields caught it
@given(ENTRIES)
def test_entry_fields_raises_only_value_error(entry):
    """Any entry of the shapes feedparser hands over is mapped to message fields, or refused with a ValueError."""
    try:
        fields = entry_fields(entry, source="wire")
    except ValueError as exc:
        assert str(exc).startswith("published_at: ")
        return
    assert fields["source"] == "wire" and set(fields) >= {"title", "body", "published_at", "tickers"}


def test_a_character_reference_to_a_surrogate_costs_nothing():
    """`&#xD800;` crashed feedparser's fallback parser (UnicodeEncodeError) and so lost the whole feed."""
    good = rss_item("Nokia shares fall", "Nokia cut its outlook.", "Mon, 03 Jun 2024 10:00:00 +0200",
                    "https://x.test/1", "urn:1", "$NOK", False)  # fmt: skip
    bad = rss_item("Odd &#xD800; &#1114112; &#0; entry", "", "", "", "&#XD800;", "x", True)
    result = poll_once(f'<?xml version="1.0"?><rss version="2.0"><channel>{good}{bad}</channel></rss>'.encode(),
                       "application/rss+xml")  # fmt: skip
    check(result)
    assert result.status == "ok"
    titles = [decode(r.value).title for r in result.records if r.ok]
    assert "Nokia shares fall" in titles and any(t.startswith("Odd \ufffd") for t in titles)
