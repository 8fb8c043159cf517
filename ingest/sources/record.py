"""The record every source yields: a `news.raw` message, or a reason why the input could not become one.

Sources map fields and nothing more: HTML stripping, UTC conversion of the wire value and the ingest-time fallback
happen downstream (`scoring.normalize`). The one change a source makes is to cut a body that would push the message
over `core.messages.MAX_MESSAGE_BYTES` (the broker would refuse it and `decode` would reject it); the cut is flagged
in `extras["body_truncated_at_source"]` with the original length in characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from core.messages import MAX_MESSAGE_BYTES, MAX_TICKERS, NewsMessage, encode
from core.times import TimeError, parse_time

# What a ticker may look like at a source; anything else is dropped so one odd symbol does not reject the row.
TICKER = re.compile(r"^[A-Za-z0-9.\-:]{1,16}$")


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One row or feed entry: exactly one of `value` (encoded NewsMessage) or `error` (the reason) is set."""

    source: str  # the source's name
    position: str  # where it came from: "news.csv:123" (line) or a feed entry id/link
    value: bytes | None  # the news.raw message bytes (core.messages.encode of a NewsMessage)
    error: str | None  # else a reason naming the field (and the line, for files)
    raw: bytes  # the original bytes of the row/entry, kept for the rejects table

    def __post_init__(self) -> None:
        if (self.value is None) == (self.error is None):
            raise ValueError("RawRecord needs exactly one of value and error")

    @property
    def ok(self) -> bool:
        """True when the record carries a message."""
        return self.value is not None


class FieldError(ValueError):
    """A field that cannot go into a NewsMessage; the text starts with the field name."""


def parse_published_at(value: Any) -> datetime | None:
    """A wire time in UTC by the rules of `core.times.parse_time` (the same as for `news.raw`), None when missing;
    FieldError naming the problem otherwise."""
    try:
        return parse_time(value)
    except TimeError as exc:
        raise FieldError(f"published_at: {exc}") from None


def clean_tickers(value: Any, *, separator: str = ";") -> list[str]:
    """Tickers from a separated string or a list, keeping only those that look like tickers (at most MAX_TICKERS)."""
    if value is None:
        return []
    if isinstance(value, str):
        items: list[Any] = value.split(separator)
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return []
    out: list[str] = []
    for item in items:
        if isinstance(item, str) and TICKER.match(item.strip()) and item.strip() not in out:
            out.append(item.strip())
            if len(out) == MAX_TICKERS:
                break
    return out


def build_record(*, source: str, position: str, raw: bytes, fields: dict[str, Any], prefix: str = "") -> RawRecord:
    """A record from mapped fields: the encoded NewsMessage, or an error record naming the field (never raises)."""
    try:
        value = _encode_fields(fields)
    except FieldError as exc:
        return RawRecord(source=source, position=position, value=None, error=f"{prefix}{exc}", raw=raw)
    except ValidationError as exc:
        return RawRecord(source=source, position=position, value=None, error=f"{prefix}{describe(exc)}", raw=raw)
    except Exception as exc:  # hostile input must never stop a reader; name the surprise instead
        error = f"{prefix}unexpected {type(exc).__name__}: {_shown(str(exc), 200)}"
        return RawRecord(source=source, position=position, value=None, error=error, raw=raw)
    return RawRecord(source=source, position=position, value=value, error=None, raw=raw)


def _encode_fields(fields: dict[str, Any]) -> bytes:
    title = fields.get("title")
    if title is None or (isinstance(title, str) and not title.strip()):
        raise FieldError("title: missing or empty")
    if not isinstance(title, str):
        raise FieldError(f"title: expected a string, got {type(title).__name__}")
    body = fields.get("body")
    if body is not None and not isinstance(body, str):
        raise FieldError(f"body: expected a string, got {type(body).__name__}")
    data = dict(fields) | {"body": body or "", "published_at": parse_published_at(fields.get("published_at"))}
    message = NewsMessage.model_validate(data)
    value = encode(message)
    excess = len(value) - MAX_MESSAGE_BYTES
    if excess <= 0:
        return value
    # Cut the body until the message fits. A UTF-8 byte costs at least one JSON byte (escapes only add), so cutting
    # `excess` bytes is enough unless escapes dominate; then halve. A few rounds at most.
    cut, extras = message.body, message.extras | {"body_truncated_at_source": len(message.body)}
    for _ in range(64):
        encoded = cut.encode("utf-8")
        if not encoded:
            break
        keep = len(encoded) - excess if excess < len(encoded) else len(encoded) // 2
        cut = encoded[:keep].decode("utf-8", errors="ignore")  # "ignore" drops a character cut in half at the end
        value = encode(message.model_copy(update={"body": cut, "extras": extras}))
        excess = len(value) - MAX_MESSAGE_BYTES
        if excess <= 0:
            return value
    raise FieldError(f"message: {len(value):,} bytes, over the {MAX_MESSAGE_BYTES:,}-byte limit (not the body)")


def describe(exc: ValidationError) -> str:
    """A pydantic error as 'field: problem; field: problem' (at most five)."""
    errors = exc.errors(include_url=False)
    parts = []
    for error in errors[:5]:
        field = ".".join(str(part) for part in error["loc"]) or "message"
        if error["type"] == "missing":
            parts.append(f"{field}: missing (required)")
        else:
            parts.append(f"{field}: {error['msg'].removeprefix('Value error, ')} (got {type(error['input']).__name__})")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return "; ".join(parts)


def _shown(text: str, limit: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
