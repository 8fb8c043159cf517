"""News files: CSV (the bundled news_stream format by default) and JSON Lines, read row by row into RawRecords.

A bad row (invalid UTF-8, malformed JSON, a field that cannot form a NewsMessage) becomes an error record naming the
line and the field, and the reader goes on. Positions are `file.csv:LINE`, the line where the row starts in the file.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

from ingest.sources.record import RawRecord, build_record, clean_tickers

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# csv's default field limit is 128 KiB; real bodies can be longer, and the message builder cuts what is too big.
# Raised once, never lowered (the limit is process-wide). A longer field becomes an error record.
CSV_FIELD_LIMIT = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Column (CSV) or key (JSON) for each message field; a field whose column is absent also tries its own name."""

    title: str = "headline"
    body: str = "body"
    published_at: str = "published_at"
    url: str = "url"
    external_id: str = "source_id"
    tickers: str = "ticker"
    source: str = "source"
    time_precision: str = "time_precision"  # day | minute | second (news_stream's column); a bare date is a day
    ticker_separator: str = ";"

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The message fields a mapping can name (ticker_separator is a setting, not a field)."""
        return tuple(f.name for f in fields(cls) if f.name != "ticker_separator")

    @classmethod
    def from_columns(cls, columns: Mapping[str, str]) -> FieldMapping:
        """A mapping from `{field: column}` (a sources file's `[source.mapping]`, backfill's `--map`); fields not
        named keep their default column. MappingError names an unknown field or an empty column."""
        known = (*cls.field_names(), "ticker_separator")
        for key, column in columns.items():
            if key not in known:
                raise MappingError(f"unknown field {key!r} (known: {', '.join(known)})")
            if not column.strip():
                raise MappingError(f"{key}: empty column name")
        return cls(**columns)


class SourceFileError(ValueError):
    """A file that cannot be read as a source at all (unknown type); bad rows are error records instead."""


class MappingError(ValueError):
    """A column mapping that cannot be used: an unknown field, or a column the file does not have."""


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    raise SourceFileError(f"{path}: unknown file type {suffix!r} (expected .csv, .jsonl or .ndjson)")


def read_file(
    path: str | Path, *, source: str | None = None, mapping: FieldMapping | None = None, start: int = 0
) -> Iterator[RawRecord]:
    """Records for every data row of a .csv/.jsonl/.ndjson file, skipping the first `start` rows (line numbers kept)."""
    path = Path(path)
    kind = _kind(path)
    name = source or path.stem
    mapping = mapping or FieldMapping()
    with open(path, "rb") as fh:
        if kind == "csv":
            yield from _read_csv(fh, path=path, name=name, mapping=mapping, start=start)
        else:
            yield from _read_jsonl(fh, path=path, name=name, mapping=mapping, start=start)


def count_rows(path: str | Path) -> int:
    """The number of data rows `read_file` will yield with start=0 (quoted multi-line CSV fields counted once)."""
    path = Path(path)
    kind = _kind(path)
    with open(path, "rb") as fh:
        if kind == "jsonl":
            return sum(1 for line in fh if line.strip())
        _raise_field_limit()
        lines = _Lines(fh)
        reader = _csv_reader(lines)
        count = -1  # the header
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:
                row = ["error"]  # read_file yields an error record for it: count it the same way
            if row:
                count += 1
        return max(count, 0)


# ----------------------------------------------------------------------------------------------------- mapping

# Column names recognised for a field that no mapping names, most telling first. Compared casefolded, with spaces
# and hyphens read as underscores ("Published At" is published_at). The first of each is the default column, the
# field's own name comes early: a file the reader took as it is keeps its columns. Listed in docs/pipeline.md.
COMMON_COLUMNS: dict[str, tuple[str, ...]] = {
    "title": ("headline", "title", "headlines", "heading", "subject"),
    "body": ("body", "text", "content", "summary", "description", "article", "story"),
    "published_at": (
        "published_at",
        "published",
        "publish_date",
        "pub_date",
        "pubdate",
        "datetime",
        "date_time",
        "timestamp",
        "date",
        "time",
        "created_at",
    ),
    "url": ("url", "link", "href", "article_url", "web_url"),
    "external_id": ("source_id", "external_id", "id", "guid", "uuid", "article_id", "news_id"),
    "tickers": ("ticker", "tickers", "symbol", "symbols", "stock", "stocks", "ticker_symbol"),
    "source": ("source", "publisher", "provider", "outlet"),
    "time_precision": ("time_precision", "precision"),
}
JSONL_KEYS_SAMPLED = 1000  # rows of a JSON Lines file whose keys count as its columns


@dataclass(frozen=True, slots=True)
class ResolvedMapping:
    """The mapping a file is read with: given columns, detected ones, and the fields the file has no column for."""

    mapping: FieldMapping
    columns: dict[str, str]  # field -> the file's column, in field order
    given: frozenset[str]  # fields (and ticker_separator) named by the caller
    missing: tuple[str, ...]  # fields with no column in the file
    readable: bool = True  # False when the file's columns could not be read (its reader rejects it, naming why)

    def describe(self) -> str:
        """One line: `title=Title, published_at=Date (--map); no column for body, url`."""
        if not self.readable:
            return "columns not read (the first line is refused; see the reason below)"
        parts = [f"{f}={c}" + (" (--map)" if f in self.given else "") for f, c in self.columns.items()]
        if "ticker_separator" in self.given:
            parts.append(f"ticker_separator={self.mapping.ticker_separator!r} (--map)")
        missing = f"no column for {', '.join(self.missing)}" if self.missing else ""
        return "; ".join(part for part in (", ".join(parts), missing) if part)


def _normal(column: str) -> str:
    return re.sub(r"[\s\-]+", "_", column.strip().casefold())


def file_columns(path: str | Path) -> list[str] | None:
    """A CSV file's header, or the keys of the first JSON Lines objects; None when they cannot be read."""
    path = Path(path)
    kind = _kind(path)
    with open(path, "rb") as fh:
        if kind == "csv":
            _raise_field_limit()
            lines = _Lines(fh)
            try:
                row = next((row for row in _csv_reader(lines) if row), None)
            except csv.Error:
                return None
            if row is None or lines.take()[2] is not None:  # no header, or not UTF-8: the reader says so
                return None
            return [column.strip().lstrip("\ufeff") for column in row]
        keys: dict[str, None] = {}
        rows = 0
        for line in fh:
            if not line.strip():
                continue
            rows += 1
            if rows > JSONL_KEYS_SAMPLED:
                break
            try:
                data = json.loads(line.decode("utf-8"))
            except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                continue
            if isinstance(data, dict):
                keys.update(dict.fromkeys(data))
        return list(keys) if keys else None


