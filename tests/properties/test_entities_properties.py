"""Properties of ticker linking: only well-formed tickers, relevance in (0, 100], no crash on any unicode, and a
homoglyph (Cyrillic or Greek letter in place of a Latin one) never links the ticker it imitates."""

from __future__ import annotations

import re

from hypothesis import assume, example, given
from hypothesis import strategies as st

from scoring.entities import METHODS, dictionary, find, link
from scoring.normalize import clean_text

from .strategies import HOSTILE_TEXT, PROPERTY

# What `link` may return besides a known symbol: a symbol with a share class or exchange suffix (BRK.B, BP.L, SAP.DE,
# AB.CD.L), ASCII upper case and digits, at most 16 characters (mentions.ticker is String(16)).
TICKER = re.compile(r"[A-Z0-9]{1,6}(?:\.[A-Z0-9]{1,3}){0,2}")
SYMBOLS = sorted(dictionary().symbols)
KNOWN = frozenset(SYMBOLS)  # the index constituents as the package spells them (BT-A.L has a hyphen)
# Latin capitals and the Cyrillic / Greek capitals that render the same (NFKC keeps them apart).
HOMOGLYPHS = {
    "A": "\u0410\u0391", "B": "\u0412\u0392", "C": "\u0421", "E": "\u0415\u0395", "H": "\u041d\u0397",
    "I": "\u0406\u0399", "J": "\u0408", "K": "\u041a\u039a", "M": "\u041c\u039c", "N": "\u039d", "O": "\u041e\u039f",
    "P": "\u0420\u03a1", "S": "\u0405", "T": "\u0422\u03a4", "X": "\u0425\u03a7", "Y": "\u03a5", "Z": "\u0396",
}  # fmt: skip
PROVIDED = st.lists(st.one_of(HOSTILE_TEXT, st.sampled_from(SYMBOLS), st.sampled_from(["LON:BP", "ETR:SAP", "X:"])),
                    max_size=4)  # fmt: skip


def check(mentions, title: str, body: str, provided: list[str]) -> None:
    assert len({m.ticker for m in mentions}) == len(mentions)  # one mention per ticker
    for m in mentions:
        assert (m.ticker in KNOWN or TICKER.fullmatch(m.ticker)) and m.ticker.isascii() and len(m.ticker) <= 16, m
        assert 0 < m.relevance <= 100 and m.method in METHODS
        # The matched text is really there: in the headline, the scanned body, or the provided symbols.
        assert m.matched_text in title or m.matched_text in body or m.matched_text in provided, m
    assert [m.relevance for m in mentions] == sorted((m.relevance for m in mentions), reverse=True)


@PROPERTY
@example("$AAPL and NASDAQ:MSFT rally", "<SRD> (TSLA) Apple Hospitality", ["LON:BP"])
@given(HOSTILE_TEXT, HOSTILE_TEXT, PROVIDED)
def test_link_returns_only_well_formed_tickers(title, body, provided):
    check(link(title, body, provided), title, body, provided)


@PROPERTY
@given(st.text(max_size=300), st.text(max_size=300))
def test_link_never_crashes_on_any_unicode(title, body):
    check(link(title, body), title, body, [])
    for text, headline in ((title, True), (body, False)):
        for s in find(text, headline=headline):  # every span is where it says it is
            assert text[s.start : s.end] == s.text and 0 <= s.relevance <= 100, (ascii(text), s)


@PROPERTY
@example("AAPL", 0, 0, "${}")  # $АAPL with a Cyrillic А
@given(st.sampled_from(SYMBOLS), st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=1),
       st.sampled_from(["${}", "NASDAQ:{}", "NYSE: {}", "({})", "<{}>", "{} shares jump"]))  # fmt: skip
def test_a_homoglyph_never_links_the_ticker_it_imitates(symbol, position, which, template):
    # A letter of the symbol itself: "BMW.DЕ" (Cyrillic Е in the exchange suffix) still says "BMW", a company name.
    letters = [i for i, c in enumerate(symbol.split(".")[0]) if c in HOMOGLYPHS]
    assume(letters)
    i = letters[position % len(letters)]
    lookalikes = HOMOGLYPHS[symbol[i]]
    fake = symbol[:i] + lookalikes[which % len(lookalikes)] + symbol[i + 1 :]
    text = template.format(fake)
    for title in (text, clean_text(text)):  # raw, and after normalisation (NFKC must not fold it back)
        assert symbol not in {m.ticker for m in link(title, "", [fake])}, (symbol, ascii(title))
