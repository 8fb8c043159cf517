"""alerts: keep_firing_for (issue 19)

A rule's `keep_firing_for` keeps a firing alert firing for a while after its condition stops holding, so news that
comes and goes does not fire and resolve the same alert again and again. `cleared_at` is when the condition stopped
holding while the alert fires (NULL while it holds, and for every row before this revision).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("cleared_at")
