"""Alembic is the schema: the migrations build exactly the models, up and down, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.db import current_revision, downgrade, make_engine, upgrade
from core.schema import Base

TABLES = {
    "sources", "articles", "mentions", "scores", "attributions", "rejects", "backfill_progress", "window_buckets",
    "monitor_state", "alerts", "alert_evidence", "alert_events", "silences", "notifications", "mention_scores",
    "mention_attributions",
}  # fmt: skip


def diff(engine: sa.Engine, metadata: sa.MetaData) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def test_models_and_migrations_agree(migrated_engine):
    assert diff(migrated_engine, Base.metadata) == []


def test_comparison_would_see_a_difference(migrated_engine):
    """Guard against a vacuous pass: a column the migrations lack must show up."""
    metadata = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    sa.Table("sources", metadata, sa.Column("added_by_test", sa.Integer()), extend_existing=True)
    assert [d[0] for d in diff(migrated_engine, metadata)] == ["add_column"]


def test_upgrade_downgrade_upgrade(empty_url):
    engine = make_engine(empty_url)
    try:
        assert current_revision(engine) is None
        upgrade(empty_url)
        head = current_revision(engine)
        assert head is not None
        assert TABLES <= set(sa.inspect(engine).get_table_names())

        downgrade(empty_url, "base")
        assert current_revision(engine) is None
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}

        upgrade(empty_url)
        upgrade(empty_url)  # at head already: a no-op, so `finsent db upgrade` is safe to run on every start
        assert current_revision(engine) == head
        assert diff(engine, Base.metadata) == []
    finally:
        engine.dispose()


def test_offline_sql_renders_for_postgres(capsys):
    """`alembic upgrade head --sql` works without a database (DBAs review the DDL)."""
    from alembic import command

    from core.db import _alembic_config

    command.upgrade(_alembic_config("postgresql://nobody@127.0.0.1/none"), "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE articles" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql
