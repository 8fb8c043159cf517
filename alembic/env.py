"""Alembic environment (after fastapi/full-stack-fastapi-template), with the URL from finsent's Settings."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from core.db import make_engine, normalize_url
from core.schema import Base, UTCDateTime
from core.settings import Settings

config = context.config

# Only when run as `alembic ...` with alembic.ini; `core.db.upgrade` leaves the caller's logging alone.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def get_url() -> str:
    """core.db passes the URL as a config attribute; the alembic CLI takes `-x url=...` or FINSENT_DATABASE_URL."""
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    return normalize_url(url or Settings().database_url)


def render_item(type_: str, obj, autogen_context) -> str | bool:
    """Autogenerate writes UTCDateTime as the column type it wraps, so migrations never import core."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`) without a database."""
    context.configure(
        url=get_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        render_as_batch=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live database."""
    # Foreign keys off on SQLite while migrating: batch mode recreates tables (see core.db.make_engine).
    engine = make_engine(get_url(), sqlite_foreign_keys=False)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                compare_type=True,
                render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table instead
                render_item=render_item,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
