"""`finsent export`: scored mentions of tickers over a period into CSV, JSON Lines or Parquet, streamed; and
`export_frame`, the same rows as a pandas DataFrame for a notebook."""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import wiring
from cli.wiring import DatabaseOpt, DateOpt, fail

if TYPE_CHECKING:
    import pandas as pd


def export_command(
    ticker: Annotated[
        list[str] | None,
        typer.Option(
            "--ticker", "-t", help="A ticker, any case; repeat or separate by commas for several (default: all)."
        ),
    ] = None,
    since: DateOpt = None,
    until: DateOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv | jsonl | parquet")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: standard output).")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Export one row per article x ticker, scored by the active model version (FINSENT_MODEL_VERSION): time,
    source, ticker, relevance, headline, url, label, probabilities, score, story, novelty, top words, version.

    Example: finsent export --ticker aapl --ticker MSFT --since 2020-01-01 --until 2020-04-01 --out q1.csv

    No rows in the period is an answer, not an error: the file holds only the header, stderr says why, exit 0.
    An unknown ticker (never mentioned in the database) or a bad date is an error: one line, exit 1.
    """
    from core.export import ExportError, ExportQuery, check_format, empty_note, export

    start, end = wiring.when(since, "since"), wiring.when(until, "until")
    if start is not None and end is not None and start >= end:
        fail(f"--since {since} is not before --until {until}: no row could match")
    try:
        check_format(fmt)
    except ExportError as exc:
        fail(str(exc))
    if out is None and fmt == "parquet" and sys.stdout.isatty():
        fail("--format parquet is binary: pass --out FILE, or redirect standard output")
    settings = wiring.settings(database_url)
    _, session_factory = wiring.database(settings)
    tickers = tuple(t for value in ticker or () for t in value.split(","))
    query = ExportQuery(
        version=wiring.model_version(settings, session_factory), tickers=tickers, since=start, until=end
    )
    # The progress bar is for a person at a terminal; in a pipe or a log it would be noise.
    progress = sys.stderr.isatty()
    with session_factory() as session:
        try:
            if out is None:
                written = export(session=session, query=query, fmt=fmt, out=sys.stdout.buffer, progress=progress)
                sys.stdout.flush()
            else:
                written = _to_file(out, lambda fh: export(session=session, query=query, fmt=fmt, out=fh,
                                                          progress=progress))  # fmt: skip
        except ExportError as exc:
            fail(str(exc))
        if written == 0:
            typer.echo(wiring.printable(empty_note(session, query)), err=True)
        elif out is not None:
            typer.echo(f"{written} rows written to {wiring.printable(str(out))}", err=True)


def _to_file(out: Path, write) -> int:
    """Write through a temporary file beside `out`, renamed over it only when complete: an interrupted export
    leaves no truncated file that looks finished."""
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        with open(partial, "xb") as fh:
            written = write(fh)
        os.replace(partial, out)
    except OSError as exc:
        fail(f"{out}: cannot be written ({exc.strerror or exc})")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return written


def export_frame(
    tickers: list[str] | tuple[str, ...] | str = (),
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    database_url: str | None = None,
    version: str | None = None,
) -> pd.DataFrame:
    """The rows of `finsent export` as a pandas DataFrame (columns `core.export.COLUMNS`), for a notebook.

    The database is FINSENT_DATABASE_URL unless `database_url` is given; the model version is the active one
    (FINSENT_MODEL_VERSION, else the shipped default) unless `version` is given; dates are ISO strings or
    datetimes, UTC unless they carry an offset. Raises `core.export.ExportError` for an unknown ticker and
    `core.versions.VersionError` for a version that cannot be shown.

        from cli.export import export_frame
        df = export_frame(["AAPL", "msft"], "2020-01-01", "2020-04-01")
    """
    from core.db import make_engine, make_session_factory
    from core.export import ExportQuery, frame
    from core.settings import Settings
    from core.versions import check_version
    from model.checkpoints import active_version, version_checkpoint

    settings = Settings() if database_url is None else Settings(database_url=database_url)
    engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    try:
        with make_session_factory(engine)() as session:
            if version is None:
                version = active_version(settings.model_version)
                check_version(session, version, has_checkpoint=version_checkpoint(version) is not None)
            query = ExportQuery(version=version, tickers=(tickers,) if isinstance(tickers, str) else tuple(tickers),
                                since=_when(since), until=_when(until))  # fmt: skip
            return frame(session=session, query=query)
    finally:
        engine.dispose()


def _when(value: datetime | str | None) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
