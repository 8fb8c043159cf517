"""Every piece of HTML the dashboard shows. News text is untrusted: it is escaped here and nowhere else.

`highlight` is the one function that turns a headline and its attended words into HTML. It escapes each piece
of text (HTML special characters, and the characters Markdown or LaTeX would act on, as numeric entities), so a
headline like `<script>alert(1)</script>` or `$AAPL *up*` shows as exactly that text, whatever renders it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

LABEL_RGB = {"negative": (220, 38, 38), "neutral": (100, 116, 139), "positive": (22, 163, 74)}
_NEUTRAL_RGB = LABEL_RGB["neutral"]
# Inline Markdown (emphasis, code, links and images, tables, strike-through) and Streamlit's $LaTeX$: as entities,
# in case HTML from here is ever given to st.markdown rather than st.html.
_MARKDOWN_ENTITIES = {ord(c): f"&#{ord(c)};" for c in "\\`*_[]|~$"}


def escape(text: object) -> str:
    """Text as inert HTML: special characters and Markdown syntax become entities, newlines become spaces."""
    escaped = html.escape(str(text), quote=True)  # & first, then < > " '
    escaped = escaped.translate(_MARKDOWN_ENTITIES)
    # A blank line would end the HTML block in Markdown and let what follows be parsed as Markdown.
    return " ".join(escaped.split()) if ("\n" in escaped or "\r" in escaped) else escaped


def _label_rgb(label: str | None) -> tuple[int, int, int]:
    return LABEL_RGB.get(label or "", _NEUTRAL_RGB)


def _clean_spans(text: str, spans: Iterable) -> list[tuple[int, int, float]]:
    """Spans clipped to the text, empty ones dropped, overlaps resolved in favour of the heavier span."""
    cleaned = []
    for span in spans:
        if isinstance(span, Mapping):
            start, end, weight = span.get("start"), span.get("end"), span.get("weight", 0.0)
        else:
            start, end, weight = span[0], span[1], span[2] if len(span) > 2 else 0.0
        try:
            start, end, weight = int(start), int(end), float(weight)
        except (TypeError, ValueError):
            continue
        start, end = max(0, start), min(len(text), end)
        if start < end and weight == weight:  # NaN weights are skipped
            cleaned.append((start, end, weight))
    kept: list[tuple[int, int, float]] = []
    for start, end, weight in sorted(cleaned, key=lambda s: (-abs(s[2]), s[0])):
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, weight))
    return sorted(kept)


def has_long_word(text: object, limit: int) -> bool:
    """True when `text` holds a run of more than `limit` characters without a space."""
    return re.search(rf"\S{{{limit + 1},}}", str(text)) is not None


def _shorten(text: str, limit: int | None) -> str:
    """Each run of more than `limit` characters without a space cut to `limit` with an ellipsis."""
    if limit is None:
        return text
    return re.sub(rf"\S{{{limit + 1},}}", lambda m: m.group()[: limit - 1] + "…", text)


def highlight(text: str, spans: Iterable, label: str | None, *, max_word: int | None = None) -> str:
    """Escaped HTML of `text` with each span `(start, end, weight)` (or a dict with those keys) highlighted.

    The colour follows the item's label and the strength the span's weight relative to the heaviest one. Offsets
    are character offsets into `text` ([start, end)); spans outside the text, empty or overlapping a heavier span
    are ignored. Only escaped pieces of the text and numbers computed here reach the HTML. With `max_word`, a longer
    run without a space is cut to that many characters with an ellipsis (the spans still apply to the whole text).
    """
    text = str(text)
    kept = _clean_spans(text, spans)
    r, g, b = _label_rgb(label)
    top = max((abs(w) for _, _, w in kept), default=0.0)
    parts, pos = [], 0
    for start, end, weight in kept:
        parts.append(escape(_shorten(text[pos:start], max_word)))
        strength = abs(weight) / top if top > 0 else 1.0
        alpha = 0.15 + 0.6 * strength
        parts.append(
            f'<span class="fs-word" style="background-color: rgba({r}, {g}, {b}, {alpha:.2f}); '
            f'border-radius: 3px; padding: 0 2px" title="weight {weight:.3f}">'
            f"{escape(_shorten(text[start:end], max_word))}</span>"
        )
        pos = end
    parts.append(escape(_shorten(text[pos:], max_word)))
    return "".join(parts)


def spans_from_words(text: str, words: Sequence) -> list[tuple[int, int, float]]:
    """Spans for `[word, weight]` pairs that carry no offsets (alert evidence): each word's first free occurrence
    as a whole word ("to" is not marked inside "Automotive"; a word found only inside others is not marked)."""
    spans: list[tuple[int, int, float]] = []
    lowered = str(text).lower()
    for item in words:
        word, weight = (item["word"], item["weight"]) if isinstance(item, Mapping) else (item[0], item[1])
        needle = str(word).lower()
        if not needle:
            continue
        # A letter or digit at the word's edge must not touch another (`$AAPL` or `5%` keep their own edges).
        lead = r"(?<!\w)" if re.match(r"\w", needle[0]) else ""
        trail = r"(?!\w)" if re.match(r"\w", needle[-1]) else ""
        for found in re.finditer(lead + re.escape(needle) + trail, lowered):
            start, end = found.span()
            if not any(start < e and end > s for s, e, _ in spans):
                spans.append((start, end, float(weight)))
                break
    return spans


def label_badge(label: str | None) -> str:
    """A small coloured label (the label is checked against the known ones before it reaches HTML)."""
    r, g, b = _label_rgb(label)
    name = label if label in LABEL_RGB else "unscored"
    return (
        f'<span class="fs-label" style="color: rgb({r}, {g}, {b}); border: 1px solid rgb({r}, {g}, {b}); '
        f'border-radius: 4px; padding: 0 4px; font-size: 0.85em">{name}</span>'
    )


def ticker_chips(row: Mapping) -> str:
    """A news row's tickers; a company with its own sentiment (a headline naming two or more) in its label's colour,
    with its label and score as the tooltip ("MRNA negative -0.71")."""
    out = []
    companies = row.get("companies") or {}
    for ticker in row.get("tickers", []):
        own = companies.get(ticker)
        if own is None:
            out.append(escape(ticker))
            continue
        r, g, b = _label_rgb(own.get("label"))
        label = own.get("label") if own.get("label") in LABEL_RGB else "unscored"
        tip = escape(f"{ticker} {label} {signed(own.get('score'))} (its own sentiment in this headline)")
        out.append(f'<span class="fs-company" title="{tip}" style="color: rgb({r}, {g}, {b}); font-weight: 600">'
                   f"{escape(ticker)}</span>")  # fmt: skip
    return ", ".join(out)


def signed(value: float | None, digits: int = 2) -> str:
    """A score as text with its sign: +0.87, -0.42, or an en dash when there is none."""
    return "–" if value is None else f"{value:+.{digits}f}"


def novelty(row: Mapping) -> str:
    """The duplicate / novelty mark of a news row, as plain text."""
    if row.get("is_first_of_story", True):
        return "new"
    return f"dup of #{row.get('story_id')}"


# A word may be as long as a feed makes it: headlines break it anywhere rather than widen the page (issue 17, D8: one
# 900-character word made the news tables 7,337 px wide and pushed label, score and story off-screen). `anywhere`,
# unlike `break-word`, also lowers the column's minimum width, which is what lets the table fit.
WRAP = "overflow-wrap: anywhere"
_CELL = "padding: 3px 6px; vertical-align: top; text-align: left"
SHORT_TEXT = 40  # a source name longer than this is cut, with the whole name in its tooltip
# In the tables a word longer than this is cut with an ellipsis, the whole headline in the cell's tooltip (the
# Explain page shows it whole, wrapped): one hostile word would otherwise make its row forty lines tall.
TABLE_WORD = 60


def _cell(
    content: str,
    *,
    nowrap: bool = False,
    wrap: bool = False,
    cls: str | None = None,
    width: str | None = None,
    title: str | None = None,
) -> str:
    """A table cell around HTML that is already escaped (`title` too); `wrap` breaks long words (headlines only: a
    short column that may break anywhere is squeezed to one letter beside a long headline)."""
    style = (
        _CELL
        + ("; white-space: nowrap" if nowrap else "")
        + (f"; {WRAP}" if wrap else "")
        + (f"; width: {width}" if width else "")
    )
    css_class = f' class="{cls}"' if cls else ""
    tooltip = f' title="{title}"' if title else ""
    return f'<td{css_class}{tooltip} style="{style}">{content}</td>'


def _headline_cell(title: object, spans: Iterable, label: str | None, article_id: object, width: str) -> str:
    """The highlighted headline, long words cut (the whole headline in the tooltip), and its "why?" link."""
    title = str(title)
    headline = highlight(title, spans, label, max_word=TABLE_WORD)
    if article_id is not None:
        headline += _explain_link(article_id)
    tooltip = escape(title) if has_long_word(title, TABLE_WORD) else None
    return _cell(headline, wrap=True, cls="fs-headline", width=width, title=tooltip)


def clipped(text: object, limit: int = SHORT_TEXT) -> str:
    """Escaped text for a short column: cut to `limit` characters with an ellipsis, the whole text in the tooltip."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return escape(text)
    return f'<span title="{escape(text)}">{escape(text[: limit - 1])}…</span>'


