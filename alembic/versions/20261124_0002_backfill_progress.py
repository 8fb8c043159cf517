"""backfill progress per file; rejects remember where the input was (origin, unique)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "backfill_progress",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("rows_done", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("started_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("finished_at", UTC_TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_progress")),
        sa.UniqueConstraint("run_key", name=op.f("uq_backfill_progress_run_key")),
    )
    with op.batch_alter_table("rejects") as batch:
        batch.add_column(sa.Column("origin", sa.String(length=1024), nullable=True))
        batch.create_unique_constraint(op.f("uq_rejects_origin"), ["origin"])


def downgrade() -> None:
    with op.batch_alter_table("rejects") as batch:
        batch.drop_constraint(op.f("uq_rejects_origin"), type_="unique")
        batch.drop_column("origin")
    op.drop_table("backfill_progress")
