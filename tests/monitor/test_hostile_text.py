"""Hostile headlines through the whole path: ingested by the real worker, raised in an alert, then shown by every
renderer of news text: the webhook JSON, the Slack message, the Atom and JSON feeds and the dashboard tables.

The headlines are entity-encoded on the wire (`&lt;script&gt;`), so normalisation stores them as the literal text
`<script>alert(1)</script>`: the worst case for a renderer, which must show that text and never run it.
"""

from __future__ import annotations

import html
import json
import re
import threading
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.db import make_session_factory
from core.messages import Envelope
from dashboard.render import evidence_table, news_table
from monitor.alerts import run_evaluation
from monitor.feed import AlertFilter, atom_feed, json_feed, load_alerts
from monitor.notify import SIGNATURE_HEADER, deliver_pending, verify
from monitor.rules import MonitorConfig, receivers_of
from scoring.pipeline import Pipeline
from scoring.processor import BatchProcessor

T = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
SECRET = "hostile-text-secret"
# What the stored headlines contain (after normalisation decoded the entities), and what must never appear raw.
PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<!channel>",
    "<https://evil.example|click>",
    "<@U123>",
    "AT&T",
]
TITLES = [
    "Apple shares plunge <script>alert(1)</script> after profit warning",
    "Apple cuts outlook as sales slump <img src=x onerror=alert(1)>",
    "<!channel> Apple stock tumbles on weak demand and layoffs",
    "Apple faces lawsuit over losses <https://evil.example|click> <@U123>, shares fall, AT&T too",
]


def wire(title: str) -> str:
    """The headline as a feed would send it: markup as entities."""
    return html.escape(title, quote=False)


class Recorder(BaseHTTPRequestHandler):
    received: dict[str, list[tuple[dict, bytes]]] = {}

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.received.setdefault(self.path, []).append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver_url():
    Recorder.received = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_hostile_headlines_are_inert_in_every_renderer(migrated_engine, scorer_default, receiver_url, monkeypatch):
    monkeypatch.setenv("FINSENT_TEST_HOSTILE_KEY", SECRET)
    factory = make_session_factory(migrated_engine)
    processor = BatchProcessor(session_factory=factory, scorer=scorer_default, pipeline=Pipeline())
    envelopes = [
        Envelope(
            value=json.dumps(
                {"source": "wire", "title": wire(t), "published_at": (T - timedelta(minutes=40 - 10 * i)).isoformat()}
            ).encode(),
            origin=f"hostile-text:{i}",
        )
        for i, t in enumerate(TITLES)
    ]
    report = processor.process(envelopes, now=T)
    assert report.stored == 4

    config = MonitorConfig.model_validate(
        {
            "rule": [{"name": "neg-burst", "type": "negative_burst", "window": "1h", "min_stories": 3,
                      "min_confidence": 0.5, "for": "0s", "annotations": {"summary": "{ticker}: {value} bad stories"}}],
            "receiver": [
                {"name": "hook", "kind": "webhook", "url": f"{receiver_url}/hook",
                 "secret_env": "FINSENT_TEST_HOSTILE_KEY"},
                {"name": "chat", "kind": "slack", "url": f"{receiver_url}/slack"},
            ],
            "route_receivers": ["hook", "chat"],
        }
    )  # fmt: skip
    run_evaluation(session_factory=factory, config=config, now=T, version=scorer_default.version)
    deliver_pending(session_factory=factory, receivers=receivers_of(config), now=T)

    # Webhook: the stored bytes, signed; valid JSON in which each headline is one string value, exactly.
    ((headers, body),) = Recorder.received["/hook"]
    assert verify(SECRET.encode(), headers[SIGNATURE_HEADER], body, now=int(T.timestamp()))
    payload = json.loads(body)
    (alert,) = payload["alerts"]
    assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "fingerprint", "generatorURL",
                          "evidence"}  # fmt: skip
    assert sorted(e["title"] for e in alert["evidence"]) == sorted(TITLES)
    assert all(set(e) <= {"article_id", "title", "source", "published_at", "score", "label", "words", "url"}
               for e in alert["evidence"])  # fmt: skip

    # Slack: no raw <, > anywhere in a rendered string, so no mention, link or markup; & as &amp;.
    ((_, slack_raw),) = Recorder.received["/slack"]
    slack = json.loads(slack_raw)
    texts = [slack["text"]] + [
        piece
        for block in slack["blocks"]
        for piece in ([block["text"]["text"]] if block["type"] == "section" else [e["text"] for e in block["elements"]])
    ]
    shown = "\n".join(texts)
    assert "<" not in shown and ">" not in shown
    for title in TITLES:
        escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in shown

    # Feeds: the Atom document has no element from a headline, and shows each one as text; JSON carries it exactly.
    with factory() as session:
        alerts = load_alerts(session=session, filters=AlertFilter())
    atom = atom_feed(alerts, self_url="http://127.0.0.1/alerts.atom", feed_id="urn:test", now=T)
    root = ET.fromstring(atom)
    tags = {el.tag.rsplit("}", 1)[-1] for el in root.iter()}
    assert tags.isdisjoint({"script", "img", "iframe", "a"}) and b"<script" not in atom and b"<img" not in atom
    strong = [el.text for el in root.iter("{http://www.w3.org/1999/xhtml}strong")]
    assert sorted(strong) == sorted(TITLES)
    assert sorted(e["title"] for a in json.loads(json_feed(alerts, now=T))["alerts"] for e in a["evidence"]) == sorted(
        TITLES
    )

    # Dashboard: the evidence and news tables show the headlines as text, never as markup.
    rows = [dict(e, label="negative") for e in alerts[0]["evidence"]]
    for markup in (evidence_table(rows), news_table(rows)):
        assert all(p not in markup for p in PAYLOADS if "<" in p) and "AT&T" not in markup  # & is &amp;
        visible = html.unescape(re.sub(r"<[^>]+>", "", markup))
        assert all(title in visible for title in TITLES)
