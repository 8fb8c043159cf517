"""Publication times as written by sources, read by one set of explicit rules (files, feeds and `news.raw` alike).

- Missing (None, an empty or blank string): None; ingest then uses the ingest time and flags the article.
- A `datetime`: kept; without an offset it is UTC.
- A number (int or float, not a boolean): Unix time in seconds; above 2x10^10, milliseconds.
- A string: ISO 8601 first (`2024-05-01T09:30:00+02:00`, `2024-05-01`, `20240501`), else free text read by
  dateutil (`Fri, 03 May 2024 09:30:00 GMT`, `May 3, 2024 9:30 AM EST`), with these rules:
  - a zone abbreviation is read by the table ZONES (the US meaning where one is common in financial news: EST is
    UTC-5, CST is US Central); an ambiguous one (IST: India, Ireland or Israel) or an unknown one is refused;
  - `UTC+3` and `GMT+3` mean three hours ahead of UTC (+03:00), as people write it, not POSIX's inverted sign;
  - the year, month and day must all be written: `12:00` or `May 2024` is refused, never completed from today;
  - a bare number in a string (`-1`, `1714000000`) is refused: write ISO 8601, or a JSON number for Unix time;
  - no offset and no zone: UTC.
- Anything else, or a time that leaves years 1-9999 once in UTC: TimeError, whose text names the problem.

The range a stored article may have (from 1900 to a day after ingest) is checked at ingest (`scoring.normalize`).
"""

from __future__ import annotations

import math
import re
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from dateutil import parser as date_parser
from dateutil.parser import UnknownTimezoneWarning

# A date string longer than this is not a date; dateutil's time on hostile input is then bounded.
MAX_DATE_CHARS = 100
# Unix times above this are milliseconds (2 x 10^10 seconds is the year 2603).
MILLISECONDS_ABOVE = 2e10


def _hours(h: float) -> timezone:
    return timezone(timedelta(hours=h))


# Zone abbreviations seen in news feeds and exports, by their usual meaning in English-language financial news.
ZONES: dict[str, timezone] = {
    "UTC": UTC, "UT": UTC, "GMT": UTC, "Z": UTC,
    "EST": _hours(-5), "EDT": _hours(-4),
    "CST": _hours(-6), "CDT": _hours(-5), "MST": _hours(-7), "MDT": _hours(-6),
    "PST": _hours(-8), "PDT": _hours(-7), "AKST": _hours(-9), "AKDT": _hours(-8), "HST": _hours(-10),
    "BST": _hours(1), "WET": _hours(0), "WEST": _hours(1), "CET": _hours(1), "CEST": _hours(2),
    "MET": _hours(1), "MEST": _hours(2), "EET": _hours(2), "EEST": _hours(3), "MSK": _hours(3),
    "JST": _hours(9), "KST": _hours(9), "HKT": _hours(8), "SGT": _hours(8), "AWST": _hours(8),
    "ACST": _hours(9.5), "ACDT": _hours(10.5), "AEST": _hours(10), "AEDT": _hours(11),
    "NZST": _hours(12), "NZDT": _hours(13),
}  # fmt: skip
# Abbreviations with more than one common meaning: refused, with the reason.
AMBIGUOUS = {
    "IST": "India (+05:30), Ireland (+01:00) or Israel (+02:00)",
    "ET": "US Eastern, standard (EST) or daylight (EDT)",
    "PT": "US Pacific, standard (PST) or daylight (PDT)",
    "CT": "US Central, standard (CST) or daylight (CDT)",
    "AST": "Atlantic (-04:00) or Arabia (+03:00)",
    "BT": "Baghdad or Bhutan",
}
_UPPER = {name.upper(): name for name in ZONES}
# "UTC+3", "GMT -04:30", "UTC+0530": an offset from UTC written after the zone name.
_NAMED_OFFSET = re.compile(r"\b(?:UTC|GMT)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?\b", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d*)?$")
_COMPACT_DATE = re.compile(r"^\d{8}(?:T[\d:.]+)?(?:Z|[+-]\d{2}:?\d{2})?$")
# Two defaults that differ in every date field: a field dateutil fills from the default differs between them.
_DEFAULTS = (datetime(2001, 1, 1), datetime(2002, 2, 2))


class TimeError(ValueError):
    """A value that is not a publication time; the text names the problem (without the field name)."""


def parse_time(value: Any) -> datetime | None:
    """The time `value` names, aware and in UTC; None when it is missing. Raises TimeError (rules above)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return _to_utc(value)
    if isinstance(value, bool):
        raise TimeError("expected a date string or a Unix time, got a boolean")
    if isinstance(value, int | float):
        return _from_unix(value)
    if not isinstance(value, str):
        raise TimeError(f"expected a date string or a Unix time, got {type(value).__name__}")
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_DATE_CHARS:
        raise TimeError(f"{len(text)} characters is not a date")
    if _BARE_NUMBER.match(text) and not _COMPACT_DATE.match(text):
        raise TimeError(f"{_shown(text)} is a bare number, not a date (write ISO 8601, or a JSON number for Unix time)")
    try:
        return _to_utc(date_parser.isoparse(text))
    except (ValueError, OverflowError):
        pass
    return _to_utc(_free_text(text))


def _from_unix(value: float) -> datetime:
    if not math.isfinite(value):
        raise TimeError(f"{value} is not a time")
    seconds = value / 1000 if abs(value) > MILLISECONDS_ABOVE else value
    try:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:
        raise TimeError(f"Unix time {value:g} is out of range") from None


def _free_text(text: str) -> datetime:
    text = _NAMED_OFFSET.sub(_offset, text)
    problems: list[str] = []

    def zone(name: str | None, offset: int | None) -> timezone | None:
        if name is None:  # an offset alone (+02:00), or no zone at all
            return None if offset is None else timezone(timedelta(seconds=offset))
        key = _UPPER.get(name.upper())
        if name.upper() in AMBIGUOUS:
            problems.append(f"the time zone {name!r} is ambiguous ({AMBIGUOUS[name.upper()]}): write an offset")
        elif key is not None:
            return ZONES[key]
        elif offset is not None:
            return timezone(timedelta(seconds=offset))
        else:
            problems.append(f"unknown time zone {name!r}: write an offset such as +02:00")
        return None

    results = []
    for default in _DEFAULTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UnknownTimezoneWarning)
                results.append(date_parser.parse(text, default=default, tzinfos=zone))
        except UnknownTimezoneWarning as exc:
            raise TimeError(f"{_shown(text)}: {exc}") from None
        except (ValueError, OverflowError, TypeError) as exc:
            raise TimeError(f"cannot read {_shown(text)} as a date ({_reason(exc)})") from None
        if problems:
            raise TimeError(f"{_shown(text)}: {problems[0]}")
    first, second = results
    missing = [f for f in ("year", "month", "day") if getattr(first, f) != getattr(second, f)]
    if missing:
        raise TimeError(f"{_shown(text)} has no {' and no '.join(missing)}: a date needs year, month and day")
    return first


def _offset(match: re.Match[str]) -> str:
    sign, hours, minutes = match.group(1), int(match.group(2)), int(match.group(3) or 0)
    return f" {sign}{hours:02d}:{minutes:02d}"


def _to_utc(value: datetime) -> datetime:
    # A time without an offset is read as UTC (docs/pipeline.md): wire formats rarely mean the server's local time.
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):  # 9999-12-31T23:59-14:00 is past year 9999 in UTC
        raise TimeError("out of range when converted to UTC") from None


def _reason(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc)
    return text.split(":")[0] if text else type(exc).__name__


def _shown(text: str, limit: int = 60) -> str:
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)
