"""Alert feeds over HTTP (standard library server): Atom for feed readers, JSON for programs, and a health check.

Endpoints (GET or HEAD; anything else is 405):

- `/alerts.atom`  Atom 1.0, newest `updated_at` first. One entry per alert with the stable id
  `urn:finsent:alert:<id>:<status>` (a status change makes a new entry), title `[FIRING] <rule> <ticker>`,
  `published` (when it fired, or first became active), `updated`, a plain-text `summary` and an XHTML `content`
  with the annotations and the evidence headlines with their top words. The XML is built with ElementTree, so all
  news text is escaped; characters XML cannot carry are dropped.
- `/alerts.json`  the same alerts as JSON (schema below; machine-readable in `monitor/alerts.schema.json`, also
  served at `/alerts.schema.json`).
- `/healthz`      200 `{"status": "ok", "database": "ok"}`, or 503 with `"error"` when the database query fails.
  Never needs the token (load balancers probe it).
- `/metrics`      Prometheus text format (OpenMetrics when asked): requests by path and status, request seconds,
  and whatever else this process registered. Needs the token like the feeds (Prometheus sends it with
  `authorization: {credentials: ...}`): alert counts and paths are not for everyone.

Query parameters of both feeds (unknown parameters are a 400 too, so a typo never silently widens a filter):

- `ticker`, `severity`, `status` (pending|firing|resolved): one value, or several comma-separated or repeated
- `since`: ISO 8601 time with a zone (`2026-11-24T10:00:00Z`); alerts updated at or after it. An unencoded `+`
  in the offset arrives as a space and is read back as `+`. Its UTC form must stay within years 1-9999.
- `limit`: 1..1000 in ASCII digits, default 100
- `replayed=1`: include alerts recorded by a historical replay (excluded by default)

A bad value gives 400 with a one-line JSON body naming the parameter: `{"error": "...", "parameter": "since"}`.
With a token configured, every path but `/healthz` needs `Authorization: Bearer <token>` (401 otherwise).

Slow and numerous clients: a request's line and headers must arrive within `request_timeout_s` in total (408 and
closed otherwise), and at most `max_connections` are served at once (more get an immediate 503; see FeedServer).

`/alerts.json` body (times are ISO 8601 in UTC, `null` when unset)::

    {
      "version": 1,
      "generated_at": "2026-11-24T10:05:00+00:00",
      "alerts": [
        {
          "id": 7, "fingerprint": "3f2a...", "rule": "negative_burst", "status": "firing",   # pending|firing|resolved
          "severity": "warning", "ticker": "AAPL",                                          # ticker may be null
          "labels": {"alertname": "negative_burst", "ticker": "AAPL", "severity": "warning"},
          "annotations": {"summary": "...", "description": "..."},
          "value": -0.42,                                                                   # number or null
          "active_at": "...", "starts_at": "..." | null, "ends_at": "..." | null,
          "updated_at": "...", "acked_by": "..." | null, "acked_at": "..." | null, "replayed": false,
          "evidence": [
            {"article_id": 12, "title": "Apple shares plunge ...", "source": "wire", "published_at": "...",
             "score": -0.91, "words": [["plunge", 0.41], ["shares", 0.12]]}                  # [word, weight] pairs
          ]
        }
      ]
    }
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import logging
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlencode, urlsplit

from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.metrics import shared
from core.schema import Alert
from monitor.alerts import STATES, AlertFilter, find_alerts
from monitor.evidence import json_number, json_time, load_evidence
from monitor.metrics import FeedMetrics

log = logging.getLogger("monitor.feed")

SCHEMA_PATH = Path(__file__).resolve().parent / "alerts.schema.json"
ATOM_NS = "http://www.w3.org/2005/Atom"
XHTML_NS = "http://www.w3.org/1999/xhtml"
DEFAULT_LIMIT, MAX_LIMIT = AlertFilter.limit, 1000
TOP_WORDS = 5
DEFAULT_MAX_CONNECTIONS = 64  # connections served at once, a thread each; more get 503 at once
DEFAULT_REQUEST_TIMEOUT_S = 30.0  # for a request's line and headers in total, not per read
REFUSAL_LOG_EVERY_S = 10.0
MIN_TOKEN_CHARS = 16  # a bearer token that can be guessed or that log redaction would not mask is none
_TICKER = re.compile(r"[A-Za-z0-9.\-:^=]{1,16}")  # with fullmatch: `$` would let a trailing newline through
_SEVERITY = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_LIMIT = re.compile(r"[0-9]{1,4}")
_OFFSET_AS_SPACE = re.compile(r"(\d) (\d{2}(:?\d{2})?)$")  # "10:00:00 01:00": a "+" that a query string ate
# Characters XML 1.0 cannot carry at all (control characters, surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PARAMETERS = {"ticker", "severity", "status", "since", "limit", "replayed"}
MAX_NAME_CHARS = 40


class BadParameter(ValueError):
    """A query parameter with a value the feed does not accept."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"bad parameter {parameter!r}: {message}")
        self.parameter = parameter


