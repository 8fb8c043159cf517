"""Logging for every finsent process: one stderr handler, text or JSON lines, and secrets redacted on the way out.

`setup_logging(level, fmt)` replaces the handler it installed before (it is safe to call again) and leaves other
handlers alone. Secrets (the database password, the SASL password, the feed token, webhook secrets, Slack URLs)
are registered with `register_secrets` as they are read, and the handler's filter replaces any of them found in a
message, its arguments, extra fields or a traceback with `***` before a formatter sees the record.

Times are UTC with milliseconds (`2026-12-06T00:31:02.417Z`). Other libraries' records (kafka, alembic, urllib3,
...) below WARNING are left out unless the level asked for is DEBUG: at INFO a worker's log is finsent's own lines,
plus kafka-python's consumer-group events (`kafka.coordinator`: coordinator found, group joined, partitions
assigned), which say when a worker took its share of the stream, after a start or a broker's return.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
MASK = "***"
# The packages whose INFO lines are finsent's own; "finsent" for loggers named after the product.
OWN_LOGGERS = ("core", "model", "ingest", "scoring", "monitor", "dashboard", "cli", "bench", "finsent", "__main__")
# Other libraries' loggers whose INFO lines are operational events, not chatter: a consumer group's membership.
EVENT_LOGGERS = ("kafka.coordinator",)
MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words; such a secret is too weak to be one anyway

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def register_secrets(*values: str | None) -> None:
    """Never log these values (nor their URL-encoded forms) from now on."""
    with _secrets_lock:
        for value in values:
            if value and len(value) >= MIN_SECRET_CHARS:
                _secrets.update({value, quote(value, safe=""), quote_plus(value)})


def redact(text: str) -> str:
    """`text` with every registered secret replaced by ***."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: a secret that contains another
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message, extra fields or traceback holds a registered secret; drops nothing."""

    _plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as logging does
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info:
            # The traceback becomes text now, so the formatter prints the redacted copy (text and JSON alike).
            record.exc_text = redact(self._plain.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test runner or a daemon may swap it after setup)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def utc_time(record: logging.LogRecord) -> str:
    """The record's time in UTC, to the millisecond: 2026-12-06T00:31:02.417Z."""
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _UtcText(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's)
        return utc_time(record)


class _UtcJson(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's)
        return utc_time(record)


class OwnUnlessDebug(logging.Filter):
    """Lets through finsent's own records at any level, and other libraries' at WARNING and above."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if self.debug or record.levelno >= logging.WARNING:
            return True
        return record.name.split(".", 1)[0] in OWN_LOGGERS or record.name.startswith(EVENT_LOGGERS)


def make_formatter(fmt: str) -> logging.Formatter:
    """The formatter for `fmt`: text lines, or one JSON object per line (python-json-logger)."""
    if fmt == "json":
        return _UtcJson(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    if fmt == "text":
        return _UtcText(TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def setup_logging(level: str | int = "INFO", fmt: str = "text", *, secrets: Iterable[str | None] = ()) -> None:
    """Log to stderr at `level` as text or JSON, with secrets redacted; replaces an earlier finsent handler."""
    formatter = make_formatter(fmt)
    register_secrets(*secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_finsent", False):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler._finsent = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter)
    level = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    handler.addFilter(OwnUnlessDebug(debug=level <= logging.DEBUG))
    handler.addFilter(RedactSecrets())
    root.addHandler(handler)
    root.setLevel(level)
