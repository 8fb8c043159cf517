"""The one path every news item takes before scoring: decode → normalise → exact dedup → link tickers,
and after scoring: store the article with its story (near-duplicates) and mentions.

The live scoring worker and the backfill both call `Pipeline.admit` and `Pipeline.store_articles`, so years of
history are treated exactly like the stream. Exact duplicates (same content from the same source, same
external id, same URL, or same normalised title from the same source within a day) are skipped and
counted, never stored twice; that is also what makes a message delivered again after a crash harmless.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, insert, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.db import insert_rows
from core.messages import Envelope, MessageError, NewsMessage, decode
from core.rejects import Rejection
from core.schema import Article, Mention, Source
from core.times import TimeError, parse_time
from scoring.dedup import Deduplicator, Signature
from scoring.entities import Mention as LinkedTicker
from scoring.entities import link, load
from scoring.normalize import NormalizedItem, NormalizeError, normalize

log = logging.getLogger(__name__)

MENTION_COLUMNS = (
    "article_id", "ticker", "published_at", "relevance", "in_headline", "role", "rule", "span_start", "span_end"
)  # fmt: skip


def original_time(message: NewsMessage, published_at: datetime) -> datetime:
    """When the item was first published: a replay moves `published_at` and keeps the original in the message's
    extras (ingest/replay.py), which linking needs (a company is linked only while it was listed). An unreadable
    extra is ignored."""
    try:
        when = parse_time((message.extras or {}).get("original_published_at"))
    except TimeError:
        return published_at
    return when or published_at


@dataclass(slots=True)
class Admitted:
    """An item that passed every check and is ready to score."""

    envelope: Envelope
    message: NewsMessage
    item: NormalizedItem
    tickers: list[LinkedTicker]
    external_id: str | None
    signature: Signature | None = None  # of the headline, for story detection (set by `prepare`)

    @property
    def text(self) -> str:
        """What the model scores: the headline (attribution offsets index into it)."""
        return scoring_text(self.item.title, self.item.body)


def scoring_text(title: str, body: str) -> str:
    """The text a model scores for an article: the headline, the unit the model was trained on.

    The body is used for dedup and ticker linking; scoring it would let a long wire story's boilerplate outvote
    its headline, and make latency depend on article length. Rescoring uses this same function.
    """
    return title


@dataclass(slots=True)
class Admission:
    """What `admit` decided about a batch."""

    admitted: list[Admitted] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: list[tuple[Envelope, str]] = field(default_factory=list)  # (input, why it is a duplicate)


# What `sync` reads of an article. Built once: SQLAlchemy memoises a statement's cache key on the object, and
# building it again for every batch cost time for nothing (the page query runs before every batch, and mostly finds
# nothing; docs/performance.md, 'Measurements behind code choices').
_SYNC = select(Article.id, Article.title, Article.published_at, Source.name, Article.url).join(
    Source, Source.id == Article.source_id
)
_SYNC_PAGE = _SYNC.where(Article.id > bindparam("after")).order_by(Article.id).limit(bindparam("page"))


class Pipeline:
    """Stateful only in its dedup window (rebuilt from the database on start and kept in sync with it)."""

    SYNC_PAGE = 1000  # rows per query when catching up with articles other workers stored

    def __init__(self, *, dedup_window: timedelta = timedelta(days=3), threshold: float = 0.8) -> None:
        self.window = dedup_window
        self.threshold = threshold
        self.dedup = Deduplicator(dedup_window, threshold)
        self._synced_id = 0  # highest article id the dedup window has seen
        self._source_ids: dict[str, int] = {}
        load()  # the ticker dictionary: built with the rest of a worker's long-lived state, not in its first batch

    # ------------------------------------------------------------------------------------------- dedup state

    def reset(self) -> None:
        """Forget the in-memory window (after a failed transaction); the next `sync` rebuilds it."""
        self.dedup = Deduplicator(self.window, self.threshold)
        self._synced_id = 0
        self._source_ids.clear()

    def sync(self, session: Session) -> int:
        """Bring the dedup window up to date with articles stored since the last sync (by any worker)."""
        conn = session.connection()  # Core: the ORM's result processing is not needed for these plain rows
        if self._synced_id == 0:  # first sync: the window before the newest stored article
            newest = conn.scalar(select(func.max(Article.published_at)))
            if newest is None:
                return 0
            # The position goes past every stored article; only the window's are read (older news is not in it).
            top = conn.scalar(select(func.max(Article.id))) or 0
            pages = [conn.execute(_SYNC.where(Article.published_at >= newest - self.window).order_by(Article.id))]
        else:
            top, pages = 0, self._pages_after(conn)
        fresh = []
        for page in pages:
            for article_id, title, published_at, source, url in page:
                self._synced_id = max(self._synced_id, article_id)
                if article_id not in self.dedup:
                    fresh.append([article_id, title, published_at, source, url, ()])
        self._synced_id = max(self._synced_id, top)
        # The tickers each article was linked to: story detection keeps companies apart by them.
        linked: dict[int, list[str]] = {}
        ids = [row[0] for row in fresh]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for article_id, ticker in conn.execute(
                select(Mention.article_id, Mention.ticker).where(Mention.article_id.in_(chunk))
            ):
                linked.setdefault(article_id, []).append(ticker)
        for row in fresh:
            row[5] = linked.get(row[0], ())
        return self.dedup.warm(fresh)

    def _repeats_title(self, earlier: datetime | None, published_at: datetime) -> bool:
        return earlier is not None and abs(published_at - earlier) <= self.dedup.title_window

    def _pages_after(self, conn: Connection):
        """Rows with ids above the last synced one, in id order, a page at a time.

        ORDER BY id LIMIT keeps PostgreSQL on the primary key even without statistics: a bare `id > n` on a
        table that was never analysed (autovacuum off) is estimated at a third of the table and read by a
        sequential scan, which made every batch slower as the table grew (docs/performance.md, 'Measurements behind
        code choices').
        The caller advances `_synced_id` through each page before asking for the next.
        """
        while True:
            rows = conn.execute(_SYNC_PAGE, {"after": self._synced_id, "page": self.SYNC_PAGE}).all()
            yield rows
            if len(rows) < self.SYNC_PAGE:
                return

    # --------------------------------------------------------------------------------------------- admission

    def admit(self, session: Session, envelopes: Sequence[Envelope], now: datetime | None = None) -> Admission:
        """Decode, normalise, drop exact duplicates (against the batch, the window and the database); `prepare` links
        tickers."""
        now = now or datetime.now(UTC)
        self.sync(session)
        out = Admission()
        candidates: list[Admitted] = []
        for env in envelopes:
            try:
                message = decode(env.value)
            except MessageError as exc:
                out.rejected.append(_reject(env, "decode", str(exc)))
                continue
            try:
                item = normalize(
                    title=message.title,
                    body=message.body,
                    published_at=message.published_at,
                    url=message.url,
                    source=message.source,
                    now=now,
                )
            except NormalizeError as exc:
                out.rejected.append(_reject(env, "normalize", str(exc), source=message.source))
                continue
            candidates.append(Admitted(env, message, item, [], message.external_id))

        # Exact duplicates already stored: by content hash, (source, external id) or URL.
        hashes = {c.item.content_hash for c in candidates}
        stored_hashes = _existing(session, Article.content_hash, hashes)
        urls = {c.item.url for c in candidates if c.item.url}
        stored_urls = _existing(session, Article.url, urls)
        ext_pairs = {(c.item.source, c.external_id) for c in candidates if c.external_id}
        stored_ext: set[tuple[str, str]] = set()
        if ext_pairs:
            # By (source_id, external_id), the columns of the unique index, so each lookup is an index probe.
            names = {name for name, _ in ext_pairs}
            ids = {
                name: id_ for name, id_ in session.execute(select(Source.name, Source.id).where(Source.name.in_(names)))
            }
            by_id = {v: k for k, v in ids.items()}
            pairs = [(ids[name], ext) for name, ext in ext_pairs if name in ids]
            for start in range(0, len(pairs), 400):
                chunk = pairs[start : start + 400]
                stored_ext.update(
                    (by_id[source_id], ext)
                    for source_id, ext in session.execute(
                        select(Article.source_id, Article.external_id).where(
                            tuple_(Article.source_id, Article.external_id).in_(chunk)
                        )
                    )
                )

        seen_hash: set[str] = set()
        seen_url: set[str] = set()
        seen_ext: set[tuple[str, str]] = set()
        seen_title: dict[tuple[str, str], datetime] = {}  # (source, title) in this batch -> its publication time
        for c in candidates:
            item = c.item
            ext = (item.source, c.external_id) if c.external_id else None
            why = None
            if item.content_hash in stored_hashes or item.content_hash in seen_hash:
                why = "same source, title and body as a stored article"
            elif ext and (ext in stored_ext or ext in seen_ext):
                why = f"external id {c.external_id!r} of source {item.source!r} already stored"
            elif item.url and (item.url in stored_urls or item.url in seen_url):
                why = f"url {item.url} already stored"
            elif self._repeats_title(seen_title.get((item.source, item.title_key)), item.published_at) or (
                self.dedup.exact_duplicate(item.source, item.title, item.url, item.published_at) is not None
            ):
                why = "same title from the same source within a day"
            if why:
                out.duplicates.append((c.envelope, why))
                continue
            seen_hash.add(item.content_hash)
            if item.url:
                seen_url.add(item.url)
            if ext:
                seen_ext.add(ext)
            seen_title.setdefault((item.source, item.title_key), item.published_at)
            out.admitted.append(c)
        return out

    def prepare(self, admitted: Sequence[Admitted]) -> None:
        """Link tickers and compute the near-duplicate signatures of admitted items (once; `store_articles` calls it
        for items that were not prepared). Reads nothing shared, so the worker runs it while the model scores."""
        for a in admitted:
            if a.signature is None:
                at = original_time(a.message, a.item.published_at)
                a.tickers = link(a.item.title, a.item.body, a.message.tickers, at=at)
                a.signature = self.dedup.signature(a.item.title)

    # ----------------------------------------------------------------------------------------------- storing

    def source_id(self, session: Session, name: str, kind: str = "stream") -> int:
        """The id of source `name`, created on first sight."""
        if name in self._source_ids:
            return self._source_ids[name]
        source_id = session.scalar(select(Source.id).where(Source.name == name))
        if source_id is None:
            with session.begin_nested():  # another worker may create it at the same moment
                source = Source(name=name, kind=kind)
                session.add(source)
            source_id = source.id
        self._source_ids[name] = source_id
        return source_id

    def store_articles(self, session: Session, admitted: Sequence[Admitted], now: datetime | None = None) -> list[int]:
        """Insert articles (with their story and novelty) and mentions; returns article ids. The caller commits.

        Bulk statements, not ORM units of work. A story's id is the id of its first article, so the ids must be
        known before the stories: on PostgreSQL they are drawn from the table's sequence first and each article
        is inserted once, complete (an UPDATE afterwards would leave a dead row version and new entries in all
        six indexes for every article); on SQLite, one writer at a time, one multi-row INSERT ... RETURNING
        gives them, and one UPDATE sets the story of the articles that start one (most), row-by-row UPDATEs
        the few that join an earlier story. Then one multi-row INSERT for the mentions.
        """
        if not admitted:
            return []
        self.prepare(admitted)
        now = now or datetime.now(UTC)
        rows = [
            {
                "source_id": self.source_id(session, a.item.source),
                "external_id": a.external_id,
                "url": a.item.url,
                "title": a.item.title,
                "body": a.item.body,
                "published_at": a.item.published_at,
                "published_at_fallback": a.item.time_fallback,
                "time_precision": None if a.item.time_fallback else a.message.time_precision,
                "ingested_at": now,
                "content_hash": a.item.content_hash,
            }
            for a in admitted
        ]
        # Core statements on the session's connection: the ORM's bulk path spends time per row on bookkeeping that
        # plain rows do not need (docs/performance.md, 'Measurements behind code choices').
        conn = session.connection()
        articles = Article.__table__
        reserved = conn.dialect.name == "postgresql"
        if reserved:
            sequence = func.pg_get_serial_sequence("articles", "id")
            ids = sorted(conn.scalars(select(func.nextval(sequence)).select_from(func.generate_series(1, len(rows)))))
        else:
            # RETURNING the content hash (unique in an admitted batch) to pair ids with rows: asking SQLAlchemy for
            # ids in parameter order makes it insert row by row on SQLite, one statement per article.
            returned = conn.execute(insert(articles).returning(articles.c.content_hash, articles.c.id), rows)
            by_hash = dict(returned.all())
            ids = [by_hash[row["content_hash"]] for row in rows]
        mentions = []
        for a, row, article_id in zip(admitted, rows, ids, strict=True):
            item = a.item
            result = self.dedup.check(
                article_id, item.title, item.published_at, item.source, item.url,
                tickers=[t.ticker for t in a.tickers], signature=a.signature,
            )  # fmt: skip
            row |= {
                "id": article_id,
                "story_id": result.story_id,
                "is_first_of_story": result.is_first_of_story,
                "similar_before": result.similar_before,
            }
            # The linker's relevance is 0-100 (as feeds give it); mentions.relevance is the weight in [0, 1] that
            # windows multiply by.
            mentions += [
                (article_id, t.ticker, item.published_at, t.relevance / 100, t.in_headline, t.role or None,
                 t.rule or None, *((t.start, t.end) if t.span_in == "headline" else (None, None)))
                for t in a.tickers
            ]  # fmt: skip
        self._synced_id = max(self._synced_id, *ids)
        if reserved:
            conn.execute(insert(articles), rows)
        else:
            # Most items start their own story with nothing similar before (the column defaults): one UPDATE for
            # them, row-by-row UPDATEs for the few that join an earlier story.
            starts = [row["id"] for row in rows if row["is_first_of_story"]]
            stories = [
                {"article_id": row["id"], "story": row["story_id"], "similar": row["similar_before"]}
                for row in rows
                if not row["is_first_of_story"]
            ]
            if starts:
                conn.execute(update(articles).where(articles.c.id.in_(starts)).values(story_id=articles.c.id))
            if stories:
                conn.execute(
                    update(articles)
                    .where(articles.c.id == bindparam("article_id"))
                    .values(story_id=bindparam("story"), is_first_of_story=False, similar_before=bindparam("similar")),
                    stories,
                )
        insert_rows(conn, Mention.__table__, MENTION_COLUMNS, mentions)
        # Core, one executemany: an ORM update per source was a measurable cost on every batch (docs/performance.md,
        # 'Measurements behind code choices').
        sources = Source.__table__
        counts = Counter(a.item.source for a in admitted)
        conn.execute(
            update(sources)
            .where(sources.c.id == bindparam("source"))
            .values(items_seen=sources.c.items_seen + bindparam("n"), last_success_at=now),
            [{"source": self._source_ids[name], "n": n} for name, n in counts.items()],
        )
        return ids


def _existing(session: Session, column, values: set) -> set:
    found: set = set()
    items = list(values)
    for start in range(0, len(items), 500):
        found.update(session.scalars(select(column).where(column.in_(items[start : start + 500]))))
    return found


def _reject(env: Envelope, stage: str, reason: str, source: str | None = None) -> Rejection:
    log.warning("rejected %s at %s: %s", env.origin, stage, reason)
    return Rejection(
        stage=stage,
        reason=reason,
        payload=env.value,
        origin=env.origin,
        source=source,
        key=env.key,
        topic=env.topic,
        partition=env.partition,
        offset=env.offset,
    )
