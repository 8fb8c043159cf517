"""The alert feeds, served for real on 127.0.0.1 from a migrated database, read with httpx and feedparser."""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import threading
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import feedparser
import httpx
import jsonschema
import pytest

from core.db import make_engine, make_session_factory
from core.schema import Alert, AlertEvidence, Article, Source
from monitor.feed import SCHEMA_PATH, make_server

T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
HOSTILE_TITLE = f"Apple shares plunge {SCRIPT} & {IMG}"
TOKEN = "feed-token-for-tests"


def add_alert(session, *, rule, ticker, severity, status, updated_at, replayed=False, evidence=(), **extra) -> Alert:
    labels = {"alertname": rule, "severity": severity} | ({"ticker": ticker} if ticker else {})
    alert = Alert(
        fingerprint=f"{rule}-{ticker}"[:16],
        rule=rule,
        severity=severity,
        ticker=ticker,
        labels=json.dumps(labels),
        annotations=json.dumps(extra.pop("annotations", {"summary": f"{ticker} news turned negative"})),
        status=status,
        value=-0.42,
        active_at=updated_at - timedelta(minutes=5),
        starts_at=updated_at if status != "pending" else None,
        ends_at=updated_at if status == "resolved" else None,
        replayed=replayed,
        updated_at=updated_at,
        **extra,
    )
    session.add(alert)
    session.flush()
    for article, score, words in evidence:
        session.add(AlertEvidence(alert_id=alert.id, article_id=article.id, score=score, words=json.dumps(words)))
    return alert


@pytest.fixture
def alerts(migrated_engine) -> dict[str, int]:
    """Four alerts (one replayed) with evidence, one headline hostile. Returns their ids by name."""
    sessions = make_session_factory(migrated_engine)
    with sessions.begin() as session:
        source = Source(name="wire", kind="rss")
        session.add(source)
        session.flush()

        def article(title: str, minutes: int) -> Article:
            a = Article(
                source_id=source.id,
                title=title,
                content_hash=title[:20] + str(minutes),
                published_at=T - timedelta(minutes=minutes),
            )
            session.add(a)
            session.flush()
            return a

        hostile = article(HOSTILE_TITLE, 2)
        calm = article("Apple supplier cuts forecast", 4)
        tesla = article("Tesla recalls 2 million cars", 70)
        ids = {
            "aapl": add_alert(
                session,
                rule="negative_burst",
                ticker="AAPL",
                severity="warning",
                status="firing",
                updated_at=T,
                evidence=[(hostile, -0.91, [["plunge", 0.41], ["shares", 0.12]]), (calm, -0.5, [["cuts", 0.3]])],
                # A control character (not allowed in XML) from a template that copied a headline.
                annotations={"summary": "AAPL turned negative \x07", "description": f"led by {SCRIPT}"},
                acked_by="dana",
                acked_at=T,
            ).id,
            "tsla": add_alert(
                session,
                rule="volume_spike",
                ticker="TSLA",
                severity="critical",
                status="resolved",
                updated_at=T - timedelta(hours=1),
                evidence=[(tesla, -0.7, [["recalls", 0.5]])],
            ).id,
            "msft": add_alert(
                session,
                rule="negative_burst",
                ticker="MSFT",
                severity="warning",
                status="pending",
                updated_at=T + timedelta(minutes=30),
            ).id,
            "market": add_alert(
                session,
                rule="market_drop",
                ticker=None,
                severity="critical",
                status="firing",
                updated_at=T - timedelta(hours=2),
            ).id,
            "replayed": add_alert(
                session,
                rule="negative_burst",
                ticker="AAPL",
                severity="warning",
                status="resolved",
                updated_at=T + timedelta(hours=1),
                replayed=True,
            ).id,
        }
    return ids


def start(session_factory, **kwargs):
    server = make_server(session_factory=session_factory, port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server


@pytest.fixture
def feed(migrated_engine, alerts):
    """An httpx client on a running feed server (no token)."""
    server = start(make_session_factory(migrated_engine))
    with httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}", timeout=10) as client:
        yield client
    server.shutdown()
    server.server_close()