def resolve_mapping(path: str | Path, given: Mapping[str, str] | None = None) -> ResolvedMapping:
    """The mapping to read `path` with: the `given` columns (field -> column, checked against the file's columns),
    and for every other field the first of COMMON_COLUMNS the file has. MappingError names a field that is unknown or
    a column that is not in the file."""
    path = Path(path)
    given = dict(given or {})
    base = FieldMapping.from_columns(given)
    header = file_columns(path)
    if header is None:
        return ResolvedMapping(base, {}, frozenset(given), (), readable=False)
    for field, column in given.items():
        if field != "ticker_separator" and column not in header:
            shown = ", ".join(header[:30]) + (", ..." if len(header) > 30 else "")
            where = ("column", "") if _kind(path) == "csv" else ("key", f" in its first {JSONL_KEYS_SAMPLED} rows")
            raise MappingError(
                f"{field}={column}: {path.name} has no {where[0]} {column!r}{where[1]} ({where[0]}s: {shown})"
            )
    claimed = {c for f, c in given.items() if f != "ticker_separator"}
    default = FieldMapping()
    found: dict[str, str] = {}
    for field in FieldMapping.field_names():
        if field in given:
            found[field] = given[field]
            continue
        # The reader always tries the default column and the field's own name: those count even if given to another
        # field (the printed mapping says what is read); other candidates only when no field has them yet.
        own = (getattr(default, field), field)
        for candidate in COMMON_COLUMNS[field]:
            column = next((c for c in header if _normal(c) == candidate and (c in own or c not in claimed)), None)
            if column is not None:
                found[field] = column
                claimed.add(column)
                break
    # A column the reader finds by itself (the default, or the field's own name) is left to it, so a file in the
    # usual layout is read with the default mapping, as before detection existed.
    detected = {f: c for f, c in found.items() if f in given or c not in (getattr(default, f), f)}
    extra = {"ticker_separator": given["ticker_separator"]} if "ticker_separator" in given else {}
    mapping = FieldMapping(**detected, **extra)
    missing = tuple(f for f in FieldMapping.field_names() if f not in found)
    return ResolvedMapping(mapping, found, frozenset(given), missing)


