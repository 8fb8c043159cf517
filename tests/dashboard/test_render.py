"""render.highlight and friends: news text reaches HTML escaped, highlights land on the right characters."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

from dashboard.export import news_csv
from dashboard.render import (
    TABLE_WORD,
    escape,
    evidence_table,
    highlight,
    link,
    md_escape,
    news_table,
    spans_from_words,
)

from .conftest import HOSTILE

SPAN = re.compile(
    r'<span class="fs-word" style="background-color: rgba\((\d+), (\d+), (\d+), ([0-9.]+)\);[^>]*>(.*?)</span>'
)


def visible_text(markup: str) -> str:
    """What a browser shows: tags dropped, entities decoded."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def test_hostile_headline_is_escaped_text():
    out = highlight(HOSTILE, [], "negative")
    assert "&lt;script&gt;" in out and "&lt;img" in out
    assert "<script" not in out.lower() and "<img" not in out.lower()
    assert visible_text(out) == HOSTILE


def test_hostile_markup_inside_a_highlighted_span_stays_escaped():
    start = HOSTILE.index("<script>")
    out = highlight(HOSTILE, [(start, start + len("<script>alert(1)</script>"), 0.5)], "negative")
    [(r, g, b, alpha, inner)] = SPAN.findall(out)
    assert inner == escape("<script>alert(1)</script>")
    assert "<script" not in out and visible_text(out) == HOSTILE


def test_spans_highlight_the_offsets_with_label_colour_and_relative_strength():
    title = "Nokia shares plunge after profit warning"
    spans = [{"start": 13, "end": 19, "weight": 0.4}, {"start": 33, "end": 40, "weight": 0.2}]
    out = highlight(title, spans, "negative")
    found = SPAN.findall(out)
    assert [f[4] for f in found] == ["plunge", "warning"]
    assert {f[:3] for f in found} == {("220", "38", "38")}  # red for negative
    assert [float(f[3]) for f in found] == [0.75, 0.45]  # the heaviest word is strongest
    assert visible_text(out) == title
    positive = SPAN.findall(highlight(title, spans[:1], "positive"))
    assert positive[0][:3] == ("22", "163", "74")


def test_bad_spans_are_ignored():
    title = "Apple beats estimates"
    out = highlight(title, [(6, 11, 0.5), (8, 14, 0.3), (50, 60, 0.9), (5, 5, 0.2), ("x", 3, 1.0)], "positive")
    assert [f[4] for f in SPAN.findall(out)] == ["beats"]  # overlap, out of range, empty and junk dropped
    assert visible_text(out) == title


def test_label_and_markdown_characters_never_reach_markup_raw():
    out = highlight("Microsoft buys studio for $7.5 billion *now*", [(0, 9, 1.0)], '"><script>')
    assert "<script" not in out and '">' not in out.replace('">M', "")  # an unknown label is just grey
    assert "$" not in out and "*" not in out  # no LaTeX or emphasis when rendered as Markdown
    assert visible_text(out) == "Microsoft buys studio for $7.5 billion *now*"


def test_spans_from_words_finds_free_occurrences():
    title = "Nokia shares plunge after profit warning; profit falls"
    spans = spans_from_words(title, [["profit", 0.3], ["Profit", 0.1], ["missing", 0.5]])
    assert spans == [(26, 32, 0.3), (42, 48, 0.1)]


def test_news_table_escapes_every_field():
    row = {
        "article_id": 7,
        "published_at": datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        "source": "<b>desk</b>",
        "tickers": ["<I>"],
        "title": HOSTILE,
        "label": "negative",
        "score": -0.74,
        "confidence": 0.8,
        "words": [{"word": "falls", "weight": 0.5, "start": HOSTILE.index("falls"), "end": len(HOSTILE)}],
        "is_first_of_story": True,
    }
    out = news_table([row])
    assert "<script" not in out and "<img" not in out and "<b>desk" not in out and "<I>" not in out
    assert "&lt;script&gt;" in out and "&lt;b&gt;desk" in out
    assert out.count('class="fs-row"') == 1 and ">-0.74</td>" in out and 'href="explain?article=7"' in out
    evidence = evidence_table(
        [
            {
                "article_id": 7,
                "title": HOSTILE,
                "source": "desk",
                "score": -0.7,
                "label": "negative",
                "words": [["falls", 0.5]],
            }
        ]
    )
    assert "<script" not in evidence and "&lt;script&gt;" in evidence and ">falls</span>" in evidence


LONG_WORD = ("Megacorp" * 120)[:900]  # issue 17, D8: one 900-character word made the tables 7,337 px wide


def cells(markup: str, cls: str) -> list[str]:
    """The opening tags of the table cells with this class."""
    return re.findall(rf'<td class="{cls}"[^>]*>', markup)


