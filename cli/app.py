"""The root `finsent` command: its global options; the command groups register themselves on `app`."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from cli.wiring import LOGGING, fail

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights ship in packages and in the repo; never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(name="finsent", help="Financial-news sentiment monitor.", no_args_is_help=True, add_completion=False)


@app.callback()
def main(
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="text | json (default: FINSENT_LOG_FORMAT, else text).")
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", help="DEBUG | INFO | WARNING | ERROR (default: FINSENT_LOG_LEVEL, else per command)"
        ),
    ] = None,
) -> None:
    """Financial-news sentiment monitor."""
    if log_format is not None and log_format not in ("text", "json"):
        fail(f"--log-format: {log_format!r} is not text or json")
    if log_level is not None and log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(f"--log-level: {log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    from scoring.universe import EntitiesFileError, entities_file, read_companies

    desk_file = entities_file()
    if desk_file:  # a malformed desk file stops every command at start-up, naming file, line and field
        try:
            read_companies(desk_file)
        except EntitiesFileError as e:
            fail(str(e))
    LOGGING.clear()
    LOGGING.update(format=log_format, level=log_level.upper() if log_level else None)
