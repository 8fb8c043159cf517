"""The hostile feed-server corpus: raw HTTP requests, each with the status and a piece of the message it must get.

`test_feed_requests.py` sends each over a raw socket to the real server (`monitor.feed.make_server`, bearer token
set, a 1-second request deadline) and checks the status line, the one-line JSON error, and that the server logged
no traceback. README.md in this folder describes the classes. Requests are built here, never stored: the 70 KB
request line and the 5,000-digit limit are generated.
"""

from __future__ import annotations

from dataclasses import dataclass

TOKEN = "hostile-feed-token-0123456789"
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()
DEADLINE_S = 1.0  # the server's request deadline in the test: the slow cases trickle for longer than this


@dataclass(frozen=True)
class FeedRequest:
    """Raw bytes sent in `chunks` (with `pause_s` between them) and the response the server must give."""

    name: str
    chunks: tuple[bytes, ...]
    status: int
    message: str  # a piece of the JSON `error` (empty: a 2xx, no error to check)
    parameter: str | None = None  # for a 400 on a query parameter: the `parameter` the body must name
    pause_s: float = 0.0


def raw(target: str, *, method: str = "GET", headers: bytes = AUTH, version: str = "HTTP/1.1") -> bytes:
    """A request as bytes: `target` exactly as given (already percent-encoded where it should be), closing after."""
    line = f"{method} {target} {version}\r\nHost: feed.test\r\n".encode("latin-1")
    return line + headers + b"Connection: close\r\n\r\n"


def ok(name: str, target: str, **kwargs) -> FeedRequest:
    return FeedRequest(name, (raw(target, **kwargs),), 200, "")


def bad(name: str, target: str, parameter: str, message: str) -> FeedRequest:
    return FeedRequest(name, (raw(target),), 400, message, parameter=parameter)


def status(name: str, data: bytes, code: int, message: str) -> FeedRequest:
    return FeedRequest(name, (data,), code, message)


def slow(name: str, chunks: list[bytes], pause_s: float) -> FeedRequest:
    return FeedRequest(name, tuple(chunks), 408, "not received within", pause_s=pause_s)


J = "/alerts.json"
HUGE_LIMIT = "9" * 5000

BAD_PARAMETERS = [
    # Issue 17, D10: each of these was a 500 with a traceback in the log.
    bad("since far future, negative offset", f"{J}?since=9999-12-31T23:59:59-23:59", "since", "out of range"),
    bad("since year 1, positive offset", f"{J}?since=0001-01-01T00:00:00%2B01:00", "since", "out of range"),
    bad("since year 1, unencoded plus", f"{J}?since=0001-01-01T00:00:00+01:00", "since", "out of range"),
    bad("limit superscript two", f"{J}?limit=%C2%B2", "limit", "integer from 1 to 1000"),
    bad("limit 5,000 digits", f"{J}?limit={HUGE_LIMIT}", "limit", "integer from 1 to 1000"),
    bad("limit Arabic-Indic digits", f"{J}?limit=%D9%A1%D9%A2", "limit", "integer from 1 to 1000"),
    bad("limit fullwidth digits", f"{J}?limit=%EF%BC%95", "limit", "integer from 1 to 1000"),
    bad("limit 0", f"{J}?limit=0", "limit", "integer from 1 to 1000"),
    bad("limit 1001", f"{J}?limit=1001", "limit", "integer from 1 to 1000"),
    bad("limit negative", f"{J}?limit=-1", "limit", "integer from 1 to 1000"),
    bad("limit exponent", f"{J}?limit=1e3", "limit", "integer from 1 to 1000"),
    bad("limit hex", f"{J}?limit=0x10", "limit", "integer from 1 to 1000"),
    bad("limit underscore", f"{J}?limit=1_0", "limit", "integer from 1 to 1000"),
    bad("limit with sign", f"{J}?limit=%2B5", "limit", "integer from 1 to 1000"),
    bad("limit repeated", f"{J}?limit=5&limit=6", "limit", "more than once"),
    bad("limit empty", f"{J}?limit=", "limit", "integer from 1 to 1000"),
    bad("since words", f"{J}?since=yesterday", "since", "not an ISO 8601 time"),
    bad("since without zone", f"{J}?since=2026-11-24T10:00:00", "since", "give a time zone"),
    bad("since offset past 24 h", f"{J}?since=2026-11-24T10:00:00%2B24:00", "since", "not an ISO 8601 time"),
    bad("since NUL", f"{J}?since=2026-11-24T10:00:00Z%00", "since", "not an ISO 8601 time"),
    bad("since NUL then text", f"{J}?since=2026-11-24T10:00:00Z%00junk", "since", "not an ISO 8601 time"),
    bad("since NUL before the time", f"{J}?since=2026-11-24%0010:00:00Z", "since", "not an ISO 8601 time"),
    bad("since Arabic-Indic year", f"{J}?since=%D9%A2%D9%A0%D9%A2%D9%A6-11-24T10:00:00Z", "since", "ISO 8601"),
    bad("since repeated", f"{J}?since=2026-11-24T10:00:00Z&since=2026-11-24T10:00:00Z", "since", "more than once"),
    bad("since 10,000 characters", f"{J}?since={'2' * 10000}", "since", "not an ISO 8601 time"),
    bad("since cut percent escape", f"{J}?since=%2", "since", "not an ISO 8601 time"),
    bad("ticker script", f"{J}?ticker=%3Cscript%3E", "ticker", "is not a ticker"),
    bad("ticker empty", f"{J}?ticker=", "ticker", "empty value"),
    bad("ticker empty in a list", f"{J}?ticker=AAPL,,MSFT", "ticker", "empty value"),
    bad("ticker invalid UTF-8", f"{J}?ticker=%FF", "ticker", "is not a ticker"),
    bad("ticker Cyrillic A", f"{J}?ticker=%D0%90APL", "ticker", "is not a ticker"),
    bad("ticker newline inside", f"{J}?ticker=AA%0APL", "ticker", "is not a ticker"),
    bad("ticker 17 characters", f"{J}?ticker={'A' * 17}", "ticker", "is not a ticker"),
    bad("severity space", f"{J}?severity=a%20b", "severity", "is not a severity"),
    bad("severity quote", f"{J}?severity=%27%20OR%201=1", "severity", "is not a severity"),
    bad("status unknown", f"{J}?status=open", "status", "is not one of"),
    bad("status case", f"{J}?status=FIRING", "status", "is not one of"),
    bad("replayed maybe", f"{J}?replayed=maybe", "replayed", "must be 0 or 1"),
    bad("replayed superscript one", f"{J}?replayed=%C2%B9", "replayed", "must be 0 or 1"),
    bad("replayed repeated", f"{J}?replayed=1&replayed=0", "replayed", "more than once"),
    bad("unknown parameter", f"{J}?tickers=AAPL", "tickers", "unknown parameter"),
    bad("unknown parameter, encoded name", f"{J}?%74icker%00=AAPL", "ticker\x00", "unknown parameter"),
    bad("unknown parameter, 5,000-character name", f"{J}?{'x' * 5000}=1", "x" * 40, "unknown parameter"),
    bad("51 fields", f"{J}?" + "&".join(["ticker=A"] * 51), "query", "Max number of fields exceeded"),
    bad("atom feed too", "/alerts.atom?limit=%C2%B2", "limit", "integer from 1 to 1000"),
]

GOOD_PARAMETERS = [
    ok("plain json", J),
    ok("plain atom", "/alerts.atom"),
    ok(
        "every parameter",
        f"{J}?ticker=aapl,MSFT&severity=warning&status=firing,pending&since=2026-11-24T10:00:00Z"
        "&limit=1000&replayed=true",
    ),  # fmt: skip
    ok("since encoded offset", f"{J}?since=2026-11-24T11:00:00%2B01:00"),
    ok("since offset as a space", f"{J}?since=2026-11-24T11:00:00+01:00"),
    ok("since year 1 in UTC", f"{J}?since=0001-01-01T00:00:00Z"),
    ok("since year 9999 in UTC", f"{J}?since=9999-12-31T23:59:59Z"),
    ok("since largest offset that stays in range", f"{J}?since=9999-12-31T00:00:00%2B23:59"),
    ok("status percent-encoded", f"{J}?status=%66iring"),
    ok("repeated ticker", f"{J}?ticker=AAPL&ticker=AAPL&ticker=msft"),
    ok("limit with spaces", f"{J}?limit=%2010%20"),
    ok("limit leading zeros", f"{J}?limit=0007"),
    ok("fragment", f"{J}#x"),
    ok("double slash collapses", "//alerts.json"),
    ok("lower-case bearer", J, headers=f"Authorization: bearer {TOKEN}\r\n".encode()),
    ok("healthz without token", "/healthz", headers=b""),
    ok("healthz ignores its query", "/healthz?limit=%C2%B2&x=\x01", headers=b""),
    ok("HEAD", J, method="HEAD"),
    ok("HTTP/1.0", J, version="HTTP/1.0"),
    ok("header without a colon", J, headers=AUTH + b"NoColonHere\r\n"),
]

TOKENS = [
    status("no token", raw(J, headers=b""), 401, "missing or invalid bearer token"),
    status("wrong token", raw(J, headers=b"Authorization: Bearer wrong\r\n"), 401, "missing or invalid"),
    status("token plus one", raw(J, headers=f"Authorization: Bearer {TOKEN}x\r\n".encode()), 401, "invalid"),
    status("token prefix", raw(J, headers=f"Authorization: Bearer {TOKEN[:-1]}\r\n".encode()), 401, "invalid"),
    status("basic scheme", raw(J, headers=f"Authorization: Basic {TOKEN}\r\n".encode()), 401, "invalid"),
    status("token without scheme", raw(J, headers=f"Authorization: {TOKEN}\r\n".encode()), 401, "invalid"),
    status("Latin-1 bytes", raw(J, headers=b"Authorization: Bearer \xff\xfe\r\n"), 401, "invalid"),
    status("UTF-8 token", raw(J, headers="Authorization: Bearer tökén\r\n".encode()), 401, "invalid"),
    status("NUL in token", raw(J, headers=f"Authorization: Bearer {TOKEN}\x00\r\n".encode()), 401, "invalid"),
    status("empty bearer", raw(J, headers=b"Authorization: Bearer \r\n"), 401, "invalid"),
    status("metrics needs it", raw("/metrics", headers=b""), 401, "invalid"),
    status("schema needs it", raw("/alerts.schema.json", headers=b""), 401, "invalid"),
    status("unknown path, no token", raw("/../../etc/passwd", headers=b""), 401, "invalid"),
]