def test_a_900_character_word_is_cut_in_the_tables_and_may_break_anywhere():
    title = f"Acme {LONG_WORD} shares plunge"
    start = title.index(LONG_WORD)
    row = {
        "article_id": 9,
        "published_at": datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
        "source": "x" * 200,  # the longest source name a news.raw message may carry
        "tickers": ["NOK"],
        "title": title,
        "label": "negative",
        "score": -0.85,
        "confidence": 0.9,
        "words": [{"word": LONG_WORD, "weight": 0.5, "start": start, "end": start + len(LONG_WORD)}],
        "is_first_of_story": True,
    }
    evidence = {**row, "words": [[LONG_WORD, 0.5]]}
    for out in (news_table([row]), evidence_table([evidence])):
        shown = visible_text(out.replace("<", " <"))  # a space per tag: cells apart
        longest = max(len(w) for w in shown.split())
        assert longest <= TABLE_WORD, longest  # no word in the table is longer than TABLE_WORD characters
        assert LONG_WORD[: TABLE_WORD - 1] + "…" in shown and "shares plunge" in shown
        (headline,) = cells(out, "fs-headline")
        assert "overflow-wrap: anywhere" in headline and f'title="Acme {LONG_WORD} shares plunge"' in headline
        assert SPAN.search(out).group(5) == LONG_WORD[: TABLE_WORD - 1] + "…"  # the highlight covers the cut word
        assert 'data-explain="9"' in out  # the why? link is still there
    # A headline of ordinary words is shown whole, without a tooltip.
    plain = news_table([{**row, "title": "Nokia shares plunge", "words": []}])
    assert "Nokia shares plunge" in visible_text(plain) and " title=" not in cells(plain, "fs-headline")[0]


def test_links_only_for_http():
    assert link("javascript:alert(1)", "x") == "x"
    assert link('https://e.com/?a="><script>', "t").startswith('<a href="https://e.com/?a=&quot;&gt;&lt;script&gt;"')


def test_md_escape():
    assert md_escape("[x](javascript:alert(1)) $5 *b*") == r"\[x\]\(javascript\:alert\(1\)\) \$5 \*b\*"


def test_csv_export_round_trips_and_defuses_formulas():
    rows = [
        {
            "article_id": 1,
            "published_at": datetime(2024, 5, 1, tzinfo=UTC),
            "source": "desk",
            "tickers": ["NOK"],
            "title": '=HYPERLINK("http://evil")',
            "label": "negative",
            "score": -0.5,
            "confidence": 0.7,
            "probabilities": {"negative": 0.7, "neutral": 0.1, "positive": 0.2},
            "words": [{"word": "plunge", "weight": 0.41, "start": 0, "end": 6}],
            "story_id": 1,
            "is_first_of_story": True,
            "similar_before": 0,
            "url": None,
        },
    ]
    parsed = list(csv.DictReader(io.StringIO(news_csv(rows).decode())))
    assert len(parsed) == 1
    assert parsed[0]["title"] == '\'=HYPERLINK("http://evil")'
    assert parsed[0]["score"] == "-0.5000" and parsed[0]["top_words"] == "plunge:0.410"
    assert parsed[0]["published_at"] == "2024-05-01T00:00:00+00:00"


def test_spans_from_words_marks_whole_words_only():
    title = "Tata Motors to sell Automotive unit; shares jump 5% to $AAPL-style highs"
    spans = spans_from_words(title, [["to", 0.4], ["motor", 0.3], ["5%", 0.2], ["$aapl", 0.1], ["tom", 0.1]])
    # "to" the word, not inside "Motors" or "Automotive"; "motor" and "tom" occur only inside other words
    assert [(title[s:e], s) for s, e, _ in spans] == [("to", 12), ("5%", 49), ("$AAPL", 55)]
    other = "Automotive sales to rise"
    marked = SPAN.findall(highlight(other, spans_from_words(other, [["to", 1.0]]), "positive"))
    assert [m[4] for m in marked] == ["to"]


def test_a_time_given_as_a_date_only_shows_as_its_date():
    from datetime import UTC, datetime

    from dashboard.render import news_table, when

    midnight = datetime(2026, 12, 6, tzinfo=UTC)
    assert when(midnight, today=midnight) == "00:00:00"  # a real midnight today
    assert when(midnight, today=midnight, precision="day") == "2026-12-06"  # a date: no time it does not know
    row = {"article_id": 1, "published_at": midnight, "time_precision": "day", "title": "Tesco sales rise",
           "source": "The Guardian", "tickers": ["TSCO.L"], "words": [], "label": "positive", "score": 0.5,
           "confidence": 0.8, "is_first_of_story": True, "similar_before": 0}  # fmt: skip
    assert ">2026-12-06<" in news_table([row]) and "00:00" not in news_table([row])


def test_each_company_of_a_two_company_headline_shows_in_its_own_colour():
    """Issue 20: a ticker with its own sentiment is drawn in its label's colour, with its label and score to read;
    a ticker without one (the headline's sentiment) is plain; both escaped."""
    row = {
        "article_id": 3,
        "title": "Pfizer soars as Moderna slumps",
        "tickers": ["PFE", "MRNA", "<X>"],
        "companies": {
            "PFE": {"label": "positive", "score": 0.81},
            "MRNA": {"label": "negative", "score": -0.77},
        },
        "label": "positive",
        "score": 0.5,
        "confidence": 0.7,
        "words": [],
    }
    out = news_table([row])
    chips = re.findall(r'<span class="fs-company" title="([^"]*)" style="color: rgb\((\d+), (\d+), (\d+)\)', out)
    assert [c[0] for c in chips] == [
        "PFE positive +0.81 (its own sentiment in this headline)",
        "MRNA negative -0.77 (its own sentiment in this headline)",
    ]
    assert chips[0][1:] != chips[1][1:]  # two colours
    assert "&lt;X&gt;" in out and "<X>" not in out
