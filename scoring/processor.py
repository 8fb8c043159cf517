"""One batch of `news.raw` envelopes: admit (decode, normalise, dedup, link) → score → store, in one transaction.

Storage is exactly once: a message delivered again is recognised by `Pipeline.admit` as already stored and
skipped. Invalid input never stops the worker: it goes to the `rejects` table (and, from the worker, `news.dlq`)
with its reason. A lost database connection propagates so the caller retries the whole batch.

`BatchProcessor.process` is what the live worker and the backfill call, so history is scored by the same code.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.db import insert_rows
from core.messages import Envelope
from core.rejects import Rejection, record_rejects
from core.schema import Attribution as AttributionRow
from core.schema import MentionAttribution, MentionScore, Score
from model.scorer import ScoreBatch, ScoreInputError, Scorer, release_freed_memory
from model.target import TargetResult, TargetScorer
from scoring.pipeline import Admitted, Pipeline

log = logging.getLogger(__name__)

# More items than this failing alone with unexpected errors, one after another, stop the worker (a bug, not input).
MAX_FAILED_IN_A_ROW = 10
# Failures of the database connection rather than of the data: the whole batch is retried later, nothing rejected.
TRANSIENT = (OperationalError, InterfaceError, DisconnectionError)


def freeze_startup_objects() -> None:
    """Take every object alive now out of the cyclic garbage collector's sight (`gc.freeze`). Call once, after the
    scorer and the pipeline (which builds the ticker dictionary) are built.

    A full collection walks every tracked object, and the network, tokenizer, dictionary and imported modules are
    a great many of them, none of which ever becomes garbage: the periodic full collections cost a worker as much per
    item as storing its attributions, and freezing makes them cheap (docs/performance.md, 'Measurements behind code
    choices').
    """
    gc.collect()
    gc.freeze()


@dataclass(slots=True)
class BatchReport:
    """What happened to one batch."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0  # new rejects (an input rejected before, delivered again, is not counted twice)
    rejections: list[Rejection] = field(default_factory=list)
    article_ids: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)  # published → stored, for items with a publish time
    reject_reasons: Counter = field(default_factory=Counter)
    companies_scored: int = 0  # mentions given their own sentiment (headlines naming two or more companies)
    # wall time by stage: admit, score, target (the per-company pass), store (with commit)
    seconds: dict[str, float] = field(default_factory=dict)

    def merge(self, other: BatchReport) -> None:
        """Add another report's counts (a batch processed in parts)."""
        self.received += other.received
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.companies_scored += other.companies_scored
        self.rejections += other.rejections
        self.article_ids += other.article_ids
        self.latencies_ms += other.latencies_ms
        self.reject_reasons.update(other.reject_reasons)
        self.seconds = dict(Counter(self.seconds) + Counter(other.seconds))


ATTRIBUTION_COLUMNS = ("score_id", "method", "rank", "word", "weight", "start", "end")


def store_scores(
    session: Session,
    results: ScoreBatch,
    article_ids: Sequence[int],
    *,
    scored_at: datetime,
    latency_ms: Sequence[float | None] | None = None,
) -> list[int]:
    """Insert one score per result row and its top attended words (method `pooling`); returns score ids.

    Two bulk statements (a multi-row INSERT ... RETURNING, then one executemany of plain tuples), no ORM unit of
    work: per-item round trips were a large share of a batch's time (docs/performance.md, 'Measurements behind code
    choices'). The rows are read from the results' columns, with no object per item. The caller commits.
    """
    if not len(results):
        return []
    if len(article_ids) != len(results):
        raise ValueError(f"store_scores got {len(results)} results for {len(article_ids)} articles")
    if len(set(article_ids)) != len(article_ids):
        raise ValueError(f"store_scores got {len(results)} results for fewer distinct articles")
    latency = latency_ms if latency_ms is not None else [None] * len(results)
    probs = results.probabilities.tolist()
    rows = [
        {
            "article_id": article_id,
            "model_version": results.model_version,
            "label": label,
            "p_negative": p[0],
            "p_neutral": p[1],
            "p_positive": p[2],
            "score": score,
            "confidence": confidence,
            "n_chunks": n_chunks,
            "scored_at": scored_at,
            "latency_ms": ms,
        }
        for article_id, label, p, score, confidence, n_chunks, ms in zip(
            article_ids,
            results.labels,
            probs,
            results.scores.tolist(),
            results.confidence.tolist(),
            results.n_chunks.tolist(),
            latency,
            strict=True,
        )
    ]
    # Core statements on the session's connection: the ORM's bulk path spends time per row on bookkeeping that
    # plain rows do not need (docs/performance.md, 'Measurements behind code choices').
    conn = session.connection()
    # Ids paired with rows by article (one score per article in a call): ids in parameter order would make
    # SQLAlchemy insert row by row on SQLite.
    scores = Score.__table__
    by_article = dict(conn.execute(insert(scores).returning(scores.c.article_id, scores.c.id), rows).all())
    score_ids = [by_article[a] for a in article_ids]
    words = [
        (score_ids[d], "pooling", rank, word, weight, start, end)
        for d, rank, word, weight, start, end in results.word_rows()
    ]
    insert_rows(conn, AttributionRow.__table__, ATTRIBUTION_COLUMNS, words)
    return score_ids


