"""The `news.raw` message: one news item as UTF-8 JSON, what ingest publishes and outside producers may send."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.times import TimeError, parse_time

# Kafka's default message.max.bytes is about 1 MB; a bigger value is not a news item, it is a mistake or an attack.
MAX_MESSAGE_BYTES = 1_048_576
MAX_TITLE_CHARS = 1_000
MAX_TICKERS = 50
# A news item is a flat object with a free-form `extras`; deeper nesting is an attack on the parser (json.loads
# recurses, and 100,000 levels would exhaust the stack) or a mistake.
MAX_JSON_DEPTH = 32
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, exactly


class MessageError(ValueError):
    """A `news.raw` value that cannot be decoded; the text names the field and the problem."""

    def __init__(self, problem: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


class NewsMessage(BaseModel):
    """One news item. Unknown top-level keys are kept in `extras`, so a producer's own fields are never lost."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    v: Literal[1] = 1  # schema version; a breaking change gets a new number
    source: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    body: str = ""
    external_id: str | None = Field(None, max_length=512)
    url: str | None = None
    published_at: datetime | None = None  # missing: ingest falls back to the ingest time and flags the article
    # How exact published_at is: "day" when the source gave only a date (stored at 00:00 UTC, kept out of windows
    # shorter than a day), "minute" or "second"; None: as exact as written. A bare date ("2019-01-30") is "day".
    time_precision: Literal["day", "minute", "second"] | None = None
    tickers: list[str] = Field(default_factory=list, max_length=MAX_TICKERS)
    extras: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_extras(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = _date_only_is_a_day(data)
        known = {name for name in cls.model_fields}
        unknown = {k: v for k, v in data.items() if k not in known}
        if not unknown:
            return data
        extras = data.get("extras", {})
        if not isinstance(extras, dict):
            return data  # let field validation name the problem
        return {k: v for k, v in data.items() if k in known} | {"extras": unknown | extras}

    @field_validator("source", "external_id", "url")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        # Identifiers are stored as they come (no cleanup as for title and body); PostgreSQL text cannot hold NUL,
        # and a control character in a name or id is a broken producer, not news.
        if value and (control := _CONTROL.search(value)):
            raise ValueError(f"contains the control character U+{ord(control.group()):04X}")
        return value

    @field_validator("published_at", mode="before")
    @classmethod
    def _parse_time(cls, value: Any) -> datetime | None:
        # The rules every source follows (files, feeds, this message): core.times, documented in docs/pipeline.md.
        try:
            return parse_time(value)
        except TimeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("tickers")
    @classmethod
    def _normalise_tickers(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for i, ticker in enumerate(value):
            ticker = ticker.strip().upper()
            if not ticker or len(ticker) > 16 or any(c.isspace() for c in ticker):
                raise ValueError(f"item {i} {ticker!r} is not a ticker (1-16 characters, no spaces)")
            if ticker not in out:
                out.append(ticker)
        return out


_DATE_ONLY = re.compile(r"\s*\d{4}-\d{2}-\d{2}\s*")


def _date_only_is_a_day(data: dict) -> dict:
    """A published_at written as a bare date says its own precision; an empty time_precision is none given."""
    if data.get("time_precision") == "":
        data = {k: v for k, v in data.items() if k != "time_precision"}
    when = data.get("published_at")
    if data.get("time_precision") is None and isinstance(when, str) and _DATE_ONLY.fullmatch(when):
        data = data | {"time_precision": "day"}
    return data


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "message"
    if error["type"] == "missing":
        return f"{field}: missing (required)"
    message = error["msg"].removeprefix("Value error, ")
    got = type(error["input"]).__name__
    return f"{field}: {message}" if f"got {got}" in message else f"{field}: {message} (got {got})"


def decode(value: bytes | bytearray | memoryview | None, *, max_bytes: int = MAX_MESSAGE_BYTES) -> NewsMessage:
    """Parse one `news.raw` value; raises MessageError naming the field and the problem."""
    if value is None or len(value) == 0:
        raise MessageError("empty message (no value)")
    if len(value) > max_bytes:
        raise MessageError(f"message is {len(value):,} bytes, over the {max_bytes:,}-byte limit")
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError(f"invalid UTF-8 at byte {exc.start}: {exc.reason}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MessageError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # NaN / Infinity, or an integer of thousands of digits
        raise MessageError(f"malformed JSON: {exc}") from None
    except RecursionError:  # json.loads recurses once per level: [[[[...]]]] 100,000 deep exhausts the stack
        raise MessageError(f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise MessageError(f"expected a JSON object, got {type(data).__name__}")
    # Nesting deeper than the limit needs more opening brackets than the limit; most messages have a handful, and
    # counting them is cheaper than walking the parsed value (docs/performance.md, 'Measurements behind code choices').
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH and (path := _too_deep(data)) is not None:
        raise MessageError(f"nested deeper than {MAX_JSON_DEPTH} levels", field=path)
    try:
        return NewsMessage.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        text = "; ".join(_describe(e) for e in errors[:5])
        if len(errors) > 5:
            text += f"; and {len(errors) - 5} more"
        raise MessageError(text.removeprefix(f"{field}: ") if field else text, field=field) from None


def _too_deep(data: dict) -> str | None:
    """The top-level field holding a value nested deeper than MAX_JSON_DEPTH (iterative: no stack to exhaust)."""
    stack: list[tuple[Any, int, str]] = [(value, 2, str(key)) for key, value in data.items()]
    while stack:
        value, depth, field = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_JSON_DEPTH:
                    return field
                stack.append((child, depth + 1, field))
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def encode(message: NewsMessage) -> bytes:
    """The message as compact UTF-8 JSON (what decode reads back to an equal message)."""
    return message.model_dump_json(exclude_defaults=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Envelope:
    """One input message, from a topic or a file, with where it came from."""

    value: bytes | None
    origin: str  # "news.raw:2:118" or "file.csv:17": names the input in logs and rejects
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    published_ms: int | None = None  # when it was published to the topic (end-to-end latency)