def parse_filters(query: str) -> AlertFilter:
    """The filter of a URL query string; raises BadParameter naming the first bad parameter."""
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except ValueError as exc:
        raise BadParameter("query", str(exc)) from exc
    for name in sorted(params):
        if name not in _PARAMETERS:  # named as given, cut short: a 60 KB name is not echoed back whole
            raise BadParameter(name[:MAX_NAME_CHARS], f"unknown parameter; use {', '.join(sorted(_PARAMETERS))}")

    def values(name: str) -> tuple[str, ...]:
        # spaces only: str.strip() also drops control characters (\x1c-\x1f, \x85), which must be refused
        out = [v.strip(" ") for raw in params.get(name, []) for v in raw.split(",")]
        if any(not v for v in out):
            raise BadParameter(name, "empty value")
        return tuple(dict.fromkeys(out))

    def single(name: str) -> str | None:
        given = params.get(name, [])
        if len(given) > 1:
            raise BadParameter(name, "given more than once")
        return given[0].strip(" ") if given else None

    tickers = values("ticker")
    for ticker in tickers:
        if not _TICKER.fullmatch(ticker):
            raise BadParameter("ticker", f"{ticker[:40]!r} is not a ticker")
    severities = values("severity")
    for severity in severities:
        if not _SEVERITY.fullmatch(severity):
            raise BadParameter("severity", f"{severity[:40]!r} is not a severity")
    statuses = values("status")
    for status in statuses:
        if status not in STATES:
            raise BadParameter("status", f"{status[:40]!r} is not one of {', '.join(STATES)}")

    since = None
    if (raw := single("since")) is not None:
        try:
            if not (raw.isascii() and raw.isprintable()):  # fromisoformat ignores whatever follows a NUL
                raise ValueError(raw)
            since = datetime.fromisoformat(_OFFSET_AS_SPACE.sub(r"\1+\2", raw))
        except ValueError:
            raise BadParameter("since", f"{raw[:40]!r} is not an ISO 8601 time") from None
        if since.tzinfo is None or since.utcoffset() is None:
            raise BadParameter("since", "give a time zone, e.g. 2026-11-24T10:00:00Z")
        try:  # 9999-12-31T23:59:59-23:59 is a valid time that has no UTC form (years 1-9999 only)
            since = since.astimezone(UTC)
        except (OverflowError, ValueError):
            raise BadParameter("since", f"{raw[:40]!r} is out of range when converted to UTC") from None

    limit = DEFAULT_LIMIT
    if (raw := single("limit")) is not None:
        # ASCII digits only, at most 4: str.isdigit and int() accept "²" and "١٢", and int() refuses 4,301+ digits.
        if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
            raise BadParameter("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        limit = int(raw)

    replayed = False
    if (raw := single("replayed")) is not None:
        if raw.lower() not in ("0", "1", "true", "false"):
            raise BadParameter("replayed", "must be 0 or 1")
        replayed = raw.lower() in ("1", "true")

    return AlertFilter(
        tickers=tuple(dict.fromkeys(t.upper() for t in tickers)),  # "aapl,AAPL" is one ticker
        severities=severities,
        statuses=statuses,
        since=since,
        limit=limit,
        replayed=replayed,
    )


# ------------------------------------------------------------------------------------------------------ query


def _json_field(text: str | None, default: Any, *, what: str, alert_id: int) -> Any:
    try:
        value = json.loads(text) if text else default
    except ValueError:
        log.error("alert %d: %s is not valid JSON; shown as empty", alert_id, what)
        return default
    return value if isinstance(value, type(default)) else default


def load_alerts(*, session: Session, filters: AlertFilter) -> list[dict]:
    """Alerts matching `filters`, newest `updated_at` first, as the dicts of the JSON feed (with evidence)."""
    alerts = find_alerts(session=session, filters=filters)
    evidence = load_evidence(session=session, alert_ids=[a.id for a in alerts])
    return [
        {
            "id": a.id,
            "fingerprint": a.fingerprint,
            "rule": a.rule,
            "status": a.status,
            "severity": a.severity,
            "ticker": a.ticker,
            "labels": {str(k): str(v) for k, v in _json_field(a.labels, {}, what="labels", alert_id=a.id).items()},
            "annotations": {
                str(k): str(v) for k, v in _json_field(a.annotations, {}, what="annotations", alert_id=a.id).items()
            },
            "value": json_number(a.value),
            "active_at": json_time(a.active_at),
            "starts_at": json_time(a.starts_at),
            "ends_at": json_time(a.ends_at),
            "updated_at": json_time(a.updated_at),
            "acked_by": a.acked_by,
            "acked_at": json_time(a.acked_at),
            "replayed": bool(a.replayed),
            "evidence": [e.as_json() for e in evidence[a.id]],
        }
        for a in alerts
    ]


def json_feed(alerts: list[dict], *, now: datetime) -> bytes:
    """The `/alerts.json` body."""
    body = {"version": 1, "generated_at": json_time(now), "alerts": alerts}
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")


# ------------------------------------------------------------------------------------------------------- atom


def _xml_text(text: Any) -> str:
    # ElementTree escapes <, > and &, but would write control characters that make the document unparseable.
    return _NOT_XML.sub("", str(text))


def _sub(parent: ET.Element, tag: str, text: Any = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = _xml_text(text)
    return element


def entry_title(alert: dict) -> str:
    """`[FIRING] negative_burst AAPL`."""
    return " ".join(p for p in (f"[{alert['status'].upper()}]", alert["rule"], alert["ticker"]) if p)


def _top_words(item: dict) -> str:
    return ", ".join(f"{word} {weight:+.2f}" for word, weight in item["words"][:TOP_WORDS])


def _summary_text(alert: dict) -> str:
    lines = [f"{k}: {v}" for k, v in alert["annotations"].items()]
    if alert["value"] is not None:
        lines.append(f"value: {alert['value']:g}")
    if alert["acked_by"]:
        lines.append(f"acknowledged by {alert['acked_by']} at {alert['acked_at']}")
    for item in alert["evidence"]:
        line = f"- {item['title']} ({item['source']}"
        line += f", score {item['score']:+.2f})" if item["score"] is not None else ")"
        if item["words"]:
            line += f" top words: {_top_words(item)}"
        lines.append(line)
    return "\n".join(lines)


def _xhtml_content(entry: ET.Element, alert: dict) -> None:
    content = ET.SubElement(entry, "content", {"type": "xhtml"})
    div = ET.SubElement(content, "div", {"xmlns": XHTML_NS})
    if alert["annotations"]:
        dl = _sub(div, "dl")
        for key, value in alert["annotations"].items():
            _sub(dl, "dt", key)
            _sub(dl, "dd", value)
    labels = _sub(div, "p", "labels: " + ", ".join(f"{k}={v}" for k, v in alert["labels"].items()))
    if alert["value"] is not None:
        labels.text += f"; value: {alert['value']:g}"
    if alert["acked_by"]:
        _sub(div, "p", f"acknowledged by {alert['acked_by']} at {alert['acked_at']}")
    if alert["evidence"]:
        ul = _sub(div, "ul")
        for item in alert["evidence"]:
            li = _sub(ul, "li")
            _sub(li, "strong", item["title"])
            detail = f" ({item['source']}, {item['published_at']}"
            detail += f", score {item['score']:+.2f})" if item["score"] is not None else ")"
            if item["words"]:
                detail += f" top words: {_top_words(item)}"
            _sub(li, "span", detail)


def atom_feed(alerts: list[dict], *, self_url: str, feed_id: str, now: datetime) -> bytes:
    """An Atom 1.0 document (UTF-8 bytes) with one entry per alert."""
    # A plain `xmlns` attribute, not ET.register_namespace: that is process-wide state other code would inherit.
    feed = ET.Element("feed", {"xmlns": ATOM_NS})
    _sub(feed, "id", feed_id)
    _sub(feed, "title", "finsent alerts")
    updated = max((a["updated_at"] for a in alerts if a["updated_at"]), default=None, key=datetime.fromisoformat)
    _sub(feed, "updated", updated or json_time(now))
    _sub(feed, "link", rel="self", type="application/atom+xml", href=_xml_text(self_url))
    _sub(_sub(feed, "author"), "name", "finsent")
    _sub(feed, "generator", "finsent monitor")
    for alert in alerts:
        entry = _sub(feed, "entry")
        _sub(entry, "id", f"urn:finsent:alert:{alert['id']}:{alert['status']}")
        _sub(entry, "title", entry_title(alert), type="text")
        _sub(entry, "updated", alert["updated_at"] or json_time(now))
        _sub(entry, "published", alert["starts_at"] or alert["active_at"])
        _sub(entry, "category", term=_xml_text(alert["severity"]), scheme="urn:finsent:severity", label="severity")
        if alert["ticker"]:
            _sub(entry, "category", term=_xml_text(alert["ticker"]), scheme="urn:finsent:ticker", label="ticker")
        _sub(entry, "summary", _summary_text(alert), type="text")
        _xhtml_content(entry, alert)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


# ----------------------------------------------------------------------------------------------------- server


class FeedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying what the handler needs: sessions, the optional token, the public base URL.

    At most `max_connections` connections are served at once, one thread each; a connection beyond that gets an
    immediate 503 from the accepting thread and is closed (no thread, no queue). Each request's line and headers must
    arrive within `request_timeout_s` in total, counted from when the server starts waiting for it, or the connection
    gets 408 and is closed.
    """

    daemon_threads = True  # a stuck client must not keep the process alive at shutdown
    request_queue_size = 128  # the listen backlog: a burst waits for accept, which is quick (serve or refuse)

    def __init__(
        self,
        address: tuple[str, int],
        *,
        session_factory: sessionmaker[Session],
        token: str | None,
        base_url: str | None,
        registry: CollectorRegistry | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        from prometheus_client import REGISTRY

        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        if not 0 < request_timeout_s < float("inf"):
            raise ValueError(f"request_timeout_s must be a positive number of seconds, not {request_timeout_s}")
        self.max_connections, self.request_timeout_s = max_connections, float(request_timeout_s)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refused, self._refusal_logged = 0, float("-inf")
        self.session_factory = session_factory
        self._token = token.encode() if token else None
        self.registry = registry if registry is not None else REGISTRY
        self.metrics: FeedMetrics = shared(FeedMetrics, self.registry, paths=_PATHS)
        super().__init__(address, _Handler)
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        self.base_url = (base_url or f"http://{host}:{port}").rstrip("/")

    def authorized(self, header: str | None) -> bool:
        """True when no token is configured or `header` is `Bearer <token>` (compared in constant time)."""
        if self._token is None:
            return True
        scheme, _, given = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8", "replace"), self._token)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        """Serve the connection in a thread of its own when a slot is free; refuse it at once otherwise."""
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)  # starts the thread, which releases the slot
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        # Runs on the accepting thread, so nothing here may wait: non-blocking reads and one non-blocking send.
        self.metrics.record("", 503, None)
        try:
            request.setblocking(False)
            with contextlib.suppress(BlockingIOError, InterruptedError):
                request.recv(65536)  # what the client already sent: unread data would turn the close into a reset
            request.send(_BUSY_RESPONSE)
        except OSError:
            pass
        self.shutdown_request(request)
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_EVERY_S:  # a flood of connections is not a flood of log lines
            log.warning(
                "feed server busy: %d connection(s) refused with 503 (at most %d at once; see --max-connections)",
                self._refused,
                self.max_connections,
            )
            self._refused, self._refusal_logged = 0, now

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Errors outside the handler's own handling go to the log (the stdlib prints them to stderr)."""
        log.exception("feed server: error serving %s", client_address[0] if client_address else "?")

    def __repr__(self) -> str:  # never the token
        return f"FeedServer({self.base_url!r}, token={'set' if self._token else 'none'})"


class _Response(Exception):
    """A finished response raised from deep inside a handler (an error status and its JSON body)."""

    def __init__(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class _DeadlinePassed(Exception):
    """The request's line and headers did not arrive within the server's request deadline."""


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, each wait bounded by what is left of the handler's deadline.

    A socket timeout alone is per read: a client sending one byte or one header line just inside it holds the thread
    for as long as it likes. Here every read waits at most until the one deadline of the request.
    """

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._handler.deadline - time.monotonic()
        if left <= 0:
            raise _DeadlinePassed
        connection = self._handler.connection
        connection.settimeout(left)
        try:
            return connection.recv_into(buffer)
        except TimeoutError:
            raise _DeadlinePassed from None


class _Handler(BaseHTTPRequestHandler):
    server: FeedServer
    server_version = "finsent-feed"
    sys_version = ""
    # An answer always starts with a status line: with the stdlib's "HTTP/0.9" here, an error in the request line
    # (bad syntax, version) was answered with a bare body, and a two-word `GET /path` with no status either.
    default_request_version = "HTTP/1.0"
    deadline = float("inf")  # monotonic time by which the current request's line and headers must have arrived

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(_DeadlineReader(self))

    def handle_one_request(self) -> None:
        """One request, its line and headers read against the whole-request deadline; slow clients get a 408."""
        self.deadline = time.monotonic() + self.server.request_timeout_s
        try:
            super().handle_one_request()
        except _DeadlinePassed:
            self.close_connection = True
            log.info(
                "%s: request not received within %g s; closed with 408",
                self.address_string(),
                self.server.request_timeout_s,
            )
            # Like the stdlib's 414: no request line to answer, so none is assumed (and no HEAD that hides the body).
            self.requestline, self.request_version, self.command, self.path = "", "", "", ""
            with contextlib.suppress(OSError):
                body = _json_error(f"request not received within {self.server.request_timeout_s:g} s")
                self._send(408, body, "application/json", {"Connection": "close"})
        except OSError as exc:  # reset or gone mid-request: the client's doing, not a server error
            self.close_connection = True
            log.debug("%s: connection lost: %s", self.address_string(), exc)

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()  # the same status and headers, no body (see _send)

    def _not_allowed(self) -> None:
        self.close_connection = True  # a body, if any, is not read: it must not be taken for the next request
        self._send(405, _json_error("method not allowed; use GET or HEAD"), "application/json", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _handle(self) -> None:
        self._started = time.perf_counter()
        try:
            url = _split(self.path)
            if url.path == "/healthz":
                return self._healthz()
            if not self.server.authorized(self.headers.get("Authorization")):
                raise _Response(
                    401, {"error": "missing or invalid bearer token"}, {"WWW-Authenticate": 'Bearer realm="finsent"'}
                )
            if url.path == "/alerts.json":
                filters = self._filters(url.query)
                with self.server.session_factory() as session:
                    alerts = load_alerts(session=session, filters=filters)
                self._send(200, json_feed(alerts, now=datetime.now(UTC)), "application/json")
            elif url.path == "/alerts.atom":
                filters = self._filters(url.query)
                with self.server.session_factory() as session:
                    alerts = load_alerts(session=session, filters=filters)
                canonical = _canonical_query(filters)
                body = atom_feed(
                    alerts,
                    self_url=f"{self.server.base_url}/alerts.atom" + (f"?{canonical}" if canonical else ""),
                    feed_id="urn:finsent:alerts" + (f"?{canonical}" if canonical else ""),
                    now=datetime.now(UTC),
                )
                self._send(200, body, "application/atom+xml; charset=utf-8")
            elif url.path == "/alerts.schema.json":
                self._send(200, SCHEMA_PATH.read_bytes(), "application/schema+json")
            elif url.path == "/metrics":
                from prometheus_client.exposition import choose_encoder

                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(self.server.registry), content_type)
            else:
                raise _Response(404, {"error": f"no such path; try {', '.join(_PATHS)}"})
        except _Response as response:
            self._send(response.status, _json_bytes(response.body), "application/json", response.headers)
        except (ConnectionError, TimeoutError) as exc:  # the client went away, or did not read the response in time
            self.close_connection = True
            log.info("%s: response to %s not delivered: %s", self.address_string(), _printable(self.path), exc)
        except Exception:
            # The client gets one line; the traceback goes to the log only.
            log.exception("feed request %s failed", _printable(self.path))
            self._send(500, _json_error("internal error"), "application/json")

    def _filters(self, query: str) -> AlertFilter:
        try:
            return parse_filters(query)
        except BadParameter as exc:
            raise _Response(400, {"error": str(exc), "parameter": exc.parameter}) from None

    def _healthz(self) -> None:
        try:
            with self.server.session_factory() as session:
                session.execute(select(Alert.id).limit(1)).all()  # reaches the database and the migrated schema
        except Exception:
            log.exception("health check: database query failed")
            self._send(503, _json_bytes({"status": "error", "database": "error"}), "application/json")
            return
        self._send(200, _json_bytes({"status": "ok", "database": "ok"}), "application/json")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        started, self._started = getattr(self, "_started", None), None  # keep-alive: the next request sets its own
        self.server.metrics.record(
            _split(getattr(self, "path", "") or "").path,
            status,
            time.perf_counter() - started if started is not None else None,
        )
        # sendall's timeout bounds the whole write: a client that stops reading cannot hold the thread either.
        self.connection.settimeout(self.server.request_timeout_s)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol errors (bad request line, header too long) as one-line JSON, not the stdlib's HTML page."""
        try:
            reason = message or HTTPStatus(code).phrase
        except ValueError:
            reason = "error"
        self.close_connection = True
        self._send(code, _json_error(reason), "application/json", {"Connection": "close"})

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), _printable(format % args))


_PATHS = ("/alerts.atom", "/alerts.json", "/alerts.schema.json", "/healthz", "/metrics")


def _split(target: str) -> SplitResult:
    """The request target split into path and query; a target urlsplit refuses ("http://[x/") has no path (404)."""
    try:
        return urlsplit(target)
    except ValueError:
        return SplitResult("", "", "", "", "")


def _printable(text: str) -> str:
    # A request path is attacker-controlled: no raw control characters (forged log lines) in the log.
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")[:500]


def _json_bytes(body: dict) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _json_error(message: str) -> bytes:
    return _json_bytes({"error": message})


_BUSY_BODY = _json_error("server busy: too many connections; try again shortly")
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\n".encode()
    + b"Retry-After: 1\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
    + _BUSY_BODY
)


