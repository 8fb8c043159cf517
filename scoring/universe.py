"""The company universe: which companies the linker knows, by which names, under which ticker.

Four layers, later ones win where they disagree (docs/entities.md):
0. `scoring/data/sec_companies.csv`: the SEC's US filers (tools/sec_companies.py makes it from edgartools' copy).
1. `pytickersymbols` (MIT): the constituents of its 20 indices (S&P 500/600/100, NASDAQ 100, DOW JONES, FTSE 100,
   DAX/MDAX/SDAX/TecDAX, CAC 40 and Mid 60, EURO STOXX 50, AEX, BEL 20, IBEX 35, SMI 20, OMX Stockholm 30 and
   Helsinki 25, NIKKEI 225), with their formal names.
2. `scoring/data/companies.csv`: the project's own file of former names, short forms, nicknames, companies taken
   over or delisted since (Morrisons, SABMiller, Shire) and big names outside those indices (BHP, Alibaba), and
   corrections of package rows (SES is not Smiths Group; Airbus is AIR.PA).
3. The desk's file, `FINSENT_ENTITIES_FILE` (CSV with the same columns, or TOML with `[[company]]` tables): its
   tickers need not be known anywhere else.

Tickers: US symbols plain (`AAPL`, `BRK.B`), other markets with Yahoo-style suffixes (`BP.L`, `SAP.DE`, `AIR.PA`).
"""

from __future__ import annotations

import csv
import io
import os
import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "companies.csv"
SEC = Path(__file__).resolve().parent / "data" / "sec_companies.csv"  # tools/sec_companies.py makes it
COLUMNS = (
    "ticker", "name", "aliases", "isin", "status", "market", "blocked", "guarded", "note", "former_tickers",
    "listed_from",
    "listed_until",
)  # fmt: skip
REQUIRED = ("ticker", "name")
STATUSES = ("listed", "former")
TICKER = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,15}")
ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")

# The suffix each index's market takes when the package gives a bare symbol.
INDEX_SUFFIX = {
    "AEX": ".AS", "BEL 20": ".BR", "CAC_40": ".PA", "CAC Mid 60": ".PA", "DAX": ".DE", "MDAX": ".DE", "SDAX": ".DE",
    "TecDAX": ".DE", "EURO STOXX 50": "", "FTSE 100": ".L", "IBEX 35": ".MC", "NIKKEI 225": ".T",
    "OMX Helsinki 25": ".HE", "OMX Stockholm 30": ".ST", "Switzerland 20": ".SW", "DOW JONES": "", "NASDAQ 100": "",
    "S&P 100": "", "S&P 500": "", "S&P 600": "",
}  # fmt: skip
US_INDICES = frozenset({"DOW JONES", "NASDAQ 100", "S&P 100", "S&P 500", "S&P 600"})
# Small- and mid-cap indices: their companies link by multi-word names only. A one-word name cut from a small cap's
# formal name is too often an ordinary word or a surname ("City Holding" -> City, "Powell Industries" -> Powell,
# "Box Inc." -> Box); a large cap's ("Apple Inc." -> Apple) is how headlines name it.
SMALL_CAP_INDICES = ("S&P 600", "MDAX", "SDAX", "TecDAX", "CAC Mid 60", "NIKKEI 225")  # Japan: "Screen", "Resonac"
_PRIMARY = {"GOOG": "GOOGL", "FOX": "FOXA", "NWS": "NWSA"}  # one share class per company

