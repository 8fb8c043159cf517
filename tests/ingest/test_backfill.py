"""Backfill through the live scoring path: idempotent, resumable, filtered, and the same via the topic."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from core.db import make_session_factory
from core.schema import Article, BackfillProgress, Mention, Reject, Score
from core.transport import MemoryBroker, MemoryTransport
from ingest.backfill import Backfill
from scoring.pipeline import Pipeline
from scoring.processor import BatchProcessor
from scoring.worker import ScoringWorker


@pytest.fixture
def sample(shared_data, tmp_path):
    """The first 120 real rows of the Benzinga file (every row has a ticker)."""
    src = shared_data / "news_stream" / "benzinga_analyst_ratings_sample.csv"
    path = tmp_path / "benzinga.csv"
    with open(src, encoding="utf-8") as fh:
        path.write_text("".join(itertools.islice(fh, 121)), encoding="utf-8")
    return path


@pytest.fixture
def processor(migrated_engine, scorer_default):
    return BatchProcessor(
        session_factory=make_session_factory(migrated_engine), scorer=scorer_default, pipeline=Pipeline()
    )


def counts(engine) -> dict[str, int]:
    with make_session_factory(engine)() as s:
        return {
            m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in (Article, Score, Mention, Reject)
        }


def test_backfill_twice_adds_nothing(sample, processor, migrated_engine):
    run = Backfill(session_factory=processor.session_factory, processor=processor, batch_size=50, progress=False)
    report = run.run([sample])
    first = counts(migrated_engine)
    assert report.rows == 120 and report.sent == 120
    assert report.stored + report.duplicates == 120 and report.stored == first["articles"] == first["scores"]
    assert first["mentions"] >= first["articles"]  # every Benzinga row names its ticker
    again = Backfill(session_factory=processor.session_factory, processor=processor, progress=False)
    assert again.run([sample]).already_done == [str(sample)]
    # Even with the progress forgotten, the rows are recognised as stored.
    with processor.session_factory() as s, s.begin():
        s.execute(BackfillProgress.__table__.delete())
    forced = Backfill(session_factory=processor.session_factory, processor=processor, progress=False)
    assert forced.run([sample]).stored == 0
    assert counts(migrated_engine) == first


def test_backfill_resumes_after_an_interrupt(sample, processor, migrated_engine, tmp_path):
    calls = itertools.count()

    class Flaky:
        def process(self, envelopes):
            if next(calls) == 1:
                raise KeyboardInterrupt  # Ctrl-C during the second batch
            return processor.process(envelopes)

    with pytest.raises(KeyboardInterrupt):
        Backfill(session_factory=processor.session_factory, processor=Flaky(), batch_size=40, progress=False).run(
            [sample]
        )
    with processor.session_factory() as s:
        assert s.scalar(select(BackfillProgress.rows_done)) == 40
    resumed = Backfill(session_factory=processor.session_factory, processor=processor, batch_size=40)
    report = resumed.run([sample])
    assert report.rows == 80  # only the rest was read
    whole = Backfill(session_factory=processor.session_factory, processor=processor, progress=False)
    with processor.session_factory() as s, s.begin():
        s.execute(BackfillProgress.__table__.delete())
    assert whole.run([sample]).stored == 0  # interrupted + resumed stored every row once
    with processor.session_factory() as s:
        assert s.scalar(select(func.count(func.distinct(Article.external_id)))) == counts(migrated_engine)["articles"]
    # The same as one uninterrupted run into a fresh database.
    from core.db import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'clean.db'}"
    upgrade(url)
    clean = make_engine(url)
    one = BatchProcessor(session_factory=make_session_factory(clean), scorer=processor.scorer, pipeline=Pipeline())
    Backfill(session_factory=one.session_factory, processor=one, batch_size=40, progress=False).run([sample])
    assert counts(migrated_engine) == counts(clean)
    clean.dispose()


def test_since_until_and_bad_rows(tmp_path, processor, migrated_engine):
    path = tmp_path / "mixed.jsonl"
    rows = [
        json.dumps({"headline": "Old news on Apple", "published_at": "2019-12-31T23:00:00Z", "source_id": "1"}),
        json.dumps({"headline": "Apple beats estimates", "published_at": "2020-01-02T10:00:00Z", "source_id": "2"}),
        "{broken json",
        json.dumps({"headline": "Late news on Apple", "published_at": "2020-02-01T00:00:00Z", "source_id": "3"}),
    ]
    path.write_bytes(("\n".join(rows) + "\n").encode() + b'{"headline": "caf\xe9"}\n')
    since, until = datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=UTC)
    run = Backfill(
        session_factory=processor.session_factory, processor=processor, since=since, until=until, progress=False
    )
    report = run.run([path])
    assert (report.rows, report.skipped_rows, report.stored, report.rejected) == (5, 2, 1, 2)
    with processor.session_factory() as s:
        assert list(s.scalars(select(Article.title))) == ["Apple beats estimates"]
        reasons = sorted(s.scalars(select(Reject.reason)))
    assert any("malformed JSON" in r for r in reasons) and any("UTF-8" in r for r in reasons)


def test_via_topic_is_the_same_path(sample, processor, migrated_engine):
    broker = MemoryBroker(default_partitions=2)
    producer = MemoryTransport(broker)
    report = Backfill(
        session_factory=processor.session_factory,
        transport=producer,
        progress=False,
    ).run([sample])
    assert report.sent == 120 and report.stored == 0
    stats = ScoringWorker(transport=MemoryTransport(broker), processor=processor, max_delay_s=0.1).run(idle_exit_s=0.5)
    assert stats.received == 120 and stats.stored + stats.duplicates == 120
    assert counts(migrated_engine)["articles"] == stats.stored
