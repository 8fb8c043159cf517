"""Outbox delivery against a real HTTP receiver on 127.0.0.1, a migrated database and the tansu broker."""

from __future__ import annotations

import json
import logging
import re
import socket
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

import monitor.notify
from core.db import make_engine, make_session_factory, upgrade
from core.schema import Alert, Notification
from monitor.notify import (
    NOTIFICATION_ID_HEADER,
    SIGNATURE_HEADER,
    DeliveryReport,
    Receiver,
    deliver_pending,
    sign,
    slack_body,
    verify,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
SECRET = "s3cret-for-tests"
HOSTILE = "Apple <!channel> shares plunge <script>alert(1)</script> & <http://evil.example|click> <@U123>"


# ------------------------------------------------------------------------------------------ a real HTTP receiver


class Recorder:
    """A webhook receiver on 127.0.0.1 that records every request and answers as told (`status`, `hang`)."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.hang = False
        self.delay_s = 0.0
        self.release = threading.Event()  # lets a hanging handler go at teardown
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body, "at": time.monotonic()}
                )
                if recorder.hang:
                    recorder.release.wait(10)
                    return
                time.sleep(recorder.delay_s)
                self.send_response(recorder.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def free_port() -> int:
    """A port with nothing listening on it (a receiver that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------ outbox rows


def payload(*, title: str = HOSTILE, status: str = "firing") -> dict:
    return {
        "version": "4",
        "status": status,
        "receiver": "desk",
        "groupKey": '{}:{ticker="AAPL"}',
        "groupLabels": {"ticker": "AAPL"},
        "commonLabels": {"alertname": "negative_burst", "ticker": "AAPL", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "negative_burst", "ticker": "AAPL", "severity": "warning"},
                "annotations": {"summary": "AAPL news turned negative <!here>", "description": "Société Générale"},
                "startsAt": "2026-11-24T10:00:00+00:00",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "3f2a9c0d11223344",
                "generatorURL": "",
                "evidence": [
                    {
                        "article_id": 12,
                        "title": title,
                        "source": "wire",
                        "published_at": "2026-11-24T09:58:00+00:00",
                        "label": "negative",
                        "score": -0.91,
                        "words": [["plunge", 0.41], ["<!channel>", 0.2], ["shares", 0.12]],
                    }
                ],
            }
        ],
    }


@pytest.fixture
def sessions(migrated_engine):
    return make_session_factory(migrated_engine)


def add_alert(session) -> int:
    alert = Alert(
        fingerprint="3f2a9c0d11223344",
        rule="negative_burst",
        severity="warning",
        ticker="AAPL",
        labels=json.dumps({"alertname": "negative_burst", "ticker": "AAPL", "severity": "warning"}),
        annotations=json.dumps({"summary": "AAPL news turned negative"}),
        status="firing",
        active_at=NOW,
        starts_at=NOW,
        updated_at=NOW,
    )
    session.add(alert)
    session.flush()
    return alert.id


def add_notifications(sessions, receivers: list[str], *, text: str | None = None) -> list[int]:
    """One outbox row per receiver name, due at NOW; `text` is the stored payload (default: a pretty-printed one)."""
    with sessions.begin() as session:
        alert_id = add_alert(session)
        rows = [
            Notification(
                alert_id=alert_id,
                receiver=name,
                kind="firing",
                sequence=i,
                # Indented and not ASCII-escaped: the bytes sent must be these, not a re-serialisation.
                payload=text if text is not None else json.dumps(payload(), indent=2, ensure_ascii=False),
                created_at=NOW,
                next_attempt_at=NOW,
            )
            for i, name in enumerate(receivers)
        ]
        session.add_all(rows)
        session.flush()
        return [r.id for r in rows]


def row(sessions, notification_id: int) -> Notification:
    with sessions() as session:
        return session.get(Notification, notification_id)


# ----------------------------------------------------------------------------------------------- signatures


