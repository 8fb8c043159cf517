"""Fixtures for core: a migrated-or-empty database on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

BACKENDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def empty_url(request, tmp_path) -> str:
    """The URL of an empty database: a SQLite file in tmp_path, or a throw-away PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'finsent.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def migrated_engine(empty_url):
    """An engine on a database migrated to head (the only way finsent creates its schema)."""
    from core.db import make_engine, upgrade

    upgrade(empty_url)
    engine = make_engine(empty_url)
    yield engine
    engine.dispose()  # before the postgres fixture drops the database