_LEGAL_SUFFIX = (
    r"Inc\.?|Incorporated|Corporation|Corp\.?|Company|Companies|plc|PLC|Group|Holdings?|Holding|Limited|Ltd\.?|AG|SE|"
    r"SA|S\.A\.|N\.V\.|NV|ASA|Oyj|AB|S\.p\.A\.|SpA|KGaA|& Co\.? KGaA|Aktiengesellschaft|&\s*Co\.?"
)
_SUFFIXES = re.compile(rf"(?:,?\s+(?:{_LEGAL_SUFFIX}|Co\.?|LLC|L\.P\.|LP|REIT|Trust))+$")
# The legal forms as they were read before bare "Co", LLC and L.P. were (and before capitals and filing tags, see
# `_short_forms_before`): the short forms these let through linked case-blind, and stay so; the ones only the wider
# reading reveals are phrases as often as names.
_SUFFIXES_BEFORE = re.compile(rf"(?:,?\s+(?:{_LEGAL_SUFFIX}|Co\.|REIT|Trust))+$")
# What the SEC's list appends to a filer's name: the state of incorporation ("/DE/"), a depositary receipt ("/ADR"),
# a successor ("/NEW/"): "Core Laboratories Inc. /DE/", "Sectra AB/ADR".
# Set off by a space or closed by a slash, or "/ADR": not the end of a name such as "AC/DC".
_FILING_TAGS = re.compile(r"(?:\s+/[A-Za-z]{2,5}/?|\s*/ADR/?|\s*/[A-Za-z]{2,5}/)+\s*$", re.IGNORECASE)
_GENERIC_TAIL = re.compile(
    r"\s+(?:Technologies|Technology|Pharmaceuticals|Laboratories|Industries|International|Systems|Solutions|"
    r"Resources)$"
)
_QUALIFIER = re.compile(r"\s*\([^)]*\)\s*$")  # "Rio Tinto (corporation)"


class EntitiesFileError(ValueError):
    """A malformed entities file: the message names the file, the line and the field."""


@dataclass(frozen=True, slots=True)
class Company:
    ticker: str
    name: str
    aliases: tuple[str, ...]  # names a headline may use, the formal name included
    isin: str | None = None
    status: str = "listed"
    market: str = ""
    blocked: frozenset[str] = frozenset()  # aliases of this company that must not link on their own
    guarded: frozenset[str] = frozenset()  # one-word aliases that are also surnames or places: linked with context
    origin: str = "package"  # sec | package | curated | desk
    exact_case: frozenset[str] = field(default_factory=frozenset)  # aliases trusted only in their own case
    former_tickers: tuple[str, ...] = ()  # tickers the news knew it by before ("ABC" for Cencora, "FB" for Meta)
    listed_from: date | None = None  # first trading day, when known: news before it is not about a listed company
    listed_until: date | None = None  # last trading day, when known

    def listed_on(self, day: date) -> bool:
        """Was it listed on that day, as far as its dates say (no date: yes)?"""
        return (self.listed_from is None or day >= self.listed_from) and (
            self.listed_until is None or day <= self.listed_until
        )


# Typographic apostrophes and dashes as headlines' ASCII ones ("McDonald’s", "Rolls–Royce"): names are stored so,
# and the linker reads text so.
TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u2013": "-", "\u2011": "-"})


def entities_file() -> str | None:
    """FINSENT_ENTITIES_FILE (core.settings.Settings.entities_file), read from the environment directly: the linker
    asks for every text, and building Settings each time would cost more than the linking."""
    return os.environ.get("FINSENT_ENTITIES_FILE") or None


def clean(name: str) -> str:
    return unicodedata.normalize("NFKC", name).translate(TYPOGRAPHY).strip()


def formal_aliases(
    name: str, *, suffixes: re.Pattern[str] = _SUFFIXES, filing_tags: bool = True
) -> tuple[set[str], set[str]]:
    """The formal name and the forms a headline uses ("Agilent" for "Agilent Technologies Inc."), and which of those
    are cut down from a longer name (trusted only in their own case: "DEUTSCHE BABCOCK" is not Babcock). `suffixes`
    and `filing_tags` (drop "/DE/") say how the legal form is read."""
    name = _QUALIFIER.sub("", clean(name))
    name = _FILING_TAGS.sub("", name) if filing_tags else name
    out = {name}
    stripped = suffixes.sub("", name).strip(" ,")
    if stripped.startswith("The "):
        stripped = stripped[4:]
    out.add(stripped)
    if stripped.endswith(" Pharmaceuticals"):  # "Acadia Pharma", as headlines shorten it
        out.add(stripped.removesuffix("ceuticals"))
    exact: set[str] = set()
    short = _GENERIC_TAIL.sub("", stripped).strip(" ,")
    if short != stripped and len(short) >= 3:
        out.add(short)
        exact.add(short)
    return {a for a in out if len(a) >= 2}, exact


