"""The scoring worker end to end on real databases: news.raw → admit → score → store → commit offsets.

Memory transport here (the Kafka side is in tests/model/test_worker_kafka.py); SQLite and PostgreSQL both.
"""

from __future__ import annotations

import gc
import json
import threading
import weakref
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.db import make_session_factory
from core.messages import Envelope
from core.schema import Article, Attribution, Mention, Reject, Score, Source
from core.transport import MemoryBroker, MemoryTransport
from scoring.pipeline import Pipeline
from scoring.processor import BatchProcessor, freeze_startup_objects
from scoring.rescore import rescore
from scoring.worker import ScoringWorker

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def msg(title: str, source: str = "wire", **extra) -> bytes:
    return json.dumps({"source": source, "title": title, **extra}).encode()


@pytest.fixture
def processor(migrated_engine, scorer_default):
    return BatchProcessor(
        session_factory=make_session_factory(migrated_engine), scorer=scorer_default, pipeline=Pipeline()
    )


def count(engine, model) -> int:
    with make_session_factory(engine)() as s:
        return s.scalar(select(func.count()).select_from(model))


def envelopes(values: list[bytes], prefix: str = "t") -> list[Envelope]:
    return [Envelope(value=v, origin=f"{prefix}:{i}") for i, v in enumerate(values)]


def test_batch_is_scored_linked_and_stored(processor, migrated_engine):
    values = [
        msg("$AAPL shares plunge after Apple warns on iPhone demand", published_at="2026-11-24T10:00:00Z"),
        msg("Microsoft profit beats estimates, stock jumps", source="other", url="https://x.test/msft"),
    ]
    report = processor.process(envelopes(values), now=NOW)
    assert (report.received, report.stored, report.duplicates, report.rejected) == (2, 2, 0, 0)
    with make_session_factory(migrated_engine)() as s:
        articles = {a.title: a for a in s.scalars(select(Article))}
        apple = articles["$AAPL shares plunge after Apple warns on iPhone demand"]
        assert apple.published_at == datetime(2026, 11, 24, 10, tzinfo=UTC) and not apple.published_at_fallback
        msft = articles["Microsoft profit beats estimates, stock jumps"]
        assert msft.published_at_fallback and msft.published_at == NOW  # no time given: ingest time, flagged
        assert {m.ticker for m in s.scalars(select(Mention).where(Mention.article_id == apple.id))} == {"AAPL"}
        assert {m.ticker for m in s.scalars(select(Mention).where(Mention.article_id == msft.id))} == {"MSFT"}
        scores = {sc.article_id: sc for sc in s.scalars(select(Score))}
        assert scores[apple.id].label == "negative" and scores[msft.id].label == "positive"
        assert scores[apple.id].model_version == processor.scorer.version
        sc = scores[apple.id]
        assert sc.p_negative + sc.p_neutral + sc.p_positive == pytest.approx(1.0, abs=1e-4)
        words = s.scalars(select(Attribution).where(Attribution.score_id == sc.id).order_by(Attribution.rank)).all()
        assert 1 <= len(words) <= 5 and all(apple.title[w.start : w.end] == w.word for w in words)
        assert {src.name: src.items_seen for src in s.scalars(select(Source))} == {"wire": 1, "other": 1}


def test_bad_input_is_rejected_with_a_reason_counted_and_kept(processor, migrated_engine):
    future = (NOW + timedelta(days=400)).isoformat()
    values = [
        b"{not json",
        msg("fine headline about Nokia results"),
        json.dumps({"source": "wire"}).encode(),  # no title
        json.dumps({"source": "wire", "title": 42}).encode(),  # wrong type
        b'{"source": "wire", "title": "caf\xe9"}',  # invalid UTF-8
        msg("x", body="y" * 10_000_000),  # 10 MB body: over the message limit
        msg("<script>alert(1)</script>Shares of <b>Tesla</b> rise"),
        msg("Time traveller news", published_at=future),
        msg("Victorian news", published_at="1850-01-01T00:00:00Z"),
        b"[1, 2]",
        b"",
    ]
    report = processor.process(envelopes(values), now=NOW)
    assert report.stored == 2 and report.rejected == 9 and report.duplicates == 0
    with make_session_factory(migrated_engine)() as s:
        rejects = {r.origin: r for r in s.scalars(select(Reject))}
        titles = set(s.scalars(select(Article.title)))
    assert titles == {"fine headline about Nokia results", "Shares of Tesla rise"}  # script dropped with content
    reasons = {origin: (r.stage, r.reason) for origin, r in rejects.items()}
    assert reasons["t:0"][0] == "decode" and "malformed JSON" in reasons["t:0"][1]
    assert reasons["t:2"] == ("decode", "title: missing (required)")
    assert "title" in reasons["t:3"][1] and "str" in reasons["t:3"][1]
    assert "invalid UTF-8" in reasons["t:4"][1] and rejects["t:4"].payload == values[4]
    assert "over the 1,048,576-byte limit" in reasons["t:5"][1]
    assert reasons["t:7"][0] == "normalize" and "published_at" in reasons["t:7"][1]
    assert "before 1900" in reasons["t:8"][1]
    assert "expected a JSON object" in reasons["t:9"][1] and "empty" in reasons["t:10"][1]
    # The same bad inputs delivered again (a crash before the offset commit) are not counted twice.
    again = processor.process(envelopes(values), now=NOW)
    assert again.rejected == 0 and again.stored == 0 and again.duplicates == 2
    assert count(migrated_engine, Reject) == 9


