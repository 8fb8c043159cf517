"""The scoring worker's metrics: the real worker and BatchReport through the on_batch hook, and `finsent run
--metrics-port` scraped over HTTP while it replays the bundled sample."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core.db import make_session_factory, upgrade
from core.transport import MemoryBroker, MemoryTransport
from scoring.metrics import WorkerMetrics, batch_hook
from scoring.pipeline import Pipeline
from scoring.processor import BatchProcessor
from scoring.worker import ScoringWorker
from tests.support.broker import free_port

REPO = Path(__file__).resolve().parent.parent.parent


def msg(title: str, **extra) -> bytes:
    return json.dumps({"source": "wire", "title": title, **extra}).encode()


def test_the_worker_hook_records_every_batch(migrated_engine, scorer_default):
    registry = CollectorRegistry()
    broker = MemoryBroker(default_partitions=2)
    producer = MemoryTransport(broker)
    producer.ensure_topics(["news.raw", "news.dlq"], partitions=2)
    for title in ("Nokia shares plunge after profit warning", "Apple beats estimates", "Tesla recalls cars"):
        producer.publish("news.raw", title.encode(), msg(title, published_at="2026-11-24T10:00:00Z"))
    producer.publish("news.raw", b"k", msg("Nokia shares plunge after profit warning"))  # a duplicate
    producer.publish("news.raw", b"k", b"{not json")
    producer.publish("news.raw", b"k", json.dumps({"source": "wire"}).encode())  # no title
    processor = BatchProcessor(
        session_factory=make_session_factory(migrated_engine), scorer=scorer_default, pipeline=Pipeline()
    )
    consumer = MemoryTransport(broker)
    worker = ScoringWorker(
        transport=consumer, processor=processor, on_batch=batch_hook(WorkerMetrics(registry), transport=consumer)
    )
    while worker.step() is not None:
        pass

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("finsent_items_received_total") == 6
    assert sample("finsent_items_stored_total") == 3
    assert sample("finsent_items_duplicate_total") == 1
    assert sample("finsent_items_rejected_total") == 2
    assert sample("finsent_rejects_total", stage="decode", reason="malformed JSON at line N column N") == 1
    assert sample("finsent_rejects_total", stage="decode", reason="title") == 1
    assert sample("finsent_batch_size_sum") == 6 and sample("finsent_batch_size_count") == worker.stats.batches
    assert sample("finsent_batch_seconds_count") == worker.stats.batches
    assert 0 < sample("finsent_batch_seconds_sum") < 120
    assert sample("finsent_latency_seconds_count") == 3  # each stored item had a publish time on the topic
    assert sample("finsent_consumer_lag", topic="news.raw", partition="0") == 0
    assert sample("finsent_consumer_lag", topic="news.raw", partition="1") == 0


def test_finsent_run_serves_worker_metrics_while_it_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'run.db'}"
    upgrade(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env |= {"FINSENT_DATABASE_URL": url, "FINSENT_METRICS_PORT": str(port)}  # the setting, not the option
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "--log-format",
            "json",
            "run",
            "--replay",
            str(REPO / "ingest" / "samples" / "news_sample.csv"),
            "--limit",
            "60",
            "--speed",
            "1000000",
            "--max-gap",
            "0.01",
            "--device",
            "cpu",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples: dict = {}
    try:
        deadline = time.monotonic() + 240
        while (samples.get("finsent_items_received_total") or 0) < 60:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"metrics never showed 60 items: {samples}"
            time.sleep(0.5)
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.TransportError:
                continue
            samples = {
                s.name: s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if not s.labels  # the totals; histogram _sum and _count carry no labels either
            }
        # Liveness and readiness on the same port: the database answers and the worker is polling.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text == "ok\n"
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json() == {
            "ready": True,
            "checks": {"database": "ok", "worker": "ok"},
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    stored, duplicates = samples["finsent_items_stored_total"], samples["finsent_items_duplicate_total"]
    rejected = samples["finsent_items_rejected_total"]
    assert stored > 0 and stored + duplicates + rejected == 60
    assert samples["finsent_batch_size_count"] >= 1 and samples["finsent_batch_size_sum"] == 60
    assert f"stored {int(stored)}" in out  # the run's own status line agrees with what was scraped
    assert all(json.loads(line) for line in err.splitlines())  # --log-format json: every line on stderr is JSON
