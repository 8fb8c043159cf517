"""Ticker linking: cashtags, exchange-qualified symbols, source-provided symbols and company names.

The name dictionary is built once (cached) from `pytickersymbols`, using exactly these indices:
S&P 500, NASDAQ 100, DOW JONES, FTSE 100 and DAX. Tickers are the package's primary symbols: plain US symbols
(`AAPL`, `BRK.B`), `.L` for London (`BP.L`) and `.DE` for Xetra (`SAP.DE`).

Rules (why: precision first; a wrong link puts an article's sentiment on the wrong stock):
- Bare symbols in running text are not linked, except in mixed-case text inside parentheses (`Agilent (A)` is
  still refused: `A` is an ordinary word). Tickers that are ordinary words only ever count when written as a
  cashtag, exchange-qualified, or provided by the source.
- Cashtags and exchange symbols must be ASCII (`$ΑAPL` with a Greek Alpha links nothing).
- Reuters-style `<XYZ>` in the text is a source-provided symbol.
- Names match on word boundaries, longest first (`Apple Hospitality` beats `Apple`); short names are
  case-sensitive; aliases that are ordinary English words (`Target`, `Next`, `Block`) or that name two
  companies (`Merck` is overridden to Merck & Co., `Prudential` is dropped) are left out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from pytickersymbols import PyTickerSymbols
from trieregex import TrieRegEx

from scoring.normalize import symbol_tags

INDICES = ("S&P 500", "NASDAQ 100", "DOW JONES", "FTSE 100", "DAX")

# Tickers that are ordinary English words (or read as one in headlines): never linked as bare text.
WORD_TICKERS = frozenset(
    "A ALL AN ARE AT BE BIG BY C CAT D DE DG ED EL F FAST FIX GO HAS HD IT J KEY L LOW MA MAN NEE NOW O ON "
    "ONE OR OUT PM Q SEE SO T TAP TEL V WELL WM WY XYZ".split()
)

_SUFFIXES = re.compile(
    r"(?:,?\s+(?:Inc\.?|Incorporated|Corporation|Corp\.?|Company|Companies|plc|PLC|Group|Holdings?|Limited|Ltd\.?|"
    r"AG|SE|S\.A\.|N\.V\.|&\s*Co\.?|Co\.|REIT))+$"
)

_GENERIC_TAIL = re.compile(
    r"\s+(?:Technologies|Technology|Pharmaceuticals|Laboratories|Industries|International|Systems|Solutions|"
    r"Resources)$"
)

# Aliases that are ordinary words, places, people or indices: matching them alone costs more than it finds.
_BLOCKED_ALIASES = frozenset(
    "Target Southern Progressive Next Sage Ball Block Match Compass Pool Dover Fox News Continental Phoenix Weir "
    "Williams Hartford Booking Everest Admiral Waters Diploma SSE Rollins Nasdaq APA Workday Global Merck "
    "Prudential BD General Public Realty Equity Digital Dollar Capital First United American International "
    "Cooper Align Edison Tyler Eaton Intuitive Jacobs Regency Republic Quest Ross Snap Steel Tractor Veralto Otis "
    "Welltower Zebra".split()
)

# Hand-kept aliases for names the package does not spell the way news does.
_EXTRA_ALIASES: dict[str, str] = {
    "Google": "GOOGL",
    "Alphabet": "GOOGL",
    "Facebook": "META",
    "Meta": "META",
    "JPMorgan": "JPM",
    "JP Morgan": "JPM",
    "J.P. Morgan": "JPM",
    "Goldman": "GS",
    "Exxon": "XOM",
    "Exxon Mobil": "XOM",
    "Wal-Mart": "WMT",
    "Coca-Cola": "KO",
    "Disney": "DIS",
    "Walt Disney": "DIS",
    "Ford": "F",
    "General Electric": "GE",
    "GE": "GE",
    "T-Mobile": "TMUS",
    "Citi": "C",
    "Citigroup": "C",
    "Bank of America": "BAC",
    "BofA": "BAC",
    "Merck": "MRK",
    "Berkshire": "BRK.B",
    "AmEx": "AXP",
    "American Express": "AXP",
    "Lloyds": "LLOY.L",
    "IAG": "IAG.L",
    "British Airways": "IAG.L",
    "Sainsbury": "SBRY.L",
    "Daimler": "MBG.DE",
    "Mercedes": "MBG.DE",
    "Volkswagen": "VOW3.DE",
    "VW": "VOW3.DE",
    "Deutsche Boerse": "DB1.DE",
    "Rolls-Royce": "RR.L",
    "Royal Dutch Shell": "SHEL.L",
    "Shell": "SHEL.L",
    "Morgan Stanley": "MS",
    "Wells Fargo": "WFC",
    "McDonalds": "MCD",
    "Home Depot": "HD",
    "Procter & Gamble": "PG",
    "Procter and Gamble": "PG",
    "AT&T": "T",
    "Verizon": "VZ",
    "Boeing": "BA",
    "Caterpillar": "CAT",
    "Nvidia": "NVDA",
    "Pfizer": "PFE",
    "Starbucks": "SBUX",
    "Tesco": "TSCO.L",
    "KKR": "KKR",
    "Dow Chemical": "DOW",
    "AmerisourceBergen": "COR",
}

# One share class per company when the package lists two.
_PRIMARY = {"GOOG": "GOOGL", "FOX": "FOXA", "NWS": "NWSA"}
_US_EXCHANGES = {"NASDAQ", "NYSE", "NYSEARCA", "NYSEAMERICAN", "AMEX", "BATS", "OTC", "OTCMKTS"}
_LON_EXCHANGES = {"LON", "LSE"}
_DE_EXCHANGES = {"ETR", "XETRA", "FRA"}

# The "$" comes first and the check of the character before it follows (a lookbehind over "x$"), so the regex engine
# jumps from "$" to "$" instead of trying the lookbehind at every position (docs/performance.md, 'Measurements behind
# code choices').
_CASHTAG = re.compile(r"\$(?<![\w$]\$)([A-Z]{1,6}(?:[.\-/][A-Z]{1,2})?)(?!\w)")
_EXCHANGE = re.compile(
    r"(?<!\w)(NASDAQ|NYSE(?:ARCA|AMERICAN)?|AMEX|BATS|OTC(?:MKTS)?|LON|LSE|ETR|XETRA|FRA)\s?:\s?"
    r"([A-Z0-9]{1,6}(?:\.[A-Z]{1,2})?)(?!\w)",
    re.IGNORECASE,
)
_PAREN = re.compile(r"\(([A-Z]{2,5}(?:\.[A-Z])?)\)")

# Banks named as the analyst of a rating ("Goldman Sachs Raises Agilent PT", "... At Barclays") are not its subject.
_BROKERS = frozenset({"GS", "MS", "JPM", "C", "WFC", "BAC", "BARC.L", "DBK.DE", "HSBA.L", "CBK.DE", "RJF", "SCHW"})
_BROKER_AFTER = re.compile(
    r"(?:'s?)?\s+(?:analysts?\s+)?(?:rais|lower|cut|maintain|upgrad|downgrad|initiat|reiterat|assum|resum|boost|"
    r"reinstat|adjust|start|keep|says|sees|likes|reduc|trim|set)\w*\b",
    re.IGNORECASE,
)
_BROKER_BEFORE = re.compile(r"(?:\b(?:at|by|from|per|according to)|'s analyst)\s+$", re.IGNORECASE)

# Only the lead of a long body is scanned: what an article is about is said early, and the name regex's time grows
# with the text, so a huge body would stall the batch (docs/performance.md, 'Measurements behind code choices').
MAX_BODY_SCAN = 20_000

METHOD_WEIGHT = {"provided": 1.0, "cashtag": 0.95, "exchange": 0.95, "symbol": 0.85, "name": 0.7}


@dataclass(frozen=True, slots=True)
class Mention:
    """One linked ticker with its relevance in [0, 1] and how it was found."""

    ticker: str
    relevance: float
    in_headline: bool
    matched_text: str
    method: str  # provided | cashtag | exchange | symbol | name


@dataclass(frozen=True, slots=True)
class Dictionary:
    """Symbols and names of the index constituents."""

    symbols: frozenset[str]
    by_exchange: dict[str, str]  # "NASDAQ:AAPL" / "LON:BP" -> canonical ticker
    names: dict[str, str]  # alias -> ticker
    name_pattern: re.Pattern[str]


def _aliases(name: str) -> set[str]:
    name = unicodedata.normalize("NFKC", name).replace("\u2013", "-").strip()
    out = {name}
    stripped = _SUFFIXES.sub("", name).strip(" ,")
    if stripped.startswith("The "):
        stripped = stripped[4:]
    out.add(stripped)
    # "Agilent Technologies" is "Agilent" in headlines; only the generic tail goes, and the rest must stay a name.
    short = _GENERIC_TAIL.sub("", stripped).strip(" ,")
    if short != stripped and len(short) >= 3:
        out.add(short)
        _CASE_SENSITIVE.add(short)
    return {a for a in out if len(a) >= 2}


def _canonical(symbol: str) -> str:
    return _PRIMARY.get(symbol, symbol)


# Aliases cut down from a longer name ("Babcock" from "Babcock International") are only trusted in their own case:
# in ALL-CAPS text they collide with other companies ("DEUTSCHE BABCOCK").
_CASE_SENSITIVE: set[str] = set()


def _case_insensitive(alias: str) -> bool:
    # Long or multi-word names are safe to match in ALL-CAPS headlines (Reuters); short ones are not.
    if alias in _CASE_SENSITIVE:
        return False
    return len(alias) >= 7 or (" " in alias and len(alias) >= 5)


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """Build (once) the symbol and name dictionary from the index constituents."""
    api = PyTickerSymbols()
    stocks: dict[str, dict] = {}
    for index in INDICES:
        for stock in api.get_stocks_by_index(index):
            stocks.setdefault(stock["symbol"], stock)
    symbols: set[str] = set()
    by_exchange: dict[str, str] = {}
    candidates: dict[str, set[str]] = {}
    for symbol, stock in stocks.items():
        ticker = _canonical(symbol)
        symbols.add(ticker)
        for listing in stock.get("symbols", []):
            google = (listing.get("google") or "").upper().replace(" ", "")
            if ":" in google:
                by_exchange.setdefault(google, ticker)
        for alias in _aliases(stock["name"]):
            candidates.setdefault(alias, set()).add(ticker)
    names = {a: next(iter(t)) for a, t in candidates.items() if len(t) == 1 and a not in _BLOCKED_ALIASES}
    names.update({a: t for a, t in _EXTRA_ALIASES.items() if t in symbols})
    # Multi-word names of companies outside the five indices still match, to link nothing: "Apple Hospitality"
    # (S&P 600) must consume its words, or the shorter "Apple" inside it would link AAPL.
    shields = {
        alias
        for stock in api.get_all_stocks()
        if stock.get("symbol") not in stocks and stock.get("name")
        for alias in _aliases(stock["name"])
        if " " in alias and alias not in names
    }
    # One trie-shaped alternation (trieregex): the same matches, longest alias first at each position, as a flat
    # longest-first alternation of ~1,900 names, but far faster. Matched against lower-cased text rather than with
    # re.IGNORECASE, which compares every character case-folded and is slower (docs/performance.md, 'Measurements
    # behind code choices').
    alternation = TrieRegEx(*{alias.lower() for alias in set(names) | shields}).regex()
    pattern = re.compile(rf"(?<![\w&$.-])(?:{alternation})(?![\w&-])")
    return Dictionary(frozenset(symbols), by_exchange, names, pattern)


def resolve_symbol(symbol: str, exchange: str | None = None) -> str | None:
    """Map a symbol (optionally with its exchange) to the canonical ticker; None when it is not a symbol."""
    symbol = symbol.strip().upper().replace("/", ".").replace("-", ".")
    if not symbol or not symbol.isascii() or not re.fullmatch(r"[A-Z0-9]{1,6}(?:\.[A-Z0-9]{1,3})?", symbol):
        return None
    d = dictionary()
    exchange = (exchange or "").upper()
    if exchange:
        key = f"{exchange}:{symbol}"
        if key in d.by_exchange:
            return d.by_exchange[key]
        if exchange in _LON_EXCHANGES:
            return f"{symbol}.L"
        if exchange in _DE_EXCHANGES:
            return f"{symbol}.DE"
    if ":" in symbol:
        return None
    if symbol not in d.symbols:
        # A US cashtag for a London listing ($AZN) resolves through the package's US listing of that company.
        for us in ("NASDAQ", "NYSE"):
            if f"{us}:{symbol}" in d.by_exchange:
                return d.by_exchange[f"{us}:{symbol}"]
    return _canonical(symbol)


def _find(text: str, in_headline: bool, found: list[tuple[str, str, str, bool]]) -> None:
    d = dictionary()
    mixed_case = any(c.islower() for c in text)
    for m in _CASHTAG.finditer(text):
        ticker = resolve_symbol(m.group(1))
        if ticker:
            found.append((ticker, m.group(0), "cashtag", in_headline))
    # An exchange prefix needs its colon: most texts have none, and the case-blind regex is the costly part
    # (docs/performance.md, 'Measurements behind code choices').
    for m in _EXCHANGE.finditer(text) if ":" in text else ():
        ticker = resolve_symbol(m.group(2), m.group(1))
        if ticker:
            found.append((ticker, m.group(0), "exchange", in_headline))
    for m in symbol_tags(text):
        found.append((m.group(1), m.group(0), "provided", in_headline))
    if mixed_case:
        for m in _PAREN.finditer(text):
            symbol = m.group(1)
            if symbol in d.symbols and symbol not in WORD_TICKERS:
                found.append((symbol, m.group(0), "symbol", in_headline))
    lowered = text.lower()
    if len(lowered) == len(text):  # offsets in the lower-cased text are offsets in the text
        spans = [m.span() for m in d.name_pattern.finditer(lowered)]
    else:  # a character whose lower case is longer ("İ"): the same pattern, case-folded by the regex engine
        spans = [m.span() for m in _folding_pattern().finditer(text)]
    for start, end in spans:
        matched = text[start:end]
        alias = _lookup_alias(matched)
        if alias is None:
            continue
        if not _case_insensitive(alias) and matched != alias:
            continue
        ticker = d.names[alias]
        if ticker in _BROKERS and (_BROKER_AFTER.match(text, end) or _BROKER_BEFORE.search(text, 0, start)):
            continue
        found.append((ticker, matched, "name", in_headline))


@lru_cache(maxsize=1)
def _folding_pattern() -> re.Pattern[str]:
    return re.compile(dictionary().name_pattern.pattern, re.IGNORECASE)


@lru_cache(maxsize=1)
def _folded_aliases() -> dict[str, str]:
    return {a.casefold(): a for a in dictionary().names}


def load() -> None:
    """Build the dictionary and its case-blind forms now (a worker does, so its first batch does not wait for it;
    docs/performance.md, 'Measurements behind code choices')."""
    _folding_pattern()
    _folded_aliases()


def _lookup_alias(matched: str) -> str | None:
    names = dictionary().names  # a shield name is not in here, so it links nothing
    if matched in names:
        return matched
    return _folded_aliases().get(matched.casefold())


def link(title: str, body: str = "", provided: Iterable[str] = ()) -> list[Mention]:
    """Link the tickers an article is about, most relevant first."""
    found: list[tuple[str, str, str, bool]] = []
    for symbol in provided:
        exchange, _, bare = symbol.rpartition(":")
        ticker = resolve_symbol(bare, exchange or None)
        if ticker:
            found.append((ticker, symbol, "provided", True))
    _find(title or "", True, found)
    _find((body or "")[:MAX_BODY_SCAN], False, found)

    grouped: dict[str, list[tuple[str, str, str, bool]]] = {}
    for hit in found:
        grouped.setdefault(hit[0], []).append(hit)
    mentions = []
    for ticker, hits in grouped.items():
        best = max(hits, key=lambda h: (METHOD_WEIGHT[h[2]], h[3]))
        in_headline = any(h[3] for h in hits)
        # Headline beats body, repeated beats once, provided/cashtag beats a name: weight x position x repetition.
        position = 1.0 if in_headline else 0.6
        repetition = 0.85 + 0.15 * min(1.0, (len(hits) - 1) / 3)
        relevance = round(min(1.0, METHOD_WEIGHT[best[2]] * position * repetition), 4)
        mentions.append(Mention(ticker, relevance, in_headline, best[1], best[2]))
    mentions.sort(key=lambda m: (-m.relevance, m.ticker))
    return mentions
