"""Ticker linking: which companies a headline (and the lead of its body) is about, where, and how much.

The companies and their names come from `scoring.universe` (a package's index constituents, the project's file of
former names, short forms and companies since taken over, and the desk's own file). docs/entities.md explains the
rules; each has its test in tests/scoring/test_entities.py.

What is found (each a `Span` with character offsets and the rule that matched):
- `cashtag` `$AAPL`, `exchange` `NASDAQ:AAPL`, `source_tag` Reuters' `<XYZ>`, `provided` symbols the source gave,
  `symbol` a known symbol in parentheses in mixed-case text (`Agilent (A)` still refused: `A` is a word).
- `name` a company name or alias, longest first (`Apple Hospitality` beats `Apple`), on word boundaries where a
  hyphen glued to a wire prefix ("UPDATE 1-Shell") or a possessive ("Sainsbury's") is a boundary too. In mixed-case
  text a name must be written with its capital ("travelers" is not Travelers); in ALL-CAPS text only long names
  match, and short names that are themselves written in capitals (BP, ARM).
- Context guards for one-word names that are also surnames or places: a preceding title or first name ("Mr
  Pearson", "Bill Marriott"), a place's possessive ("Brazil's Amazon"), a place noun after ("Amazon fires"), or
  "& Bond" after (another company's name) leave the word unlinked.

Roles decide relevance (0-100, as commercial feeds give it): the `subject` is the first company the headline names
(90), an `object` another company it names (65), a `passing` mention the third and later names of a list (40), the
body's lead (30, 15 further on). A bank named as the `source` of a rating or forecast ("Barclays upgrades Tesco",
"... cut to hold at Barclays") is read from the headline's structure: the verb after it must be a rating action and
the rest must speak of a rating or another company; it is shown, never linked. "Barclays settles ..." and
"Barclays raises £2bn" keep Barclays as the subject.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

from trieregex import TrieRegEx

from scoring.normalize import symbol_tags
from scoring.universe import TYPOGRAPHY, Universe, entities_file, load_universe

# Tickers that are ordinary English words (or read as one in headlines): never linked as bare text.
WORD_TICKERS = frozenset(
    "A ALL AN ARE AT BE BIG BY C CAT D DE DG ED EL F FAST FIX GO HAS HD IT J KEY L LOW MA MAN NEE NOW O ON "
    "ONE OR OUT PM Q SEE SO T TAP TEL V WELL WM WY XYZ".split()
)

_US_EXCHANGES = {"NASDAQ", "NYSE", "NYSEARCA", "NYSEAMERICAN", "AMEX", "BATS", "OTC", "OTCMKTS"}
_LON_EXCHANGES = {"LON", "LSE"}
_DE_EXCHANGES = {"ETR", "XETRA", "FRA"}

# The "$" comes first and the check of the character before it follows (a lookbehind over "x$"), so the regex engine
# jumps from "$" to "$" instead of trying the lookbehind at every position (docs/performance.md, 'Measurements behind
# code choices').
_CASHTAG = re.compile(r"\$(?<![\w$]\$)([A-Z]{1,6}(?:[.\-/][A-Z]{1,2})?)(?!\w)")
# The exchange in any case, the symbol in capitals: "Nasdaq: Apple shares jump" is a dateline, not a symbol.
_EXCHANGE = re.compile(
    r"(?<!\w)((?i:NASDAQ|NYSE(?:ARCA|AMERICAN)?|AMEX|BATS|OTC(?:MKTS)?|LON|LSE|ETR|XETRA|FRA))(\s?):\s?"
    r"([A-Z0-9]{1,6}(?:\.[A-Z]{1,2})?)(?![\w-])"
)
_PAREN = re.compile(r"\(([A-Z]{2,5}(?:\.[A-Z])?)\)")
_SYMBOL_LIST = re.compile(r"(?:^|[:\-–—]\s*)([A-Z]{1,5}(?:\.[A-Z])?(?:\s*,\s*[A-Z]{1,5}(?:\.[A-Z])?){2,})\s*$")
_LIST_ITEM = re.compile(r"[A-Z]{1,5}(?:\.[A-Z])?")
_PAREN_LIST = re.compile(r"\(\s*([A-Z]{1,5}(?:\.[A-Z])?(?:\s*,\s*[A-Z]{1,5}(?:\.[A-Z])?)+)\s*\)")  # "(CSCO, INTC, ABX)"

# Banks and brokers that publish ratings: named as the source of one, they are not its subject.
BROKERS = frozenset(
    "GS MS JPM C WFC BAC BARC.L DBK.DE HSBA.L CBK.DE RJF SCHW UBSG.SW CSGN.SW JEF SF PIPR COWN OPY KEY STI EVR AB "
    "RY BMO TD CM BNS NMR MQG.AX GLE.PA BNP.PA INVP.L NUM.L LLOY.L NWG.L SAN.MC BBVA.MC ISP.MI UCG.MI "
    "BK STT USB PNC CFG FITB MTB TFC RF HBAN CMA ZION LAZ HLI MC PJT "
    # Banks whose research arms rate stocks, under the lines the universe links their names to: Tokyo, Toronto,
    # Sydney, the Nordic and Benelux exchanges ("Mizuho Initiates Coverage On AbbVie", "RBC analyst: ...").
    "8411.T MFG 8604.T 8601.T 8306.T MUFG 8316.T SMFG RY.TO TD.TO BMO.TO CM.TO BNS.TO NA.TO KN.PA ACA.PA MB.MI "
    "DANSKE.CO NDA-FI.HE SEB-A.ST SHB-A.ST SWED-A.ST DNB.OL WBC.AX CBA.AX ANZ.AX NAB.AX INGA.AS ING ABN.AS "
    "KBC.BR".split()
)
_RATING_VERB = re.compile(
    r"(?:'s?)?\s+(?:analysts?\s+|strategists?\s+|research\s+)?(?:upgrad|downgrad|initiat|reiterat|maintain|resum|"
    r"reinstat|assum|rais|lower|cut|boost|trim|reduc|start|adjust|keep|lift|hik|says|sees|likes|expects|predicts|"
    r"forecasts|warns|names|picks|add|remov|review)\w*\b|(?:'s?)?\s+(?:analysts?\s+)?sets?\b",
    re.IGNORECASE,
)
_RATING_WORDS = re.compile(
    r"\b(?:buy|sell|hold|neutral|overweight|underweight|equal[- ]?weight|outperform|underperform|market[- ]perform|"
    r"sector[- ]perform|peer[- ]perform|in[- ]line|accumulate|reduce|conviction|price target|price objective|pt|"
    r"target price|target|rating|coverage|top pick|estimates?|forecast)\b",
    re.IGNORECASE,
)
_VIEW_AFTER = re.compile(
    r"(?:\s*:|(?:'s?)?\s+(?:(?:bullish|bearish|top|new|latest)\s+)?(?:call|note|analysts?|strategists?|economists?|"
    r"view|picks?|forecast|outlook|survey)\b|\s+(?:market\s+)?(?:analysts?|strategists?|economists?)\b|"
    # "BMO's Andrew Kaip: The Gold Majors Are Back": a person of the bank (a first and last name, not a title or a
    # period: "JPMorgan's Q2: ...", "Goldman Sachs's CEO David Solomon: ..." are the bank's own news).
    r"(?-i:['’]s\s+(?!(?:Chief|Executive|President|Chairman|Chairwoman|Boss|Head|Profit|Profits|Results|Earnings|"
    r"Shares|Stock|Bank|Board|Investment|Global|Capital)\b)[A-Z][a-z]+(?:\s+[A-Z]\.)?(?:\s+[A-Z][a-z'’\-]+){1,2}\s*:))",
    re.IGNORECASE,
)
RATING_AGENCIES = frozenset({"MCO", "SPGI"})  # Moody's, S&P Global
_AGENCY_VERB = re.compile(
    r"(?:'s?)?\s+(?:affirm|rais|lower|cut|upgrad|downgrad|review|rate|put|place|assign|withdr|confirm|may)\w*\b",
    re.IGNORECASE,
)
# Verbs that are only ever an analyst's: followed by another company, the bank is the source.
_ANALYST_VERB = re.compile(
    r"(?:'s?)?\s+(?:analysts?\s+)?(?:upgrad|downgrad|initiat|reiterat|maintain|resum|reinstat|assum|review|says|sees|"
    r"likes|picks|names|prefers|favou?rs)\w*\b",
    re.IGNORECASE,
)
_MARKET_WORDS = re.compile(
    r"\b(?:stocks?|shares|equities|markets?|economy|recession|inflation|rates?|Fed|S&P|Dow|Nasdaq|sectors?|bonds?|"
    r"oil|dollar|gold)\b",
    re.IGNORECASE,
)
_DEBT_WORDS = re.compile(r"\b(?:debt|notes?|bonds?|ratings?|outlook|securities|paper|credit|issuer|loans?)\b", re.I)
_RATED = re.compile(
    r"(?:'s)?\s+(?:to|at|from)\s+(?:buy|sell|hold|neutral|overweight|underweight|outperform|underperform|equal|"
    r"market|sector|peer|in-line|accumulate|reduce|positive|negative)",
    re.IGNORECASE,
)
_SOURCE_BEFORE = re.compile(
    r"(?:\b(?:at|by|from|per|according to|via|says|said)|'s analysts?)\s+(?:analysts?\s+at\s+)?$", re.IGNORECASE
)

# Context guards for one-word names (surnames, places).
_TITLE_BEFORE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Sir|Lord|Lady|Dame|Prof|Professor|Rev)\.?\s+$")
# A capitalised word before a name, not at the start of a sentence or after a colon or dash ("Cramer: Buy Cisco").
_PROPER_BEFORE = re.compile(r"(?<![\w'’\-:—–])(?<![:—–] )([A-Z][a-z]+)\s+$")
_POSSESSIVE_BEFORE = re.compile(r"\b([A-Z][a-z]+)['’]s?\s+$")
_AMPERSAND_AFTER = re.compile(r"\s*&\s*[A-Z]")
_CALENDAR = frozenset(
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July August "
    "September October November December".split()
)
# "Orange Capital", "American Capital", "Kingfisher Airlines": a one-word name followed by a business-type word is
# another company's name (the company's own longer names are aliases and match first).
_BUSINESS_AFTER = re.compile(
    r"\s+(?:Capital|Partners|Fund|Funds|Management|Investments?|Asset|Advis[oe]rs|Bancorp|Financial|Energy|"
    r"Airlines?|Airways|Pizza|Foundation|Trust|Securities|Ventures|Properties|Realty|Insurance|Pharma|Resources|"
    r"Minerals|Mining|Oil|Gas|Power|Motors?|Media|Entertainment|Studios)\b"
)
_PLACE_AFTER = re.compile(
    r"\s+(?:rainforest|river|basin|jungle|forest|fires?|deforestation|tribes?|region|delta|coast|sea)\b",
    re.IGNORECASE,
)
_WIRE_PREFIX = re.compile(r"(?:^|\s)(?:[A-Z0-9]+(?:\s+[0-9]+)?)-$")  # "UPDATE 1-", "REFILE-", "BRIEF-"
_WORD = re.compile(r"[A-Za-z][\w'’.&-]*")

# Only the lead of a long body is scanned: what an article is about is said early, and the name regex's time grows
# with the text, so a huge body would stall the batch (docs/performance.md, 'Measurements behind code choices').
MAX_BODY_SCAN = 20_000
LEAD = 300  # characters of the body that count as its lead for relevance

METHODS = frozenset({"provided", "cashtag", "exchange", "symbol", "name"})  # Mention.method (a source_tag is provided)
ROLE_RELEVANCE = {"subject": 90, "object": 65, "passing": 40, "lead": 30, "body": 15, "provided": 75}


@dataclass(frozen=True, slots=True)
class Span:
    """One mention of a company in one text: where, by which rule, in which role, and why it is not linked if not."""

    ticker: str
    name: str
    start: int
    end: int
    text: str
    rule: str  # provided | cashtag | exchange | source_tag | symbol | name
    role: str = "subject"  # subject | object | passing | lead | body | source
    relevance: int = 0
    skipped: str | None = None  # why a candidate was not linked (a broker as source, a surname, ...)


@dataclass(frozen=True, slots=True)
class Mention:
    """One linked ticker of an article: its relevance (0-100), its best span and how it was found."""

    ticker: str
    relevance: int
    in_headline: bool
    matched_text: str
    method: str  # provided | cashtag | exchange | symbol | name (source_tag is reported as provided)
    name: str = ""
    start: int = -1  # offsets into the text `span_in` names; -1 for a provided symbol
    end: int = -1
    rule: str = ""
    role: str = ""
    span_in: str = ""  # where start/end point: "headline", "body", or "" (a provided symbol)


@dataclass(frozen=True, slots=True)
class Dictionary:
    """The universe and its compiled name pattern."""

    universe: Universe
    symbols: frozenset[str]
    trusted_symbols: frozenset[str]  # symbols of the indices, the curated and the desk's files (not the SEC's alone):
    # a bare symbol in parentheses or a list must be one of these, since the SEC's include acronyms (NHS, AI, UK)
    by_exchange: dict[str, str]
    names: dict[str, str]  # alias -> ticker
    name_pattern: re.Pattern[str]
    lookup: dict[str, str]  # what the pattern matches, case-folded -> the alias (or shield) it is


@lru_cache(maxsize=4)
def _dictionary(desk_file: str | None) -> Dictionary:
    universe = load_universe(desk_file)
    names = universe.names
    # Where two aliases fold alike ("Nike", "NIKE"), the one trusted in any case wins the case-blind lookup.
    lookup = {a.casefold(): a for a in universe.shields}
    lookup.update({a.casefold(): a for a in sorted(names, key=lambda a: a not in universe.exact_case)})
    # A merger's name is also written with a hyphen ("Kraft-Heinz", "Exxon-Mobil") when both halves were companies;
    # "Anglo-American" is an adjective, not Anglo American plc.
    mergers = {a.replace(" ", "-"): a for a in names if len(a.split()) == 2 and all(w in names for w in a.split())}
    lookup.update({m.casefold(): a for m, a in mergers.items()})
    variants = set(names) | set(universe.shields) | set(mergers)
    # One trie-shaped alternation (trieregex): the same matches, longest alias first at each position, as a flat
    # longest-first alternation, but far faster. Matched against lower-cased text rather than with re.IGNORECASE,
    # which compares every character case-folded and is slower (docs/performance.md, 'Measurements behind code
    # choices'). A hyphen before a name is a boundary (wire prefixes are checked after the match).
    alternation = TrieRegEx(*{alias.lower() for alias in variants}).regex()
    pattern = re.compile(rf"(?<![\w&$.])(?:{alternation})(?![\w&])")
    trusted = frozenset(t for t, c in universe.companies.items() if c.origin != "sec")
    return Dictionary(universe, universe.symbols, trusted, universe.by_exchange, names, pattern, lookup)


def dictionary() -> Dictionary:
    """The dictionary for the configured desk file (FINSENT_ENTITIES_FILE), built once per file."""
    return _dictionary(entities_file())


def load() -> None:
    """Build the dictionary and its case-blind pattern now (a worker does, so its first batch does not wait for it and
    a malformed desk file stops it at start-up; docs/performance.md, 'Measurements behind code choices')."""
    _folding_pattern(entities_file())


@lru_cache(maxsize=4)
def _folding_pattern(desk_file: str | None) -> re.Pattern[str]:
    return re.compile(_dictionary(desk_file).name_pattern.pattern, re.IGNORECASE)


def resolve_symbol(symbol: str, exchange: str | None = None, d: Dictionary | None = None) -> str | None:
    """Map a symbol (optionally with its exchange) to the canonical ticker; None when it is not a symbol."""
    d = d or dictionary()
    as_given = symbol.strip().upper()
    if not exchange and "-" in as_given and as_given in d.symbols:  # "BT-A.L", a desk's "ZZ-PRIV"
        return as_given
    symbol = as_given.replace("/", ".").replace("-", ".")
    if not symbol or not symbol.isascii() or not re.fullmatch(r"[A-Z0-9]{1,6}(?:\.[A-Z0-9]{1,3})?", symbol):
        return None
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
        if symbol in d.universe.formerly:  # "$FB", "(ABC)": the company under its ticker today
            return d.universe.formerly[symbol]
    return {"GOOG": "GOOGL", "FOX": "FOXA", "NWS": "NWSA"}.get(symbol, symbol)


def _company_name(d: Dictionary, ticker: str) -> str:
    company = d.universe.companies.get(ticker)
    return company.name if company else ""


def _sentence_case(text: str) -> bool:
    """Most words after the first start lower-case: a capitalised word there is a name, not title case."""
    words = _WORD.findall(text)[1:]
    return len(words) >= 3 and sum(w[0].isupper() for w in words) <= len(words) / 2


def _guard(text: str, span: Span, guarded: bool, company_starts: set[int], sentence_case) -> str | None:
    """Why a one-word name here is not the company (part of another company's name; for a name that is also a
    surname or a place, a person or a place); None when it is."""
    start, end = span.start, span.end
    amp = _AMPERSAND_AFTER.match(text, end)
    if amp and amp.end() - 1 not in company_starts:  # "Albemarle & Bond", but "Apple & Google team up"
        return "followed by '& Name': part of another company's name"
    if " " in span.text:
        return None
    if _BUSINESS_AFTER.match(text, end):
        return "followed by a business word: another company's name"
    if not guarded:
        return None
    before = text[max(0, start - 40) : start]
    if _TITLE_BEFORE.search(before):
        return "a person's name (title before it)"
    m = _PROPER_BEFORE.search(before)
    if (
        m and m.group(1) not in _CALENDAR and start - len(m.group(0)) > 0
        and (start - len(m.group(0))) not in company_starts and sentence_case()
    ):  # fmt: skip
        return f"a person's name ({m.group(1)!r} before it in a sentence-case headline)"
    m = _POSSESSIVE_BEFORE.search(before)
    if m and (start - len(m.group(0))) not in company_starts:
        return f"a place or a person's ({m.group(1)}'s before it)"
    if _PLACE_AFTER.match(text, end):
        return "a place (a place noun after it)"
    return None


_CONNECTORS = frozenset({"of", "and", "the", "for", "de", "&"})


def _capitalised(words: str) -> bool:
    """Every word starts with a capital or a digit, but for connectors ("Bank of Montreal")."""
    return all(w[:1].isupper() or w[:1].isdigit() or w in _CONNECTORS for w in words.split())


def _name_spans(text: str, d: Dictionary, desk: str | None) -> list[Span]:
    lowered = text.lower()
    if len(lowered) == len(text):  # offsets in the lower-cased text are offsets in the text
        spans = [m.span() for m in d.name_pattern.finditer(lowered)]
    else:  # a character whose lower case is longer ("İ"): the same pattern, case-folded by the regex engine
        spans = [m.span() for m in _folding_pattern(desk).finditer(text)]
    # Case tells names from words only in text that has both cases; ALL-CAPS wires and all-lower text do not.
    mixed_case = any(c.islower() for c in text) and any(c.isupper() for c in text)
    universe = d.universe
    starts = {start for start, _ in spans}
    ends = {end for _, end in spans}
    out: list[Span] = []
    for start, end in spans:
        matched = text[start:end]
        alias = matched if matched in universe.names else d.lookup.get(matched.casefold())
        if alias is None or alias in universe.shields:
            continue
        # A hyphen joins a name to a wire prefix ("UPDATE 1-Shell") or to another company ("Cronos-Altria deal");
        # otherwise the name is part of a hyphenated word ("Anglo-American relations", "non-Apple", "Apple-like").
        prefix = _WIRE_PREFIX.search(text, max(0, start - 24), start) if start > 0 and text[start - 1] == "-" else None
        if start > 0 and text[start - 1] == "-" and prefix is None and (start - 1) not in ends:
            continue
        if text[end : end + 1] == "-" and (end + 1) not in starts:
            continue
        ticker = d.names[alias]
        name = _company_name(d, ticker)
        if mixed_case:
            exact = matched == alias or matched == alias.replace(" ", "-")
            # A name of several words trusted in its own case is trusted capitalised too, word by word ("Atlas Air
            # Worldwide" for the SEC's "ATLAS AIR WORLDWIDE HOLDINGS INC"), not in lower case ("global industrial").
            exact = exact or (" " in alias and alias in universe.exact_case and _capitalised(matched))
            # A name is written with its capital in running text; ALL-CAPS inside mixed text ("UPDATE 1-SHELL") too.
            capital = matched[:1].isupper() or matched[:1].isdigit()
            short_lower = len(alias) < 5 and not matched.isupper()
            if not exact and (alias in universe.exact_case or not capital or short_lower):
                continue
            if matched.isupper() and not alias.isupper() and len(alias) < 5:
                continue
        else:  # ALL-CAPS (old wires) or all-lower text: long names, or short names that are themselves capitals
            if alias in universe.exact_case:
                continue
            if not (len(alias) >= 7 or (" " in alias and len(alias) >= 5) or (alias.isupper() and matched == alias)):
                continue
        out.append(Span(ticker, name, start, end, matched, "name"))
    return out


def _symbol_spans(text: str, d: Dictionary) -> list[Span]:
    out: list[Span] = []
    for m in _CASHTAG.finditer(text) if "$" in text else ():
        ticker = resolve_symbol(m.group(1), d=d)
        if ticker:
            out.append(Span(ticker, _company_name(d, ticker), m.start(), m.end(), m.group(0), "cashtag"))
    # An exchange prefix needs its colon: most texts have none, and the case-blind regex is the costly part
    # (docs/performance.md, 'Measurements behind code choices').
    for m in _EXCHANGE.finditer(text) if ":" in text else ():
        ticker = resolve_symbol(m.group(3), m.group(1), d)
        if ticker and (ticker in d.symbols or not text[m.end(2) + 1 : m.start(3)]):  # "NYSE: XYZ" must be known
            out.append(Span(ticker, _company_name(d, ticker), m.start(), m.end(), m.group(0), "exchange"))
    for m in symbol_tags(text) if "<" in text else ():
        out.append(Span(m.group(1), _company_name(d, m.group(1)), m.start(), m.end(), m.group(0), "source_tag"))
    if "(" in text and any(c.islower() for c in text):
        for m in _PAREN.finditer(text):
            symbol = m.group(1)
            ticker = _trusted(d, symbol)
            if ticker and symbol not in WORD_TICKERS:
                out.append(Span(ticker, _company_name(d, ticker), m.start(), m.end(), m.group(0), "symbol"))
    # A list of symbols ending a mixed-case headline ("Upgrades & Downgrades on 5/13/11- NVDA, PNSN, A, DF"), or
    # one in parentheses ("Top Pre-Market Losers (CBAK, JASO, JNJ)").
    if "," in text and any(c.islower() for c in text):
        lists = [lst] if (lst := _SYMBOL_LIST.search(text)) is not None else []
        lists += list(_PAREN_LIST.finditer(text)) if "(" in text else []
        for lst in lists:
            for m in _LIST_ITEM.finditer(text, lst.start(1), lst.end(1)):
                symbol = m.group(0)
                if ticker := _trusted(d, symbol):
                    out.append(Span(ticker, _company_name(d, ticker), m.start(), m.end(), symbol, "symbol"))
    return out


def _trusted(d: Dictionary, symbol: str) -> str | None:
    """The ticker a bare symbol names when it is a trusted one (today's, or a former ticker of a trusted company:
    "(ABC)" is Cencora's COR), else None."""
    if symbol in d.trusted_symbols:
        return symbol
    ticker = d.universe.formerly.get(symbol)
    return ticker if ticker in d.trusted_symbols else None


def _is_source(text: str, span: Span, others: list[Span]) -> bool:
    """A broker named as the source of a rating or a view on another company, read from the headline's structure;
    a rating agency acting on another company's debt."""
    before = text[max(0, span.start - 40) : span.start]
    rating = _RATING_WORDS.search(text) is not None
    if span.ticker in RATING_AGENCIES:
        verb = _AGENCY_VERB.match(text, span.end)
        return bool(_SOURCE_BEFORE.search(before) or (verb and (others or _DEBT_WORDS.search(text, verb.end()))))
    if _SOURCE_BEFORE.search(before) and rating:  # "... cut to hold at Barclays"
        return True
    view = _VIEW_AFTER.match(text, span.end)  # "Goldman Sachs: ...", "Morgan Stanley's bullish call on Apple"
    if view and (rating or _MARKET_WORDS.search(text, view.end()) or any(o.start >= view.end() for o in others)):
        return True
    verb = _RATING_VERB.match(text, span.end)
    if verb is None:
        return False
    rest = text[verb.end() :]
    # "Barclays upgrades Tesco to overweight", "Goldman Raises Price Target On Agilent", "Goldman Added to 'Conviction
    # Buy' List", "Credit Suisse Reviews Barrick"; not "Barclays raises stake in Tesco" or "JPMorgan cuts ties with
    # Tesla": after a verb that is also a business action, another company counts only with a rating after it.
    if _RATING_WORDS.search(rest):
        return True
    analyst_verb = _ANALYST_VERB.match(text, span.end) is not None
    return any(o.start >= verb.end() and (analyst_verb or _RATED.match(text, o.end)) for o in others)


# Between a parent's name and its own tag, the word of a finance arm ("IBM CREDIT <IBM>"); not "FINANCIAL" or
# "CAPITAL", which end many parents' own names ("STIFEL FINANCIAL <SF>").
_ARM = r"\s+(?:CREDIT|ACCEPTANCE|LEASING|FUNDING)(?:\s+(?:CORP|CORPORATION|CO|INC)\.?)?"
_FINANCE_ARM = re.compile(_ARM + r"\s*", re.IGNORECASE)  # between the parent's known name and its tag
_FINANCE_ARM_NAME = re.compile(r"(.+?)" + _ARM, re.IGNORECASE)  # the words before a tag, the parent's name first
# Between a name and its tag: spaces, and the company-form words the name left out ("PHOTRONICS CORP <PHOT.O>").
_TAG_GAP = re.compile(
    r"(?:\s*\b(?:CORP|CORPORATION|INC|CO|COS|LTD|PLC|AG|SA|NV|GROUP|HOLDINGS?|Corp|Inc|Co|Ltd|plc)\b\.?)*\s{0,2}"
)
_TAG_NAME_WORD = re.compile(r"[A-Za-z0-9][\w&'.\-/]*")
_TAG_NAME_STOP = frozenset(
    "OF BY FOR TO IN ON AT AND WITH FROM THE A AN SAYS SAID SEEKS AFFIRMS LOWERS RAISES CUTS BUYS SELLS APPROVES "
    "SETS GETS WINS HAS IS ALL OVER UPGRADES DOWNGRADES REVIEWS RATES BID OFFER UNIT STAKE".split()
)


def _name_before(text: str, end: int, max_words: int = 6) -> tuple[int, int] | None:
    """The span of the capitalised words right before `end`, back to a function word, punctuation or the start."""
    words = list(_TAG_NAME_WORD.finditer(text, max(0, end - 120), end))
    start = stop = None
    for m in reversed(words[-max_words:]):
        gap = text[m.end() : start if start is not None else end]
        if gap.strip() or (start is None and len(gap) > 2):
            break
        word = m.group(0)
        if word.upper() in _TAG_NAME_STOP or not (word[0].isupper() or word[0].isdigit()):
            break
        start = m.start()
        stop = stop if stop is not None else m.end()
    return (start, stop) if start is not None and stop is not None else None


def find(text: str, *, headline: bool = True, at: date | None = None) -> list[Span]:
    """Every company mention in one text, in text order, each with its rule, role and relevance; mentions that are
    not linked (a broker as source, a surname, a company not listed on the day `at` when the text was published)
    carry `skipped` with the reason."""
    original = text or ""
    text = original.translate(TYPOGRAPHY)  # one character for one, so offsets stay
    desk = entities_file()
    d = _dictionary(desk)
    # The day in UTC, as stored times are ("2019-05-09T23:00-05:00" is 10 May).
    day = (at.astimezone(UTC) if at.tzinfo else at).date() if isinstance(at, datetime) else at
    symbols = _symbol_spans(text, d)
    names = _name_spans(text, d, desk)
    # A name right before its source's own tag ("STANDARD OIL <SRD>") is that tag's company.
    tags = [s for s in symbols if s.rule == "source_tag"]
    # A name inside a symbol ("<AMR>", "$AAPL") is that symbol, not another mention.
    names = [n for n in names if not any(sym.start <= n.start and n.end <= sym.end for sym in symbols)]
    for i, n in enumerate(names):
        tag = next((t for t in tags if _TAG_GAP.fullmatch(text, n.end, t.start)), None)
        if tag is not None:
            names[i] = Span(tag.ticker, tag.name or n.name, n.start, n.end, n.text, "source_tag")
    # The parent's name in its finance arm's ("IBM CREDIT <IBM>", "FORD MOTOR CREDIT <F>"): the arm is a company of
    # its own, not listed; the tag still links the parent.
    arms: set[int] = set()  # the tags whose words before are the parent's finance arm
    for i, n in enumerate(names):
        for t in tags:
            if not n.skipped and t.ticker == n.ticker and _FINANCE_ARM.fullmatch(text, n.end, t.start):
                names[i] = _replace(n, skipped="the parent's name in its finance arm's name: the tag links the parent")
                arms.add(t.start)
    # Reuters writes "NAME <TICKER>": the words right before a tag name its company, known to us or not.
    named = {t.start for t in tags if any(_TAG_GAP.fullmatch(text, n.end, t.start) for n in names)}
    for t in tags:
        if t.start not in named | arms and (span := _name_before(text, t.start)) is not None:
            words = text[span[0] : span[1]]
            arm = _FINANCE_ARM_NAME.fullmatch(words)
            if arm and t.name and t.name.casefold().startswith(arm.group(1).casefold()):
                continue  # "XEROX CREDIT <XRX>": the arm of the tag's company, named with the start of its name
            names.append(Span(t.ticker, t.name or words, *span, words, "source_tag"))
    spans = sorted(symbols + names, key=lambda s: (s.start, -s.end))
    starts = {s.start for s in spans}
    guarded = d.universe.guarded
    sentence_case = _once(lambda: _sentence_case(text))
    linked = [o for o in spans if not o.skipped]
    out: list[Span] = []
    for s in spans:
        if s.skipped:
            out.append(s)
            continue
        why = None
        if s.rule == "name":
            why = _guard(text, s, s.text in guarded, starts, sentence_case) or _label_word(text, s, d)
        if why is None and headline and (s.ticker in BROKERS or s.ticker in RATING_AGENCIES):
            if _is_source(text, s, [o for o in linked if o.ticker != s.ticker]):
                why = "a broker named as the source of a rating or forecast"
        if why is None and day is not None:
            why = _not_listed(d, s.ticker, day)
        if why is not None:
            s = _replace(s, role="source" if "broker" in why else "", skipped=why)
        out.append(s if s.text == original[s.start : s.end] else _replace(s, text=original[s.start : s.end]))
    return _roles(out, headline)


def _once(compute):
    """A function that computes its value on the first call only."""
    cache: list = []

    def get():
        if not cache:
            cache.append(compute())
        return cache[0]

    return get


def _not_listed(d: Dictionary, ticker: str, day: date) -> str | None:
    """Why a company is not linked on a day it did not trade (before its listing, after its delisting), if so."""
    company = d.universe.companies.get(ticker)
    if company is None or company.listed_on(day):
        return None
    if company.listed_from and day < company.listed_from:
        return f"not listed on {day:%Y-%m-%d}: {ticker} lists from {company.listed_from:%Y-%m-%d}"
    return f"not listed on {day:%Y-%m-%d}: {ticker} was listed until {company.listed_until:%Y-%m-%d}"


def _label_word(text: str, span: Span, d: Dictionary) -> str | None:
    """A filer known by its ticker in capitals ("LIVE", "TOP") written as a label or inside a run of capitals."""
    company = d.universe.companies.get(span.ticker)
    if company is None or company.origin != "sec" or " " in span.text or not span.text.isupper():
        return None  # a rare one-word name as written ("Cronos-Altria deal") is a name
    after = text[span.end : span.end + 2].strip()
    if after[:1] in (":", "-"):
        return "a capitalised word used as a label, not the company"
    neighbours = re.findall(r"[A-Za-z]+", text[max(0, span.start - 20) : span.start])[-1:]
    neighbours += re.findall(r"[A-Za-z]+", text[span.end : span.end + 20])[:1]
    if any(w.isupper() and len(w) > 1 for w in neighbours):
        return "part of a run of capitals, not the company"
    return None


def _replace(span: Span, **changes: object) -> Span:
    values = {f: getattr(span, f) for f in Span.__slots__}
    values.update(changes)
    return Span(**values)  # type: ignore[arg-type]


def _roles(spans: list[Span], headline: bool) -> list[Span]:
    order: list[str] = []  # linked tickers in order of first mention
    for s in spans:
        if not s.skipped and s.ticker not in order:
            order.append(s.ticker)
    out = []
    for s in spans:
        if s.skipped:
            out.append(_replace(s, relevance=0))
            continue
        if headline:
            rank = order.index(s.ticker)
            role = "subject" if rank == 0 else "object" if rank == 1 or len(order) == 2 else "passing"
        else:
            role = "lead" if s.start < LEAD else "body"
        bonus = 5 if s.rule in ("cashtag", "exchange", "source_tag", "symbol") else 0
        out.append(_replace(s, role=role, relevance=min(100, ROLE_RELEVANCE[role] + bonus)))
    return out


def link(title: str, body: str = "", provided: Iterable[str] = (), *, at: date | None = None) -> list[Mention]:
    """The tickers an article is about, most relevant first: one Mention per ticker, its best span. `at` is when it
    was published (a company that did not trade that day is not linked from the text; what the source gave is)."""
    spans: list[tuple[Span, bool]] = [(s, True) for s in find(title or "", at=at)]
    spans += [(s, False) for s in find((body or "")[:MAX_BODY_SCAN], headline=False, at=at)]
    grouped: dict[str, list[tuple[Span, bool]]] = {}
    for span, in_headline in spans:
        if not span.skipped:
            grouped.setdefault(span.ticker, []).append((span, in_headline))
    if isinstance(provided, str):  # one symbol, not its letters
        provided = [provided]
    d = dictionary() if provided else None
    for symbol in provided:
        exchange, _, bare = str(symbol).rpartition(":")
        ticker = resolve_symbol(bare, exchange or None, d)
        if ticker and d is not None:
            span = Span(ticker, _company_name(d, ticker), -1, -1, str(symbol), "provided", "provided",
                        ROLE_RELEVANCE["provided"])  # fmt: skip
            grouped.setdefault(ticker, []).append((span, True))
    mentions = []
    for ticker, hits in grouped.items():
        best, in_headline = max(hits, key=lambda h: (h[0].relevance, h[1], -h[0].start))
        provided_too = any(h[0].rule == "provided" for h in hits) and best.rule != "provided"
        # Repeats are separate mentions in the text: one name matched by two rules ("SHELL <SHEL.L>") is one.
        places = {
            (h[1], h[0].start) for h in hits
            if h[0].rule != "provided" and (h[0].rule != "source_tag" or h[0].text.startswith("<"))
        }  # fmt: skip
        repetition = 5 * min(2, max(0, len(places) - 1))
        relevance = min(100, best.relevance + repetition + (5 if provided_too else 0))
        method = {"source_tag": "provided"}.get(best.rule, best.rule)
        mentions.append(
            Mention(
                ticker,
                relevance,
                in_headline or any(h[1] for h in hits),
                best.text,
                method,
                best.name,
                best.start,
                best.end,
                best.rule,
                best.role,
                "" if best.start < 0 else "headline" if in_headline else "body",
            )  # fmt: skip
        )
    mentions.sort(key=lambda m: (-m.relevance, m.ticker))
    return mentions
