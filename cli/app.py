"""The root `finsent` command: its global options; the command groups register themselves on `app`."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, get_args

import typer
import typer.core

from cli.wiring import LOGGING, fail

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights ship in packages and in the repo; never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _help_value(param: object, ctx: object) -> str:
    """What `--help` shows after a parameter: nothing for a flag or an argument (its name says it), click's word
    for an option's value (TEXT, INTEGER, NUMBER, PATH, or its choices), never Typer's Python type tag (`<bool>`)."""
    if not isinstance(param, typer.core.TyperOption) or param.is_flag or param.count:
        return ""
    if param.metavar is not None:
        return param.metavar
    described = param.type_descriptor
    if described.is_choice:
        return "|".join(str(c) for c in described.choices or ())
    annotation = get_args(described.annotation)[0] if described.is_list else described.annotation
    return _VALUE_WORDS.get(annotation, "VALUE")


_VALUE_WORDS = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH", bool: "BOOLEAN", datetime: "DATETIME"}
# Typer 0.2x labels every parameter with its Python type; older ones show click's metavars and have no such hook.
for _param_class in (getattr(typer.core, "TyperOption", None), getattr(typer.core, "TyperArgument", None)):
    if _param_class is not None and hasattr(_param_class, "display_type_rich"):
        _param_class.display_type_rich = _help_value

app = typer.Typer(name="finsent", help="Financial-news sentiment monitor.", no_args_is_help=True, add_completion=False)


def _version(show: bool) -> None:
    """`finsent --version`: the installed package's version, then exit."""
    if not show:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"finsent {version('finsent')}")
    except PackageNotFoundError:
        fail("the finsent package is not installed (pip install -e .): no version to show")
    raise typer.Exit()


@app.callback()
def main(
    _show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the installed finsent version and exit."
        ),
    ] = False,
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
