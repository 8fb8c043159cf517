"""mention_scores, mention_attributions: each company's own sentiment (issue 20)

An article naming two or more companies gets, per company, the model's targeted result and the words that drove
it. Rows before this revision have none: their mentions keep the article's (headline's) values, which readers mark
as such.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mention_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("score_id", sa.Integer(), nullable=False),
        sa.Column("ticker", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=8), nullable=False),
        sa.Column("p_negative", sa.Float(), nullable=False),
        sa.Column("p_neutral", sa.Float(), nullable=False),
        sa.Column("p_positive", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("span_start", sa.Integer(), nullable=False),
        sa.Column("span_end", sa.Integer(), nullable=False),
        sa.CheckConstraint("label IN ('negative', 'neutral', 'positive')", name=op.f("ck_mention_scores_label")),
        sa.ForeignKeyConstraint(
            ["score_id"], ["scores.id"], name=op.f("fk_mention_scores_score_id_scores"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mention_scores")),
        sa.UniqueConstraint("score_id", "ticker", name=op.f("uq_mention_scores_score_id_ticker")),
    )
    op.create_table(
        "mention_attributions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mention_score_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("word", sa.Text(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mention_score_id"],
            ["mention_scores.id"],
            name=op.f("fk_mention_attributions_mention_score_id_mention_scores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mention_attributions")),
        sa.UniqueConstraint("mention_score_id", "rank", name=op.f("uq_mention_attributions_mention_score_id_rank")),
    )


def downgrade() -> None:
    op.drop_table("mention_attributions")
    op.drop_table("mention_scores")
