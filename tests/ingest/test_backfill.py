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


def test_a_file_changed_while_read_is_not_marked_done(sample, processor, migrated_engine):
    """Issue 17 D5: a file truncated under the reader was marked finished, and its lost rows were never stored."""
    whole = sample.read_bytes()

    class Truncating:
        """The real processor; after the first batch the file is cut to half (a writer replacing it)."""

        def __init__(self) -> None:
            self.batches = 0

        def process(self, envelopes):
            self.batches += 1
            if self.batches == 1:
                sample.write_bytes(whole[: len(whole) // 2])
            return processor.process(envelopes)

    run = Backfill(session_factory=processor.session_factory, processor=Truncating(), batch_size=20, progress=False)
    report = run.run([sample])
    assert report.changed == [str(sample)] and report.already_done == []
    with processor.session_factory() as s:
        assert s.scalar(select(func.count()).where(BackfillProgress.finished_at.is_not(None))) == 0
    sample.write_bytes(whole)  # the whole file again: the next run reads the rest and marks it done
    again = Backfill(session_factory=processor.session_factory, processor=processor, progress=False).run([sample])
    assert again.changed == [] and report.rows + again.rows >= 120
    with processor.session_factory() as s:
        assert s.scalar(select(func.count()).where(BackfillProgress.finished_at.is_not(None))) == 1
        s.execute(BackfillProgress.__table__.delete())
        s.commit()
    # Nothing was lost: read from the start, every row of the whole file is already stored.
    forced = Backfill(session_factory=processor.session_factory, processor=processor, progress=False).run([sample])
    assert forced.rows == 120 and forced.stored == 0


def test_a_run_where_every_row_is_rejected_says_so(tmp_path, processor):
    path = tmp_path / "dates.csv"
    path.write_text("headline,published_at\nA,12:00\nB,May 2024\n", encoding="utf-8")
    report = Backfill(session_factory=processor.session_factory, processor=processor, progress=False).run([path])
    assert report.all_rejected and report.rejected == 2
    assert (
        report.first_reject
        == "line 2: published_at: '12:00' has no year and no month and no day: a date needs year, month and day"
    )
    # By reason, each with the first row it rejected; the file is not marked done, so a run reads it again.
    assert [(r.count, r.example.split(": a date")[0], r.where) for r in report.top_reasons()] == [
        (1, "published_at: '12:00' has no year and no month and no day", "line 2 of dates.csv"),
        (1, "published_at: 'May 2024' has no day", "line 3 of dates.csv"),
    ]
    assert report.refused == [str(path)]
    again = Backfill(session_factory=processor.session_factory, processor=processor, progress=False).run([path])
    assert again.already_done == [] and again.rejected == 2 and again.all_rejected
    fine = tmp_path / "fine.csv"
    fine.write_text("headline,published_at\nNokia shares fall,2024-01-01\nB,May 2024\n", encoding="utf-8")
    assert (
        not Backfill(session_factory=processor.session_factory, processor=processor, progress=False)
        .run([fine])
        .all_rejected
    )
