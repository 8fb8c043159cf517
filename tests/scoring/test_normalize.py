"""Normalisation: hostile HTML and unicode, timestamps, size limits, hashes and title keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from scoring.normalize import MAX_BODY_BYTES, NormalizeError, clean_text, normalize, title_key

NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


def item(**kw):
    base = {"title": "Apple beats estimates", "body": "", "published_at": "2024-06-03T10:00:00Z", "source": "t"}
    return normalize(**(base | kw), now=NOW)


def test_script_and_style_are_dropped_with_their_content():
    text = clean_text("<p>Hello<script>alert('x')</script> <style>p{color:red}</style><b>world</b></p>")
    assert text == "Hello world"


def test_entities_unescaped_and_blocks_separated():
    assert clean_text("<p>AT&amp;T&nbsp;rises</p><p>Next</p>") == "AT&T rises Next"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("No-deal Brexit would hit UK, warns S&P", "No-deal Brexit would hit UK, warns S&P"),  # unknown "&P" at the end
        ("Coty jumps on report of deal with P&G; Tahoe drops", "Coty jumps on report of deal with P&G; Tahoe drops"),
        ("<p>Outlook cut by S&P</p>", "Outlook cut by S&P"),
        ("a<br>S&P", "a S&P"),
        ("AT&amp;T &lt;b&gt; caf&eacute; &copy 2020 &#36;5", "AT&T <b> café © 2020 $5"),
    ],
)
def test_bare_ampersands_are_kept_with_or_without_markup(raw, clean):
    # html.parser through BeautifulSoup dropped "&P" at the end of a text node: "warns SP", and S&P never linked.
    assert clean_text(raw) == clean


def test_unclosed_and_malformed_html_does_not_leak_markup():
    assert clean_text("<div><a href='x'>link<script>evil()") == "link"


def test_control_and_invisible_characters_removed():
    raw = "Apple\x00 \x07beats\u200b est\u202eimates\r\n\tnow\x1b"
    assert clean_text(raw) == "Apple beats estimates now"


def test_nfkc_folds_fullwidth_and_ligatures():
    assert clean_text("ＡＡＰＬ ﬁnance") == "AAPL finance"


def test_lone_surrogate_and_private_use_removed():
    assert clean_text("a\ud800b\ue000c") == "abc"


def test_reuters_symbols_survive_html_cleanup():
    assert clean_text("STANDARD OIL <SRD> TO FORM <b>UNIT</b>") == "STANDARD OIL <SRD> TO FORM UNIT"
    assert clean_text("USAIR <U> CLEARED") == "USAIR <U> CLEARED"
    assert clean_text("<u>under</u> line") == "under line"
    assert clean_text("<CONSOLIDATED PLANTATIONS BHD>") == "<CONSOLIDATED PLANTATIONS BHD>"
    assert clean_text("<FONT SIZE=2>x</FONT> <BR> <P>y</P>") == "x y"


def test_iso_and_rfc2822_to_utc():
    assert item(published_at="2024-06-03T08:00:00-04:00").published_at == datetime(2024, 6, 3, 12, tzinfo=UTC)
    rfc = item(published_at="Mon, 03 Jun 2024 11:30:00 +0200").published_at
    assert rfc == datetime(2024, 6, 3, 9, 30, tzinfo=UTC)
    assert item(published_at="Mon, 03 Jun 2024 11:30:00 GMT").published_at.tzinfo is not None
    aware = datetime(2024, 6, 3, 14, tzinfo=timezone(timedelta(hours=2)))
    assert item(published_at=aware).published_at == datetime(2024, 6, 3, 12, tzinfo=UTC)


def test_naive_time_is_read_as_utc():
    assert item(published_at="2024-06-03 10:00").published_at == datetime(2024, 6, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_time_falls_back_flagged(value):
    out = item(published_at=value)
    assert out.published_at == NOW and out.time_fallback is True
    assert item().time_fallback is False


@pytest.mark.parametrize(
    ("value", "reason"),
    [("not a date", "cannot read"), ("2024-13-45", "month must be in 1..12"), ("12:00", "has no year")],
)
def test_a_time_that_cannot_be_read_is_rejected_never_today(value, reason):
    """Issue 17 D3: a time that is not one (or lacks its date) was completed from today or fell back silently."""
    with pytest.raises(NormalizeError, match=reason) as err:
        item(published_at=value)
    assert err.value.field == "published_at"


@pytest.mark.parametrize("value", ["1899-12-31T23:59:59Z", "1066-10-14", "2099-01-01T00:00:00Z", "2024-06-04T13:00Z"])
def test_out_of_range_times_rejected_naming_field_and_value(value):
    with pytest.raises(NormalizeError) as err:
        item(published_at=value)
    assert err.value.field == "published_at" and value in str(err.value)


def test_one_day_ahead_is_allowed():
    assert item(published_at="2024-06-04T11:59:00Z").time_fallback is False


@pytest.mark.parametrize("title", [None, "", "   ", "<script>x</script>", "\x00\u200b"])
def test_missing_title_rejected(title):
    with pytest.raises(NormalizeError) as err:
        item(title=title)
    assert err.value.field == "title"


def test_ten_megabyte_body_truncated_and_flagged():
    out = item(body="é" * 10_000_000)
    assert out.body_truncated is True
    assert len(out.body.encode()) <= MAX_BODY_BYTES
    assert out.body.endswith("é")  # cut at a character boundary, no U+FFFD
    assert item(body="short").body_truncated is False


def test_ten_megabyte_html_body_is_cut_before_parsing():
    out = item(body="<p>Apple &amp; co<script>x()</script></p>" * 250_000)
    assert out.body_truncated is True and "x()" not in out.body and out.body.startswith("Apple & co Apple")


def test_content_hash_and_title_key():
    a = item(title="Apple  beats <b>estimates</b>", body="x")
    b = item(title="Apple beats estimates", body="x")
    assert a.content_hash == b.content_hash and len(a.content_hash) == 64
    assert item(body="y").content_hash != a.content_hash
    # The same text from another outlet is another article (of the same story), not an exact duplicate.
    assert item(title="Apple beats estimates", body="x", source="other").content_hash != a.content_hash
    assert title_key("APPLE beats, estimates!") == title_key("Apple beats estimates") == "apple beats estimates"


def test_source_required_and_url_blank_is_none():
    with pytest.raises(NormalizeError):
        item(source=" ")
    assert item(url="  ").url is None
