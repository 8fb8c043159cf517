"""initial schema: sources, articles, mentions, scores, attributions, rejects

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Written to match core/schema.py (tests/core/test_migrations.py checks that they agree on SQLite and PostgreSQL).
Timestamps are DateTime(timezone=True): core.schema.UTCDateTime is only a Python-side wrapper around it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("last_success_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("last_error_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("items_seen", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )

    op.create_table(
        "articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("published_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("published_at_fallback", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("ingested_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=True),
        sa.Column("is_first_of_story", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("similar_before", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_articles_source_id_sources"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["story_id"], ["articles.id"], name=op.f("fk_articles_story_id_articles"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_articles")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_articles_content_hash")),
        sa.UniqueConstraint("source_id", "external_id", name=op.f("uq_articles_source_id_external_id")),
    )
    op.create_index("ix_articles_published_at", "articles", ["published_at"])
    op.create_index("ix_articles_ingested_at", "articles", ["ingested_at"])
    op.create_index("ix_articles_story_id", "articles", ["story_id"])

    op.create_table(
        "mentions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("ticker", sa.String(length=16), nullable=False),
        sa.Column("published_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("relevance", sa.Float(), server_default=sa.text("1.0"), nullable=False),
        sa.Column("in_headline", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_mentions_article_id_articles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentions")),
        sa.UniqueConstraint("article_id", "ticker", name=op.f("uq_mentions_article_id_ticker")),
    )
    op.create_index("ix_mentions_ticker_published_at", "mentions", ["ticker", "published_at"])

    op.create_table(
        "scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("p_negative", sa.Float(), nullable=False),
        sa.Column("p_neutral", sa.Float(), nullable=False),
        sa.Column("p_positive", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("n_chunks", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("scored_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.CheckConstraint("label IN ('negative', 'neutral', 'positive')", name=op.f("ck_scores_label")),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_scores_article_id_articles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
        sa.UniqueConstraint("article_id", "model_version", name=op.f("uq_scores_article_id_model_version")),
    )
    op.create_index("ix_scores_scored_at", "scores", ["scored_at"])

    op.create_table(
        "attributions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("score_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("word", sa.Text(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["score_id"], ["scores.id"], name=op.f("fk_attributions_score_id_scores"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attributions")),
        sa.UniqueConstraint("score_id", "method", "rank", name=op.f("uq_attributions_score_id_method_rank")),
    )

    op.create_table(
        "rejects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("topic", sa.String(length=255), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejects")),
    )
    op.create_index("ix_rejects_created_at", "rejects", ["created_at"])


def downgrade() -> None:
    # Children before parents; dropping a table drops its indexes with it.
    op.drop_table("rejects")
    op.drop_table("attributions")
    op.drop_table("scores")
    op.drop_table("mentions")
    op.drop_table("articles")
    op.drop_table("sources")
