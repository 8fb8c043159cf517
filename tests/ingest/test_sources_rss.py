"""RSS/Atom polling against a real HTTP server on 127.0.0.1, source health in a migrated database, feed jobs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from core.db import make_engine, make_session_factory, upgrade
from core.messages import decode
from core.schema import Source
from ingest.scheduler import poll_feed, schedule_feeds
from ingest.sources.health import record_health
from ingest.sources.rss import FeedPoller, PollResult

NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
ETAG = '"v1"'
LAST_MODIFIED = "Mon, 03 Jun 2024 11:00:00 GMT"


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>Markets</title>'
        "<link>https://news.example/</link><description>Market news</description>" + "".join(items) + "</channel></rss>"
    ).encode()


ITEM_APPLE = """<item><title>Apple beats estimates</title><link>https://news.example/apple</link>
<guid isPermaLink="false">urn:news:1</guid><pubDate>Mon, 03 Jun 2024 10:00:00 +0200</pubDate>
<description><![CDATA[<p>Shares <b>jump</b></p><script>alert('x')</script>]]></description>
<category>$AAPL</category><category>Technology</category><category>$NOT A TICKER</category></item>"""
ITEM_UNDATED = """<item><title>No date given</title><link>https://news.example/undated</link></item>"""
ITEM_UNTITLED = """<item><link>https://news.example/untitled</link><description>body only</description></item>"""
ITEM_FAR = """<item><title>Far future</title><guid>urn:news:far</guid>
<pubDate>Fri, 31 Dec 2999 23:59:59 GMT</pubDate></item>"""
ITEM_NEW = """<item><title>Nokia falls</title><guid>urn:news:2</guid>
<pubDate>Mon, 03 Jun 2024 11:30:00 GMT</pubDate><description>Nokia shares fell.</description></item>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom wire</title><id>urn:feed</id>
<updated>2024-06-03T11:00:00Z</updated>
<entry><title type="html">Fed holds &lt;b&gt;rates&lt;/b&gt;</title>
<id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
<link rel="alternate" href="https://atom.example/fed"/><published>2024-06-03T09:15:00-04:00</published>
<updated>2024-06-03T10:00:00Z</updated><summary>The Fed kept rates unchanged.</summary></entry>
<entry><title>Only updated</title><id>urn:atom:2</id><updated>1850-01-02T03:04:05Z</updated>
<content type="html">&lt;p&gt;From content&lt;/p&gt;</content></entry>
</feed>"""

Response = tuple[int, dict[str, str], bytes]