def _table(headers: Sequence[str], body: Sequence[str]) -> str:
    head = "".join(f'<th style="{_CELL}">{h}</th>' for h in headers)
    return (
        '<table class="fs-news" style="width: 100%; font-size: 0.9em; border-collapse: collapse">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def when(value: object, *, today: datetime | None = None, precision: str | None = None) -> str:
    """A publication time, short: 08:53:24 today, 11-21 08:53 this year, else the date; a time the source gave as a
    date only (`precision` "day") shows as its date, never as a midnight it does not know."""
    if not isinstance(value, datetime):
        return str(value or "")
    if precision == "day":
        return value.strftime("%Y-%m-%d")
    today = today or datetime.now(value.tzinfo)
    if value.date() == today.date():
        return value.strftime("%H:%M:%S")
    return value.strftime("%m-%d %H:%M" if value.year == today.year else "%Y-%m-%d")


def _explain_link(article_id: object) -> str:
    # The id is an integer from the database; int() keeps anything else out of the attributes. `data-explain` lets
    # dashboard/links.py open the article in this session (a plain href would start a new one: issue 17, D7).
    article = int(article_id)
    return (
        f' <a class="fs-why" href="explain?article={article}" data-explain="{article}" target="_self" '
        'title="why: explain this score" style="font-size: 0.8em; text-decoration: none">why?</a>'
    )


def news_table(rows: Sequence[Mapping], *, explain_links: bool = True) -> str:
    """An HTML table of news rows (from `dashboard.queries`): time, source, tickers, highlighted headline, verdict.

    Every value that comes from the data is escaped; the headline goes through `highlight`.
    """
    body = []
    for row in rows:
        article_id = row.get("article_id") if explain_links else None
        headline = _headline_cell(row.get("title", ""), row.get("words", []), row.get("label"), article_id, "50%")
        confidence = row.get("confidence")
        body.append(
            f'<tr class="fs-row" data-article="{int(row.get("article_id") or 0)}">'
            + _cell(escape(when(row.get("published_at"), precision=row.get("time_precision"))), nowrap=True)
            + _cell(clipped(row.get("source", "")))
            + _cell(ticker_chips(row))
            + headline
            + _cell(label_badge(row.get("label")))
            + _cell(escape(signed(row.get("score"))), nowrap=True, cls="fs-score")
            + _cell(escape("–" if confidence is None else f"{confidence:.2f}"), cls="fs-confidence")
            + _cell(escape(novelty(row)), nowrap=True)
            + "</tr>"
        )
    return _table(("time (UTC)", "source", "tickers", "headline", "label", "score", "conf.", "story"), body)


def evidence_table(rows: Sequence[Mapping]) -> str:
    """An HTML table of an alert's evidence: time, source, headline (its stored words highlighted), label, score."""
    body = []
    for row in rows:
        title = str(row.get("title", ""))
        spans = spans_from_words(title, row.get("words", []))
        headline = _headline_cell(title, spans, row.get("label"), row.get("article_id"), "60%")
        body.append(
            f'<tr class="fs-evidence" data-article="{int(row.get("article_id") or 0)}">'
            + _cell(escape(when(row.get("published_at"), precision=row.get("time_precision"))), nowrap=True)
            + _cell(clipped(row.get("source", "")))
            + headline
            + _cell(label_badge(row.get("label")))
            + _cell(escape(signed(row.get("score"))), nowrap=True, cls="fs-score")
            + "</tr>"
        )
    return _table(("time (UTC)", "source", "headline", "label", "score"), body)


def link(url: str | None, text: str) -> str:
    """An escaped link, only for http(s) URLs (a `javascript:` URL from a feed becomes plain text)."""
    if url and str(url).lower().startswith(("http://", "https://")):
        href = html.escape(str(url), quote=True)
        return f'<a href="{href}" target="_blank" rel="noopener noreferrer">{escape(text)}</a>'
    return escape(text)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$<>:])")


def md_escape(text: object) -> str:
    """Text for Streamlit's Markdown (widget labels, captions, messages): every Markdown character backslashed."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def age(seconds: float | None) -> str:
    """A duration as a short text: 42 s, 7 min, 3.5 h, 2.0 d."""
    if seconds is None:
        return "–"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def news_frame(rows: Sequence[Mapping]):
    """News rows as a DataFrame for `st.dataframe` (which shows text as text): one row per article."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "time (UTC)": r.get("published_at"),
                "source": r.get("source"),
                "tickers": ", ".join(r.get("tickers", [])),
                "headline": r.get("title"),
                "label": r.get("label"),
                "score": r.get("score"),
                "confidence": r.get("confidence"),
                "top words": ", ".join(w["word"] for w in r.get("words", [])),
                "story": novelty(r),
                "article": r.get("article_id"),
            }
            for r in rows
        ],
        columns=[
            "time (UTC)",
            "source",
            "tickers",
            "headline",
            "label",
            "score",
            "confidence",
            "top words",
            "story",
            "article",
        ],
    )
