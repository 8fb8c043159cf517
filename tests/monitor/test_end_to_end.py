"""Scored articles in → a signed webhook on a real HTTP server → a resolved notification later; a restarted monitor
sends nothing twice; a receiver that is down blocks nothing and loses nothing."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.db import make_session_factory
from core.messages import Envelope
from monitor.alerts import run_evaluation
from monitor.notify import SIGNATURE_HEADER, deliver_pending, verify
from monitor.rules import MonitorConfig, receivers_of
from scoring.pipeline import Pipeline
from scoring.processor import BatchProcessor

T = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
SECRET = "s3cret-for-tests"


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict, bytes]] = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Receiver.status == 200:
            Receiver.received.append((dict(self.headers), body))
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    Receiver.received, Receiver.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def headlines(ticker_name: str, minutes: list[int]) -> list[Envelope]:
    titles = [
        f"{ticker_name} shares plunge after profit warning",
        f"{ticker_name} cuts outlook as sales slump",
        f"{ticker_name} stock tumbles on weak demand and layoffs",
        f"{ticker_name} faces lawsuit over losses, shares fall",
    ]
    return [
        Envelope(
            value=json.dumps(
                {"source": "wire", "title": t, "published_at": (T - timedelta(minutes=m)).isoformat()}
            ).encode(),
            origin=f"e2e:{ticker_name}:{i}",
        )
        for i, (t, m) in enumerate(zip(titles, minutes, strict=False))
    ]


def test_scored_news_to_signed_webhook_and_resolution(migrated_engine, scorer_default, webhook, monkeypatch):
    monkeypatch.setenv("FINSENT_TEST_HOOK_KEY", SECRET)
    factory = make_session_factory(migrated_engine)
    processor = BatchProcessor(session_factory=factory, scorer=scorer_default, pipeline=Pipeline())
    report = processor.process(headlines("Apple", [40, 30, 20, 10]), now=T)
    assert report.stored == 4
    config = MonitorConfig.model_validate(
        {
            "rule": [{"name": "neg-burst", "type": "negative_burst", "window": "1h", "min_stories": 3,
                      "min_confidence": 0.7, "for": "5m", "annotations": {"summary": "{ticker}: {value} bad stories"}}],
            "receiver": [{"name": "desk", "kind": "webhook", "url": webhook, "secret_env": "FINSENT_TEST_HOOK_KEY"}],
            "route_receivers": ["desk"],
        }
    )  # fmt: skip
    receivers = receivers_of(config)

    def tick(now):
        run_evaluation(session_factory=factory, config=config, now=now, version=scorer_default.version)
        return deliver_pending(session_factory=factory, receivers=receivers, now=now)

    tick(T)  # pending
    assert Receiver.received == []
    tick(T + timedelta(minutes=5))  # fired after `for`
    ((headers, body),) = Receiver.received
    sent_at = int((T + timedelta(minutes=5)).timestamp())  # the signature carries the delivery time
    assert verify(SECRET.encode(), headers[SIGNATURE_HEADER], body, now=sent_at)
    assert not verify(SECRET.encode(), headers[SIGNATURE_HEADER], body, now=sent_at + 3600)  # a replay an hour later
    payload = json.loads(body)
    assert payload["status"] == "firing" and payload["groupLabels"] == {"ticker": "AAPL"}
    alert = payload["alerts"][0]
    assert alert["annotations"]["summary"].startswith("AAPL: ") and len(alert["evidence"]) >= 3
    assert all(e["words"] for e in alert["evidence"])  # the words that drove each score

    # A restarted monitor (new config objects, same database) at the same moment sends nothing again.
    config = MonitorConfig.model_validate(config.model_dump(by_alias=True))
    tick(T + timedelta(minutes=5))
    tick(T + timedelta(minutes=6))
    assert len(Receiver.received) == 1

    # The receiver goes down while the stories age out: the resolved notification waits, then arrives once.
    Receiver.status = 503
    outcome = tick(T + timedelta(hours=2))
    assert outcome.failed == 1 and Receiver.received[1:] == []
    Receiver.status = 200
    tick(T + timedelta(hours=2, minutes=1))  # the backoff (1 s) is over: delivered now
    assert [json.loads(b)["status"] for _, b in Receiver.received] == ["firing", "resolved"]
    tick(T + timedelta(hours=3))
    tick(T + timedelta(hours=4))
    assert len(Receiver.received) == 2