@dataclass
class FeedServer:
    """A real HTTP server: routes map a path to a function of the request handler returning a response."""

    base: str
    routes: dict[str, Callable[[BaseHTTPRequestHandler], Response | None]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base + path

    def headers_of(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    state: FeedServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            route = state.routes.get(self.path)
            try:
                response = route(self) if route else (404, {}, b"no such feed")
                if response is None:
                    return  # the route wrote its own answer
                status, headers, body = response
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeouts): expected

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state = FeedServer(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()  # wakes slow routes
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def conditional_rss(body: bytes, etag: str = ETAG) -> Callable[[BaseHTTPRequestHandler], Response]:
    def route(handler: BaseHTTPRequestHandler) -> Response:
        if handler.headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        headers = {"Content-Type": "application/rss+xml; charset=utf-8", "ETag": etag, "Last-Modified": LAST_MODIFIED}
        return 200, headers, body

    return route


def fixed(status: int, body: bytes, content_type: str = "application/xml") -> Callable[..., Response]:
    return lambda handler: (status, {"Content-Type": content_type}, body)


# ------------------------------------------------------------------------------------------------------ RSS


def test_rss_entries_become_messages_and_second_poll_is_conditional(server):
    server.routes["/rss"] = conditional_rss(rss(ITEM_APPLE, ITEM_UNDATED, ITEM_UNTITLED, ITEM_FAR))
    poller = FeedPoller("markets", server.url("/rss"), interval_s=300)
    first = poller.poll(NOW)
    assert (first.status, first.http_status, first.error, first.source) == ("ok", 200, None, "markets")
    assert first.next_poll_at == NOW + timedelta(seconds=300)
    assert [r.position for r in first.records] == [
        "urn:news:1",
        "https://news.example/undated",
        "https://news.example/untitled",
        "urn:news:far",
    ]
    apple, undated, untitled, far = first.records
    message = decode(apple.value)
    assert message.title == "Apple beats estimates"
    assert message.url == "https://news.example/apple"
    assert message.external_id == "urn:news:1"
    assert message.published_at == datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
    assert message.tickers == ["AAPL"]
    assert message.source == "markets"
    assert "Shares <b>jump</b>" in message.body  # HTML is left for normalisation downstream
    assert b"Apple beats estimates" in apple.raw
    undated_message = decode(undated.value)
    assert undated_message.published_at is None
    assert undated_message.external_id == "https://news.example/undated"  # no guid: the link
    assert untitled.error == "entry https://news.example/untitled: title: missing or empty"
    assert decode(far.value).published_at == datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert poller.etag == ETAG and poller.last_modified == LAST_MODIFIED

    second = poller.poll(NOW + timedelta(seconds=300))
    assert (second.status, second.http_status, second.records) == ("not_modified", 304, [])
    sent = server.headers_of("/rss")
    assert "if-none-match" not in sent[0] and "if-modified-since" not in sent[0]
    assert sent[1]["if-none-match"] == ETAG
    assert sent[1]["if-modified-since"] == LAST_MODIFIED
    assert second.next_poll_at == NOW + timedelta(seconds=600)


def test_relisted_entries_are_not_republished(server):
    server.routes["/rss"] = conditional_rss(rss(ITEM_APPLE, ITEM_UNDATED), etag='"a"')
    poller = FeedPoller("markets", server.url("/rss"))
    assert len(poller.poll(NOW).records) == 2
    # The feed changes (new ETag) and re-lists its last items with one new one on top.
    server.routes["/rss"] = conditional_rss(rss(ITEM_NEW, ITEM_APPLE, ITEM_UNDATED), etag='"b"')
    result = poller.poll(NOW + timedelta(minutes=5))
    assert result.status == "ok"
    assert [decode(r.value).title for r in result.records] == ["Nokia falls"]
    assert server.headers_of("/rss")[1]["if-none-match"] == '"a"'


def test_seen_ids_are_bounded_but_keep_the_current_listing(server):
    server.routes["/rss"] = conditional_rss(rss(ITEM_APPLE, ITEM_UNDATED, ITEM_NEW, ITEM_NEW), etag='"a"')
    poller = FeedPoller("markets", server.url("/rss"), max_seen=2)
    assert len(poller.poll(NOW).records) == 3  # the doubled item once
    # Everything still listed stays remembered, even past max_seen.
    server.routes["/rss"] = conditional_rss(rss(ITEM_APPLE, ITEM_UNDATED, ITEM_NEW), etag='"b"')
    assert poller.poll(NOW).records == []
    # Once off the feed, the oldest ids are forgotten first: apple comes back when it is listed again.
    server.routes["/rss"] = conditional_rss(rss(ITEM_FAR), etag='"c"')
    assert [r.position for r in poller.poll(NOW).records] == ["urn:news:far"]
    server.routes["/rss"] = conditional_rss(rss(ITEM_APPLE, ITEM_NEW), etag='"d"')
    assert [r.position for r in poller.poll(NOW).records] == ["urn:news:1"]


def test_atom_feed(server):
    server.routes["/atom"] = fixed(200, ATOM, "application/atom+xml")
    result = FeedPoller("atom-wire", server.url("/atom")).poll(NOW)
    assert result.status == "ok" and all(r.ok for r in result.records)
    fed, old = (decode(r.value) for r in result.records)
    assert fed.title == "Fed holds <b>rates</b>"
    assert fed.external_id == "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"
    assert fed.url == "https://atom.example/fed"
    assert fed.published_at == datetime(2024, 6, 3, 13, 15, tzinfo=UTC)  # <published> wins over <updated>
    assert fed.body == "The Fed kept rates unchanged."
    assert old.published_at == datetime(1850, 1, 2, 3, 4, 5, tzinfo=UTC)  # passed through: judged downstream
    assert old.body == "<p>From content</p>"
    assert old.url is None and old.external_id == "urn:atom:2"


# ----------------------------------------------------------------------------------------------- failures


def test_server_errors_back_off_exponentially_and_success_resets(server):
    server.routes["/flaky"] = fixed(500, b"oops")
    poller = FeedPoller("flaky", server.url("/flaky"), interval_s=300, max_backoff_s=1000)
    waits = []
    for i in range(3):
        now = NOW + timedelta(hours=i)
        result = poller.poll(now)
        assert result.status == "error" and result.http_status == 500 and result.records == []
        assert result.error == f"{server.url('/flaky')}: HTTP 500 Internal Server Error"
        waits.append((result.next_poll_at - now).total_seconds())
    assert waits == [600, 1000, 1000]  # 300*2, 300*4 capped at 1000, capped
    assert poller.consecutive_failures == 3
    assert not poller.due(NOW + timedelta(hours=2, seconds=999))

    server.routes["/flaky"] = conditional_rss(rss(ITEM_NEW))
    result = poller.poll(NOW + timedelta(hours=3))
    assert result.status == "ok" and poller.consecutive_failures == 0
    assert result.next_poll_at == NOW + timedelta(hours=3, seconds=300)


def test_not_found_names_url_and_status(server):
    result = FeedPoller("gone", server.url("/missing")).poll(NOW)
    assert (result.status, result.http_status) == ("error", 404)
    assert result.error == f"{server.url('/missing')}: HTTP 404 Not Found"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\x00\xff\xfe garbage \x89PNG\r\n\x1a\n" * 20, "application/octet-stream"),
        (b"<!doctype html><html><head><title>Sign in</title></head><body><h1>Log in</h1></body></html>", "text/html"),
        (b"", "application/rss+xml"),
    ],
    ids=["garbage", "html-page", "empty"],
)  # fmt: skip
def test_malformed_feed_is_an_error_and_keeps_no_validators(server, body, content_type):
    server.routes["/bad"] = lambda handler: (200, {"Content-Type": content_type, "ETag": '"bad"'}, body)
    poller = FeedPoller("bad", server.url("/bad"))
    result = poller.poll(NOW)
    assert result.status == "error" and result.http_status == 200 and result.records == []
    assert result.error.startswith(f"{server.url('/bad')}: not a valid feed (")
    assert poller.etag is None  # a broken page's ETag must not turn the next poll into a 304
    assert poller.consecutive_failures == 1


