"""Faults while a stream of real headlines flows through Kafka (tansu on S3) and PostgreSQL to `finsent score`
workers: the broker killed and restarted, the worker SIGKILLed mid-batch, the database connections terminated
mid-transaction, the webhook receiver down while `finsent monitor` has alerts to deliver.

After each: every accepted item has exactly one article and one score row (sent = stored + duplicates + rejected,
lost = 0), every alert notification reached the receiver exactly once, and the processes logged what happened.
Counts are printed (pytest -s) and written to tests/artifacts/faults.json.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest

from core.transport import KafkaTransport
from tests.faults.harness import (
    Producer,
    WebhookReceiver,
    outbox,
    report,
    settle,
    stored_count,
    stream_messages,
    wait_until,
    worker_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.postgres]

ITEMS = 2000
RATE = 160  # items/s offered: below one int8 worker's capacity (~200/s here), so the stream is live, not a backlog
BROKER_DOWN_S = 4


def names(prefix: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"news.raw.{prefix}.{tag}", f"faults-{prefix}-{tag}"


def start_stream(bootstrap: str, database_url: str, workers, messages: list[bytes], *, rate: float = RATE):
    """Create the topics, start the workers, wait until a first item is stored (model loaded, group joined),
    then keep publishing the rest at `rate` in a thread; returns the producer thread."""
    topic = workers[0].env["FINSENT_TOPIC_RAW"]
    admin = KafkaTransport(bootstrap)
    admin.ensure_topics([topic, topic + ".dlq"], partitions=3)
    admin.close()
    for worker in workers:
        worker.start()
    Producer(bootstrap, topic, messages[:5], rate=1000).run()
    wait_until(lambda: stored_count(database_url) > 0, timeout_s=90, what="the worker's first stored item")
    producer = Producer(bootstrap, topic, messages[5:], rate=rate)
    producer.start()
    return producer


def finish(producer: Producer, messages: list[bytes]) -> None:
    producer.join(timeout=120)
    assert not producer.is_alive() and producer.acked == len(messages) - 5, producer.errors


def check(counts: dict, bad: int) -> None:
    """Every accepted item stored once with one score; every malformed one rejected once; nothing else."""
    assert counts["lost"] == 0, counts
    assert counts["duplicates"] == 0, counts
    assert counts["rejected"] == bad, counts
    assert counts["extra_article_rows"] == 0, counts
    assert counts["articles_without_exactly_one_score"] == 0, counts
    assert counts["score_rows"] == counts["stored"], counts


def summary(worker) -> dict:
    """The `received .., stored .., duplicates .., rejected ..` lines that cleanly stopped workers print, summed."""
    totals = Counter()
    for numbers in re.findall(r"received (\d+), stored (\d+), duplicates (\d+), rejected (\d+)", worker.stdout()):
        totals.update(dict(zip(("received", "stored", "duplicates", "rejected"), map(int, numbers), strict=True)))
    return dict(totals)


def test_broker_killed_and_restarted(s3_broker, fault_db, finsent):
    topic, group = names("broker")
    messages, bad = stream_messages(ITEMS)
    env = worker_env(database_url=fault_db, bootstrap=s3_broker.bootstrap, topic=topic, group=group)
    worker = finsent("worker", ["score"], env)
    started = time.monotonic()
    producer = start_stream(s3_broker.bootstrap, fault_db, [worker], messages)
    wait_until(lambda: stored_count(fault_db) >= ITEMS // 4, timeout_s=60, what="a quarter of the stream stored")
    at_kill = stored_count(fault_db)
    s3_broker.kill()
    time.sleep(BROKER_DOWN_S)  # the worker's fetches and offset commit, and the producer's flushes, fail meanwhile
    s3_broker.start()  # same port, same bucket: topics, messages and committed offsets are still there
    finish(producer, messages)
    counts = settle(fault_db, messages, bad)
    assert worker.alive, worker.stderr()[-3000:]
    assert worker.stop() == 0
    log = worker.stderr()
    report(
        "broker killed and restarted",
        counts,
        stored_at_kill=at_kill,
        broker_down_s=BROKER_DOWN_S,
        producer_resent=producer.resent,
        worker=summary(worker),
        seconds=round(time.monotonic() - started, 1),
    )
    check(counts, bad)
    # The worker's log names the failure (connection refused) and the retry, then carries on with the stream.
    failure = re.search(r"(WARNING|ERROR) .*(ECONNREFUSED|KafkaConnectionError|NoBrokersAvailable)", log)
    assert failure, log[-3000:]
    after = log[failure.start() :]
    assert re.search(r"WARNING .*(backoff/retry|retrying in|Marking the coordinator dead)", after), log[-3000:]
    assert re.search(r"Discovered coordinator|Successfully joined group", after), after[-3000:]


def test_worker_sigkilled_mid_batch_and_restarted(s3_broker, fault_db, finsent):
    topic, group = names("sigkill")
    messages, bad = stream_messages(ITEMS)
    env = worker_env(database_url=fault_db, bootstrap=s3_broker.bootstrap, topic=topic, group=group)
    worker = finsent("worker", ["score"], env)
    started = time.monotonic()
    producer = start_stream(s3_broker.bootstrap, fault_db, [worker], messages)
    wait_until(lambda: stored_count(fault_db) >= ITEMS // 4, timeout_s=60, what="a quarter of the stream stored")
    # Kill right after a batch's rows appear: the worker is between its database commit and its offset commit,
    # or already scoring the next batch. Either way that batch comes again, to the restarted worker.
    before = stored_count(fault_db)
    wait_until(lambda: stored_count(fault_db) > before, timeout_s=30, what="the next batch", every_s=0.01)
    worker.kill()
    at_kill = stored_count(fault_db)
    worker.start()  # its group membership is still there until the 6 s session timeout: a rebalance follows
    finish(producer, messages)
    counts = settle(fault_db, messages, bad)
    assert worker.alive, worker.stderr()[-3000:]
    assert worker.stop() == 0
    restarted = worker.runs[-1][1].read_text(errors="replace")
    totals = summary(worker)  # only the restarted worker printed one
    report(
        "worker SIGKILLed and restarted",
        counts,
        stored_at_kill=at_kill,
        exit_codes=worker.exit_codes,
        restarted_worker=totals,
        seconds=round(time.monotonic() - started, 1),
    )
    check(counts, bad)
    assert worker.exit_codes[0] == -9
    # The restarted worker took the partitions over at the committed offsets and saw every message after them,
    # the killed worker's uncommitted batch included: what it had stored already came back as duplicates.
    assert re.search(r"Successfully joined group", restarted), restarted[-3000:]
    assert totals["received"] >= totals["stored"] + totals["duplicates"], totals
    assert totals["stored"] == counts["stored"] - at_kill, (totals, counts, at_kill)


def terminate_backends(database_url: str, *, busy_only: bool) -> list[str]:
    """pg_terminate_backend every other connection to the database; with `busy_only`, only those inside a
    transaction (active or idle in transaction). Returns the states of the terminated ones."""
    name = database_url.rsplit("/", 1)[1]
    states = "AND state IN ('active', 'idle in transaction')" if busy_only else ""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return [
            state
            for state, _ in conn.execute(
                "SELECT state, pg_terminate_backend(pid) FROM pg_stat_activity"
                f" WHERE datname = %s AND pid <> pg_backend_pid() {states}",
                (name,),
            )
        ]


def test_database_connections_terminated_mid_transaction(s3_broker, fault_db, finsent):
    topic, group = names("pgterm")
    messages, bad = stream_messages(ITEMS)
    env = worker_env(database_url=fault_db, bootstrap=s3_broker.bootstrap, topic=topic, group=group)
    worker = finsent("worker", ["score"], env)
    started = time.monotonic()
    producer = start_stream(s3_broker.bootstrap, fault_db, [worker], messages)
    wait_until(lambda: stored_count(fault_db) >= ITEMS // 5, timeout_s=60, what="a fifth of the stream stored")
    hits: list[str] = []
    for _ in range(2):  # twice while a transaction is open, then everything once
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            killed = terminate_backends(fault_db, busy_only=True)
            if killed:
                hits += killed
                break
            time.sleep(0.01)
        time.sleep(2.0)
    hits += terminate_backends(fault_db, busy_only=False)  # and once everything, idle pooled connections too
    finish(producer, messages)
    counts = settle(fault_db, messages, bad)
    assert worker.alive, worker.stderr()[-3000:]
    assert worker.stop() == 0
    log = worker.stderr()
    # One warning per failed batch: the reason (the server's message) and the retry.
    failed = re.findall(r"WARNING scoring.worker: batch failed \((.*?)\); its offsets are not committed", log, re.S)
    report(
        "database connections terminated",
        counts,
        terminated=hits,
        worker_retries=len(failed),
        worker=summary(worker),
        seconds=round(time.monotonic() - started, 1),
    )
    check(counts, bad)
    assert len([h for h in hits if h in ("active", "idle in transaction")]) >= 2, hits
    # A termination inside a transaction fails that batch (one idle in the pool is replaced unnoticed: pre-ping);
    # the worker said why, and that it retries.
    assert failed, log[-3000:]
    assert all(re.search(r"administrator command|server closed the connection", f) for f in failed), failed


MONITOR_TOML = """
route_receivers = ["desk"]
group_by = ["ticker"]
repeat_interval = "4h"