def test_signature_verifies_and_rejects_tampering_wrong_secret_and_replays():
    body = b'{"status": "firing"}'
    header = sign(b"k1", body, 1_790_000_000)
    assert re.fullmatch(r"t=1790000000,v1=[0-9a-f]{64}", header)

    assert verify(b"k1", header, body, now=1_790_000_000)
    assert verify(b"k1", header, body, now=1_790_000_300)  # at the edge of the tolerance
    assert not verify(b"k1", header, body + b" ", now=1_790_000_000)  # tampered body
    assert not verify(b"k2", header, body, now=1_790_000_000)  # wrong secret
    assert not verify(b"k1", header, body, now=1_790_000_301)  # too old: a replay
    assert not verify(b"k1", header, body, now=1_789_999_000)  # from the future
    assert verify(b"k1", header, body, now=1_790_000_500, tolerance_s=600)
    # Re-stamping an old signature with a fresh timestamp does not work: the timestamp is signed too.
    restamped = header.replace("t=1790000000", "t=1790001000")
    assert not verify(b"k1", restamped, body, now=1_790_001_000)
    for broken in ("", "garbage", "t=abc,v1=00", "v1=" + "0" * 64, "t=1790000000", "t=1790000000,v1=ü"):
        assert not verify(b"k1", broken, body, now=1_790_000_000)
    # Secret rotation: a header may carry several v1 values.
    rotated = f"{header},v1={sign(b'k2', body, 1_790_000_000).split('v1=')[1]}"
    assert verify(b"k2", rotated, body, now=1_790_000_000) and verify(b"k1", rotated, body, now=1_790_000_000)


def test_the_documented_verification_snippet_works():
    doc = monitor.notify.__doc__
    start = doc.index("::\n") + 3
    block = textwrap.dedent(doc[start:]).split("\n# e.g.")[0]
    namespace: dict = {}
    exec(compile(block, "notify docstring", "exec"), namespace)
    verify_finsent = namespace["verify_finsent"]

    body = json.dumps(payload()).encode()
    header = sign(b"k", body, int(time.time()))
    assert verify_finsent(b"k", header, body)
    assert not verify_finsent(b"k", header, body.replace(b"firing", b"resolved"))
    assert not verify_finsent(b"other", header, body)
    assert not verify_finsent(b"k", sign(b"k", body, int(time.time()) - 3600), body)


def _manual_snippet() -> str:
    manual = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    start = manual.index("  import hashlib\n  import hmac\n  import time\n")
    return textwrap.dedent(manual[start : manual.index("```", start)])


def test_the_manual_verification_snippet_is_the_docstring_one_and_refuses_replays():
    snippet = _manual_snippet()
    doc = monitor.notify.__doc__
    docstring = textwrap.dedent(doc[doc.index("::\n") + 3 :]).split("\n# e.g.")[0]
    assert snippet.strip() == docstring.strip()  # one snippet, documented twice: they cannot drift apart

    namespace: dict = {}
    exec(compile(snippet, "docs/alerts.md", "exec"), namespace)
    verify_finsent = namespace["verify_finsent"]
    body = json.dumps(payload()).encode()
    now = int(time.time())
    assert verify_finsent(b"k", sign(b"k", body, now), body)  # fresh
    assert verify_finsent(b"k", sign(b"k", body, now - 240), body)  # within the 300 s tolerance
    assert not verify_finsent(b"k", sign(b"k", body, now), body + b" ")  # tampered body
    assert not verify_finsent(b"wrong", sign(b"k", body, now), body)  # wrong secret
    assert not verify_finsent(b"k", sign(b"k", body, now - 360), body)  # a replay older than the tolerance
    assert not verify_finsent(b"k", sign(b"k", body, now + 360), body)  # from the future (a skewed clock)
    assert verify_finsent(b"k", sign(b"k", body, now - 360), body, tolerance_s=600)
    for broken in ("", "t=,v1=", f"t={now}", f"t={now},v1=\u00fc", "v1=" + "0" * 64):
        assert not verify_finsent(b"k", broken, body)  # refused, never an exception


# ------------------------------------------------------------------------------------------------ receivers


