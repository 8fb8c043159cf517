"""RSS 2.0 and Atom feeds: fetched with httpx (conditional GET, timeouts, size cap), parsed by feedparser.

One `FeedPoller` per feed keeps what the next poll needs: the ETag and Last-Modified of the last good response,
the ids of recently seen entries (so a feed re-listing its last items does not republish them), and a failure
count that backs the next poll off exponentially. Time comes in as `now`; the poller never sleeps.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import feedparser
import httpx

from ingest.sources.record import RawRecord, build_record, clean_tickers

USER_AGENT = "finsent/0.1 (feed poller)"
MAX_FEED_BYTES = 10 * 1024 * 1024  # a real feed is kilobytes; more is a mistake or an attack
MAX_SEEN = 5000
_CASHTAG = re.compile(r"^\$([A-Za-z][A-Za-z0-9.\-]{0,15})$")


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of one feed gave: records (new entries only), or why it failed, and when to poll next."""

    source: str
    status: Literal["ok", "not_modified", "error"]
    records: list[RawRecord] = field(default_factory=list)
    error: str | None = None
    http_status: int | None = None
    next_poll_at: datetime | None = None


class _FeedFailure(Exception):
    """A poll that failed; the text names the url and the problem."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class FeedPoller:
    """Polls one feed; `poll(now)` never raises for network or feed problems."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        interval_s: float = 300,
        timeout_s: float = 10,
        max_backoff_s: float = 3600,
        client: httpx.Client | None = None,
        max_bytes: int = MAX_FEED_BYTES,
        max_seen: int = MAX_SEEN,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0 or max_backoff_s <= 0:
            raise ValueError(f"feed {name!r}: interval_s, timeout_s and max_backoff_s must be > 0")
        self.name = name
        self.url = url
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.max_bytes = max_bytes
        self.max_seen = max_seen
        self._client = client
        self._owns_client = client is None
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.consecutive_failures = 0
        self.next_poll_at: datetime | None = None  # None: due now
        self._seen: OrderedDict[str, None] = OrderedDict()

    @property
    def client(self) -> httpx.Client:
        """The HTTP client (made on first use when none was given)."""
        if self._client is None:
            self._client = httpx.Client(follow_redirects=True, headers={"User-Agent": USER_AGENT})
        return self._client

    def close(self) -> None:
        """Close the HTTP client if this poller made it."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def due(self, now: datetime) -> bool:
        """True when the feed should be polled at `now` (its interval or backoff has passed)."""
        return self.next_poll_at is None or now >= self.next_poll_at

    def backoff_s(self) -> float:
        """Seconds until the next poll: the interval, doubled per consecutive failure, capped at max_backoff_s."""
        if self.consecutive_failures == 0:
            return self.interval_s
        return min(self.interval_s * 2**self.consecutive_failures, self.max_backoff_s)

    def poll(self, now: datetime | None = None) -> PollResult:
        """Fetch the feed once (conditional GET) and return its new entries as records."""
        now = now or datetime.now(UTC)
        try:
            response, content = self._fetch()
            if response.status_code == 304:
                return self._succeeded(now, "not_modified", [], 304)
            records, etag, last_modified = self._parse(content, response)
        except _FeedFailure as exc:
            return self._failed(now, str(exc), exc.http_status)
        except Exception as exc:  # a poller must outlive any one bad response; name the surprise
            return self._failed(now, f"{self.url}: unexpected {type(exc).__name__}: {str(exc)[:300]}", None)
        # Validators are kept only from a response that parsed: a broken page's ETag would freeze us on it via 304.
        self.etag, self.last_modified = etag, last_modified
        return self._succeeded(now, "ok", records, response.status_code)

    # -------------------------------------------------------------------------------------------------- internals

    def _succeeded(self, now: datetime, status: Any, records: list[RawRecord], http_status: int) -> PollResult:
        self.consecutive_failures = 0
        self.next_poll_at = now + timedelta(seconds=self.backoff_s())
        return PollResult(self.name, status, records, None, http_status, self.next_poll_at)

    def _failed(self, now: datetime, error: str, http_status: int | None) -> PollResult:
        self.consecutive_failures += 1
        self.next_poll_at = now + timedelta(seconds=self.backoff_s())
        return PollResult(self.name, "error", [], error, http_status, self.next_poll_at)

    def _fetch(self) -> tuple[httpx.Response, bytes]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        # httpx's timeout is per socket operation; a server trickling bytes is cut off by the overall deadline.
        deadline = time.monotonic() + self.timeout_s
        try:
            with self.client.stream("GET", self.url, headers=headers, timeout=self.timeout_s) as response:
                if response.status_code == 304:
                    return response, b""
                if response.status_code >= 400:
                    reason = response.reason_phrase or "error"
                    raise _FeedFailure(f"{self.url}: HTTP {response.status_code} {reason}", response.status_code)
                if response.status_code >= 300:  # the client was told not to follow redirects, or it had no Location
                    raise _FeedFailure(f"{self.url}: HTTP {response.status_code} redirect not followed")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise _FeedFailure(f"{self.url}: response over {self.max_bytes:,} bytes", response.status_code)
                    if time.monotonic() > deadline:
                        raise _FeedFailure(f"{self.url}: timed out after {self.timeout_s:g} s (reading the body)")
                    chunks.append(chunk)
                return response, b"".join(chunks)
        except httpx.TimeoutException as exc:
            raise _FeedFailure(f"{self.url}: timed out after {self.timeout_s:g} s ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise _FeedFailure(f"{self.url}: {type(exc).__name__}: {exc or 'connection failed'}") from None

    def _parse(self, content: bytes, response: httpx.Response) -> tuple[list[RawRecord], str | None, str | None]:
        try:
            # A stream, never bytes: feedparser.parse(bytes) first tries the bytes as a local file name.
            parsed = feedparser.parse(
                io.BytesIO(_CHARREF.sub(_valid_charref, content)),
                response_headers={
                    "content-type": response.headers.get("content-type", "application/xml"),
                    "content-location": str(response.url),
                },
            )
        except Exception as exc:  # feedparser's fallback parser has its own bugs; the feed is unreadable, say why
            head = content[:40].decode("utf-8", errors="replace")
            problem = f"feedparser failed: {type(exc).__name__}: {str(exc)[:200]}"
            raise _FeedFailure(f"{self.url}: not a valid feed ({problem}); body starts {head!r}", 200) from None
        if not parsed.entries and (parsed.get("bozo") or not parsed.get("version")):
            problem = parsed.get("bozo_exception") or "no RSS or Atom root element"
            head = content[:40].decode("utf-8", errors="replace")
            raise _FeedFailure(f"{self.url}: not a valid feed ({str(problem)[:200]}); body starts {head!r}", 200)
        keys, records = [], []
        for index, entry in enumerate(parsed.entries):
            key = _entry_key(entry)
            if key not in self._seen:
                records.append(self._record(entry, index))
                self._seen[key] = None  # also skips a second listing of the same entry in this feed
            keys.append(key)
        self._remember(keys)
        return records, response.headers.get("etag"), response.headers.get("last-modified")

    def _remember(self, keys: list[str]) -> None:
        # Everything in the current listing stays remembered, whatever max_seen says: forgetting an entry the feed
        # still lists would republish it on the next poll.
        for key in keys:
            self._seen[key] = None
            self._seen.move_to_end(key)
        while len(self._seen) > max(self.max_seen, len(keys)):
            self._seen.popitem(last=False)

    def _record(self, entry: Any, index: int) -> RawRecord:
        external_id = _text(entry.get("id")) or _text(entry.get("link"))
        position = external_id or f"{self.url}#entry-{index}"
        raw = json.dumps(entry, default=str, ensure_ascii=False).encode("utf-8", errors="replace")
        try:
            fields = entry_fields(entry, source=self.name)
        except ValueError as exc:
            return RawRecord(self.name, position, None, f"entry {position}: {exc}", raw)
        except Exception as exc:  # one odd entry must not cost the others
            error = f"entry {position}: unexpected {type(exc).__name__}: {str(exc)[:200]}"
            return RawRecord(self.name, position, None, error, raw)
        return build_record(source=self.name, position=position, raw=raw, fields=fields, prefix=f"entry {position}: ")


def entry_fields(entry: Any, *, source: str) -> dict[str, Any]:
    """A feedparser entry as NewsMessage fields (published_at from the parsed UTC struct_time, else the raw text)."""
    body = entry.get("summary")
    if not body and entry.get("content"):
        body = entry["content"][0].get("value")
    published: Any = None
    for key in ("published", "updated"):
        parsed = entry.get(f"{key}_parsed")
        if parsed:
            try:
                published = datetime(*parsed[:6], tzinfo=UTC)  # feedparser gives the time in UTC
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"published_at: {entry.get(key)!r} is out of range ({exc})") from None
            break
        if entry.get(key):
            published = entry.get(key)  # feedparser could not read it: build_record tries dateutil, else refuses
            break
    tickers = []
    for tag in entry.get("tags") or []:
        match = _CASHTAG.match((tag.get("term") or "").strip())
        if match:
            tickers.append(match.group(1))
    return {
        "source": source,
        "title": entry.get("title"),
        "body": body or "",
        "url": _http_url(entry.get("link")),
        "external_id": _text(entry.get("id")) or _text(entry.get("link")),
        "published_at": published,
        "tickers": clean_tickers(tickers),
    }


# Numeric character references; one to a surrogate, NUL or past U+10FFFF ("&#xD800;") crashes feedparser's loose
# parser (UnicodeEncodeError) and so would lose every entry of the feed. Such a reference becomes U+FFFD, written as a
# reference too, so the bytes stay valid in whatever encoding the feed declares.
_CHARREF = re.compile(rb"&#([xX][0-9a-fA-F]{1,16}|[0-9]{1,16});")


def _valid_charref(match: re.Match[bytes]) -> bytes:
    digits = match.group(1)
    code = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
    return match.group(0) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else b"&#xFFFD;"


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _http_url(value: Any) -> str | None:
    # feedparser copies an Atom id into `link` when there is no link; an id like urn:uuid:... is not a URL.
    text = _text(value)
    return text if text and text.lower().startswith(("http://", "https://")) else None


def _entry_key(entry: Any) -> str:
    """The entry's identity for dedupe: its id, else its link, else a hash of title and summary."""
    key = _text(entry.get("id")) or _text(entry.get("link"))
    if key:
        return key
    text = f"{entry.get('title', '')}\x00{entry.get('summary', '')}"
    return "sha256:" + hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()
