"""Engines and the schema's behaviour: pragmas, UTC timestamps, constraints, bytes-safe rejects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError

from core.db import DatabaseURLError, insert_rows, make_engine, make_session_factory, normalize_url
from core.schema import Article, Attribution, Mention, Reject, Score, Source

NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def add_article(session, *, content_hash: str = "h1", published_at: datetime = NOON) -> Article:
    source = session.scalar(sa.select(Source).where(Source.name == "wire"))
    if source is None:
        source = Source(name="wire", kind="rss")
        session.add(source)
        session.flush()
    article = Article(
        source_id=source.id, title="Nokia shares plunge", content_hash=content_hash, published_at=published_at
    )
    session.add(article)
    session.flush()
    return article


def test_normalize_url_picks_psycopg3_and_refuses_others():
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(DatabaseURLError, match="mysql"):
        normalize_url("mysql://u@h/db")


def test_sqlite_pragmas(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'f.db'}", busy_timeout_ms=1234)
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1234
    engine.dispose()


def test_timestamps_come_back_aware_utc(migrated_engine):
    sessions = make_session_factory(migrated_engine)
    helsinki = timezone(timedelta(hours=3))
    with sessions.begin() as session:
        add_article(session, published_at=datetime(2024, 5, 1, 15, 0, tzinfo=helsinki))
    with sessions() as session:
        article = session.scalars(sa.select(Article)).one()
        assert article.published_at == NOON and article.published_at.tzinfo == UTC
        assert article.ingested_at.tzinfo == UTC  # default filled in Python, stored and read back as UTC
        # Comparisons in SQL work in UTC too (the "latest news" query).
        found = session.scalars(sa.select(Article).where(Article.published_at >= NOON - timedelta(minutes=1))).all()
        assert len(found) == 1


def test_naive_timestamp_is_refused(migrated_engine):
    with make_session_factory(migrated_engine)() as session, pytest.raises(StatementError, match="naive datetime"):
        add_article(session, published_at=datetime(2024, 5, 1, 12, 0))


def test_constraints(migrated_engine):
    sessions = make_session_factory(migrated_engine)
    with sessions.begin() as session:
        article_id = add_article(session).id

    with sessions() as session, pytest.raises(IntegrityError):  # the same content twice
        add_article(session, content_hash="h1")

    with sessions() as session, pytest.raises(IntegrityError):  # foreign keys are enforced, SQLite included
        session.add(Mention(article_id=article_id + 999, ticker="NOK", published_at=NOON))
        session.flush()

    def score(version: str) -> Score:
        return Score(
            article_id=article_id,
            model_version=version,
            label="negative",
            p_negative=0.9,
            p_neutral=0.08,
            p_positive=0.02,
            score=-0.88,
            confidence=0.9,
        )

    with sessions.begin() as session:
        session.add(score("v1"))
    with sessions() as session, pytest.raises(IntegrityError):  # one score per article and model version
        session.add(score("v1"))
        session.flush()
    with sessions() as session, pytest.raises(IntegrityError):  # labels are checked
        bad = score("v2")
        bad.label = "bullish"
        session.add(bad)
        session.flush()


def test_deleting_an_article_cascades(migrated_engine):
    sessions = make_session_factory(migrated_engine)
    with sessions.begin() as session:
        article = add_article(session)
        session.add(Mention(article_id=article.id, ticker="NOK", published_at=article.published_at, in_headline=True))
        s = Score(
            article_id=article.id,
            model_version="v1",
            label="negative",
            p_negative=0.9,
            p_neutral=0.08,
            p_positive=0.02,
            score=-0.88,
            confidence=0.9,
            n_chunks=1,
            latency_ms=3.5,
        )
        session.add(s)
        session.flush()
        session.add(Attribution(score_id=s.id, method="pooling", rank=1, word="plunge", weight=0.4, start=13, end=19))
    with sessions.begin() as session:
        session.execute(sa.delete(Article))
    with sessions() as session:
        for model in (Mention, Score, Attribution):
            assert session.scalar(sa.select(sa.func.count()).select_from(model)) == 0


def test_reject_keeps_invalid_utf8_bytes(migrated_engine):
    payload = b'{"title": "caf\xe9"}\x00\xff'
    sessions = make_session_factory(migrated_engine)
    with sessions.begin() as session:
        session.add(
            Reject(
                stage="model",
                reason="invalid UTF-8 at byte 13",
                topic="news.raw",
                partition=2,
                offset=2**40,
                payload=payload,
            )
        )
    with sessions() as session:
        reject = session.scalars(sa.select(Reject)).one()
        assert reject.payload == payload and reject.offset == 2**40 and reject.created_at.tzinfo == UTC


def test_source_health_defaults(migrated_engine):
    with make_session_factory(migrated_engine).begin() as session:
        session.add(Source(name="rss:reuters", kind="rss"))
    with migrated_engine.connect() as c:
        assert c.execute(sa.text("SELECT items_seen, last_error FROM sources")).one() == (0, None)


def test_insert_rows_stores_what_sqlalchemys_insert_stores(migrated_engine):
    """The driver-level executemany gives the same rows as `conn.execute(insert(table), dicts)`: types converted
    (UTC timestamps from another zone, booleans, floats, reserved-word columns), on both backends."""
    helsinki = timezone(timedelta(hours=3))
    sessions = make_session_factory(migrated_engine)
    with sessions.begin() as session:
        first, second = add_article(session, content_hash="a").id, add_article(session, content_hash="b").id
        columns = ("article_id", "ticker", "published_at", "relevance", "in_headline")
        plain = [(first, "NOK", datetime(2024, 5, 1, 15, 0, tzinfo=helsinki), 0.85, True)]
        via_sqlalchemy = [
            {"article_id": second, "ticker": "NOK", "published_at": NOON, "relevance": 0.85, "in_headline": True}
        ]
        conn = session.connection()
        insert_rows(conn, Mention.__table__, columns, plain)
        conn.execute(sa.insert(Mention.__table__), via_sqlalchemy)
        insert_rows(conn, Mention.__table__, columns, [])  # nothing to do
        score = Score(
            article_id=first, model_version="v", label="negative", p_negative=0.8, p_neutral=0.1, p_positive=0.1,
            score=-0.7, confidence=0.8, n_chunks=1, scored_at=NOON,
        )  # fmt: skip
        session.add(score)
        session.flush()
        words = [(score.id, "pooling", rank, word, weight, start, end) for rank, word, weight, start, end in (
            (1, "plunge", 0.5, 13, 19), (2, "Nokia", 0.25, 0, 5),
        )]  # fmt: skip
        insert_rows(
            conn, Attribution.__table__, ("score_id", "method", "rank", "word", "weight", "start", "end"), words
        )
    with sessions() as session:
        mentions = session.scalars(sa.select(Mention).order_by(Mention.article_id)).all()
        stored = [(m.ticker, m.published_at, m.relevance, m.in_headline) for m in mentions]
        assert stored == [("NOK", NOON, 0.85, True)] * 2  # the raw row reads back exactly as SQLAlchemy's
        assert mentions[0].published_at.tzinfo == UTC
        raw = session.execute(sa.text("SELECT published_at FROM mentions ORDER BY article_id")).scalars().all()
        assert raw[0] == raw[1]  # byte for byte the value SQLAlchemy writes (SQLite keeps it as text)
        # The same text in the column on SQLite, the same timestamptz on PostgreSQL: SQL comparisons see one time.
        assert session.scalar(sa.select(sa.func.count()).where(Mention.published_at == NOON)) == 2
        attributions = session.execute(
            sa.select(
                Attribution.rank, Attribution.word, Attribution.weight, Attribution.start, Attribution.end
            ).order_by(Attribution.rank)
        ).all()
        assert [tuple(a) for a in attributions] == [(1, "plunge", 0.5, 13, 19), (2, "Nokia", 0.25, 0, 5)]