def test_receiver_validation_names_the_field_and_keeps_secrets_out():
    with pytest.raises(ValidationError) as err:
        Receiver(name="desk", kind="webhook")
    assert err.value.errors()[0]["loc"] == ("url",)
    with pytest.raises(ValidationError) as err:
        Receiver(name="desk", kind="slack", url="ftp://example.com/hook")
    assert err.value.errors()[0]["loc"] == ("url",)
    with pytest.raises(ValidationError) as err:
        Receiver(name="desk", kind="pager")
    assert err.value.errors()[0]["loc"] == ("kind",)
    with pytest.raises(ValidationError) as err:
        Receiver(name="desk", kind="webhook", url="https://h.example/x", timeout_s=0)
    assert err.value.errors()[0]["loc"] == ("timeout_s",)
    # Someone pastes the secret itself instead of a variable name: refused, and the value is not echoed.
    with pytest.raises(ValidationError) as err:
        Receiver(name="desk", kind="webhook", url="https://h.example/x", secret_env="hunter2 is my secret!")
    assert err.value.errors()[0]["loc"] == ("secret_env",)
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValidationError, match="webhook receivers only") as err:
        Receiver(name="chat", kind="slack", url="https://hooks.slack.com/x", secret_env="CHAT_SECRET")
    assert err.value.errors()[0]["loc"] == ("secret_env",)

    Receiver(name="k", kind="kafka")  # no url needed
    Receiver(name="l", kind="log")
    slack = Receiver(name="s", kind="slack", url="https://hooks.slack.com/services/T0/B0/TOKENTOKEN")
    assert "TOKENTOKEN" not in repr(slack) and "TOKENTOKEN" not in slack.where()
    assert slack.where() == "https://hooks.slack.com"


def test_slack_body_escapes_control_sequences_in_news_text():
    body = slack_body(payload())
    every_text = [body["text"]] + [
        piece for block in body["blocks"] for piece in _texts(block)
    ]  # every mrkdwn string Slack will render
    joined = "\n".join(every_text)
    for raw in ("<!channel>", "<!here>", "<script>", "<http://evil.example|click>", "<@U123>"):
        assert raw not in joined
    assert "&lt;!channel&gt;" in joined and "&lt;script&gt;alert(1)&lt;/script&gt;" in joined
    assert "&amp; &lt;http://evil.example|click&gt;" in joined
    assert "[FIRING] negative_burst AAPL" in body["text"]
    assert "plunge" in joined and "shares" in joined  # the top words
    assert "Société Générale" in joined
    json.dumps(body)  # serialisable as is

    resolved = slack_body(payload(status="resolved"))
    assert resolved["text"].startswith(":white_check_mark: [RESOLVED]")
    assert slack_body({})["blocks"]  # a malformed payload still makes a message


def _texts(block: dict) -> list[str]:
    if block["type"] == "section":
        return [block["text"]["text"]]
    return [element["text"] for element in block["elements"]]


# ------------------------------------------------------------------------------------------------- delivery


def test_webhook_gets_the_stored_bytes_signed_and_only_once(sessions, recorder, monkeypatch):
    monkeypatch.setenv("FINSENT_TEST_HOOK_SECRET", SECRET)
    (nid,) = add_notifications(sessions, ["desk"])
    receivers = {
        "desk": Receiver(
            name="desk",
            kind="webhook",
            url=f"http://127.0.0.1:{recorder.port}/hook",
            secret_env="FINSENT_TEST_HOOK_SECRET",
        )
    }

    report = deliver_pending(session_factory=sessions, receivers=receivers, now=NOW)

    assert report == DeliveryReport(sent=1, failed=0, skipped_unknown_receiver=0)
    (request,) = recorder.requests
    stored = row(sessions, nid)
    assert request["body"] == stored.payload.encode("utf-8")  # byte for byte, indentation and all
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"][NOTIFICATION_ID_HEADER] == str(nid)
    signature = request["headers"][SIGNATURE_HEADER]
    assert verify(SECRET.encode(), signature, request["body"], now=int(NOW.timestamp()))
    assert not verify(b"wrong", signature, request["body"], now=int(NOW.timestamp()))
    assert stored.sent_at == NOW and stored.attempts == 1 and stored.last_error is None

    # Sent rows are never picked again, however often the deliverer runs.
    for later in (NOW, NOW + timedelta(hours=1)):
        assert deliver_pending(session_factory=sessions, receivers=receivers, now=later) == DeliveryReport()
    assert len(recorder.requests) == 1


