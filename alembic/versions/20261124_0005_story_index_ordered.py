"""articles (story_id, published_at, id) index in place of (story_id): a story's articles in their order

The Explain page lists the other articles of a story, oldest first, at most 20. With only (story_id), PostgreSQL
without statistics (a server with autovacuum off, or right after a bulk load) walked the whole published_at index to
avoid a sort, a walk that grows with the table; this index serves the filter and the order at once, whatever the
statistics say, and still serves every lookup by story_id (its first column) (docs/performance.md, 'Measurements
behind code choices').

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_articles_story_id_published_at", "articles", ["story_id", "published_at", "id"])
    op.drop_index("ix_articles_story_id", table_name="articles")


def downgrade() -> None:
    op.create_index("ix_articles_story_id", "articles", ["story_id"])
    op.drop_index("ix_articles_story_id_published_at", table_name="articles")