def test_feedparser_never_reads_a_local_file_named_by_the_body(server, tmp_path):
    secret = tmp_path / "secret.xml"
    secret.write_bytes(rss(ITEM_APPLE))
    server.routes["/path"] = fixed(200, str(secret).encode(), "text/plain")
    result = FeedPoller("path", server.url("/path")).poll(NOW)
    assert result.status == "error" and result.records == []


def test_slow_response_times_out(server):
    def slow(handler):
        server.stop.wait(3)
        return 200, {}, rss(ITEM_APPLE)

    server.routes["/slow"] = slow
    result = FeedPoller("slow", server.url("/slow"), timeout_s=0.3).poll(NOW)
    assert result.status == "error" and result.http_status is None
    assert result.error.startswith(f"{server.url('/slow')}: timed out after 0.3 s (ReadTimeout)")


def test_trickling_body_hits_the_overall_deadline(server):
    body = rss(ITEM_APPLE)

    def trickle(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for i in range(0, len(body), 16):
            handler.wfile.write(body[i : i + 16])
            handler.wfile.flush()
            if server.stop.wait(0.1):
                return None
        return None

    server.routes["/trickle"] = trickle
    result = FeedPoller("trickle", server.url("/trickle"), timeout_s=0.4).poll(NOW)
    assert result.status == "error"
    assert result.error == f"{server.url('/trickle')}: timed out after 0.4 s (reading the body)"


def test_oversized_feed_and_refused_connection(server):
    server.routes["/huge"] = fixed(200, rss(*[ITEM_APPLE] * 50))
    result = FeedPoller("huge", server.url("/huge"), max_bytes=4096).poll(NOW)
    assert result.error == f"{server.url('/huge')}: response over 4,096 bytes"

    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    result = FeedPoller("down", f"http://127.0.0.1:{port}/feed").poll(NOW)
    assert result.status == "error" and result.error.startswith(f"http://127.0.0.1:{port}/feed: ConnectError")


# ---------------------------------------------------------------------------------------------- scheduling


def test_poll_feed_hands_results_over_and_respects_backoff(server):
    server.routes["/rss"] = conditional_rss(rss(ITEM_APPLE))
    handled: list[PollResult] = []
    poller = FeedPoller("markets", server.url("/rss"), interval_s=60)
    result = poll_feed(poller, handled.append, now=NOW)
    assert handled == [result] and result.status == "ok" and len(result.records) == 1
    assert poll_feed(poller, handled.append, now=NOW + timedelta(seconds=59)) is None  # not due yet
    assert len(handled) == 1
    assert poll_feed(poller, handled.append, now=NOW + timedelta(seconds=60)).status == "not_modified"


def test_schedule_feeds_registers_one_coalesced_job_per_feed():
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)  # jobs land in the job store (and nothing runs)
    request_cleanup = scheduler.shutdown
    pollers = [FeedPoller("a", "http://127.0.0.1:9/a", interval_s=120), FeedPoller("b", "http://127.0.0.1:9/b")]
    handle = print
    jobs = schedule_feeds(scheduler, pollers, handle)
    assert [job.id for job in jobs] == ["feed:a", "feed:b"]
    job = scheduler.get_job("feed:a")
    assert job.func is poll_feed and job.args == (pollers[0], handle)
    assert job.trigger.interval == timedelta(seconds=120)
    assert scheduler.get_job("feed:b").trigger.interval == timedelta(seconds=300)
    assert job.coalesce is True and job.max_instances == 1
    schedule_feeds(scheduler, pollers[:1], handle)  # registering again replaces, never duplicates
    assert len(scheduler.get_jobs()) == 2
    request_cleanup(wait=False)