def test_receiver_down_is_retried_with_backoff_and_delivered_once_it_is_back(sessions, caplog):
    caplog.set_level(logging.INFO, logger="monitor.notify")
    port = free_port()
    (nid,) = add_notifications(sessions, ["desk"])
    # The path and query carry a token: it must not show up in last_error or the log.
    url = f"http://127.0.0.1:{port}/hooks/PATHTOKEN?key=QUERYTOKEN"
    receivers = {"desk": Receiver(name="desk", kind="webhook", url=url, max_backoff_s=3)}

    def run(at: datetime) -> DeliveryReport:
        return deliver_pending(session_factory=sessions, receivers=receivers, now=at)

    # Down (connection refused): recorded, not raised, not lost.
    assert run(NOW) == DeliveryReport(sent=0, failed=1)
    r = row(sessions, nid)
    assert (r.attempts, r.sent_at, r.next_attempt_at) == (1, None, NOW + timedelta(seconds=1))
    assert "ConnectError" in r.last_error and f"http://127.0.0.1:{port}" in r.last_error and "\n" not in r.last_error
    assert run(NOW + timedelta(seconds=0.5)) == DeliveryReport()  # not due yet: nothing tried

    assert run(NOW + timedelta(seconds=1)).failed == 1
    r = row(sessions, nid)
    assert (r.attempts, r.next_attempt_at) == (2, NOW + timedelta(seconds=3))  # 1 s after the attempt at 1 s: 2 s

    # Back, but answering 500.
    back = Recorder(port)
    try:
        back.status = 500
        assert run(NOW + timedelta(seconds=3)).failed == 1
        r = row(sessions, nid)
        # 4 s by the doubling, capped by max_backoff_s
        assert (r.attempts, r.next_attempt_at, r.last_error) == (
            3,
            NOW + timedelta(seconds=6),
            f"HTTP 500 from http://127.0.0.1:{port}",
        )

        back.status = 204
        assert run(NOW + timedelta(seconds=6)) == DeliveryReport(sent=1)
        r = row(sessions, nid)
        assert (r.attempts, r.sent_at, r.last_error) == (4, NOW + timedelta(seconds=6), None)
        assert [q["headers"][NOTIFICATION_ID_HEADER] for q in back.requests] == [str(nid)] * 2  # the 500, the 204
        assert run(NOW + timedelta(minutes=5)) == DeliveryReport()  # never twice
        assert len(back.requests) == 2
    finally:
        back.close()

    log_text = "\n".join(record.getMessage() for record in caplog.records)
    assert "PATHTOKEN" not in log_text and "QUERYTOKEN" not in log_text
    assert f"notification {nid} receiver=desk kind=firing attempt=1: failed" in log_text
    assert f"notification {nid} receiver=desk kind=firing attempt=4: sent (HTTP 204)" in log_text


def test_hanging_receiver_times_out_and_does_not_hold_up_the_others(sessions, recorder):
    other = Recorder()
    try:
        recorder.hang = True
        first, second, third = add_notifications(sessions, ["slow", "slow", "fine"])
        receivers = {
            "slow": Receiver(name="slow", kind="webhook", url=f"http://127.0.0.1:{recorder.port}/", timeout_s=0.3),
            "fine": Receiver(name="fine", kind="webhook", url=f"http://127.0.0.1:{other.port}/"),
        }
        report = deliver_pending(session_factory=sessions, receivers=receivers, now=NOW)

        # The first row timed out; the second waits for the next run rather than another timeout in this one.
        assert report == DeliveryReport(sent=1, failed=1, deferred=1)
        assert len(recorder.requests) == 1 and len(other.requests) == 1
        assert "timeout after 0.3 s" in row(sessions, first).last_error
        assert row(sessions, second).attempts == 0 and row(sessions, second).sent_at is None
        assert row(sessions, third).sent_at == NOW

        recorder.hang = False
        recorder.release.set()
        report = deliver_pending(session_factory=sessions, receivers=receivers, now=NOW + timedelta(seconds=1))
        assert report == DeliveryReport(sent=2)
        assert len(other.requests) == 1
    finally:
        other.close()


def test_unknown_receivers_bad_payloads_and_missing_secrets_never_raise(sessions, recorder, caplog):
    caplog.set_level(logging.WARNING, logger="monitor.notify")
    unknown_a, unknown_b, signed, known = add_notifications(sessions, ["gone", "gone", "signed", "desk"])
    (broken,) = add_notifications(sessions, ["chat"], text="{not json")
    url = f"http://127.0.0.1:{recorder.port}/"
    receivers = {
        "desk": Receiver(name="desk", kind="webhook", url=url),
        "signed": Receiver(name="signed", kind="webhook", url=url, secret_env="FINSENT_TEST_UNSET_SECRET"),
        "chat": Receiver(name="chat", kind="slack", url=url),
    }

    report = deliver_pending(session_factory=sessions, receivers=receivers, now=NOW)

    assert report == DeliveryReport(sent=1, failed=2, skipped_unknown_receiver=2)
    assert [q["headers"][NOTIFICATION_ID_HEADER] for q in recorder.requests] == [str(known)]  # nothing unsigned
    for nid in (unknown_a, unknown_b):
        r = row(sessions, nid)
        assert (r.attempts, r.sent_at, r.next_attempt_at, r.last_error) == (0, None, NOW, None)
    assert "FINSENT_TEST_UNSET_SECRET" in row(sessions, signed).last_error
    assert "not valid JSON" in row(sessions, broken).last_error
    warnings = [r.getMessage() for r in caplog.records if "not configured" in r.getMessage()]
    assert warnings == ["2 due notification(s) for receivers that are not configured, left pending: 'gone' (2)"]