def _fields(get: Any, mapping: FieldMapping, *, name: str) -> tuple[dict[str, Any], set[str]]:
    """Message fields from a row via `get(column) -> value or None`; returns (fields, columns used)."""
    out: dict[str, Any] = {}
    used: set[str] = set()
    for field in FieldMapping.field_names():
        for column in dict.fromkeys((getattr(mapping, field), field)):  # mapped column, then our own name
            value = get(column)
            if value is not None:
                used.add(column)
                break
        else:
            value = None
        out[field] = value
    if isinstance(out["external_id"], int | float) and not isinstance(out["external_id"], bool):
        out["external_id"] = str(out["external_id"])  # JSON ids are often numbers
    for field in ("url", "external_id"):
        if isinstance(out[field], str) and not out[field].strip():
            out[field] = None
    out["tickers"] = clean_tickers(out["tickers"], separator=mapping.ticker_separator)
    row_source = out["source"]
    out["source"] = row_source if isinstance(row_source, str) and row_source.strip() else name
    return out, used


# --------------------------------------------------------------------------------------------------------- CSV


class _Lines:
    """Binary lines decoded for csv, remembering each line's number, bytes and any UTF-8 error since the last row."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.lineno = 0
        self.pending: list[tuple[int, bytes, str | None]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._fh.readline()
        if not line:
            raise StopIteration
        self.lineno += 1
        error = None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            # surrogateescape keeps the row's structure, so the next rows still line up; the row itself is refused.
            error = f"invalid UTF-8 at byte {exc.start}: {exc.reason}"
            text = line.decode("utf-8", errors="surrogateescape")
        self.pending.append((self.lineno, line, error))
        return text

    def take(self) -> tuple[int, bytes, str | None]:
        """First line number, raw bytes and first decode error of the lines read since the last call."""
        pending, self.pending = self.pending, []
        if not pending:
            return self.lineno, b"", None
        errors = [f"line {n}: {e}" for n, _, e in pending if e]
        return pending[0][0], b"".join(raw for _, raw, _ in pending), errors[0] if errors else None


def _raise_field_limit() -> None:
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)


def _csv_reader(lines: _Lines) -> Iterator[list[str]]:
    """csv.reader in strict mode: a quote that is never closed is an error at the end of the file, and a closing
    quote followed by text (`"a"b`) is an error, instead of text silently swallowing the rows after it."""
    return csv.reader(lines, strict=True)


def _header_problem(header: list[str], mapping: FieldMapping) -> str | None:
    """Why no row of a file with this header can be read, or None: a repeated column name (which value would
    count?) or no column for the title."""
    seen: set[str] = set()
    for column in header:
        if column in seen:
            return f"the column {column!r} appears twice in the header"
        seen.add(column)
    titles = dict.fromkeys((mapping.title, "title"))
    if not any(t in seen for t in titles):
        named = " or ".join(repr(t) for t in titles)
        return f"no title column: expected {named} (columns: {', '.join(header)}); map yours in a sources file"
    return None


def _read_csv(fh: BinaryIO, *, path: Path, name: str, mapping: FieldMapping, start: int) -> Iterator[RawRecord]:
    _raise_field_limit()
    lines = _Lines(fh)
    reader = _csv_reader(lines)
    header: list[str] | None = None
    rows = 0
    while True:
        try:
            row = next(reader)
            csv_error = None
        except StopIteration:
            return
        except csv.Error as exc:
            problem = str(exc)
            if "new-line character" in problem:  # csv's hint about newline='' does not apply: we give it lines
                problem = "a carriage return (\\r) inside an unquoted field"
            elif "unexpected end of data" in problem:
                problem = "a quote opened here is never closed (the row runs to the end of the file)"
            elif "expected after" in problem:
                problem = f"text after a closing quote ({problem}): a quote inside a field must be doubled"
            row, csv_error = None, f"malformed CSV: {problem}"
        lineno, raw, decode_error = lines.take()
        if csv_error and (spanned := raw.count(b"\n") - raw.endswith(b"\n")) > 0:
            csv_error += f" (lines {lineno}-{lineno + spanned} were read as this one row, all kept with it)"
        if row == []:
            continue  # a blank line is not a row
        if header is None:
            if row is None or decode_error:
                # Without a header no row can be mapped: one error record for the file, not one per row.
                reason = decode_error or f"line {lineno}: {csv_error}"
                yield RawRecord(name, f"{path.name}:{lineno}", None, f"{reason} in the header", raw)
                return
            header = [column.strip().lstrip("\ufeff") for column in row]
            if problem := _header_problem(header, mapping):
                yield RawRecord(name, f"{path.name}:{lineno}", None, f"line {lineno}: {problem}", raw)
                return
            continue
        rows += 1
        if rows <= start:
            continue
        position = f"{path.name}:{lineno}"
        if row is None or decode_error:
            yield RawRecord(name, position, None, decode_error or f"line {lineno}: {csv_error}", raw)
            continue
        if len(row) > len(header):
            error = f"line {lineno}: {len(row)} fields but the header has {len(header)} (unquoted comma?)"
            yield RawRecord(name, position, None, error, raw)
            continue
        values = dict(zip(header, row, strict=False))  # a short row: the missing columns are absent

        def get(column: str, values: dict[str, str] = values) -> str | None:
            return values.get(column)

        mapped, used = _fields(get, mapping, name=name)
        extras = {k: v for k, v in values.items() if k not in used and v != ""}
        if extras:
            mapped["extras"] = extras
        yield build_record(source=name, position=position, raw=raw, fields=mapped, prefix=f"line {lineno}: ")


# ------------------------------------------------------------------------------------------------- JSON Lines


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _read_jsonl(fh: BinaryIO, *, path: Path, name: str, mapping: FieldMapping, start: int) -> Iterator[RawRecord]:
    rows = 0
    for lineno, raw in enumerate(fh, start=1):
        if not raw.strip():
            continue
        rows += 1
        if rows <= start:
            continue
        position = f"{path.name}:{lineno}"
        try:
            # Without the line end, a JSON error's column is a column of this line, not "line 2 column 1".
            data = json.loads(raw.rstrip(b"\r\n").decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError as exc:
            error = f"line {lineno}: invalid UTF-8 at byte {exc.start}: {exc.reason}"
        except json.JSONDecodeError as exc:
            error = f"line {lineno}: malformed JSON at column {exc.colno}: {exc.msg}"
        except (ValueError, RecursionError) as exc:  # NaN/Infinity, or nesting deeper than Python's stack
            error = f"line {lineno}: malformed JSON: {type(exc).__name__}: {str(exc)[:200]}"
        else:
            error = None
            if not isinstance(data, dict):
                error = f"line {lineno}: expected a JSON object, got {type(data).__name__}"
        if error:
            yield RawRecord(name, position, None, error, raw)
            continue
        mapped, used = _fields(data.get, mapping, name=name)
        # The rest follows the news.raw message's rules: `v` must be 1, `extras` must be an object, other keys are
        # kept in extras.
        known = {*FieldMapping.field_names(), "v", "extras"}
        extras = {k: v for k, v in data.items() if k not in used and k not in known}
        if "v" in data:
            mapped["v"] = data["v"]
        inner = data.get("extras")
        if inner is not None and not isinstance(inner, dict):
            mapped["extras"] = inner  # the message refuses it, naming the field
        elif extras or inner:
            mapped["extras"] = extras | (inner or {})
        yield build_record(source=name, position=position, raw=raw, fields=mapped, prefix=f"line {lineno}: ")
