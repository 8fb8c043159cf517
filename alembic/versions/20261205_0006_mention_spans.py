"""mentions: the role, rule and headline span of each linked company (issue 19)

Why a ticker was linked is what an analyst asks of a chart: the Explain page shows, per ticker, the words that named
it in the headline, the linker's rule and the company's role there (subject, object, passing, lead, body, provided).
Nullable: rows stored before this revision have none, and a ticker found only in the body or given by the source has
no headline span.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mentions") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=True))
        batch.add_column(sa.Column("rule", sa.String(16), nullable=True))
        batch.add_column(sa.Column("span_start", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("span_end", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mentions") as batch:
        batch.drop_column("span_end")
        batch.drop_column("span_start")
        batch.drop_column("rule")
        batch.drop_column("role")
