"""Normalise one raw news item: safe HTML-to-text, NFKC, UTC timestamps, content hash and exact-duplicate key.

Policies (documented here because the worker counts and dead-letters on them):
- A missing `published_at` falls back to the ingest time (`now`) and sets `time_fallback=True`; one that is not a
  time by the rules of `core.times` is rejected (never completed from today).
- A timestamp before 1900-01-01 or more than one day after `now` is rejected: it is a parse error or a lie,
  and a fallback would hide it.
- A missing or empty title (after cleanup) is rejected.
- A body over `MAX_BODY_BYTES` (1 MB UTF-8, the Kafka message limit) after cleanup is truncated at a character
  boundary and flagged `body_truncated=True`: the headline and lead carry the signal, so keeping the item is
  worth more than keeping its tail.
- A title over `MAX_TITLE_CHARS` is truncated (flagged `title_truncated=True`), matching `core.messages`.
- A source name over `MAX_SOURCE_CHARS` after cleanup (NFKC can lengthen text) is rejected.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

from core import times
from core.messages import MAX_MESSAGE_BYTES, MAX_TITLE_CHARS

MAX_BODY_BYTES = MAX_MESSAGE_BYTES
MAX_SOURCE_CHARS = 200  # sources.name
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)
# Raw input is cut before parsing so a hostile 100 MB body costs bounded time and memory; 2x leaves room for ordinary
# markup (docs/performance.md, 'Measurements behind code choices').
MAX_RAW_BODY_CHARS = 2 * MAX_BODY_BYTES

# Elements whose text is never prose: dropped with their content, not just untagged.
_DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "math", "head")
# Reuters-style symbols ("STANDARD OIL <SRD>") look like tags; they are kept as text unless they really are HTML.
_SYMBOL_TAG = re.compile(r"<([A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?)>")
_VOID_TAGS = frozenset({"br", "hr", "wbr", "img", "col", "area", "base", "link", "meta", "input", "source", "track"})
_HTML_TAGS = _VOID_TAGS | frozenset(
    "a b i p q s u em tt li ol ul dl dt dd td tr th h1 h2 h3 h4 h5 h6 div pre sup sub big font span body html head "
    "title table thead tbody tfoot center small strike strong code abbr cite nav main form label button select "
    "option style script iframe object embed svg math frame frameset noscript template header footer section "
    "article aside figure blockquote caption address".split()
)
_WS = re.compile(r"\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_PUNCT_OR_SPACE = re.compile(r"[\W_]+")


class NormalizeError(ValueError):
    """A raw item that cannot be normalised; names the field and the offending value."""

    def __init__(self, field: str, problem: str, value: object = None) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"{field}: {problem} (got {shown})")
        self.field = field
        self.problem = problem
        self.value = value


@dataclass(frozen=True, slots=True)
class NormalizedItem:
    """A cleaned news item ready for dedup, entity linking and publishing."""

    title: str
    body: str
    published_at: datetime
    url: str | None
    source: str
    content_hash: str
    title_key: str
    time_fallback: bool = False
    body_truncated: bool = False
    title_truncated: bool = False


def symbol_tags(text: str) -> list[re.Match[str]]:
    """The `<XYZ>` symbol markers in text: upper-case, not a void HTML tag, and not closed like an element."""
    return [m for m in _SYMBOL_TAG.finditer(text) if not _is_markup(m.group(1), text)]


# Reuters also brackets unlisted company names ("<CONSOLIDATED PLANTATIONS BHD>"); real tags have no spaces
# without an "=", so an upper-case bracket of words is text too.
_NAME_MARK = re.compile(r"<([A-Z0-9][A-Z0-9 .,&'()\-/]*)>")


def _is_markup(name: str, text: str) -> bool:
    name = name.lower()
    if name in _VOID_TAGS:
        return True
    return name in _HTML_TAGS and re.search(rf"</\s*{re.escape(name)}\s*>", text, re.IGNORECASE) is not None


def _protect_symbols(text: str) -> str:
    marks = [m for m in _NAME_MARK.finditer(text) if not _is_markup(m.group(1).split(" ")[0], text)]
    for m in reversed(marks):
        text = f"{text[: m.start()]}&lt;{m.group(1)}&gt;{text[m.end() :]}"
    return text


# A character reference as HTML5 reads one: numeric, or a name (with or without ";"), or a bare "&".
_REFERENCE = re.compile(r"&(?:#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)?")


def _numeric_references(text: str) -> str:
    """Every "&..." as numeric references to what `html.unescape` reads it as.

    BeautifulSoup's html.parser builder drops an unknown reference at the end of a text node ("S&P" -> "SP",
    "P&G;" -> "P&G"), so a bare ampersand in a ticker or company name would vanish; numeric references it reads
    right, and `html.unescape` is the HTML5 reading the plain-text path uses too.
    """
    return _REFERENCE.sub(lambda m: "".join(f"&#{ord(ch)};" for ch in html.unescape(m.group(0))), text)


def clean_text(raw: str | None) -> str:
    """HTML to plain text: scripts/styles dropped, entities unescaped, NFKC, no control chars, collapsed spaces."""
    if not raw:
        return ""
    # Lone surrogates cannot be encoded, and BeautifulSoup encodes short markup to sniff it (UnicodeEncodeError).
    text = _SURROGATE.sub("", raw)
    if "<" in text:
        text = _protect_symbols(text)  # Reuters' "<SRD>" marks become "&lt;SRD&gt;": text, not tags
    if "<" in text:
        with warnings.catch_warnings():
            # Plain text that looks like a URL or file name is not an error for us.
            warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
            soup = BeautifulSoup(_numeric_references(text), "html.parser")
        for tag in soup.find_all(_DROP_TAGS):
            tag.decompose()
        # A space separator keeps words from adjacent block elements apart ("<p>a</p><p>b</p>" -> "a b").
        text = soup.get_text(" ")
    elif "&" in text:  # entities but no markup: what an HTML parser would do to the text, without the parser
        text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text)
    if text.isprintable():  # no Cc/Cf/Cn/Co/Cs character (and no whitespace but " "): the common case, fast
        return _WS.sub(" ", text).strip() if "  " in text else text.strip()
    # Control (Cc), format (Cf: zero-width, bidi overrides), unassigned (Cn), private use (Co) and surrogates (Cs)
    # are invisible or meaningless in a headline and are used to dodge matching; whitespace controls become spaces.
    chars = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "C":
            chars.append(" " if ch in "\t\n\r\v\f\x1c\x1d\x1e\x1f\x85" else "")
        else:
            chars.append(ch)
    return _WS.sub(" ", "".join(chars)).strip()


def title_key(title: str) -> str:
    """Exact-duplicate key: casefolded title with punctuation and spacing removed from consideration."""
    folded = unicodedata.normalize("NFKC", title).casefold()
    return _PUNCT_OR_SPACE.sub(" ", folded).strip()


def content_hash(source: str, title: str, body: str) -> str:
    """sha256 hex of source, normalised title and body (NULs separate them so fields cannot run together).

    The source is part of it: the same text from one source twice is an exact duplicate (stored once), while
    the same wire story carried by two outlets is two articles of one story (counted once by the monitor).
    """
    return hashlib.sha256(f"{source}\x00{title}\x00{body}".encode()).hexdigest()


def parse_time(value: str | datetime | None, *, now: datetime) -> tuple[datetime, bool]:
    """A publication time (rules of `core.times.parse_time`) in UTC; returns (time, fell_back). Missing: `now`,
    flagged. Raises NormalizeError when it is not a time or out of range."""
    try:
        parsed = times.parse_time(value)
    except times.TimeError as exc:
        raise NormalizeError("published_at", str(exc), value) from None
    if parsed is None:
        return now, True
    if parsed < EARLIEST:
        raise NormalizeError("published_at", "before 1900-01-01", value)
    if parsed > now + MAX_FUTURE:
        raise NormalizeError("published_at", f"more than {MAX_FUTURE} after ingest time {now.isoformat()}", value)
    return parsed, False


def _truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    # errors="ignore" drops a multi-byte character cut in half rather than emitting U+FFFD.
    return data[:max_bytes].decode("utf-8", errors="ignore").rstrip(), True


def normalize(
    *,
    title: str | None,
    body: str | None = None,
    published_at: str | datetime | None = None,
    url: str | None = None,
    source: str,
    now: datetime | None = None,
) -> NormalizedItem:
    """Normalise one raw item; raises NormalizeError naming the field for items that must be dead-lettered."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if title is not None and not isinstance(title, str):
        raise NormalizeError("title", "not a string", title)
    clean_title = clean_text(title)
    if not clean_title:
        raise NormalizeError("title", "missing or empty after cleanup", title)
    clean_title, title_truncated = (
        (clean_title[:MAX_TITLE_CHARS].rstrip(), True) if len(clean_title) > MAX_TITLE_CHARS else (clean_title, False)
    )
    if body is not None and not isinstance(body, str):
        raise NormalizeError("body", "not a string", body)
    raw_cut = body is not None and len(body) > MAX_RAW_BODY_CHARS
    raw_body = body[:MAX_RAW_BODY_CHARS] if raw_cut and body is not None else body
    clean_body, body_truncated = _truncate_utf8(clean_text(raw_body), MAX_BODY_BYTES)
    body_truncated = body_truncated or raw_cut
    when, fell_back = parse_time(published_at, now=now)
    clean_source = clean_text(source)
    if not clean_source:
        raise NormalizeError("source", "missing or empty", source)
    if len(clean_source) > MAX_SOURCE_CHARS:  # NFKC can lengthen a name ("\ufdfa" is 18 characters)
        raise NormalizeError("source", f"over {MAX_SOURCE_CHARS} characters after cleanup", source)
    clean_url = (url or "").strip() or None
    return NormalizedItem(
        title=clean_title,
        body=clean_body,
        published_at=when,
        url=clean_url,
        source=clean_source,
        content_hash=content_hash(clean_source, clean_title, clean_body),
        title_key=title_key(clean_title),
        time_fallback=fell_back,
        body_truncated=body_truncated,
        title_truncated=title_truncated,
    )
