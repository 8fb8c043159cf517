"""articles: how exact the publication time is (issue 22)

A source that gives only a date (the Guardian's items in news_stream) was stored at 00:00 UTC and drove the hourly
windows and alerts at 01:00. `time_precision` says "day" for such an item, and windows shorter than a day leave it
out; "minute" or "second" when the source says so; NULL when nothing was said, and for every row stored before this
revision (counted as before: nothing tells a stored midnight from a date).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("time_precision", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("time_precision")