def test_replaying_the_same_items_adds_nothing(processor, migrated_engine):
    values = [msg(f"Company {i} reports quarterly results", external_id=f"id-{i}") for i in range(20)]
    first = processor.process(envelopes(values, "a"), now=NOW)
    second = processor.process(envelopes(values, "b"), now=NOW)  # other origins: a second replay of the file
    assert (first.stored, second.stored, second.duplicates) == (20, 0, 20)
    # A fresh pipeline (a restarted worker) knows them too, from the database.
    fresh = BatchProcessor(session_factory=processor.session_factory, scorer=processor.scorer, pipeline=Pipeline())
    assert fresh.process(envelopes(values, "c"), now=NOW).duplicates == 20
    assert count(migrated_engine, Article) == count(migrated_engine, Score) == 20


def test_exact_duplicates_and_stories(processor, migrated_engine):
    t0 = "2026-11-24T09:00:00Z"
    values = [
        msg("Nokia to cut 10,000 jobs in restructuring", source="wire", published_at=t0, url="https://a.test/1"),
        msg("Nokia to cut 10,000 jobs in restructuring", source="wire", body="more", published_at=t0),  # same title
        msg("Other outlet", source="paper", url="https://a.test/1"),  # same URL
        msg("Nokia to cut 10,000 jobs in restructuring plan", source="paper", published_at="2026-11-24T09:05:00Z"),
        msg("Nokia to cut 10,000 jobs in restructuring", source="blog", published_at="2026-11-24T09:10:00Z"),
        msg("Apple unveils a new phone", source="blog"),
    ]
    report = processor.process(envelopes(values), now=NOW)
    assert (report.stored, report.duplicates) == (4, 2)
    with make_session_factory(migrated_engine)() as s:
        rows = s.execute(
            select(Article.title, Source.name, Article.story_id, Article.id, Article.is_first_of_story)
            .join(Source)
            .add_columns(Article.similar_before)
            .order_by(Article.id)
        ).all()
    first = rows[0]
    assert first.is_first_of_story and first.story_id == first.id and first.similar_before == 0
    same_story = [r for r in rows if r.title.startswith("Nokia")]
    assert len(same_story) == 3 and {r.story_id for r in same_story} == {first.id}
    assert [r.similar_before for r in same_story] == [0, 1, 2]
    apple = [r for r in rows if r.title.startswith("Apple")][0]
    assert apple.is_first_of_story and apple.story_id == apple.id


def test_a_second_worker_catches_up_page_by_page_and_joins_stories(migrated_engine, scorer_default, monkeypatch):
    factory = make_session_factory(migrated_engine)
    first = BatchProcessor(session_factory=factory, scorer=scorer_default, pipeline=Pipeline())
    second_pipeline = Pipeline()
    second = BatchProcessor(session_factory=factory, scorer=scorer_default, pipeline=second_pipeline)
    t0 = "2026-11-24T09:00:00Z"
    second.process(envelopes([msg("Oil prices slide as OPEC fails to agree on cuts", published_at=t0)], "b"), now=NOW)
    monkeypatch.setattr(Pipeline, "SYNC_PAGE", 2)  # five articles from the other worker: three pages
    titles = [
        "Nokia to cut 10,000 jobs in a sweeping restructuring of its networks unit",
        "Apple unveils a foldable phone at its autumn launch event in Cupertino",
        "Tesla recalls 200,000 cars over a rear camera fault in older models",
        "Unilever sells its tea business to a private equity firm for 4.5 billion euros",
        "Barclays fined by the regulator over failures in its anti-money-laundering checks",
    ]
    report = first.process(envelopes([msg(t, published_at=t0) for t in titles], "a"), now=NOW)
    assert report.stored == 5
    joined = second.process(
        envelopes([msg(titles[4] + " last year", source="paper", published_at="2026-11-24T09:30:00Z")], "c"), now=NOW
    )
    assert joined.stored == 1 and len(second_pipeline.dedup) == 7  # its own, the other worker's five, the new one
    with factory() as s:
        story = dict(s.execute(select(Article.title, Article.story_id)).all())
        barclays = s.scalar(select(Article.id).where(Article.title == titles[4]))
    assert story[titles[4] + " last year"] == barclays


