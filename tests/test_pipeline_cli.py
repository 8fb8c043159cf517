"""The pipeline commands driven as a user drives them: `finsent run`, `backfill`, `rescore`, `score`, `ingest`."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "ingest" / "samples" / "news_sample.csv"


def finsent(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, **(env or {})},
        cwd=REPO,
    )


def table_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        out = {t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in ("articles", "scores", "rejects")}
    engine.dispose()
    return out


@pytest.fixture
def small_sample(tmp_path) -> Path:
    path = tmp_path / "sample.csv"
    with open(SAMPLE, encoding="utf-8") as fh:
        path.write_text("".join(itertools.islice(fh, 41)), encoding="utf-8")
    with open(path, "ab") as fh:
        fh.write(b'2020-01-01T00:00:00Z,"caf\xe9 headline",,,,,,bad-1,\n')  # invalid UTF-8: a reject, not a crash
    return path


def test_bundled_sample_is_real_and_sorted():
    import csv

    with open(SAMPLE, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 3000
    assert [r["published_at"] for r in rows] == sorted(r["published_at"] for r in rows)
    assert sum(bool(r["ticker"]) for r in rows) >= 2000 and {r["source"] for r in rows} == {"Benzinga", "CNBC"}


def test_run_replays_a_file_through_the_embedded_pipeline(small_sample, tmp_path):
    url = f"sqlite:///{tmp_path / 'run.db'}"
    out = finsent("run", "--replay", str(small_sample), "--speed", "1e9", "--exit-when-done", "--database-url", url)
    assert out.returncode == 0, out.stderr
    assert "replay finished: 40 published, 1 unreadable rows" in out.stdout
    counts = table_counts(url)
    assert counts["articles"] == counts["scores"] > 30 and counts["rejects"] == 1
    assert f"stored {counts['articles']}" in out.stdout.splitlines()[-1]
    engine = sa.create_engine(url)
    with engine.connect() as c:  # re-timed to the replay, the original time kept by the message, tickers linked
        assert c.execute(sa.text("SELECT min(published_at) FROM articles")).scalar() > "2026"
        assert c.execute(sa.text("SELECT count(DISTINCT ticker) FROM mentions")).scalar() >= 1
    engine.dispose()


def test_run_replays_a_slice_with_the_monitor_on_the_stream_clock_and_no_alert_flaps(tmp_path):
    """The demo's slice (Makefile `run`), faster: the rules see the slice's own times (alerts fire at stream times,
    hours before the run started) and no label set fires more than once."""
    import json
    from collections import Counter
    from datetime import UTC, datetime, timedelta

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    started = datetime.now(UTC)
    out = finsent("run", "--replay", str(SAMPLE), "--since", "2020-05-04", "--until", "2020-05-09", "--speed", "3000",
                  "--max-gap", "0.1", "--exit-when-done", "--monitor", str(REPO / "monitor.example.toml"),
                  "--evaluate-every", "0.5", "--database-url", url)  # fmt: skip
    ended = datetime.now(UTC)
    assert out.returncode == 0, out.stderr
    assert "replay finished: 103 published" in out.stdout
    engine = sa.create_engine(url)
    with engine.connect() as c:
        newest = datetime.fromisoformat(c.execute(sa.text("SELECT max(published_at) FROM articles")).scalar())
        events = c.execute(
            sa.text("SELECT a.labels, e.event, e.at FROM alert_events e JOIN alerts a ON a.id = e.alert_id")
        ).all()
    engine.dispose()
    assert started < newest.replace(tzinfo=UTC) < ended  # the slice's last item landed when the replay started
    fired = Counter(json.dumps(json.loads(labels), sort_keys=True) for labels, event, _ in events if event == "firing")
    assert fired and max(fired.values()) == 1, fired
    earliest = min(datetime.fromisoformat(at).replace(tzinfo=UTC) for _, event, at in events if event == "firing")
    assert earliest < started - timedelta(hours=1)  # evaluated at the stream's time, not the wall clock's


def test_backfill_twice_then_rescore(small_sample, tmp_path, tiny_checkpoint):
    url = f"sqlite:///{tmp_path / 'bf.db'}"
    first = finsent("backfill", str(small_sample), "--batch-size", "16", "--database-url", url)
    assert first.returncode == 0, first.stderr
    assert "rows read 41" in first.stdout and "rejected 1" in first.stdout
    stored = table_counts(url)
    second = finsent("backfill", str(small_sample), "--database-url", url)
    assert second.returncode == 0 and "already backfilled" in second.stdout
    assert table_counts(url) == stored
    window = finsent("backfill", str(small_sample), "--since", "2030-01-01", "--database-url", url)
    assert window.returncode == 0 and "outside the dates 40" in window.stdout and "stored 0" in window.stdout

    again = finsent("rescore", "--model", str(tiny_checkpoint), "--database-url", url)
    assert again.returncode == 0, again.stderr
    assert f"scored {stored['articles']} articles" in again.stdout
    assert table_counts(url)["scores"] == 2 * stored["scores"]  # the old version's scores are kept


def test_clear_errors(tmp_path):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    cases = [
        (("backfill", str(tmp_path / "missing.csv"), "--database-url", url), "no such file"),
        (("backfill", str(SAMPLE), "--since", "yesterday", "--database-url", url), "is not an ISO date"),
        (("rescore", "--model", "no-such-version", "--database-url", url), "no such checkpoint"),
        (("score", "--database-url", url), "FINSENT_TRANSPORT=kafka"),
        (("run", "--replay", str(tmp_path / "nope.csv"), "--database-url", url), "no such file"),
        (("run", "--replay", str(SAMPLE), "--since", "2020-05-09", "--until", "2020-05-04"), "is not before"),
    ]
    for args, text in cases:
        out = finsent(*args)
        assert out.returncode != 0 and text in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr


class _Feed(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_run_with_a_sources_file_polls_a_feed_and_reads_a_file(small_sample, tmp_path):
    _Feed.body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
      <item><title>Apple shares fall after iPhone sales miss</title><link>https://feed.test/1</link>
        <guid>g1</guid><pubDate>Tue, 24 Nov 2026 08:00:00 GMT</pubDate></item>
      <item><title>Tesla stock jumps on record deliveries</title><link>https://feed.test/2</link><guid>g2</guid></item>
    </channel></rss>"""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "sources.toml"
    config.write_text(
        f'[[source]]\nname = "local-file"\nkind = "file"\npath = "{small_sample}"\n\n'
        f'[[source]]\nname = "local-feed"\nkind = "rss"\nurl = "http://127.0.0.1:{server.server_port}/feed"\n'
    )
    url = f"sqlite:///{tmp_path / 'src.db'}"
    try:
        out = finsent("run", "--sources", str(config), "--exit-when-done", "--database-url", url)
    finally:
        server.shutdown()
    assert out.returncode == 0, out.stderr
    assert "source local-file: 40 items published, 1 rejected" in out.stdout
    engine = sa.create_engine(url)
    with engine.connect() as c:
        titles = set(c.execute(sa.text("SELECT title FROM articles")).scalars())
        health = dict(c.execute(sa.text("SELECT name, last_success_at IS NOT NULL FROM sources")).all())
    engine.dispose()
    assert {"Apple shares fall after iPhone sales miss", "Tesla stock jumps on record deliveries"} <= titles
    assert health["local-feed"] and health["local-file"]


@pytest.mark.kafka
@pytest.mark.postgres
def test_backfill_via_kafka_then_score_workers(small_sample, kafka_bootstrap, postgres_url):
    """Scale-out, settings only: the same commands on Kafka + PostgreSQL."""
    import uuid

    topic = f"news.raw.{uuid.uuid4().hex[:8]}"
    env = {
        "FINSENT_TRANSPORT": "kafka",
        "FINSENT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "FINSENT_TOPIC_RAW": topic,
        "FINSENT_TOPIC_DLQ": topic + ".dlq",
        "FINSENT_CONSUMER_GROUP": f"g-{uuid.uuid4().hex[:6]}",
        "FINSENT_DATABASE_URL": postgres_url,
    }
    sent = finsent("backfill", str(small_sample), "--via-kafka", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "published 40" in sent.stdout and "rejected 1" in sent.stdout
    scored = finsent("score", "--idle-exit", "15", env=env)
    assert scored.returncode == 0, scored.stderr
    assert "received 40" in scored.stdout
    counts = table_counts(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    assert counts["articles"] == counts["scores"] > 30 and f"stored {counts['articles']}" in scored.stdout
