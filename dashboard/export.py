"""CSV export of news rows, safe to open in a spreadsheet (the guard of `core.export`, shared with `finsent export`);
each row names the model version that scored it."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import datetime

from core.export import spreadsheet_cell
from core.schema import LABELS

COLUMNS = [
    "published_at",
    "source",
    "tickers",
    "title",
    "model_version",
    "label",
    "score",
    "confidence",
    "p_negative",
    "p_neutral",
    "p_positive",
    "top_words",
    "story_id",
    "is_first_of_story",
    "similar_before",
    "article_id",
    "url",
]


def news_csv(rows: Sequence[Mapping]) -> bytes:
    """UTF-8 CSV (with a header) of news rows from dashboard.queries; words as `word:weight` joined by `; `."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        when = row.get("published_at")
        probabilities = row.get("probabilities") or {}
        writer.writerow(
            [
                when.isoformat() if isinstance(when, datetime) else when,
                spreadsheet_cell(row.get("source")),
                spreadsheet_cell(" ".join(row.get("tickers", []))),
                spreadsheet_cell(row.get("title")),
                spreadsheet_cell(row.get("model_version")),
                row.get("label"),
                f"{row['score']:.4f}" if row.get("score") is not None else "",
                f"{row['confidence']:.4f}" if row.get("confidence") is not None else "",
                *(f"{probabilities[k]:.4f}" if k in probabilities else "" for k in LABELS),
                spreadsheet_cell("; ".join(f"{w['word']}:{w['weight']:.3f}" for w in row.get("words", []))),
                row.get("story_id"),
                row.get("is_first_of_story"),
                row.get("similar_before"),
                row.get("article_id"),
                spreadsheet_cell(row.get("url") or ""),
            ]
        )
    return out.getvalue().encode("utf-8")
