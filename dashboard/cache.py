"""The dashboard's engine (one per process and database URL) and its queries behind Streamlit's caches.

Each cached query takes the database URL as its first argument, so two databases never share an entry, and opens
a short read-only session of its own. Time-dependent queries take `now=None` ("the time of the query") so that the
cache entry, not the clock, decides when they run again: at most once per `ttl` whatever the number of viewers.
Queries of scores take the model version shown (`model_version()`, FINSENT_MODEL_VERSION) as an argument too, so
it is part of every cache key.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import streamlit as st
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db import make_engine
from core.settings import Settings
from core.versions import VersionError, check_version
from dashboard import queries
from model.checkpoints import WEIGHTS_DIR, active_version, default_checkpoint, read_card, version_checkpoint

LIVE_TTL_S = 2  # below the default refresh interval, so every refresh can show new items
TTL_S = 30


def database_url() -> str:
    """The database URL from the settings (FINSENT_DATABASE_URL overrides the default)."""
    return Settings().database_url


def model_version() -> str:
    """The model version every page shows: FINSENT_MODEL_VERSION, else the shipped default (model/weights/DEFAULT)."""
    return active_version(Settings().model_version)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _version_error(url: str, version: str) -> str | None:
    with session(url) as s:
        try:
            check_version(s, version, has_checkpoint=version_checkpoint(version) is not None)
        except VersionError as exc:
            return str(exc)
    return None


def settings_problem() -> str | None:
    """Why no page can be shown with these settings (a misspelt or bad FINSENT_ variable, a database migrated by a
    newer finsent, an unknown model version), or None."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import SchemaError, check_known, current_revision
    from core.settings import unknown_variables

    unknown = unknown_variables()
    if unknown:
        return "; ".join(unknown)
    try:
        settings = Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        return f"bad FINSENT_ setting: {error['loc'][0]}: {error['msg']}"
    try:
        check_known(current_revision(engine(settings.database_url)))
    except SchemaError as exc:  # started by `streamlit run`, not `finsent dashboard`, which checks this first
        return str(exc)
    except SQLAlchemyError:
        pass  # no database there: the page says so (app.py)
    return _version_error(settings.database_url, active_version(settings.model_version))


def feed_url() -> str:
    """Base URL of the alert feed server (`finsent feed serve`), from FINSENT_FEED_URL."""
    return os.environ.get("FINSENT_FEED_URL", "http://127.0.0.1:8080").rstrip("/")


def refresh_interval_s() -> float:
    """The default refresh interval of the live panels, from FINSENT_DASHBOARD_REFRESH_S (5 s)."""
    try:
        return max(1.0, float(os.environ.get("FINSENT_DASHBOARD_REFRESH_S", "5")))
    except ValueError:
        return 5.0


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """One engine (and connection pool) per database URL for the whole server process."""
    return make_engine(url, busy_timeout_ms=Settings().sqlite_busy_timeout_ms)


def session(url: str | None = None) -> Session:
    """A new session on the dashboard's database (use it in a `with` block)."""
    return Session(engine(url or database_url()))


def _query(url: str, name: str, **kwargs):
    with session(url) as s:
        return getattr(queries, name)(s, **kwargs)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def latest_news(url: str, **kwargs) -> list[dict]:
    return _query(url, "latest_news", **kwargs)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def pipeline_status(url: str, now: datetime | None = None) -> dict:
    return _query(url, "pipeline_status", now=_now(now)) | {"now": _now(now)}


@st.cache_data(ttl=TTL_S, show_spinner=False)
def market_sentiment(url: str, *, version: str, window_s: int, buckets: int, now: datetime | None = None):
    return _query(url, "market_sentiment", version=version, now=_now(now), window_s=window_s, buckets=buckets)


@st.cache_data(ttl=LIVE_TTL_S, show_spinner=False)
def sentiment_now(
    url: str, *, version: str, window_s: int, key: str = queries.MARKET, now: datetime | None = None
) -> dict:
    return _query(url, "sentiment_now", version=version, now=_now(now), window_s=window_s, key=key)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def version_note(url: str, **kwargs) -> str | None:
    return _query(url, "version_note", **kwargs)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def ticker_series(url: str, **kwargs) -> dict:
    return _query(url, "ticker_series", **kwargs)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def ticker_stories(url: str, **kwargs) -> list[dict]:
    return _query(url, "ticker_stories", **kwargs)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def ticker_words(url: str, **kwargs):
    return _query(url, "ticker_words", **kwargs)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def known_tickers(url: str, *, since: datetime | None, limit: int = 1000) -> list[str]:
    return _query(url, "known_tickers", since=since, limit=limit)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def stored_tickers(url: str, *, tickers: tuple[str, ...]) -> list[str]:
    return _query(url, "stored_tickers", tickers=list(tickers))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def source_names(url: str) -> list[str]:
    return _query(url, "source_names")


@st.cache_data(ttl=TTL_S, show_spinner=False)
def alerts(
    url: str,
    *,
    version: str,
    statuses: tuple[str, ...],
    limit: int,
    now: datetime | None = None,
    tickers: tuple[str, ...] = (),
    include_replayed: bool = False,
) -> list[dict]:
    return _query(url, "alerts", version=version, statuses=list(statuses), limit=limit, now=_now(now),
                  tickers=list(tickers), include_replayed=include_replayed)  # fmt: skip


@st.cache_data(ttl=TTL_S, show_spinner=False)
def silences(url: str, *, include_expired: bool = True, now: datetime | None = None) -> list[dict]:
    return _query(url, "silences", now=_now(now), include_expired=include_expired)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def article(url: str, *, version: str, article_id: int) -> dict | None:
    return _query(url, "article", version=version, article_id=article_id)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def search(url: str, **kwargs) -> list[dict]:
    return _query(url, "search", **kwargs)


def clear_alerts() -> None:
    """Forget cached alerts and silences (after this session changed them)."""
    alerts.clear()
    silences.clear()


def default_version() -> str:
    """The shipped model version named in model/weights/DEFAULT."""
    return default_checkpoint().name


@st.cache_data(show_spinner=False)
def _read_card(path: str, mtime: float) -> tuple[dict, str]:
    card_dir = Path(path)
    card = read_card(card_dir)
    markdown = (card_dir / "card.md").read_text() if (card_dir / "card.md").is_file() else ""
    return card, markdown


def model_card(version: str | None = None) -> tuple[dict, str]:
    """(card.json, card.md) of a model version (default: model/weights/DEFAULT), read as files: no torch."""
    version = version or default_version()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", version):  # a version names a folder: nothing else
        raise ValueError(f"bad model version {version!r}")
    card_dir = WEIGHTS_DIR / version
    if not (card_dir / "card.json").is_file():
        raise FileNotFoundError(f"no model card at {card_dir / 'card.json'}")
    return _read_card(str(card_dir), (card_dir / "card.json").stat().st_mtime)
