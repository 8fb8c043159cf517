"""`finsent tickers`: which companies a text names, where, how relevant, and by which rule (or why not linked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.wiring import fail, printable, when


def tickers_command(
    texts: Annotated[list[str] | None, typer.Argument(help="Headlines to link.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A text file: one headline per line (blank lines skipped).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text (JSON Lines).")] = False,
    skipped: Annotated[
        bool, typer.Option("--skipped/--no-skipped", help="Also show candidates that were not linked, and why.")
    ] = True,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Publication date or time (ISO, UTC unless it has an offset): a company not "
            "listed that day is not linked.",
        ),
    ] = None,
) -> None:
    """Show every company each headline links to: ticker, name, span, relevance (0-100) and rule.

    Example: finsent tickers "UPDATE 1-Shell wins $3bn LNG contract" "Tesco cut to hold at Barclays"
    """
    items = list(texts or [])
    if file is not None:
        try:
            items += [line for line in file.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            fail(f"{file}: cannot be read ({getattr(e, 'strerror', None) or e})")
    if not items:
        fail("no text given: pass headlines as arguments or --file FILE")
    from scoring.entities import find
    from scoring.universe import EntitiesFileError

    day = when(at, "at")
    try:
        results = [(text, find(text, at=day)) for text in items]
    except EntitiesFileError as e:
        fail(str(e))
    for text, spans in results:
        linked = [s for s in spans if not s.skipped]
        if as_json:
            record: dict[str, object] = {"text": text, "mentions": [_mention(s) for s in linked]}
            if skipped:
                record["skipped"] = [_mention(s) | {"why": s.skipped} for s in spans if s.skipped]
            typer.echo(json.dumps(record, ensure_ascii=False))
            continue
        typer.echo(printable(text))
        if not linked:
            typer.echo("  (no company linked)")
        for s in linked:
            typer.echo(
                f"  {s.ticker:<10} {printable(s.name)[:32]:<32} [{s.start}:{s.end}] {printable(s.text)!r:<24} "
                f"relevance {s.relevance:>3}  {s.role:<8} rule {s.rule}"
            )
        for s in spans if skipped else ():
            if s.skipped:
                typer.echo(f"  not linked: {s.ticker} {printable(s.text)!r} [{s.start}:{s.end}]: {s.skipped}")


def _mention(s) -> dict[str, object]:
    return {"ticker": s.ticker, "name": s.name, "start": s.start, "end": s.end, "text": s.text,
            "relevance": s.relevance, "role": s.role, "rule": s.rule}  # fmt: skip
