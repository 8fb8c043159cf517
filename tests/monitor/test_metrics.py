"""Monitor and feed-server metrics: the feed's own /metrics (behind the token), the monitor's gauges and counters
after real evaluation and delivery jobs, and `finsent monitor --metrics-port` scraped while it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core.db import make_session_factory, upgrade
from core.schema import Alert, Notification
from monitor.feed import make_server
from monitor.metrics import MonitorMetrics
from monitor.rules import load_config, receivers_of
from monitor.scheduler import delivery_job, evaluation_job
from tests.support.broker import free_port
from tests.support.metrics import scrape, served_registry

REPO = Path(__file__).resolve().parent.parent.parent
TOKEN = "metrics-token-for-tests"
T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def feed_server(migrated_engine):
    registry = CollectorRegistry()
    server = make_server(session_factory=make_session_factory(migrated_engine), port=0, token=TOKEN, registry=registry)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_feed_metrics_need_the_token_and_count_requests_by_path_and_status(feed_server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=feed_server, timeout=10) as client:
        assert client.get("/healthz").status_code == 200  # no token needed, and counted
        assert client.get("/alerts.json").status_code == 401
        assert client.get("/alerts.json", headers=auth).status_code == 200
        assert client.get("/alerts.json?limit=0", headers=auth).status_code == 400
        assert client.get("/wp-admin/%0d%0aforged", headers=auth).status_code == 404
        denied = client.get("/metrics")
        assert denied.status_code == 401 and "finsent_" not in denied.text  # alert counts are not for everyone
        scraped = client.get("/metrics", headers=auth)
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        openmetrics = client.get("/metrics", headers=auth | {"Accept": "application/openmetrics-text"})
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")
    got = parse(scraped.text)
    assert value(got, "finsent_feed_requests_total", path="/healthz", status="200") == 1
    assert value(got, "finsent_feed_requests_total", path="/alerts.json", status="401") == 1
    assert value(got, "finsent_feed_requests_total", path="/alerts.json", status="200") == 1
    assert value(got, "finsent_feed_requests_total", path="/alerts.json", status="400") == 1
    assert value(got, "finsent_feed_requests_total", path="other", status="404") == 1  # no label per unknown path
    assert value(got, "finsent_feed_requests_total", path="/metrics", status="401") == 1
    assert value(got, "finsent_feed_request_seconds_count", path="/alerts.json") == 3
    paths = {dict(labels).get("path") for (name, labels) in got if name == "finsent_feed_requests_total"}
    assert paths <= {"/healthz", "/alerts.json", "/alerts.atom", "/alerts.schema.json", "/metrics", "other"}


def add_alert(session, status: str, **extra) -> Alert:
    alert = Alert(
        fingerprint=f"fp-{status}-{extra.get('replayed', False)}"[:16],
        rule="negative_burst",
        severity="warning",
        ticker="AAPL",
        labels=json.dumps({"alertname": "negative_burst", "ticker": "AAPL"}),
        annotations=json.dumps({"summary": "AAPL"}),
        status=status,
        active_at=T,
        updated_at=T,
        **extra,
    )
    session.add(alert)
    session.flush()
    return alert


def test_monitor_jobs_export_alerts_by_state_the_outbox_and_their_timings(migrated_engine, tmp_path):
    sessions = make_session_factory(migrated_engine)
    with sessions.begin() as session:
        firing = add_alert(session, "firing", starts_at=T)
        add_alert(session, "pending")
        add_alert(session, "resolved", starts_at=T, ends_at=T)
        add_alert(session, "firing", starts_at=T, replayed=True)  # history: not a live alert
        due = T - timedelta(minutes=1)
        for i, (receiver, error) in enumerate([("desk", None), ("desk", "HTTP 500"), ("gone", None)]):
            session.add(
                Notification(
                    alert_id=firing.id,
                    receiver=receiver,
                    kind="firing",
                    sequence=i,
                    payload="{}",
                    next_attempt_at=due,
                    last_error=error,
                )
            )
        session.add(
            Notification(
                alert_id=firing.id, receiver="desk", kind="resolved", payload="{}", next_attempt_at=due, sent_at=due
            )
        )
    config_path = tmp_path / "monitor.toml"
    config_path.write_text('route_receivers = ["desk"]\n[[receiver]]\nname = "desk"\nkind = "log"\n')
    config = load_config(config_path)
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    delivery_job(session_factory=sessions, receivers={}, now=T, metrics=metrics)  # nothing deliverable yet
    assert [sample("finsent_alerts", state=s) for s in ("pending", "firing", "resolved")] == [1, 1, 1]
    assert sample("finsent_notifications_pending", receiver="desk") == 2
    assert sample("finsent_notifications_pending", receiver="gone") == 1
    assert sample("finsent_notifications_failed", receiver="desk") == 1
    assert sample("finsent_notifications_sent_total") == 0

    report = delivery_job(session_factory=sessions, receivers=receivers_of(config), now=T, metrics=metrics)
    assert report.sent == 2  # the log receiver takes both of desk's rows; "gone" is not configured
    assert sample("finsent_notifications_sent_total") == 2
    assert sample("finsent_notifications_pending", receiver="desk") is None  # the series goes with the rows
    assert sample("finsent_notifications_failed", receiver="desk") is None
    assert sample("finsent_notifications_pending", receiver="gone") == 1

    # No rule finds anything any more: both live alerts resolve, and the evaluation is timed and counted.
    evaluation_job(session_factory=sessions, config=config, version="test-model", now=T + timedelta(minutes=1),
                   metrics=metrics)  # fmt: skip
    assert sample("finsent_rule_evaluation_seconds_count") == 1
    assert sample("finsent_rule_evaluation_seconds_sum") > 0
    assert [sample("finsent_alerts", state=s) for s in ("pending", "firing", "resolved")] == [0, 0, 3]
    assert sample("finsent_alert_transitions_total", event="resolved") == 2


def test_finsent_monitor_serves_metrics_while_it_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    upgrade(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env |= {"FINSENT_DATABASE_URL": url, "FINSENT_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "monitor",
            "--config",
            str(REPO / "monitor.example.toml"),
            "--evaluate-every",
            "0.5",
            "--deliver-every",
            "0.5",
            "--metrics-port",
            str(port),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        got: dict = {}
        while not (value(got, "finsent_rule_evaluation_seconds_count") or 0) >= 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no evaluation recorded in 60 s"
            time.sleep(0.3)
            try:
                got = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
            except httpx.TransportError:
                continue
        assert value(got, "finsent_alerts", state="firing") == 0
        assert value(got, "process_resident_memory_bytes") > 0  # the default process collectors come along
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines()]  # --log-format via FINSENT_LOG_FORMAT: JSON, every line
    assert any(r["logger"] == "cli.metrics" and f":{port}/metrics" in r["message"] for r in lines)
    # The scheduler's INFO chatter ("Added job", "Running job") stays out at INFO; its warnings would not.
    assert not [r for r in lines if r["logger"].startswith("apscheduler") and r["level"] == "INFO"]


def test_monitor_gauges_replace_what_they_said_before():
    with served_registry() as (registry, url):
        metrics = MonitorMetrics(registry)
        metrics.set_state({"firing": 2, "pending": 1}, {"desk": 3, "slack": 1}, {"desk": 2})
        got = scrape(url)
        assert [value(got, "finsent_alerts", state=s) for s in ("pending", "firing", "resolved")] == [1, 2, 0]
        assert value(got, "finsent_notifications_pending", receiver="desk") == 3
        assert value(got, "finsent_notifications_failed", receiver="desk") == 2
        metrics.set_state({"resolved": 3}, {}, {})
        got = scrape(url)
        assert [value(got, "finsent_alerts", state=s) for s in ("pending", "firing", "resolved")] == [0, 0, 3]
        assert value(got, "finsent_notifications_pending", receiver="desk") is None  # delivered: the series is gone
