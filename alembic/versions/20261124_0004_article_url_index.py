"""articles.url index: exact dedup by URL looks every batch's URLs up, which scanned the whole table

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A hash index on PostgreSQL: equality is all dedup asks, and a b-tree entry cannot hold a URL over ~2.7 kB.
    op.create_index("ix_articles_url", "articles", ["url"], postgresql_using="hash")


def downgrade() -> None:
    op.drop_index("ix_articles_url", table_name="articles")
