"""Bulk export of scored mentions: one row per article x ticker, read from one model version, streamed in pages.

A row: published_at, source, ticker, relevance, headline, url, label, p_negative, p_neutral, p_positive, score,
confidence, sentiment_of, story_id, is_first_of_story, similar_before, top_words (the stored pooling words,
[{word, weight}] by rank), model_version, article_id. The sentiment is the company's own where the headline names two
or more companies (`sentiment_of` "company", with that company's words), else the headline's ("headline";
core/sentiment.py). Rows come in time order (published_at, article_id, ticker), read with a
server-side cursor `PAGE` rows at a time; each page's words are fetched by key for that page only, so memory stays
flat whatever the range (docs/operations.md, "Export"). `spreadsheet_cell` is the CSV guard every CSV of news uses.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, BinaryIO

from sqlalchemy import and_, func, select, text
from sqlalchemy.orm import Session

from core.schema import Article, Attribution, Mention, MentionScore, Score, Source
from core.sentiment import company_words, own_columns, with_own
from core.versions import version_note

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = [
    "published_at",
    "source",
    "ticker",
    "relevance",
    "headline",
    "url",
    "label",
    "p_negative",
    "p_neutral",
    "p_positive",
    "score",
    "confidence",
    "sentiment_of",
    "story_id",
    "is_first_of_story",
    "similar_before",
    "top_words",
    "model_version",
    "article_id",
]
FORMATS = ("csv", "jsonl", "parquet")
PAGE = 2000  # rows per fetch from the cursor: with ROW_GROUP, what bounds an export's memory
ROW_GROUP = 20_000  # rows per Parquet row group (readers skip whole groups; a group is held until written)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportError(ValueError):
    """An export that cannot run as asked: an unknown ticker, a format whose library is missing."""


def spreadsheet_cell(value: object) -> object:
    """A text cell a spreadsheet will not run as a formula (OWASP "CSV injection"): prefixed with a quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


@dataclass(frozen=True)
class ExportQuery:
    """Which mentions: `version`'s scores of articles published in [since, until) (an end open when None) naming
    one of `tickers` (every ticker when empty). Tickers are matched case-insensitively (stored upper-case)."""

    version: str
    tickers: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        cleaned = tuple(sorted({t.strip().upper() for t in self.tickers if t and t.strip()}))
        object.__setattr__(self, "tickers", cleaned)

    def describe(self) -> str:
        """The query in words, for the line that says nothing matched."""
        who = f"ticker {', '.join(self.tickers)}" if self.tickers else "any ticker"
        day = "%Y-%m-%d %H:%M"
        since = f"{self.since.astimezone(UTC):{day}}" if self.since else "the start"
        until = f"{self.until.astimezone(UTC):{day}}" if self.until else "now"
        return f"{who}, published {since} .. {until} UTC, scored by {self.version}"


def _select(query: ExportQuery):
    """The mention rows of `query`, in time order: mentions(ticker, published_at) with tickers, else the
    articles.published_at index (a mention's published_at is its article's)."""
    stmt = (
        select(
            Mention.published_at,
            Source.name.label("source"),
            Mention.ticker,
            Mention.relevance,
            Article.title.label("headline"),
            Article.url,
            *own_columns(),
            Article.story_id,
            Article.is_first_of_story,
            Article.similar_before,
            Score.model_version,
            Article.id.label("article_id"),
            Score.id.label("score_id"),
            MentionScore.id.label("mention_score_id"),
        )
        .select_from(Mention)
        .join(Article, Article.id == Mention.article_id)
        .join(Score, and_(Score.article_id == Article.id, Score.model_version == query.version))
        .join(Source, Source.id == Article.source_id)
    )
    stmt = with_own(stmt)
    if query.tickers:
        stmt = stmt.where(Mention.ticker.in_(query.tickers))
        time_column = Mention.published_at
    else:
        time_column = Article.published_at
    if query.since is not None:
        stmt = stmt.where(time_column >= query.since)
    if query.until is not None:
        stmt = stmt.where(time_column < query.until)
    return stmt.order_by(time_column, Article.id, Mention.ticker)


def stored_tickers(session: Session, tickers: Iterable[str]) -> list[str]:
    """Which of `tickers` (any case; returned upper-cased) any stored article mentions, at any time."""
    wanted = sorted({t.strip().upper() for t in tickers if t and t.strip()})
    if not wanted:
        return []
    return sorted(session.scalars(select(Mention.ticker).where(Mention.ticker.in_(wanted)).distinct()))


def unknown_tickers(session: Session, tickers: Iterable[str]) -> list[str]:
    """The tickers (upper-cased) with no mention stored at any time: a typo, or a company never in the news."""
    wanted = sorted({t.strip().upper() for t in tickers if t and t.strip()})
    stored = set(stored_tickers(session, wanted))
    return [t for t in wanted if t not in stored]


def check_tickers(session: Session, query: ExportQuery) -> None:
    """ExportError naming the tickers of `query` that no stored mention names (an empty period is no error)."""
    unknown = unknown_tickers(session, query.tickers)
    if unknown:
        raise ExportError(f"no mention of {', '.join(unknown)} is stored at any time: check the ticker")