[[receiver]]
name = "desk"
kind = "webhook"
url = "{url}"
timeout_s = 2
max_backoff_s = 4

[[rule]]
name = "negative-news"
type = "negative_burst"
window = "1h"
min_stories = 1
min_confidence = 0.6
for = "0s"
severity = "warning"
annotations.summary = "{{ticker}}: {{value}} negative stories"
"""


def test_webhook_receiver_down_while_alerts_are_due(s3_broker, fault_db, finsent, tmp_path):
    topic, group = names("webhook")
    messages, bad = stream_messages(ITEMS, now=datetime.now(UTC))  # alert windows are relative to now
    receiver = WebhookReceiver()
    receiver.start()
    config = tmp_path / "monitor.toml"
    config.write_text(MONITOR_TOML.format(url=receiver.url))
    env = worker_env(database_url=fault_db, bootstrap=s3_broker.bootstrap, topic=topic, group=group)
    worker = finsent("worker", ["score"], env)
    monitor = finsent(
        "monitor",
        ["monitor", "--config", str(config), "--evaluate-every", "2", "--deliver-every", "1"],
        {"FINSENT_DATABASE_URL": fault_db},
    )
    started = time.monotonic()
    try:
        monitor.start()
        producer = start_stream(s3_broker.bootstrap, fault_db, [worker], messages)
        wait_until(lambda: len(receiver.delivered()) >= 3, timeout_s=60, what="the first webhooks")
        receiver.stop()
        down_at = len(receiver.delivered())
        queued_at_down = len(outbox(fault_db)["ids"])
        time.sleep(6)  # alerts keep firing meanwhile; their notifications wait in the outbox
        queued_while_down = len(outbox(fault_db)["ids"]) - queued_at_down
        receiver.start()  # same port
        finish(producer, messages)
        counts = settle(fault_db, messages, bad)

        def drained() -> bool:
            box = outbox(fault_db)
            return box["sent"] == len(box["ids"]) and len(receiver.delivered()) >= len(box["ids"])

        wait_until(drained, timeout_s=60, what="the outbox delivered")
        time.sleep(3)  # a delivery sent twice would arrive now
    finally:
        monitor_code = monitor.stop()
        receiver.stop()
    assert worker.stop() == 0
    box = outbox(fault_db)
    delivered = Counter(receiver.delivered())
    fingerprints_delivered = {
        alert["fingerprint"] for body in receiver.bodies.values() for alert in json.loads(body)["alerts"]
    }
    notifications = {
        "queued": len(box["ids"]),
        "delivered": len(delivered),
        "delivered_twice": sum(1 for n in delivered.values() if n > 1),
        "lost": len(set(box["ids"]) - set(delivered)),
        "retried": box["retried"],
        "alerts_fired": len(box["fired"]),
        "alerts_never_notified": len(box["fired"] - fingerprints_delivered),
    }
    log = monitor.stderr()
    report(
        "webhook receiver down",
        counts,
        notifications=notifications,
        delivered_before_down=down_at,
        queued_while_down=queued_while_down,
        monitor_exit=monitor_code,
        seconds=round(time.monotonic() - started, 1),
    )
    check(counts, bad)
    assert queued_while_down > 0, "no alert fell due while the receiver was down"
    assert notifications["lost"] == 0 and notifications["delivered_twice"] == 0, notifications
    assert set(delivered) == set(box["ids"]), notifications
    assert notifications["alerts_never_notified"] == 0, notifications
    # The monitor logged each failed attempt (refused connection) with its retry, and each later success.
    assert re.search(r"WARNING monitor.notify: notification \d+ .*failed, retry in .*(ConnectError|refused)", log), log[
        -3000:
    ]
    assert re.search(r"notification \d+ .*attempt=[2-9]\d*: sent", log), log[-3000:]
