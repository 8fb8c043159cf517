"""`finsent prune`: remove what is older than the retention period (core/retention.py says what goes and stays)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli import wiring
from cli.wiring import DatabaseOpt, fail


def prune_command(
    older_than: Annotated[str, typer.Option("--older-than", help="Age to keep: 400d, 8w or 2y (a year is 365 days).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; change nothing.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Remove articles (with their scores, mentions and words), resolved alerts, rejects, delivered notifications
    and window buckets older than the age; an open alert keeps its evidence. docs/operations.md, "Retention".

    Example: finsent prune --older-than 400d --dry-run
    """
    from sqlalchemy.exc import SQLAlchemyError

    from core.retention import RetentionError, parse_age, prune

    try:
        age = parse_age(older_than)
    except RetentionError as exc:
        fail(str(exc))
    settings = wiring.settings(database_url)
    _, factory = wiring.database(settings)
    try:
        report = prune(factory, datetime.now(UTC) - age, dry_run=dry_run)
    except SQLAlchemyError as exc:
        fail(f"prune stopped: {str(exc).splitlines()[0]} (what was removed before it stays removed; run it again)")
    for line in report.lines():
        typer.echo(line)
