"""Engines, sessions and migrations. The caller builds the engine once and passes it (or sessions) down."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.orm import Session, sessionmaker

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


class DatabaseURLError(ValueError):
    """The database URL names a backend finsent does not support."""


class SchemaError(RuntimeError):
    """The schema cannot be migrated as asked (an unknown target revision, say); the message is one line."""


class UnknownRevisionError(SchemaError):
    """The database is at an Alembic revision none of this finsent's migrations has: a newer finsent migrated it."""

    FIX = "upgrade finsent to the version that migrated it, or restore a backup taken before that migration"

    def __init__(self, revision: str, head: str) -> None:
        self.revision, self.head = revision, head
        self.detail = (
            f"the database is at revision {revision!r}, which this finsent does not know (its newest is {head}): "
            "a newer finsent migrated it"
        )
        super().__init__(f"{self.detail}; {self.FIX}")


def normalize_url(url: str) -> str:
    """The URL with PostgreSQL pointed at psycopg 3 (SQLAlchemy's bare `postgresql://` means psycopg2)."""
    if url.startswith("postgres://"):  # the Heroku-style spelling
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except ValueError as exc:  # a port that is not a number; the message never quotes the URL (it may hold a password)
        raise DatabaseURLError(f"malformed database URL ({type(exc).__name__}: {str(exc)[:80]})") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseURLError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite:/// or postgresql://")
    return parsed.render_as_string(hide_password=False)


def make_engine(
    url: str, *, busy_timeout_ms: int = 5000, sqlite_foreign_keys: bool = True, echo: bool = False
) -> Engine:
    """An engine for SQLite (WAL, foreign keys on, busy timeout) or PostgreSQL (psycopg 3)."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, echo=echo)

    engine = create_engine(url, echo=echo, connect_args={"timeout": busy_timeout_ms / 1000})
    in_memory = make_url(url).database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        # SQLite ignores foreign keys unless asked, per connection. Migrations turn them off because batch mode
        # copies and drops tables, and a DROP with foreign keys on would cascade-delete the child rows.
        cursor.execute(f"PRAGMA foreign_keys={'ON' if sqlite_foreign_keys else 'OFF'}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not in_memory:
            # WAL: the dashboard reads while a worker writes; NORMAL is durable enough in WAL and much faster.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


# The driver's positional placeholder, by DBAPI paramstyle: sqlite3's qmark, psycopg's %s (beside its named form).
# normalize_url admits no other driver.
_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@lru_cache(maxsize=64)
def _plain_insert(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> tuple[str, tuple]:
    """(INSERT with positional placeholders, each column's bind processor or None) for `columns` of `table`."""
    # Through the dialect's own type (SQLite's DATETIME writes microseconds; the generic DateTime leaves the value to
    # the driver, which would write another text).
    processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns)
    quote = dialect.identifier_preparer
    mark = _PLACEHOLDER[dialect.paramstyle]
    sql = (
        f"INSERT INTO {quote.format_table(table)} ({', '.join(quote.quote(name) for name in columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    return sql, processors


def insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """INSERT `rows` (tuples in `columns` order) in one executemany on the driver.

    The same rows as `conn.execute(insert(table), dicts)`, each value through its column type's bind processor
    (UTCDateTime's conversion, for one), without SQLAlchemy's per-row parameter handling: a dict built and walked
    for every row, most of the time of the attribution insert (docs/performance.md, 'Measurements behind code
    choices').
    Through `exec_driver_sql`, so a driver error still comes wrapped as SQLAlchemy's (a lost connection is an
    OperationalError the worker retries) and a dead connection is invalidated. (COPY on PostgreSQL would be faster
    still, but only on the raw driver cursor, outside that handling.)
    """
    if not rows:
        return
    sql, processors = _plain_insert(conn.dialect, table, tuple(columns))
    active = [(i, process) for i, process in enumerate(processors) if process is not None]
    params = []
    for row in rows:
        if active:
            row = list(row)
            for i, process in active:
                row[i] = process(row[i])
        params.append(tuple(row))
    conn.exec_driver_sql(sql, params)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to the engine; objects stay readable after commit (workers log them afterwards)."""
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    # Through attributes, not set_main_option: ConfigParser would choke on a '%' in a password.
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (Alembic `upgrade head` by default).

    Raises UnknownRevisionError when the database is at a revision this finsent does not know, SchemaError when
    `revision` is not one of its migrations."""
    from alembic import command
    from alembic.script.revision import RevisionError
    from alembic.util.exc import CommandError

    try:
        command.upgrade(_alembic_config(url), revision)
    except (CommandError, RevisionError) as exc:
        # Alembic says "Can't locate revision" both for an unknown target and for a database ahead of this code;
        # only the database's own revision tells which (looked up here, off the path of every normal start).
        engine = make_engine(url)
        try:
            check_known(current_revision(engine))
        finally:
            engine.dispose()
        raise SchemaError(f"cannot migrate to {revision!r}: {str(exc).splitlines()[0]}") from None


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision` (`base` removes every table)."""
    from alembic import command

    command.downgrade(_alembic_config(url), revision)


@lru_cache(maxsize=1)
def _known_revisions() -> tuple[frozenset[str], str]:
    """This finsent's migrations and its head(s), read once per process (the dashboard asks on every page run)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(ALEMBIC_DIR))
    return frozenset(rev.revision for rev in script.walk_revisions()), ", ".join(script.get_heads())


def check_known(revision: str | None) -> None:
    """Raise UnknownRevisionError when the database's `revision` is none of this finsent's migrations."""
    if revision is None:
        return
    known, head = _known_revisions()
    if revision not in known:
        raise UnknownRevisionError(revision, head)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def database_problem(engine: Engine) -> str | None:
    """Why the database does not answer (a readiness check: `SELECT 1`), or None when it does."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"does not answer: {first[0] if first else type(exc).__name__}"
    return None