MENTION_WORD_COLUMNS = ("mention_score_id", "rank", "word", "weight", "start", "end")


def company_spans(tickers) -> list[tuple[str, tuple[int, int]]]:
    """(ticker, headline span) of each company a headline names, when it names two or more; else []: a headline
    naming one company gives that company its own sentiment already (docs/model.md, "Sentiment per company")."""
    seen: dict[str, tuple[int, int]] = {}
    for t in tickers:
        if t.span_in == "headline" and 0 <= t.start < t.end and t.ticker not in seen:
            seen[t.ticker] = (t.start, t.end)
    return list(seen.items()) if len(seen) >= 2 else []


def target_scorer(scorer: Scorer) -> TargetScorer | None:
    """The targeted pass on the scorer's own network, or None when its checkpoint has no targeted head (every
    mention then takes its headline's sentiment, as before issue 20)."""
    from model.checkpoints import CheckpointError

    net = getattr(scorer, "net", None)
    if not isinstance(scorer, Scorer) or not all(hasattr(net, part) for part in ("encoder", "pool", "classifier")):
        return None  # a stand-in for the network (tests, the host-only benches) scores headlines only
    try:
        return TargetScorer(scorer=scorer)
    except CheckpointError as exc:  # a candidate checkpoint may have none: not a fault, so not on a command's stderr
        log.info("no sentiment per company: %s", exc)
        return None


def score_companies(
    targets: TargetScorer | None, texts: Sequence[str], tickers: Sequence, top_k: int
) -> dict[int, list[tuple[str, TargetResult]]]:
    """{text index: [(ticker, its own result), ...]} for the texts whose headline names two or more companies."""
    if targets is None:
        return {}
    chosen = [(i, spans) for i, t in enumerate(tickers) if (spans := company_spans(t))]
    if not chosen:
        return {}
    results = targets.score_mentions([texts[i] for i, _ in chosen], [[s for _, s in spans] for _, spans in chosen],
                                     top_k=top_k)  # fmt: skip
    out = {}
    for (i, spans), res in zip(chosen, results, strict=True):
        # a mention the model could not place (past its 128 word-pieces) keeps its headline's result
        own = [(ticker, r) for (ticker, _), r in zip(spans, res, strict=True) if r is not None]
        if own:
            out[i] = own
    return out


def store_mention_scores(
    session: Session, score_ids: Sequence[int], companies: dict[int, list[tuple[str, TargetResult]]]
) -> int:
    """Insert each company's own result and its top words; `companies` is keyed by the index into `score_ids`.
    Returns the rows stored. The caller commits."""
    rows = [
        {
            "score_id": score_ids[i], "ticker": ticker, "label": r.label,
            "p_negative": r.probabilities["negative"], "p_neutral": r.probabilities["neutral"],
            "p_positive": r.probabilities["positive"], "score": r.score, "confidence": max(r.probabilities.values()),
            "span_start": r.start, "span_end": r.end,
        }
        for i, results in companies.items()
        for ticker, r in results
    ]  # fmt: skip
    if not rows:
        return 0
    conn = session.connection()
    table = MentionScore.__table__
    returned = conn.execute(insert(table).returning(table.c.score_id, table.c.ticker, table.c.id), rows).all()
    ids = {(score_id, ticker): row_id for score_id, ticker, row_id in returned}
    words = [
        (ids[(score_ids[i], ticker)], a.rank, a.word, a.weight, a.start, a.end)
        for i, results in companies.items()
        for ticker, r in results
        for a in r.attributions
    ]
    insert_rows(conn, MentionAttribution.__table__, MENTION_WORD_COLUMNS, words)
    return len(rows)