def test_worker_commits_offsets_only_after_storing(processor, migrated_engine):
    broker = MemoryBroker(default_partitions=2)
    producer = MemoryTransport(broker)
    for i in range(50):
        producer.publish("news.raw", f"k{i}".encode(), msg(f"Headline number {i} about earnings"))
    producer.publish("news.raw", b"bad", b"{oops")

    # A worker that stores a batch but dies before committing offsets ...
    dying = MemoryTransport(broker)
    worker = ScoringWorker(transport=dying, processor=processor, max_batch=64, max_delay_s=0.2)
    original = dying.commit
    dying.commit = lambda: (_ for _ in ()).throw(SystemExit("killed between the DB commit and the offset commit"))
    with pytest.raises(SystemExit):
        worker.step()
    dying.commit = original
    dying.close()
    assert count(migrated_engine, Article) == 50

    # ... and its replacement gets everything again: no new rows, the bad message counted once.
    worker = ScoringWorker(transport=MemoryTransport(broker), processor=processor, max_batch=64, max_delay_s=0.2)
    stats = worker.run(idle_exit_s=0.5)
    assert stats.received == 51 and stats.stored == 0 and stats.duplicates == 50
    assert count(migrated_engine, Article) == count(migrated_engine, Score) == 50
    assert count(migrated_engine, Reject) == 1
    # The bad message reached the dead-letter topic with its reason (once per delivery attempt that rejected it).
    dlq = MemoryTransport(broker)
    dlq.subscribe(["news.dlq"], "inspect")
    dead = [json.loads(r.value) for r in dlq.poll(10, 1.0)]
    assert dead and dead[0]["stage"] == "decode" and "malformed JSON" in dead[0]["reason"]
    assert dead[0]["payload_base64"] == "e29vcHM="