def count_rows(session: Session, query: ExportQuery) -> int:
    """How many rows `query` exports (a progress bar's total)."""
    inner = _select(query).order_by(None).with_only_columns(Mention.id).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def rows(session: Session, query: ExportQuery, *, page: int = PAGE) -> Iterator[dict]:
    """The rows of `query`, one dict per mention with the keys of COLUMNS, streamed `page` rows at a time."""
    if session.get_bind().dialect.name == "postgresql":
        # A cursor is planned for its first tenth by default (a nested loop that starts at once); an export reads to
        # the end, where joining by hash and sorting is faster (about 1.5x at 84k rows: docs/operations.md, Export).
        session.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))
    result = session.execute(_select(query).execution_options(yield_per=page))
    for chunk in result.partitions():
        score_ids = sorted({r.score_id for r in chunk})
        words: dict[int, list[dict]] = {s: [] for s in score_ids}
        for score_id, word, weight in session.execute(
            select(Attribution.score_id, Attribution.word, Attribution.weight)
            .where(Attribution.score_id.in_(score_ids), Attribution.method == "pooling")
            .order_by(Attribution.score_id, Attribution.rank)
        ):
            words[score_id].append({"word": word, "weight": weight})
        own = {
            m: [{"word": w.word, "weight": w.weight} for w in found]
            for m, found in company_words(session, {r.mention_score_id for r in chunk} - {None}).items()
        }
        for r in chunk:
            row = r._asdict()
            score_id, mention_score_id = row.pop("score_id"), row.pop("mention_score_id")
            row["top_words"] = own[mention_score_id] if mention_score_id is not None else words[score_id]
            yield row


# ------------------------------------------------------------------------------------------------------ formats


def _words_text(words: list[dict]) -> str:
    return "; ".join(f"{w['word']}:{w['weight']:.3f}" for w in words)


def _write_csv(items: Iterable[dict], out: BinaryIO) -> int:
    """UTF-8 CSV with a header, every text cell guarded; words as `word:weight` joined by `; `."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        n = 0
        for row in items:
            values = []
            for column in COLUMNS:
                value = row[column]
                if column == "published_at":
                    value = value.isoformat()
                elif column == "top_words":
                    value = _words_text(value)
                values.append(spreadsheet_cell(value))
            writer.writerow(values)
            n += 1
        text.flush()
        return n
    finally:
        text.detach()  # the caller's stream stays open


def _write_jsonl(items: Iterable[dict], out: BinaryIO) -> int:
    """One JSON object per line; times ISO 8601 UTC, words as a list of {word, weight}."""
    n = 0
    for row in items:
        record = {c: row[c] for c in COLUMNS}
        record["published_at"] = row["published_at"].isoformat()
        out.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        n += 1
    return n


def _arrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(
            "--format parquet needs pyarrow, which is not installed here: pip install pyarrow, or use --format csv "
            "or jsonl"
        ) from None
    return pa, pq


def _write_parquet(items: Iterable[dict], out: BinaryIO, *, group: int = ROW_GROUP) -> int:
    """Parquet (pyarrow), one row group per `group` rows, held as columns until written: memory is bounded by it."""
    pa, pq = _arrow()
    word = pa.struct([("word", pa.string()), ("weight", pa.float64())])
    types = {
        "published_at": pa.timestamp("us", tz="UTC"),
        "relevance": pa.float64(),
        "p_negative": pa.float64(),
        "p_neutral": pa.float64(),
        "p_positive": pa.float64(),
        "score": pa.float64(),
        "confidence": pa.float64(),
        "story_id": pa.int64(),
        "is_first_of_story": pa.bool_(),
        "similar_before": pa.int64(),
        "top_words": pa.list_(word),
        "article_id": pa.int64(),
    }
    schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])
    n = 0
    columns: dict[str, list] = {c: [] for c in COLUMNS}
    with pq.ParquetWriter(out, schema) as writer:
        for row in items:
            for c in COLUMNS:
                columns[c].append(row[c])
            n += 1
            if n % group == 0:
                writer.write_table(pa.Table.from_pydict(columns, schema=schema))
                columns = {c: [] for c in COLUMNS}
        if columns["article_id"] or n == 0:  # an empty export is still a file with the schema
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
    return n


def write(items: Iterable[dict], *, fmt: str, out: BinaryIO) -> int:
    """Write `items` (rows of `rows`) to the binary stream `out` as `fmt` (csv, jsonl or parquet); rows written."""
    if fmt == "csv":
        return _write_csv(items, out)
    if fmt == "jsonl":
        return _write_jsonl(items, out)
    if fmt == "parquet":
        return _write_parquet(items, out)
    raise ExportError(f"--format {fmt!r}: not one of {', '.join(FORMATS)}")


def check_format(fmt: str) -> None:
    """ExportError before any row is read when `fmt` is unknown or its library is missing."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: not one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        _arrow()


def export(*, session: Session, query: ExportQuery, fmt: str, out: BinaryIO, progress: bool = False) -> int:
    """Stream `query`'s rows into `out` as `fmt`, with a progress bar on stderr when `progress`; rows written.

    ExportError when a named ticker has no mention stored at all (nothing is written then)."""
    check_format(fmt)
    check_tickers(session, query)
    items: Iterable[dict] = rows(session, query)
    if progress:
        from tqdm import tqdm

        total = count_rows(session, query)
        items = tqdm(items, total=total, unit="row", unit_scale=True, dynamic_ncols=True, desc="export")
    return write(items, fmt=fmt, out=out)


def empty_note(session: Session, query: ExportQuery) -> str:
    """The line shown when nothing matched: the query in words, and the model versions that did score the range."""
    note = version_note(session, version=query.version, since=query.since, until=query.until)
    return f"no rows match {query.describe()}" + (f". {note}" if note else "")


def frame(*, session: Session, query: ExportQuery) -> pd.DataFrame:
    """The rows of `query` as a pandas DataFrame (columns COLUMNS; published_at UTC; top_words lists of dicts);
    ExportError for a ticker no stored mention names."""
    import pandas as pd

    check_tickers(session, query)
    data = pd.DataFrame(list(rows(session, query)), columns=COLUMNS)
    data["published_at"] = pd.to_datetime(data["published_at"], utc=True)
    return data