def score_each(scorer: Scorer, texts: Sequence[str], top_k: int) -> tuple[ScoreBatch, list[int], list[tuple[int, str]]]:
    """Score texts one at a time, leaving out those the scorer refuses: (the kept texts' results, their indices,
    (index, reason) of each refused text). The slow path behind a batch that holds a text the scorer will not score."""
    parts, kept, refused = [], [], []
    for i, text in enumerate(texts):
        try:
            parts.append(scorer.score_batch([text], top_k=top_k))
            kept.append(i)
        except ScoreInputError as exc:
            refused.append((i, str(exc).removeprefix("item 0: ")))  # scored alone: the reason, not the position
    return ScoreBatch.concat(parts), kept, refused


class BatchProcessor:
    """Admit, score and store one batch of envelopes in one transaction."""

    def __init__(
        self, *, session_factory: sessionmaker[Session], scorer: Scorer, pipeline: Pipeline, top_k: int = 5
    ) -> None:
        self.session_factory = session_factory
        self.scorer = scorer
        self.pipeline = pipeline
        self.top_k = top_k
        self.targets = target_scorer(scorer)
        self._trimmed_at = 0.0
        self._failed_in_a_row = 0  # items rejected as `internal` since the last batch that went through

    def process(self, envelopes: Sequence[Envelope], now: datetime | None = None, retries: int = 2) -> BatchReport:
        """Store the batch in one transaction.

        A unique-key race with another worker starts the batch over (the winner's rows are then duplicates). A lost
        database connection propagates: the caller retries the whole batch later. Any other failure is a bug that
        some input triggers; the batch is then processed item by item, and the item that still fails alone is
        rejected (stage `internal`, kept in `rejects` with its bytes) so one message can never stop a worker.
        """
        try:
            report = self._process_with_retries(envelopes, now, retries)
            self._failed_in_a_row = 0
            self._release_memory()
            return report
        except TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001 - isolated below, never swallowed
            if len(envelopes) == 1:
                return self._quarantine(envelopes[0], exc)
            log.warning(
                "batch of %d failed (%s: %s); processing its items one by one to isolate the cause",
                len(envelopes),
                type(exc).__name__,
                exc,
            )
            report = BatchReport()
            for env in envelopes:
                report.merge(self.process([env], now, retries))
            return report

    def _release_memory(self, every_s: float = 1.0) -> None:
        # A batch's transient allocations (rows, tensors, query results) stay in glibc's heap after they are freed;
        # without a trim a long-running worker's RSS creeps up before it levels off. A trim is not free, so at most
        # one a second (docs/performance.md, 'Measurements behind code choices').
        if time.monotonic() - self._trimmed_at >= every_s:
            release_freed_memory()
            self._trimmed_at = time.monotonic()

    def _process_with_retries(self, envelopes: Sequence[Envelope], now: datetime | None, retries: int) -> BatchReport:
        for attempt in range(retries + 1):
            try:
                return self._process_once(envelopes, now)
            except IntegrityError as exc:
                self.pipeline.reset()
                if attempt == retries:
                    raise
                log.info("batch raced another writer (%s); retrying", exc.orig.__class__.__name__)
            except Exception:
                self.pipeline.reset()  # its window may hold ids of rows that were rolled back
                raise
        raise AssertionError("unreachable")

    def _quarantine(self, env: Envelope, exc: Exception) -> BatchReport:
        self._failed_in_a_row += 1
        if self._failed_in_a_row > MAX_FAILED_IN_A_ROW:
            # Item after item failing the same way is a bug or a broken dependency, not bad input: stop loudly,
            # with this item's offset uncommitted, rather than reject the whole stream.
            raise RuntimeError(
                f"{self._failed_in_a_row} items in a row failed with unexpected errors; stopping (last: "
                f"{type(exc).__name__}: {exc})"
            ) from exc
        log.error("item %s could not be processed and is rejected: %s: %s", env.origin, type(exc).__name__, exc)
        rejection = Rejection(
            stage="internal",
            reason=f"unexpected {type(exc).__name__} while processing: {exc}"[:1000],
            payload=env.value,
            origin=env.origin,
            key=env.key,
            topic=env.topic,
            partition=env.partition,
            offset=env.offset,
        )
        with self.session_factory() as session, session.begin():
            rejected = record_rejects(session=session, rejections=[rejection])
        return BatchReport(
            received=1,
            rejected=rejected,
            rejections=[rejection],
            reject_reasons=Counter({f"internal: unexpected {type(exc).__name__}": 1}),
        )

    def _score(self, admitted: list[Admitted]) -> tuple[ScoreBatch, list[Admitted], list[Rejection]]:
        """Score the batch; if the scorer refuses an input, score one by one and reject only the refused ones.

        While the model runs on the torch thread, this thread prepares the batch's storage (ticker links, dedup
        signatures): Python work that would otherwise run after the model (docs/performance.md, 'Measurements
        behind code choices').
        """
        if not admitted:
            return ScoreBatch.concat([]), [], []
        texts = [a.text for a in admitted]
        try:
            future = self.scorer.submit(texts, top_k=self.top_k)
        except ScoreInputError:
            pass
        else:
            try:
                self.pipeline.prepare(admitted)
            except BaseException:
                wait([future])  # never leave the model running for a batch that is being abandoned
                raise
            try:
                return future.result(), admitted, []
            except ScoreInputError:  # a text with no word-pieces: found once tokenised
                pass
        results, kept, refused = score_each(self.scorer, texts, self.top_k)
        rejections = []
        for i, reason in refused:
            env = admitted[i].envelope
            rejections.append(
                Rejection(
                    stage="score",
                    reason=reason,
                    payload=env.value,
                    origin=env.origin,
                    source=admitted[i].item.source,
                    key=env.key,
                    topic=env.topic,
                    partition=env.partition,
                    offset=env.offset,
                )  # fmt: skip
            )
        return results, [admitted[i] for i in kept], rejections

    def _companies(self, admitted: list[Admitted]) -> dict[int, list[tuple[str, TargetResult]]]:
        """Each company's own result for the items whose headline names two or more. A failure here costs the
        batch its per-company results (logged), never its headline scores: the headline's stays every mention's."""
        if self.targets is None or not admitted:
            return {}
        self.pipeline.prepare(admitted)  # tickers linked (a batch the scorer refused at once was never prepared)
        try:
            return score_companies(self.targets, [a.text for a in admitted], [a.tickers for a in admitted],
                                   self.top_k)  # fmt: skip
        except Exception:  # noqa: BLE001 - the headline scores still go in; the cause is logged with its trace
            log.exception("per-company sentiment failed for a batch of %d; its mentions keep the headline's",
                          len(admitted))  # fmt: skip
            return {}

    def _process_once(self, envelopes: Sequence[Envelope], now: datetime | None) -> BatchReport:
        report = BatchReport(received=len(envelopes))
        t0 = time.perf_counter()
        with self.session_factory() as session:
            admission = self.pipeline.admit(session, envelopes, now)
            session.rollback()  # end the read transaction before the model runs
        report.duplicates = len(admission.duplicates)
        admitted = list(admission.admitted)
        rejections = list(admission.rejected)
        t1 = time.perf_counter()
        results, admitted, refused = self._score(admitted)
        rejections += refused
        t_target = time.perf_counter()
        companies = self._companies(admitted)
        t2 = time.perf_counter()
        with self.session_factory() as session, session.begin():
            ids = self.pipeline.store_articles(session, admitted, now)
            stored_at = datetime.now(UTC)
            stored_ms = stored_at.timestamp() * 1000
            latency = [
                (stored_ms - a.envelope.published_ms) if a.envelope.published_ms is not None else None for a in admitted
            ]
            score_ids = store_scores(session, results, ids, scored_at=stored_at, latency_ms=latency)
            report.companies_scored = store_mention_scores(session, score_ids, companies)
            report.rejected = record_rejects(session=session, rejections=rejections)
        report.seconds = {"admit": t1 - t0, "score": t_target - t1, "target": t2 - t_target,
                          "store": time.perf_counter() - t2}  # fmt: skip
        report.stored = len(ids)
        report.article_ids = ids
        report.rejections = rejections
        report.latencies_ms = [x for x in latency if x is not None] if admitted else []
        report.reject_reasons = Counter(f"{r.stage}: {r.reason.split(':')[0]}" for r in rejections)
        return report