def test_two_workers_in_a_group_store_every_item_once(processor, migrated_engine):
    import threading

    broker = MemoryBroker(default_partitions=4)
    producer = MemoryTransport(broker)
    for i in range(120):
        producer.publish("news.raw", f"k{i}".encode(), msg(f"Story {i}: shares move on news"))
    stop = threading.Event()
    workers = [
        ScoringWorker(
            transport=MemoryTransport(broker),
            processor=BatchProcessor(
                session_factory=processor.session_factory, scorer=processor.scorer, pipeline=Pipeline()
            ),
            max_batch=16,
            max_delay_s=0.1,
        )
        for _ in range(2)
    ]
    threads = [threading.Thread(target=w.run, args=(stop, 1.5)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sum(w.stats.stored for w in workers) == 120
    assert all(w.stats.stored > 0 for w in workers)  # both took part
    assert count(migrated_engine, Article) == count(migrated_engine, Score) == 120


def test_rescore_adds_a_new_version_and_keeps_the_old(processor, migrated_engine, tiny_checkpoint):
    from model.scorer import Scorer

    processor.process(envelopes([msg(f"Item {i} beats forecasts") for i in range(7)]), now=NOW)
    other = Scorer(tiny_checkpoint, device="cpu", precision="fp32")
    done = rescore(session_factory=processor.session_factory, scorer=other, batch_size=3)
    assert done == 7
    assert rescore(session_factory=processor.session_factory, scorer=other) == 0
    with make_session_factory(migrated_engine)() as s:
        versions = dict(s.execute(select(Score.model_version, func.count()).group_by(Score.model_version)).all())
    assert versions == {processor.scorer.version: 7, other.version: 7}


def test_an_input_the_scorer_refuses_is_rejected_alone(migrated_engine, scorer_default):
    """If the model refuses one text, the rest of the batch is still stored and only that one is rejected."""
    from model.scorer import ScoreInputError

    class Refusing:
        version = scorer_default.version

        def submit(self, texts, top_k=5):  # like Scorer.submit: inputs are checked before the model starts
            if any("REFUSE" in t for t in texts):
                raise ScoreInputError("item 0: refused by the test scorer")
            return scorer_default.submit(texts, top_k=top_k)

        def score_batch(self, texts, top_k=5):
            return self.submit(texts, top_k=top_k).result()

    processor = BatchProcessor(
        session_factory=make_session_factory(migrated_engine), scorer=Refusing(), pipeline=Pipeline()
    )
    report = processor.process(envelopes([msg("Nokia profit rises"), msg("REFUSE this"), msg("Apple sales fall")]))
    assert (report.stored, report.rejected) == (2, 1)
    with make_session_factory(migrated_engine)() as s:
        stage, reason = s.execute(select(Reject.stage, Reject.reason)).one()
    assert stage == "score" and "refused" in reason


class CountingTransport(MemoryTransport):
    """A memory transport that counts polls (how long a batch waited, without timing anything)."""

    polls = 0

    def poll(self, max_records, timeout_s):
        self.polls += 1
        return super().poll(max_records, timeout_s)


def test_dynamic_batching_full_batches_under_a_backlog_small_ones_when_light(processor, migrated_engine):
    broker = MemoryBroker(default_partitions=1)
    producer = MemoryTransport(broker)
    for i in range(300):
        producer.publish("news.raw", None, msg(f"Backlog story {i}: shares move on news"))
    worker = ScoringWorker(transport=MemoryTransport(broker), processor=processor, max_batch=128, max_delay_s=0.05)
    sizes = []
    while worker.stats.received < 300:
        sizes.append(worker.step().received)
    assert sizes == [128, 128, 44]  # a backlog goes in full batches

    producer.publish("news.raw", None, msg("A lone story arrives: shares move"))
    assert worker.step().received == 1  # light traffic: the batch goes after the queue delay with what it has
    for i in range(3):
        producer.publish("news.raw", None, msg(f"A small burst {i}: shares move"))
    assert worker.step().received == 3
    assert worker.stats.batch_sizes == {128: 2, 44: 1, 1: 1, 3: 1}
    assert count(migrated_engine, Score) == 304


def test_a_record_that_already_waited_its_queue_delay_goes_at_once(processor):
    broker = MemoryBroker(default_partitions=1)
    MemoryTransport(broker).publish("news.raw", None, msg("Fresh story: shares move"))
    fresh = CountingTransport(broker)
    worker = ScoringWorker(transport=fresh, processor=processor, max_batch=64, max_delay_s=0.05)
    assert worker.step().received == 1
    assert fresh.polls >= 2  # waited (polled again) for company

    broker = MemoryBroker(default_partitions=1)
    MemoryTransport(broker).publish("news.raw", None, msg("Old story: shares move"))
    topic_log = broker._logs["news.raw"][0]
    key, value, ts = topic_log[0]
    topic_log[0] = (key, value, ts - 60_000)  # published a minute ago: it has waited long enough
    old = CountingTransport(broker)
    worker = ScoringWorker(transport=old, processor=processor, max_batch=64, max_delay_s=30)
    assert worker.step().received == 1
    assert old.polls == 1  # no second poll: the batch went at once despite a 30 s queue delay


class ExplodingScorer:
    """The real scorer, except that one headline triggers an unexpected error (a bug some input could hit)."""

    def __init__(self, scorer, trigger: str) -> None:
        self.scorer, self.trigger = scorer, trigger

    def submit(self, texts, **kwargs) -> Future:  # the model fails while it runs: the error comes with the result
        if any(self.trigger in t for t in texts):
            failed = Future()
            failed.set_exception(RuntimeError("kernel exploded on this input"))
            return failed
        return self.scorer.submit(texts, **kwargs)

    def score_batch(self, texts, **kwargs):
        return self.submit(texts, **kwargs).result()


def test_an_unexpected_failure_is_isolated_to_its_item_rejected_and_kept(migrated_engine, scorer_default):
    processor = BatchProcessor(
        session_factory=make_session_factory(migrated_engine),
        scorer=ExplodingScorer(scorer_default, "BOOM"),
        pipeline=Pipeline(),
    )
    values = [msg(f"Company {i} shares rise on upbeat outlook") for i in range(4)] + [msg("BOOM goes the headline")]
    report = processor.process(envelopes(values, prefix="news.raw:0"), now=NOW)
    assert (report.received, report.stored, report.duplicates, report.rejected) == (5, 4, 0, 1)
    (rejection,) = report.rejections
    assert (
        rejection.stage == "internal" and "RuntimeError" in rejection.reason and "kernel exploded" in rejection.reason
    )
    with make_session_factory(migrated_engine)() as s:
        (kept,) = s.scalars(select(Reject)).all()
        assert kept.stage == "internal" and kept.payload == values[-1]
    assert count(migrated_engine, Score) == 4

    # Delivered again (a crash before the offset commit): nothing new is stored or counted.
    again = processor.process(envelopes(values, prefix="news.raw:0"), now=NOW)
    assert (again.stored, again.duplicates, again.rejected) == (0, 4, 0)
    assert count(migrated_engine, Reject) == 1


def test_a_lost_database_is_not_mistaken_for_bad_input(tmp_path, scorer_default):
    from sqlalchemy.exc import OperationalError

    from core.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/missing/dir/finsent.db")  # cannot even be opened
    processor = BatchProcessor(session_factory=make_session_factory(engine), scorer=scorer_default, pipeline=Pipeline())
    with pytest.raises(OperationalError):
        processor.process(envelopes([msg("Shares rise")]), now=NOW)


def test_every_item_failing_the_same_way_stops_the_worker_instead_of_rejecting_the_stream(
    migrated_engine, scorer_default
):
    processor = BatchProcessor(
        session_factory=make_session_factory(migrated_engine),
        scorer=ExplodingScorer(scorer_default, "shares"),  # a "bug" every headline below triggers
        pipeline=Pipeline(),
    )
    values = [msg(f"Company {i} shares rise") for i in range(30)]
    with pytest.raises(RuntimeError, match="11 items in a row failed with unexpected errors"):
        processor.process(envelopes(values), now=NOW)
    assert count(migrated_engine, Reject) == 10  # the first ten are kept for replay; then it stops


def test_storage_is_prepared_while_the_model_scores_and_a_failure_there_is_isolated(
    migrated_engine, scorer_default, monkeypatch
):
    """Ticker links and dedup signatures are computed on the worker's thread while the torch thread scores; an
    unexpected error there waits for the model, then isolates and rejects only the item that caused it."""
    import scoring.pipeline

    threads = []
    real_link = scoring.pipeline.link

    def link(title, body, tickers, *, at=None):
        threads.append(threading.current_thread().name)
        if "TRIP" in title:
            raise ValueError("linker tripped on this input")
        return real_link(title, body, tickers, at=at)

    monkeypatch.setattr(scoring.pipeline, "link", link)
    processor = BatchProcessor(
        session_factory=make_session_factory(migrated_engine), scorer=scorer_default, pipeline=Pipeline()
    )
    values = [msg("$AAPL Apple shares rise on upbeat outlook"), msg("TRIP wire for the linker"), msg("Nokia falls")]
    report = processor.process(envelopes(values, prefix="news.raw:0"), now=NOW)
    assert (report.received, report.stored, report.rejected) == (3, 2, 1)
    assert "ValueError" in report.rejections[0].reason and "TRIP" in report.rejections[0].payload.decode()
    assert set(threads) == {threading.current_thread().name}  # never on the torch thread
    with make_session_factory(migrated_engine)() as s:
        # Nokia is linked to its primary listing (Helsinki) since the universe has the OMX indices.
        assert sorted(s.scalars(select(Mention.ticker)).all()) == ["AAPL", "NOKIA.HE"]
        # Why each was linked is stored: role, rule and the headline's characters that named it.
        nokia = s.scalars(select(Mention).where(Mention.ticker == "NOKIA.HE")).one()
        assert (nokia.role, nokia.rule, nokia.span_start, nokia.span_end, nokia.relevance) == (
            "subject",
            "name",
            0,
            5,
            0.9,
        )
        assert s.scalar(select(func.count()).select_from(Score)) == 2


def test_submit_checks_inputs_at_once_and_scores_like_score(scorer_default):
    from model.scorer import ScoreInputError

    with pytest.raises(ScoreInputError, match="item 1"):
        scorer_default.submit(["fine", ""])
    texts = ["Nokia shares fall after profit warning", "Apple sales rise"]
    assert scorer_default.submit(texts).result().results() == scorer_default.score(texts)


def test_a_text_the_tokenizer_reads_as_nothing_is_rejected_alone(migrated_engine, scorer_default):
    """A text of replacement characters (U+FFFD, what a broken decode leaves) passes the text checks but leaves no
    word-piece: found once the batch is tokenised, it is rejected with its reason while the rest is stored."""
    processor = BatchProcessor(
        session_factory=make_session_factory(migrated_engine), scorer=scorer_default, pipeline=Pipeline()
    )
    report = processor.process(envelopes([msg("Nokia profit rises"), msg("\ufffd \ufffd"), msg("Apple sales fall")]))
    assert (report.stored, report.rejected) == (2, 1)
    with make_session_factory(migrated_engine)() as s:
        stage, reason = s.execute(select(Reject.stage, Reject.reason)).one()
    assert stage == "score" and reason.startswith("text has no word-pieces")


class _Node:
    """A garbage cycle needs objects that reference each other; a weak reference tells when one is collected."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def test_freeze_startup_objects_hides_what_is_alive_now_and_still_collects_later_garbage():
    survivor = _Node()  # alive at the freeze: a full collection must no longer walk it
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > 0
        assert not any(o is survivor for o in gc.get_objects())
        a, b = _Node(), _Node()  # a batch's garbage, made after the freeze, in a reference cycle
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None, "a cycle created after the freeze was not collected"
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual


def test_a_batch_log_line_carries_its_counts_as_fields(processor, caplog):
    """A JSON log can be filtered by the counts; a batch with nothing rejected prints no empty reasons ('{}')."""
    broker = MemoryBroker()
    producer = MemoryTransport(broker)
    for i in range(3):
        producer.publish("news.raw", f"k{i}".encode(), msg(f"Logged headline {i} about earnings"))
    producer.publish("news.raw", b"again", msg("Logged headline 0 about earnings"))  # a duplicate
    worker = ScoringWorker(transport=MemoryTransport(broker), processor=processor, max_batch=64, max_delay_s=0.2)
    with caplog.at_level("INFO", logger="scoring.worker"):
        worker.run(idle_exit_s=0.5)
    (record,) = [r for r in caplog.records if r.getMessage().startswith("batch of")]
    assert record.getMessage() == "batch of 4: stored 3, duplicates 1, rejected 0"
    assert (record.received, record.stored, record.duplicates, record.rejected) == (4, 3, 1, 0)
    assert record.reject_reasons == {}


def test_a_headline_naming_two_companies_stores_each_companys_own_sentiment(processor, migrated_engine):
    """Issue 20: the worker's targeted pass; one company in a headline keeps the headline's values (no own row)."""
    from core.schema import MentionAttribution, MentionScore

    values = [
        msg("Pfizer soars after vaccine success as Moderna slumps on trial failure", published_at="2026-11-24T10:00Z"),
        msg("Nokia shares plunge after profit warning", published_at="2026-11-24T10:01:00Z"),
    ]
    report = processor.process(envelopes(values), now=NOW)
    assert (report.stored, report.companies_scored) == (2, 2) and report.seconds["target"] > 0
    with make_session_factory(migrated_engine)() as s:
        own = {m.ticker: m for m in s.scalars(select(MentionScore))}
        assert set(own) == {"PFE", "MRNA"}
        title = s.scalar(select(Article.title).where(Article.title.like("Pfizer%")))
        assert title[own["PFE"].span_start : own["PFE"].span_end] == "Pfizer"
        assert title[own["MRNA"].span_start : own["MRNA"].span_end] == "Moderna"
        for m in own.values():
            assert m.p_negative + m.p_neutral + m.p_positive == pytest.approx(1.0, abs=1e-5)
            words = list(s.scalars(select(MentionAttribution).where(MentionAttribution.mention_score_id == m.id)))
            assert words and all(title[w.start : w.end] == w.word for w in words)
        assert own["PFE"].p_positive != own["MRNA"].p_positive


def test_rescore_fills_each_companys_sentiment_for_history(processor, migrated_engine):
    from core.schema import MentionScore
    from scoring.rescore import fill_companies

    processor.process(envelopes([msg("Airbus on course to overtake Boeing as biggest planemaker")]), now=NOW)
    with make_session_factory(migrated_engine)() as s, s.begin():
        s.execute(MentionScore.__table__.delete())  # as stored before the per-company pass
    filled = fill_companies(session_factory=processor.session_factory, scorer=processor.scorer, batch_size=1)
    assert filled == 2
    assert fill_companies(session_factory=processor.session_factory, scorer=processor.scorer) == 0
    assert count(migrated_engine, MentionScore) == 2