def _package_ticker(stock: dict, index: str) -> str | None:
    symbol = (stock.get("symbol") or "").upper()
    suffix = INDEX_SUFFIX.get(index, "")
    if symbol.endswith(".DE") and symbol.count(".") == 2:  # "AIR.PA.DE": a company listed elsewhere, in the DAX
        symbol = symbol[:-3]
    if index in US_INDICES:
        return _PRIMARY.get(symbol, symbol) if TICKER.fullmatch(symbol) else None
    if "." in symbol and TICKER.fullmatch(symbol):
        return symbol
    # A bare or missing symbol: the package's Yahoo code on the index's own market, if it has one.
    for listing in stock.get("symbols") or []:
        yahoo = (listing.get("yahoo") or "").upper()
        if suffix and yahoo.endswith(suffix) and TICKER.fullmatch(yahoo):
            return yahoo
    if symbol and suffix and TICKER.fullmatch(symbol + suffix):
        return symbol + suffix
    return None


@lru_cache(maxsize=1)
def package_companies() -> tuple[tuple[Company, ...], dict[str, str]]:
    """The package's index constituents as companies, and its exchange listings ("NASDAQ:AAPL" -> "AAPL")."""
    from pytickersymbols import PyTickerSymbols

    api = PyTickerSymbols()
    companies: dict[str, Company] = {}
    by_exchange: dict[str, str] = {}
    indices = sorted(api.get_all_indices(), key=lambda i: (i in SMALL_CAP_INDICES, i))  # large caps first
    for index in indices:
        for stock in api.get_stocks_by_index(index):
            ticker = _package_ticker(stock, index)
            if not ticker or not stock.get("name") or ticker in companies:
                continue
            aliases, exact = formal_aliases(stock["name"])
            if index in SMALL_CAP_INDICES:
                aliases = {a for a in aliases if " " in a}
                exact &= aliases
            isins = stock.get("isins") or []
            market = "US" if index in US_INDICES else INDEX_SUFFIX.get(index, "").lstrip(".")
            companies[ticker] = Company(
                ticker, clean(stock["name"]), tuple(sorted(aliases)), isins[0] if isins else None, "listed", market,
                origin="package", exact_case=frozenset(exact),
            )  # fmt: skip
            for listing in stock.get("symbols") or []:
                google = (listing.get("google") or "").upper().replace(" ", "")
                if ":" in google:
                    by_exchange.setdefault(google, ticker)
    return tuple(companies.values()), by_exchange