def test_slack_receiver_gets_an_escaped_message(sessions, recorder):
    add_notifications(sessions, ["chat"])
    receivers = {"chat": Receiver(name="chat", kind="slack", url=f"http://127.0.0.1:{recorder.port}/services/x")}
    assert deliver_pending(session_factory=sessions, receivers=receivers, now=NOW).sent == 1
    (request,) = recorder.requests
    message = json.loads(request["body"])
    assert message == slack_body(payload())
    assert b"<!channel>" not in request["body"] and b"<script>" not in request["body"]


def test_log_receiver_writes_one_line(sessions, caplog):
    caplog.set_level(logging.INFO, logger="monitor.notify")
    (nid,) = add_notifications(sessions, ["ops-log"])
    report = deliver_pending(
        session_factory=sessions, receivers={"ops-log": Receiver(name="ops-log", kind="log")}, now=NOW
    )
    assert report.sent == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT firing")]
    assert len(lines) == 1 and "\n" not in lines[0] and f"notification {nid}" in lines[0]
    assert row(sessions, nid).sent_at == NOW


@pytest.mark.kafka
def test_kafka_receiver_publishes_the_payload(sessions, kafka_bootstrap):
    from kafka import KafkaConsumer, TopicPartition

    from core.transport import KafkaTransport

    topic = f"alerts.{uuid.uuid4().hex[:8]}"
    (nid,) = add_notifications(sessions, ["bus"])
    transport = KafkaTransport(kafka_bootstrap)
    consumer = None
    try:
        transport.ensure_topics([topic], partitions=1)
        receivers = {"bus": Receiver(name="bus", kind="kafka", topic=topic, timeout_s=20)}
        report = deliver_pending(session_factory=sessions, receivers=receivers, now=NOW, transport=transport)
        assert report == DeliveryReport(sent=1)

        # Read the partition directly (no group join: quicker, and nothing to commit).
        consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        messages = []
        deadline = time.monotonic() + 20
        while not messages and time.monotonic() < deadline:
            messages = [m for batch in consumer.poll(timeout_ms=500).values() for m in batch]
        assert len(messages) == 1
        assert messages[0].value == row(sessions, nid).payload.encode("utf-8")
        assert messages[0].key == b"3f2a9c0d11223344"  # the fingerprint: one alert's messages stay in order
        assert row(sessions, nid).sent_at == NOW
    finally:
        if consumer is not None:
            consumer.close()
        transport.close()


def test_kafka_receiver_without_transport_is_a_recorded_failure(sessions):
    (nid,) = add_notifications(sessions, ["bus"])
    report = deliver_pending(session_factory=sessions, receivers={"bus": Receiver(name="bus", kind="kafka")}, now=NOW)
    assert report == DeliveryReport(failed=1)
    assert "no transport" in row(sessions, nid).last_error


@pytest.mark.postgres
def test_two_deliverers_on_postgres_never_send_the_same_row(postgres_url, recorder):
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        sessions = make_session_factory(engine)
        ids = add_notifications(sessions, ["desk"] * 12)
        recorder.delay_s = 0.05  # long enough for the two deliverers to overlap
        receivers = {"desk": Receiver(name="desk", kind="webhook", url=f"http://127.0.0.1:{recorder.port}/")}
        reports: list[DeliveryReport] = []

        def work() -> None:
            reports.append(deliver_pending(session_factory=sessions, receivers=receivers, now=NOW))

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

        got = sorted(int(q["headers"][NOTIFICATION_ID_HEADER]) for q in recorder.requests)
        assert got == ids  # every row once, none twice
        assert sum(r.sent for r in reports) == 12 and all(r.sent for r in reports)  # both did some of the work
        with sessions() as session:
            assert session.scalar(sa.select(sa.func.count()).where(Notification.sent_at.is_(None))) == 0
    finally:
        engine.dispose()