def check_headers(response: httpx.Response, content_type: str) -> None:
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"


def check_error(response: httpx.Response, status: int, parameter: str | None = None) -> dict:
    assert response.status_code == status, response.text
    check_headers(response, "application/json")
    assert "\n" not in response.text and "Traceback" not in response.text  # one line, no internals
    body = response.json()
    if parameter is not None:
        assert body["parameter"] == parameter and repr(parameter) in body["error"]
    return body


# ------------------------------------------------------------------------------------------------------- atom


def test_atom_feed_lists_alerts_newest_first_with_news_text_escaped(feed, alerts):
    response = feed.get("/alerts.atom")
    assert response.status_code == 200
    check_headers(response, "application/atom+xml; charset=utf-8")
    raw = response.content

    # The hostile headline is text, never markup: no script or img element anywhere in the document.
    assert b"<script" not in raw and b"<img" not in raw
    root = ET.fromstring(raw)
    assert {el.tag.rsplit("}", 1)[-1] for el in root.iter()}.isdisjoint({"script", "img"})

    parsed = feedparser.parse(raw)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "finsent alerts"
    assert parsed.feed.links[0].rel == "self" and parsed.feed.links[0].href.endswith("/alerts.atom")
    assert [e.title for e in parsed.entries] == [
        "[PENDING] negative_burst MSFT",
        "[FIRING] negative_burst AAPL",
        "[RESOLVED] volume_spike TSLA",
        "[FIRING] market_drop",
    ]  # the replayed alert is history, not news
    aapl = parsed.entries[1]
    assert aapl.id == f"urn:finsent:alert:{alerts['aapl']}:firing"
    assert aapl.updated_parsed[:5] == (2026, 11, 24, 10, 0) and aapl.published_parsed[:5] == (2026, 11, 24, 10, 0)
    # feedparser gives the headline back as the text it was.
    assert HOSTILE_TITLE in aapl.summary
    assert "plunge +0.41, shares +0.12" in aapl.summary and "acknowledged by dana" in aapl.summary
    assert "AAPL turned negative" in aapl.summary and "\x07" not in aapl.summary
    # In the XHTML content it is escaped markup, shown as text by any reader.
    content = aapl.content[0].value
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content and "&lt;img src=x onerror=alert(1)&gt;" in content
    assert "<script" not in content and "<img" not in content
    assert [t.term for t in aapl.tags] == ["warning", "AAPL"]

    with_history = feedparser.parse(feed.get("/alerts.atom", params={"replayed": "1"}).content)
    assert len(with_history.entries) == 5 and with_history.entries[0].title == "[RESOLVED] negative_burst AAPL"
    firing = feedparser.parse(feed.get("/alerts.atom", params={"status": "firing", "ticker": "AAPL"}).content)
    assert [e.title for e in firing.entries] == ["[FIRING] negative_burst AAPL"]
    assert firing.feed.links[0].href.endswith("/alerts.atom?ticker=AAPL&status=firing")

    head = feed.head("/alerts.atom")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(raw)


# ------------------------------------------------------------------------------------------------------- json


