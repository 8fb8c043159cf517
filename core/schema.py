"""The database schema: SQLAlchemy 2.0 models. Alembic (alembic/versions/) is the only thing that creates it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so migrations can drop them by name on every backend (and batch mode on SQLite works).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

LABELS = ("negative", "neutral", "positive")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always returns aware UTC datetimes, also on SQLite (which keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            # Guessing the zone of a naive time is how news ends up an hour off; make the caller decide.
            raise ValueError(f"naive datetime {value.isoformat()} given; pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        # SQLite's DateTime would store the offset-less text anyway; strip it explicitly so every row is UTC.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Source(Base):
    """A news source (an RSS feed, a folder of files, a Kafka producer) and its health."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    items_seen: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class Article(Base):
    """One news item as ingested: text, times, and where it sits among near-duplicates."""

    __tablename__ = "articles"
    __table_args__ = (
        UniqueConstraint("source_id", "external_id"),
        Index("ix_articles_published_at", "published_at"),  # latest news (a b-tree serves DESC too)
        Index("ix_articles_ingested_at", "ingested_at"),
        Index("ix_articles_story_id_published_at", "story_id", "published_at", "id"),  # a story in order
        # Exact dedup looks every batch's URLs up (hash on PostgreSQL: equality only, and no size limit per entry).
        Index("ix_articles_url", "url", postgresql_using="hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    external_id: Mapped[str | None] = mapped_column(String(512))
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # True when the source gave no usable publication time and published_at is the ingest time instead.
    published_at_fallback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # "day" when the source gave a date without a time (published_at is then 00:00 UTC, and windows shorter than a
    # day leave the article out), "minute" or "second"; None: as exact as stored (and every row before 0007).
    time_precision: Mapped[str | None] = mapped_column(String(8))
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the normalised text
    # Near-duplicates share a story: story_id is the id of the story's first article (its own id for that one).
    story_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    is_first_of_story: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    similar_before: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))  # novelty