# ------------------------------------------------------------------------------------------------- health


@pytest.fixture
def sqlite_sessions(tmp_path):
    url = f"sqlite:///{tmp_path / 'health.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def check_health(sessions) -> None:
    with sessions() as session:
        record_health(session, name="markets", kind="rss", ok=True, error=None, items=3, now=NOW)
        session.commit()
    later = NOW + timedelta(minutes=5)
    with sessions() as session:
        record_health(session, name="markets", kind="rss", ok=False, error="x: HTTP 500", items=0, now=later)
        record_health(session, name="reuters", kind="file", ok=True, error=None, items=50, now=later)
        session.commit()
    with sessions() as session:
        record_health(session, name="markets", kind="rss", ok=True, error=None, items=2, now=later + timedelta(1))
        session.commit()
    with sessions() as session:
        rows = {s.name: s for s in session.scalars(sa.select(Source))}
    markets = rows["markets"]
    assert (markets.kind, markets.items_seen) == ("rss", 5)
    assert markets.last_success_at == later + timedelta(1)
    assert markets.last_error_at == later and markets.last_error == "x: HTTP 500"
    assert markets.created_at == NOW
    assert (rows["reuters"].kind, rows["reuters"].items_seen, rows["reuters"].last_error) == ("file", 50, None)


def test_record_health_sqlite(sqlite_sessions):
    check_health(sqlite_sessions)


@pytest.mark.postgres
def test_record_health_postgres(postgres_url):
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        check_health(make_session_factory(engine))
    finally:
        engine.dispose()


def test_poll_results_recorded_as_health(server, sqlite_sessions):
    server.routes["/rss"] = conditional_rss(rss(ITEM_APPLE, ITEM_UNTITLED))
    server.routes["/down"] = fixed(503, b"maintenance")

    def handle(result: PollResult) -> None:
        with sqlite_sessions() as session:
            record_health(
                session,
                name=result.source,
                kind="rss",
                ok=result.status != "error",
                error=result.error,
                items=sum(r.ok for r in result.records),
                now=NOW,
            )
            session.commit()

    for poller in (FeedPoller("up", server.url("/rss")), FeedPoller("down", server.url("/down"))):
        poll_feed(poller, handle, now=NOW)
    with sqlite_sessions() as session:
        rows = {s.name: s for s in session.scalars(sa.select(Source))}
    assert (rows["up"].items_seen, rows["up"].last_success_at, rows["up"].last_error) == (1, NOW, None)
    assert rows["down"].last_error == f"{server.url('/down')}: HTTP 503 Service Unavailable"
    assert rows["down"].last_success_at is None and rows["down"].items_seen == 0