def test_json_feed_matches_the_schema_and_filters(feed, alerts):
    validator = jsonschema.Draft202012Validator(
        json.loads(SCHEMA_PATH.read_text()), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )

    def ids(**params) -> list[int]:
        response = feed.get("/alerts.json", params=params)
        assert response.status_code == 200, response.text
        check_headers(response, "application/json")
        body = response.json()
        validator.validate(body)
        return [a["id"] for a in body["alerts"]]

    body = feed.get("/alerts.json").json()
    validator.validate(body)
    assert body["version"] == 1
    assert [a["id"] for a in body["alerts"]] == [alerts[k] for k in ("msft", "aapl", "tsla", "market")]
    aapl = body["alerts"][1]
    assert aapl["labels"] == {"alertname": "negative_burst", "severity": "warning", "ticker": "AAPL"}
    assert (aapl["status"], aapl["ticker"], aapl["acked_by"], aapl["replayed"]) == ("firing", "AAPL", "dana", False)
    assert aapl["starts_at"] == "2026-11-24T10:00:00+00:00"
    assert [e["title"] for e in aapl["evidence"]] == [HOSTILE_TITLE, "Apple supplier cuts forecast"]
    assert aapl["evidence"][0]["words"] == [["plunge", 0.41], ["shares", 0.12]]
    assert aapl["evidence"][0]["source"] == "wire" and aapl["evidence"][0]["score"] == -0.91
    assert body["alerts"][3]["ticker"] is None

    assert ids(ticker="AAPL") == [alerts["aapl"]]
    assert ids(ticker="aapl,tsla") == [alerts["aapl"], alerts["tsla"]]
    assert ids(status="firing") == [alerts["aapl"], alerts["market"]]
    assert ids(status=["pending", "resolved"]) == [alerts["msft"], alerts["tsla"]]
    assert ids(severity="critical") == [alerts["tsla"], alerts["market"]]
    assert ids(since="2026-11-24T10:00:00Z") == [alerts["msft"], alerts["aapl"]]  # at or after
    assert ids(since="2026-11-24T11:00:00+01:00") == [alerts["msft"], alerts["aapl"]]  # the same instant
    assert ids(since="2026-11-24T10:00:01+00:00") == [alerts["msft"]]
    assert ids(limit="2") == [alerts["msft"], alerts["aapl"]]
    assert ids(replayed="1", ticker="AAPL") == [alerts["replayed"], alerts["aapl"]]
    # "+00:00" typed into a URL unencoded arrives as " 00:00"; it still means UTC.
    raw = feed.get("/alerts.json?since=2026-11-24T10:00:00+00:00")
    assert [a["id"] for a in raw.json()["alerts"]] == [alerts["msft"], alerts["aapl"]]
    assert feed.get("/alerts.schema.json").json()["$id"] == "urn:finsent:schema:alerts:1"


def test_bad_filters_are_400_naming_the_parameter(feed):
    for path in ("/alerts.json", "/alerts.atom"):
        check_error(feed.get(path, params={"since": "yesterday"}), 400, "since")
    check_error(feed.get("/alerts.json", params={"since": "2026-11-24T10:00:00"}), 400, "since")  # no zone
    check_error(feed.get("/alerts.json", params={"since": ["2026-11-24T10:00:00Z"] * 2}), 400, "since")
    check_error(feed.get("/alerts.json", params={"status": "open"}), 400, "status")
    check_error(feed.get("/alerts.json", params={"ticker": "<script>"}), 400, "ticker")
    check_error(feed.get("/alerts.json", params={"ticker": ""}), 400, "ticker")
    check_error(feed.get("/alerts.json", params={"severity": "a b"}), 400, "severity")
    for limit in ("0", "1001", "-1", "ten"):
        check_error(feed.get("/alerts.json", params={"limit": limit}), 400, "limit")
    check_error(feed.get("/alerts.json", params={"replayed": "maybe"}), 400, "replayed")
    check_error(feed.get("/alerts.json", params={"tickers": "AAPL"}), 400, "tickers")  # a typo is not ignored


# --------------------------------------------------------------------------------------------- auth and health


def test_bearer_token_guards_everything_but_healthz(migrated_engine, alerts):
    server = start(make_session_factory(migrated_engine), token=TOKEN, base_url="https://alerts.example.com/")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
                for path in ("/alerts.json", "/alerts.atom", "/nowhere"):
                    response = client.get(path, headers=headers)
                    check_error(response, 401)
                    assert response.headers["www-authenticate"].startswith("Bearer")
                    assert TOKEN not in response.text

            auth = {"Authorization": f"Bearer {TOKEN}"}
            assert client.get("/alerts.json", headers=auth).status_code == 200
            atom = client.get("/alerts.atom", headers=auth)
            assert atom.status_code == 200
            assert feedparser.parse(atom.content).feed.links[0].href == "https://alerts.example.com/alerts.atom"
            check_error(client.get("/nowhere", headers=auth), 404)
            assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}

            response = client.post("/alerts.json", headers=auth, content=b"{}")
            check_error(response, 405)
            assert response.headers["allow"] == "GET, HEAD"
            assert TOKEN not in repr(server)
    finally:
        server.shutdown()
        server.server_close()