class Mention(Base):
    """A ticker an article is about."""

    __tablename__ = "mentions"
    __table_args__ = (
        UniqueConstraint("article_id", "ticker"),
        # Ticker over time without a join: published_at is copied from the article (it never changes after ingest).
        Index("ix_mentions_ticker_published_at", "ticker", "published_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    ticker: Mapped[str] = mapped_column(String(16))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    relevance: Mapped[float] = mapped_column(Float, default=1.0, server_default=text("1.0"))
    in_headline: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Why it was linked (docs/entities.md): the company's role, the linker's rule, and the characters of the headline
    # that named it (None for a ticker found only in the body, given by the source, or stored before revision 0006).
    role: Mapped[str | None] = mapped_column(String(16))
    rule: Mapped[str | None] = mapped_column(String(16))
    span_start: Mapped[int | None] = mapped_column(Integer)
    span_end: Mapped[int | None] = mapped_column(Integer)


class Score(Base):
    """One model version's verdict on one article."""

    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("article_id", "model_version"),
        CheckConstraint("label IN ('negative', 'neutral', 'positive')", name="label"),
        Index("ix_scores_scored_at", "scored_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(8))
    p_negative: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    p_positive: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)  # p_positive - p_negative
    confidence: Mapped[float] = mapped_column(Float)
    n_chunks: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    latency_ms: Mapped[float | None] = mapped_column(Float)


class Attribution(Base):
    """A word that explains a score, with its weight and character offsets into the article text."""

    __tablename__ = "attributions"
    __table_args__ = (UniqueConstraint("score_id", "method", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    score_id: Mapped[int] = mapped_column(ForeignKey("scores.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(16))
    rank: Mapped[int] = mapped_column(Integer)
    word: Mapped[str] = mapped_column(Text)
    weight: Mapped[float] = mapped_column(Float)
    start: Mapped[int] = mapped_column(Integer)  # [start, end) in the scored text
    end: Mapped[int] = mapped_column(Integer)


class MentionScore(Base):
    """One company's own sentiment in an article that names two or more (issue 20): the targeted pass of the model
    version of its score. A mention without a row here (one company in the headline, a ticker found only in the body
    or given by the source, or an article stored before revision 0009) takes its article's score: readers join with
    `core.sentiment`, which says which of the two a value is."""

    __tablename__ = "mention_scores"
    __table_args__ = (
        UniqueConstraint("score_id", "ticker"),
        CheckConstraint("label IN ('negative', 'neutral', 'positive')", name="label"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    score_id: Mapped[int] = mapped_column(ForeignKey("scores.id", ondelete="CASCADE"))
    ticker: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(8))
    p_negative: Mapped[float] = mapped_column(Float)
    p_neutral: Mapped[float] = mapped_column(Float)
    p_positive: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)  # p_positive - p_negative
    confidence: Mapped[float] = mapped_column(Float)
    span_start: Mapped[int] = mapped_column(Integer)  # the mention scored: [start, end) in the scored text
    span_end: Mapped[int] = mapped_column(Integer)


class MentionAttribution(Base):
    """A word that explains one company's sentiment: its share of that mention's pooling weights."""

    __tablename__ = "mention_attributions"
    __table_args__ = (UniqueConstraint("mention_score_id", "rank"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mention_score_id: Mapped[int] = mapped_column(ForeignKey("mention_scores.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    word: Mapped[str] = mapped_column(Text)
    weight: Mapped[float] = mapped_column(Float)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)


class Reject(Base):
    """An input that a stage refused, kept with its reason and the exact bytes so it can be replayed."""

    __tablename__ = "rejects"
    __table_args__ = (Index("ix_rejects_created_at", "created_at"), UniqueConstraint("origin"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(200))
    topic: Mapped[str | None] = mapped_column(String(255))
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(BigInteger)  # Kafka offsets outgrow 32 bits
    # Bytes, not text: the payload may be invalid UTF-8, and that is often why it was rejected.
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Where the input was: "news.raw:2:118" (topic:partition:offset) or "file.csv:17"; unique, so an input that is
    # delivered again after a crash, or a file backfilled twice, is counted once.
    origin: Mapped[str | None] = mapped_column(String(1024))


class BackfillProgress(Base):
    """How far a backfill got through one file, so an interrupted run resumes where it stopped."""

    __tablename__ = "backfill_progress"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # sha256 of the file content and the run's filters: a moved file resumes, other filters start afresh
    run_key: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(Text)
    rows_done: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    rows_total: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# ------------------------------------------------------------------------------------------------- monitoring


class WindowBucket(Base):
    """Aggregates of one ticker (or the market, key "*") over one tumbling bucket of a window length.

    The rule engine compares the live rolling window against the trailing baseline made of these buckets. They are
    kept up to date incrementally: every article stored since the last run marks its buckets for recomputation,
    which also covers periods a backfill filled.
    """

    __tablename__ = "window_buckets"
    __table_args__ = (UniqueConstraint("key", "window_s", "bucket_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(16))  # a ticker, or "*" for the whole market
    window_s: Mapped[int] = mapped_column(Integer)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime())
    items: Mapped[int] = mapped_column(Integer)
    stories: Mapped[int] = mapped_column(Integer)
    mean_score: Mapped[float | None] = mapped_column(Float)  # weighted by relevance x confidence, stories once
    share_negative: Mapped[float] = mapped_column(Float)
    share_positive: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MonitorState(Base):
    """Small named values the monitor keeps between runs (the last article id folded into the buckets)."""

    __tablename__ = "monitor_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Alert(Base):
    """One alert episode: pending → firing → resolved. A fingerprint has at most one unresolved episode."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_fingerprint_status", "fingerprint", "status"),
        Index("ix_alerts_updated_at", "updated_at"),
        CheckConstraint("status IN ('pending', 'firing', 'resolved')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(16))  # sha256 of the sorted labels, as Alertmanager does
    rule: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(32))
    ticker: Mapped[str | None] = mapped_column(String(16))  # the group key for ticker rules
    labels: Mapped[str] = mapped_column(Text)  # JSON object
    annotations: Mapped[str] = mapped_column(Text)  # JSON object, rendered from the rule's templates
    status: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    active_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the condition first held
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when it fired (after `for`)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when it resolved
    # While firing: when the condition stopped holding, the rule's keep_firing_for running (None while it holds).
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acked_by: Mapped[str | None] = mapped_column(String(200))
    acked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replayed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # history, never sent
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AlertEvidence(Base):
    """An article that made an alert fire, with the words that drove its score."""

    __tablename__ = "alert_evidence"
    __table_args__ = (UniqueConstraint("alert_id", "article_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    score: Mapped[float | None] = mapped_column(Float)
    words: Mapped[str] = mapped_column(Text, default="[]", server_default=text("'[]'"))  # JSON list of [word, weight]


class AlertEvent(Base):
    """The full history of every alert: each state change, acknowledgement and reminder."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_alert_id", "alert_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # pending | firing | cleared | holding | resolved | reminder | acked | silenced
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)


class Silence(Base):
    """Mutes notifications of alerts whose labels match every matcher, until `ends_at`."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    matchers: Mapped[str] = mapped_column(Text)  # JSON list of {"name", "value", "op": "=" | "!=" | "=~" | "!~"}
    author: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expired_early_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Notification(Base):
    """The outbox: one row per (alert state change, receiver), written in the transaction that changed the alert.

    Delivery marks it sent; nothing is lost when a receiver is down (it is retried with backoff) and nothing is sent
    twice after a restart (a sent row is never picked again).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_pending", "sent_at", "next_attempt_at"),
        UniqueConstraint("alert_id", "receiver", "kind", "sequence"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    receiver: Mapped[str] = mapped_column(String(200))  # a receiver name from the monitor config
    kind: Mapped[str] = mapped_column(String(16))  # firing | resolved | reminder
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))  # reminders count up
    payload: Mapped[str] = mapped_column(Text)  # the JSON body, fixed when the notification is created
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