def _canonical_query(filters: AlertFilter) -> str:
    pairs = [
        ("ticker", ",".join(filters.tickers)),
        ("severity", ",".join(filters.severities)),
        ("status", ",".join(filters.statuses)),
        ("since", json_time(filters.since) or ""),
        ("limit", str(filters.limit) if filters.limit != DEFAULT_LIMIT else ""),
        ("replayed", "1" if filters.replayed else ""),
    ]
    return urlencode([(k, v) for k, v in pairs if v])


def make_server(
    *,
    session_factory: sessionmaker[Session],
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    base_url: str | None = None,
    registry: CollectorRegistry | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
) -> FeedServer:
    """A bound (not yet serving) feed server; port 0 picks a free port (see `server.server_address`).

    `/metrics` serves `registry` (the process-wide Prometheus registry by default). At most `max_connections` are
    served at once (more get 503), and a request's line and headers must arrive within `request_timeout_s` (else 408).
    """
    return FeedServer(
        (host, port),
        session_factory=session_factory,
        token=token,
        base_url=base_url,
        registry=registry,
        max_connections=max_connections,
        request_timeout_s=request_timeout_s,
    )


def serve(server: FeedServer) -> None:
    """Serve the feeds of a made server until interrupted (Ctrl-C, SIGINT), then close the socket and return."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