def test_healthz_reports_the_database(feed, tmp_path):
    response = feed.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}
    check_headers(response, "application/json")

    # A database without the schema: the query fails, the probe says so, and no details leak.
    engine = make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}")
    server = start(make_session_factory(engine))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}", timeout=10) as client:
            down = client.get("/healthz")
            assert down.status_code == 503 and down.json() == {"status": "error", "database": "error"}
            check_error(client.get("/alerts.json"), 500)
    finally:
        server.shutdown()
        server.server_close()
        engine.dispose()


def test_feed_server_binds_loopback_unless_told(tmp_path):
    """The default host is 127.0.0.1, in make_server and in `finsent feed serve` (which needs --host to go wider)."""
    import subprocess
    import sys
    from pathlib import Path

    url = f"sqlite:///{tmp_path / 'feed.db'}"
    server = make_server(session_factory=make_session_factory(make_engine(url)), port=0)
    assert server.server_address[0] == "127.0.0.1"
    server.server_close()

    finsent = str(Path(sys.executable).parent / "finsent")
    process = subprocess.Popen([finsent, "feed", "serve", "--port", "0", "--database-url", url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        line = next(line for line in process.stdout if "alert feeds on" in line)
        port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["status"] == "ok"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_runs_until_interrupted_then_returns_with_the_port_closed(tmp_path):
    """`serve` is how a process runs the feeds: it serves a made server and returns on Ctrl-C, the port closed."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from core.db import upgrade

    url = f"sqlite:///{tmp_path / 'feed.db'}"
    upgrade(url)
    code = (
        "from core.db import make_engine, make_session_factory\n"
        "from monitor.feed import make_server, serve\n"
        f"server = make_server(session_factory=make_session_factory(make_engine({url!r})), port=0)\n"
        "print(f'alert feeds on http://127.0.0.1:{server.server_address[1]}/alerts.atom', flush=True)\n"
        "serve(server)\n"
        "print('serve returned', flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        line = next(line for line in process.stdout if "alert feeds on" in line)
        port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["status"] == "ok"
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0 and "serve returned" in rest and "Traceback" not in rest
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


def test_feed_serve_refuses_to_go_beyond_loopback_without_a_token_and_refuses_short_tokens(tmp_path):
    """Issue 17, D16: `--host 0.0.0.0` without a token served alerts and evidence to every interface; a 3-character
    token was accepted. Both are now one `error:` line and exit 1, before anything listens."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    finsent = str(Path(sys.executable).parent / "finsent")
    url = f"sqlite:///{tmp_path / 'feed.db'}"
    cases = [
        (["--host", "0.0.0.0"], {}, "needs a bearer token"),
        (["--host", ""], {}, "needs a bearer token"),
        (["--token-env", "FEED_TEST_TOKEN"], {"FEED_TEST_TOKEN": "abc"}, "has 3 characters; use at least 16"),
        # deploy/.env.example's token, left as it is, on every interface: no secret at all
        (
            ["--host", "0.0.0.0", "--token-env", "FEED_TEST_TOKEN"],
            {"FEED_TEST_TOKEN": "change-me-feed-token"},
            "FEED_TEST_TOKEN still holds a placeholder",
        ),
    ]
    for args, env, expected in cases:
        out = subprocess.run([finsent, "feed", "serve", "--port", "0", "--database-url", url, *args],
                             capture_output=True, text=True, timeout=60, env={**os.environ, **env})  # fmt: skip
        assert out.returncode == 1 and "Traceback" not in out.stderr, (args, out.stderr)
        assert out.stderr.startswith("error: ") and expected in out.stderr and "abc" not in out.stderr, out.stderr


# --------------------------------------------------------------------------------------- hostile values, slow peers


def test_values_that_used_to_raise_are_400_naming_the_parameter_without_a_traceback(feed, caplog):
    """Issue 17, D10: a `since` with no UTC form (OverflowError), a `limit` that str.isdigit accepts but int() does
    not (`²`) and one of 5,000 digits (past int()'s digit limit) were 500s with a traceback in the log."""
    cases = [
        ("since", "9999-12-31T23:59:59-23:59"),
        ("since", "0001-01-01T00:00:00+01:00"),
        ("since", "2026-11-24T10:00:00Z\x00junk"),  # fromisoformat stops reading at a NUL
        ("limit", "\u00b2"),
        ("limit", "\u0661\u0662"),  # Arabic-Indic digits: int() reads them as 12
        ("limit", "9" * 5000),
        ("replayed", "\u00b9"),
    ]
    for path in ("/alerts.json", "/alerts.atom"):
        for name, value in cases:
            body = check_error(feed.get(path, params={name: value}), 400, name)
            assert value[:40] not in body["error"] or name != "limit"  # no 5,000 digits echoed back
    assert feed.get("/alerts.json", params={"since": "9999-12-31T00:00:00+23:59"}).status_code == 200  # in range
    assert feed.get("/alerts.json", params={"since": "0001-01-01T00:00:00Z"}).status_code == 200
    assert not [r for r in caplog.records if r.exc_info] and "Traceback" not in caplog.text


def _read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while data := sock.recv(65536):
            received += data
    return received


def test_a_client_trickling_header_lines_is_cut_off_at_the_whole_request_deadline(migrated_engine, caplog):
    """Issue 17, D9: the 30 s timeout was per read, so a client sending a header line every 20 s held a thread for
    as long as it kept going. Now the request line and headers must all arrive within one deadline (1 s here)."""
    caplog.set_level(logging.INFO, logger="monitor.feed")
    server = start(make_session_factory(migrated_engine), request_timeout_s=1.0)
    port = server.server_address[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: feed.test\r\n")
            for i in range(50):  # a header line every 0.1 s, 5 s in all: each read is quick, the request is not
                if select.select([sock], [], [], 0.1)[0]:
                    break  # the server answered (or closed)
                try:
                    sock.sendall(b"X-Trickle-%d: 1\r\n" % i)
                except OSError:
                    break
            answer = _read_until_closed(sock)
            elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.0 408 "), answer[:200]
        assert b"request not received within 1 s" in answer
        assert elapsed < 2.5, f"cut off after {elapsed:.1f} s"

        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # silent: the same deadline
            started = time.monotonic()
            assert _read_until_closed(sock).startswith(b"HTTP/1.0 408 ")
            assert time.monotonic() - started < 2.5

        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200  # others are served
    finally:
        server.shutdown()
        server.server_close()
    assert "not received within 1 s" in caplog.text and "Traceback" not in caplog.text


def test_connections_beyond_the_cap_are_refused_at_once_with_503(migrated_engine, caplog):
    """Issue 17, D9: 50 idle connections were 50 threads, without limit. Now at most `max_connections` are served
    at once; one more is answered 503 by the accepting thread at once, without a thread of its own."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    server = start(make_session_factory(migrated_engine), max_connections=3, request_timeout_s=10, registry=registry)
    port = server.server_address[1]
    threads_before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    try:
        for _ in range(5):  # accepted after the three idle ones (the listen queue is first in, first out)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                started = time.monotonic()
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: feed.test\r\n\r\n")
                answer = _read_until_closed(sock)
                assert time.monotonic() - started < 1.0
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 "), answer[:200]
            assert b"\r\nRetry-After: 1\r\n" in head and b"\r\nContent-Type: application/json\r\n" in head
            assert json.loads(body) == {"error": "server busy: too many connections; try again shortly"}
        assert threading.active_count() <= threads_before + 3  # one thread per served connection, none per refusal
        assert registry.get_sample_value("finsent_feed_requests_total", {"path": "other", "status": "503"}) == 5

        idle.pop().close()  # a slot frees as soon as its connection ends
        deadline = time.monotonic() + 5
        while (status := httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code) == 503:
            assert time.monotonic() < deadline, "the slot of a closed connection was never released"
            time.sleep(0.05)
        assert status == 200
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
        server.server_close()
    busy = [r.getMessage() for r in caplog.records if "feed server busy" in r.getMessage()]
    assert busy == ["feed server busy: 1 connection(s) refused with 503 (at most 3 at once; see --max-connections)"]
    assert "Traceback" not in caplog.text