def _split(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else value.split(";")
    return [clean(str(item)) for item in items if str(item).strip()]


def _company(record: dict, *, where: str, origin: str) -> Company:
    """One row of a companies file; `where` is "FILE, line N" for the error."""
    for key in record:
        if key not in COLUMNS:
            raise EntitiesFileError(f"{where}: unknown field {key!r} (fields: {', '.join(COLUMNS)})")
    for key in REQUIRED:
        if not str(record.get(key) or "").strip():
            raise EntitiesFileError(f"{where}: field {key!r} is empty")
    ticker = str(record["ticker"]).strip().upper()
    if not TICKER.fullmatch(ticker):
        raise EntitiesFileError(
            f"{where}: field 'ticker' {record['ticker']!r} is not a ticker (letters, digits, '.', '-'; at most 16)"
        )
    for key in ("aliases", "blocked", "guarded", "former_tickers"):
        value = record.get(key)
        if value is not None and not (
            isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            raise EntitiesFileError(f"{where}: field {key!r} must be text separated by ';' or a list of names")
    for key in ("ticker", "name", "isin", "status", "market", "note", "listed_from", "listed_until"):
        if key.startswith("listed_") and isinstance(record.get(key), date):
            continue
        if record.get(key) is not None and not isinstance(record[key], str):
            raise EntitiesFileError(f"{where}: field {key!r} must be text, not {type(record[key]).__name__}")
    status = str(record.get("status") or "listed").strip().lower()
    if status not in STATUSES:
        raise EntitiesFileError(f"{where}: field 'status' {record['status']!r} is not one of {', '.join(STATUSES)}")
    isin = str(record.get("isin") or "").strip().upper() or None
    if isin and not ISIN.fullmatch(isin):
        raise EntitiesFileError(f"{where}: field 'isin' {record['isin']!r} is not an ISIN (2 letters, 9, 1 digit)")
    former = tuple(s.upper() for s in _split(record.get("former_tickers")))
    for symbol in former:
        if not TICKER.fullmatch(symbol) or symbol == ticker:
            raise EntitiesFileError(f"{where}: field 'former_tickers' {symbol!r} is not a former ticker of this row")
    listed = {key: _day(record.get(key), key, where) for key in ("listed_from", "listed_until")}
    if listed["listed_from"] and listed["listed_until"] and listed["listed_until"] < listed["listed_from"]:
        raise EntitiesFileError(f"{where}: field 'listed_until' is before 'listed_from'")
    name = clean(str(record["name"]))
    formal, exact = formal_aliases(name)
    aliases = set(_split(record.get("aliases"))) | formal
    blocked = frozenset(_split(record.get("blocked")))
    guarded = frozenset(_split(record.get("guarded")))
    return Company(
        ticker, name, tuple(sorted(aliases)), isin, status, str(record.get("market") or "").strip().upper(), blocked,
        guarded, origin, frozenset(exact - set(_split(record.get("aliases")))), former, listed["listed_from"],
        listed["listed_until"],
    )  # fmt: skip


def _day(value: object, key: str, where: str) -> date | None:
    """A listing date: YYYY-MM-DD text (CSV, TOML string) or a TOML date; empty is unknown."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, date):  # TOML's own dates (a datetime is a date too)
        return value if type(value) is date else value.date()  # type: ignore[attr-defined]
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise EntitiesFileError(f"{where}: field {key!r} {value!r} is not a date (YYYY-MM-DD)")


def read_companies(path: str | Path, *, origin: str = "desk") -> list[Company]:
    """The companies of a CSV or TOML file; a malformed file raises EntitiesFileError naming file, line and field."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise EntitiesFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise EntitiesFileError(f"{path}, line {line}: not UTF-8 text") from None
    if path.suffix.lower() == ".toml":
        return _read_toml(path, text, origin)
    return _read_csv(path, text, origin)


def _read_csv(path: Path, text: str, origin: str) -> list[Company]:
    reader = csv.DictReader(io.StringIO(text), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as e:
        raise EntitiesFileError(f"{path}, line 1: {e}") from None
    if not header:
        raise EntitiesFileError(f"{path}, line 1: empty file (expected a header: {', '.join(COLUMNS)})")
    for key in REQUIRED:
        if key not in header:
            raise EntitiesFileError(f"{path}, line 1: no {key!r} column (columns: {', '.join(COLUMNS)})")
    for key in header:
        if key not in COLUMNS:
            raise EntitiesFileError(f"{path}, line 1: unknown column {key!r} (columns: {', '.join(COLUMNS)})")
    if len(set(header)) != len(header):
        twice = sorted({k for k in header if header.count(k) > 1})
        raise EntitiesFileError(f"{path}, line 1: column {twice[0]!r} appears twice")
    out = []
    ended = reader.line_num  # the line the last row read ended on
    try:
        for row in reader:
            where = f"{path}, line {ended + 1}"
            ended = reader.line_num
            if None in row:
                raise EntitiesFileError(f"{where}: more fields than the header's {len(header)}")
            if not any((v or "").strip() for v in row.values()):
                continue
            out.append(_company({k: v for k, v in row.items() if v is not None}, where=where, origin=origin))
    except csv.Error as e:
        raise EntitiesFileError(f"{path}, line {ended + 1}: {e} (is a quote left open?)") from None
    return out


def _read_toml(path: Path, text: str, origin: str) -> list[Company]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None) or (m.group(1) if (m := re.search(r"at line (\d+)", str(e))) else "?")
        raise EntitiesFileError(f"{path}, line {line}: {e}") from None
    rows = data.get("company")
    if not isinstance(rows, list) or set(data) - {"company"}:
        raise EntitiesFileError(f"{path}, line 1: expected only [[company]] tables (fields: {', '.join(COLUMNS)})")
    # tomllib gives no line numbers for values: find each table's header line in the text.
    starts = [text.count("\n", 0, m.start()) + 1 for m in _TOML_TABLE.finditer(text)]
    inline = re.search(r"^[ \t]*company[ \t]*=", text, re.MULTILINE)  # company = [{...}, ...]: its line for all
    fallback = text.count("\n", 0, inline.start()) + 1 if inline else "?"
    out = []
    for n, row in enumerate(rows):
        where = f"{path}, line {starts[n] if n < len(starts) else fallback} (company {n + 1})"
        if not isinstance(row, dict):
            raise EntitiesFileError(f"{where}: expected a table of fields, not {type(row).__name__}")
        out.append(_company(row, where=where, origin=origin))
    return out


_TOML_TABLE = re.compile(r"^[ \t]*\[\[[ \t]*company[ \t]*\]\]", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Universe:
    companies: dict[str, Company]  # ticker -> company
    names: dict[str, str]  # alias -> ticker (linkable)
    exact_case: frozenset[str]  # aliases matched only in their own case
    shields: frozenset[str]  # names that consume their words and link nothing ("Apple Hospitality" shields "Apple")
    guarded: frozenset[str]  # one-word names that are also surnames or places: context guards apply
    by_exchange: dict[str, str]
    formerly: dict[str, str] = field(default_factory=dict)  # a former ticker -> the company's ticker now

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self.companies)


# Names of other businesses that contain a linked company's name: they consume their words and link nothing.
SHIELDS = (
    "Apple Hospitality", "Kingfisher Airlines", "Albemarle & Bond", "Amazon rainforest", "Amazon River",
    "Domino's Pizza Group", "Shell Energy", "Next Generation", "Ford Foundation", "Marriott Vacations",
    "Abbott Laboratories", "Virgin Money", "Target Corp", "Travelers Club",
)  # fmt: skip


# One-word names from the package that are ordinary words in headlines ("Price Target", "Morning News", "Senior
# Notes"): they never link alone (the company's longer names still do). The curated and desk files block their own.
ORDINARY_WORDS = frozenset(
    "Target Southern Progressive Next Sage Ball Block Match Compass Pool Dover Fox News Continental Phoenix Williams "
    "Hartford Booking Everest Admiral Waters Diploma Rollins Nasdaq APA Global BD General Public Realty Equity "
    "Digital Dollar Capital First United American International Cooper Align Edison Tyler Intuitive Jacobs Regency "
    "Republic Quest Ross Steel Tractor Veralto Otis Welltower Zebra Investor Senior Strategy Park Time Energy Trust "
    "Prime Core Focus Summit Premier Unity Edge Insight Pioneer Frontier Liberty Spirit Natural Sonic City Box "
    "Vista National Central Standard Kering".split()
) - {"Kering"}


def build(layers: Iterable[Iterable[Company]], by_exchange: dict[str, str]) -> Universe:
    """Merge layers (lowest precedence first): a later layer's row replaces an earlier row with the same ticker, and
    its aliases win over an earlier layer's; an alias that two rows of the same layer claim links neither."""
    companies: dict[str, Company] = {}
    claims: dict[str, tuple[int, set[str]]] = {}  # alias -> (layer, tickers)
    exact: dict[tuple[str, str], bool] = {}  # (alias, ticker) -> trusted only in its own case
    guarded: set[str] = set()
    for rank, layer in enumerate(layers):
        layer = list(layer)
        # A row's blocked names: that row does not claim them as written, and no lower layer's row keeps them in any
        # case ("Prudential" blocked by the US row leaves the UK row's claim, and removes the package's).
        for company in layer:
            folded = {b.casefold() for b in company.blocked}
            for alias in [a for a in claims if a.casefold() in folded and claims[a][0] < rank]:
                del claims[alias]
        for company in layer:
            companies[company.ticker] = company
            guarded |= company.guarded
            for alias in company.aliases:  # its own names as written ("Arm" blocked, "ARM" kept)
                if alias in company.blocked or (company.origin in ("sec", "package") and alias in ORDINARY_WORDS):
                    continue
                exact[(alias, company.ticker)] = alias in company.exact_case
                level, tickers = claims.get(alias, (-1, set()))
                if rank > level:
                    claims[alias] = (rank, {company.ticker})
                elif rank == level:
                    tickers.add(company.ticker)
    names = {a: next(iter(t)) for a, (_, t) in claims.items() if len(t) == 1}
    exact_case = {a for a, t in names.items() if exact.get((a, t))}
    # A lower layer's alias replaced by a higher one still names its (now corrected) company: "SES" -> SESG.PA only.
    shields = {a for a in SHIELDS if a not in names}
    shields |= {a for a, (_, t) in claims.items() if len(t) > 1 and " " in a}  # ambiguous long names link nothing
    # A former ticker names its company unless a company trades under it now (that one wins); where two rows claim
    # one, the row read last (a higher layer's) wins, and check_companies.py reports it in the curated file.
    formerly = {s: c.ticker for c in companies.values() for s in c.former_tickers if s not in companies}
    return Universe(
        companies, names, frozenset(exact_case), frozenset(shields), frozenset(guarded & set(names)), by_exchange,
        formerly,
    )  # fmt: skip


_LEGAL_FORMS = frozenset({"INC", "CO", "LTD"})
_INITIALS = re.compile(r"(?:[A-Z]\.)+,?")


def _title(name: str) -> str:
    """An ALL-CAPS filer name as headlines write it ("APPLIED OPTOELECTRONICS, INC." -> "Applied Optoelectronics,
    Inc."); mixed-case names are kept."""
    # The legal forms in their usual case, which the suffixes strip ("BOSTON BEER CO INC" is "Boston Beer", not an
    # alias "Boston Beer CO INC" that no headline writes); in mixed-case names too ("Manhattan Bridge Capital, INC").
    if any(c.islower() for c in name):
        return " ".join(w.capitalize() if w.rstrip(",.") in _LEGAL_FORMS else w for w in name.split())
    # Short words and initials stay in capitals (acronyms: "IBM", "AMC"; "L.P.").
    return " ".join(
        w.capitalize() if (len(w) > 3 and not _INITIALS.fullmatch(w)) or w.rstrip(",.") in _LEGAL_FORMS else w
        for w in name.split()
    )


def _short_forms_before(name: str) -> set[str]:
    """The casefolded forms of a filer name that linked case-blind before legal forms were read in any case (words of
    three letters kept in capitals, "INC" among them), bare "Co", LLC and L.P. were read, and filing tags ("/DE/")
    were dropped."""
    old = (
        name if any(c.islower() for c in name) else " ".join(w.capitalize() if len(w) > 3 else w for w in name.split())
    )
    return {f.casefold() for f in formal_aliases(old, suffixes=_SUFFIXES_BEFORE, filing_tags=False)[0]}


@lru_cache(maxsize=1)
def sec_companies() -> tuple[Company, ...]:
    """The SEC's US filers, lowest layer: multi-word names, a one-word name when it is the company's own ticker,
    written in capitals ("AAON", "AGNC"), and the one-word names the file lists because they are rare in English
    ("Coty", "Lumentum"; tools/sec_companies.py), in their own case only. Other one-word filer names are usually
    ordinary words ("Here", "Target")."""
    out = []
    if not SEC.exists():
        return ()
    with SEC.open(encoding="utf-8", newline="") as f:
        rare = {row["ticker"]: _split(row.get("aliases")) for row in csv.DictReader(f)}
    for company in read_companies(SEC, origin="sec"):
        name = _title(company.name)
        formal, _ = formal_aliases(name)
        bare = company.ticker.replace(".", "")
        aliases = {a for a in formal if " " in a and len(a) >= 6}
        # The short forms that only the legal forms in capitals or a filing tag hid ("BOSTON BEER CO INC" -> "Boston
        # Beer", "First National Corp /VA/" -> "First National"): many are phrases too ("FINANCIAL INSTITUTIONS
        # INC", "VALUE LINE INC"), so they link only as headlines capitalise a name, every word, in mixed-case text
        # ("Boston Beer is the comeback stock", "BCB Bancorp"), never in ALL-CAPS wires ("TWO UTAH FINANCIAL
        # INSTITUTIONS FAIL") nor in lower case ("Global industrial output slows").
        before = _short_forms_before(company.name)
        hidden = {a for a in aliases if a.casefold() not in before and not _SUFFIXES.search(a)}  # not "Whirlpool Corp"
        words = {a.split()[0].strip(",") for a in formal}  # "AGNC Investment Corp." is "AGNC" in headlines
        exact = {w.upper() for w in words if w.upper() == bare and len(w) >= 3}  # as capitals only: "HERE", not "Here"
        exact |= {a for a in rare.get(company.ticker, ()) if " " not in a}  # the file's `aliases` column
        exact |= hidden
        out.append(Company(company.ticker, _FILING_TAGS.sub("", name), tuple(sorted(aliases | exact)), None,
                           "listed", "US", origin="sec", exact_case=frozenset(exact)))  # fmt: skip
    return tuple(out)


@lru_cache(maxsize=4)
def load_universe(desk_file: str | None = None) -> Universe:
    """The universe from the SEC's filers, the package, the shipped file and (when given) the desk's file."""
    package, by_exchange = package_companies()
    layers: list[Iterable[Company]] = [sec_companies(), package]
    if DATA.exists():
        layers.append(read_companies(DATA, origin="curated"))
    if desk_file:
        layers.append(read_companies(desk_file, origin="desk"))
    return build(layers, by_exchange)
