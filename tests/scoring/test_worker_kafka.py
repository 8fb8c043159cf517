"""Scoring workers on the real broker (tansu) and PostgreSQL: a consumer group shares the work, and a worker killed
between its database commit and its offset commit leaves no duplicate rows behind."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from sqlalchemy import func, select

from core.db import make_engine, make_session_factory, upgrade
from core.schema import Article, Reject, Score
from core.transport import KafkaTransport
from scoring.pipeline import Pipeline
from scoring.processor import BatchProcessor
from scoring.worker import ScoringWorker

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
PARTITIONS = 4
DEADLINE_S = 60


@pytest.fixture
def database(postgres_url):
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def topic(kafka_bootstrap) -> str:
    name = f"news.raw.{uuid.uuid4().hex[:8]}"
    admin = KafkaTransport(kafka_bootstrap)
    admin.ensure_topics([name, name + ".dlq"], partitions=PARTITIONS)
    admin.close()
    return name


def publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaTransport(bootstrap)
    for i, value in enumerate(values):
        producer.publish(topic, f"key-{i}".encode(), value)
    producer.flush(timeout_s=30)
    producer.close()


def worker(bootstrap, topic, group, session_factory, scorer) -> ScoringWorker:
    processor = BatchProcessor(session_factory=session_factory, scorer=scorer, pipeline=Pipeline())
    return ScoringWorker(
        transport=KafkaTransport(bootstrap),
        processor=processor,
        topic=topic,
        dlq_topic=topic + ".dlq",
        group=group,
        max_batch=16,
        max_delay_s=0.2,
    )


def headlines(n: int) -> list[bytes]:
    return [
        json.dumps({"source": "wire", "title": f"Company {i} raises full-year guidance"}).encode() for i in range(n)
    ]


def count(session_factory, model) -> int:
    with session_factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_two_workers_in_a_group_store_every_item_once(kafka_bootstrap, topic, database, scorer_default):
    group = f"g-{uuid.uuid4().hex[:6]}"
    workers = [worker(kafka_bootstrap, topic, group, database, scorer_default) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not all(w.transport.assignment() for w in workers):  # both joined before anything is sent
            assert time.monotonic() < deadline, "the group never gave both workers partitions"
            time.sleep(0.2)
        values = headlines(300) + [b"{not json"]
        publish(kafka_bootstrap, topic, values)
        while sum(w.stats.received for w in workers) < len(values):
            assert time.monotonic() < deadline + DEADLINE_S, [w.stats for w in workers]
            time.sleep(0.2)
        time.sleep(1.0)  # anything delivered twice would arrive now
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert all(w.stats.stored > 0 for w in workers), [w.stats for w in workers]
    assert sum(w.stats.stored for w in workers) == 300
    assert count(database, Article) == count(database, Score) == 300 and count(database, Reject) == 1


def test_killed_between_db_commit_and_offset_commit(kafka_bootstrap, topic, database, scorer_default):
    group = f"g-{uuid.uuid4().hex[:6]}"
    publish(kafka_bootstrap, topic, headlines(40))
    dying = worker(kafka_bootstrap, topic, group, database, scorer_default)
    dying.max_batch = 64

    def killed() -> None:
        raise SystemExit("killed after the database commit, before the offset commit")

    dying.transport.commit = killed
    deadline = time.monotonic() + DEADLINE_S
    with pytest.raises(SystemExit):
        while True:  # the first polls only join the group
            assert time.monotonic() < deadline
            dying.step()
    stored = count(database, Article)
    assert stored > 0
    dying.transport.close()  # leaves the group without committing, like a dead process

    survivor = worker(kafka_bootstrap, topic, group, database, scorer_default)
    stats = survivor.run(idle_exit_s=8)
    assert stats.received == 40 and stats.duplicates == stored and stats.stored == 40 - stored
    assert count(database, Article) == count(database, Score) == 40