METHODS = [
    status("POST", raw(J, method="POST"), 405, "method not allowed"),
    status("POST with a body", raw(J, method="POST", headers=AUTH + b"Content-Length: 5\r\n") + b"hello", 405, "not"),
    status("PUT", raw(J, method="PUT"), 405, "method not allowed"),
    status("DELETE", raw(J, method="DELETE"), 405, "method not allowed"),
    status("PATCH", raw(J, method="PATCH"), 405, "method not allowed"),
    status("OPTIONS", raw("*", method="OPTIONS"), 405, "method not allowed"),
    status("TRACE", raw(J, method="TRACE"), 501, "Unsupported method"),
    status("CONNECT", raw("feed.test:443", method="CONNECT"), 501, "Unsupported method"),
    status("lower-case get", raw(J, method="get"), 501, "Unsupported method"),
    status("made-up method", raw(J, method="GETX"), 501, "Unsupported method"),
]

PATHS = [
    status("traversal", raw("/../../etc/passwd"), 404, "no such path"),
    status("encoded traversal", raw("/%2e%2e/%2e%2e/etc/passwd"), 404, "no such path"),
    status("dot segments after a feed", raw("/alerts.json/../healthz"), 404, "no such path"),
    status("trailing slash", raw("/alerts.json/"), 404, "no such path"),
    status("case", raw("/ALERTS.JSON"), 404, "no such path"),
    status("backslashes", raw("/..\\..\\windows\\win.ini"), 404, "no such path"),
    status("NUL in path", raw("/alerts.json%00.atom"), 404, "no such path"),
    status("asterisk", raw("*"), 404, "no such path"),
    status("absolute form, other host", raw("http://evil.test/etc/passwd"), 404, "no such path"),
    status("absolute form, broken IPv6 host", raw("http://[::1/alerts.json"), 404, "no such path"),
    status("schema path with a query", raw("/alerts.schema.json?limit=%C2%B2"), 200, ""),
]

PROTOCOL = [
    status("request line of 70,000 bytes", raw("/alerts.json?x=" + "a" * 70_000), 414, "Request-URI Too Long"),
    status("header line of 70,000 bytes", raw(J, headers=AUTH + b"X-Big: " + b"a" * 70_000 + b"\r\n"), 431, "too long"),
    status("101 headers", raw(J, headers=AUTH + b"".join(b"X-%d: 1\r\n" % i for i in range(101))), 431, "Too many"),
    status("garbage request line", b"GARBAGE\r\n\r\n", 400, "Bad request syntax"),
    status("four words", b"GET / HTTP/1.1 extra\r\n\r\n", 400, "Bad request version"),
    status("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\xaa" * 32 + b"\r\n\r\n", 400, "Bad"),
    status("HTTP/9.9", raw(J, version="HTTP/9.9"), 505, "Invalid HTTP version"),
    status("HTTP/1.x", raw(J, version="HTTP/1.x"), 400, "Bad request version"),
    status("HTTP/0.9 request", b"GET /healthz\r\n\r\n", 200, ""),
    status("HTTP/0.9 POST", b"POST /alerts.json\r\n\r\n", 400, "Bad HTTP/0.9 request type"),
    status("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "Invalid HTTP version"),
]

SLOW = [
    # Issue 17, D9: each read waited up to 30 s, so a client sending a little just inside that held a thread
    # indefinitely. Now the request line and headers must be complete within the deadline, however they trickle.
    slow("header lines trickled", [b"GET /healthz HTTP/1.1\r\n"] + [b"X-%d: 1\r\n" % i for i in range(30)], 0.2),
    slow("request line byte by byte", [bytes([b]) for b in b"GET /healthz HTTP/1.1\r\n"], 0.2),
    slow("one header line, never finished", [b"GET /healthz HTTP/1.1\r\nX-Slow: "] + [b"a"] * 30, 0.2),
    slow("nothing sent", [b""], 0.0),
]

CLASSES: dict[str, list[FeedRequest]] = {
    "bad_parameters": BAD_PARAMETERS,
    "good_parameters": GOOD_PARAMETERS,
    "tokens": TOKENS,
    "methods": METHODS,
    "paths": PATHS,
    "protocol": PROTOCOL,
    "slow": SLOW,
}
