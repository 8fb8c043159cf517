"""Duplicate and story detection: exact duplicates by URL or (source, title key), stories by headline similarity.

An item joins a story when its headline is similar to the headline of that story's FIRST article within a sliding
window of original publication times (never to a later member, so stories cannot chain), and nothing in the two
says they are about different things:

- similarity, on the headlines' words (casefolded, common function words left out), either of:
  - Jaccard >= `threshold` (0.8), anywhere in the window;
  - within `recent_window` (6 hours) of the first article, Jaccard weighted by how rare each word is in news
    headlines >= `recent_threshold` (0.65), or >= `company_threshold` (0.5) when the two name a company in common:
    "Nissan", "Ghosn" and "misconduct" tell a story, "business live - as it happened" does not. The weights are
    inverse document frequencies over 51k real headlines (`data/headline_words.csv`, made by
    tools/headline_words.py);
  Only headlines: a lead (the start of the body) is often a source's boilerplate ("Mad Money host Jim Cramer rings
  the lightning round bell..."), and on the judged pairs a second path that joins by similar leads added no
  same-story join, only false ones (docs/pipeline.md, "Stories");
- a live blog: within `recent_window`, an article whose words a live blog's title holds ("Business live ... - as
  it happened": a day's running coverage names several stories) at `live_containment` (0.6) of the lighter
  headline's weight joins it, in either order;
- one release told again: within `recent_window`, two items naming a company in common that report its results
  for the same period ("Q2", "2ND QTR", "FY19") or the same broker's note on it;
- a burst: an item whose linked companies are exactly those of a story's first article published within
  `burst_window` (6 minutes) of it, whose headline opens with the same word and shares a word with it, joins that
  story whatever its numbers, unless their weekdays or months disagree or either is a market-activity note (an
  options sweep, a mover list, a 52-week high).
  A source sends one announcement as several items within minutes ("Advance Auto Parts Sees FY19 Comps Up 1-2.5%"
  and "... Sees FY19 Sales $9.65B-$9.8B vs $9.78B Estimate", the same minute), whose numbers differ by design;
- companies: two items whose linked tickers are both known and share none are different stories (an item with no
  linked ticker is no evidence either way: the linker misses names, and one outlet tags tickers while another
  does not);
- brokers: two headlines that both report a rating action ("<Broker> Maintains/Upgrades/Initiates ...") by two
  different brokers are two stories (each broker's note is its own event);
- groups and hours: two "Shares of several <group> companies ..." headlines whose groups share no word, or two
  headlines whose times of day ("1200 GMT", "4:30 p.m.") share none, are different stories;
- markers: two headlines that both name a weekday or month and share none, or both carry numbers and share none
  ("10 Stocks Moving In Wednesday's Session" and "30 Stocks ...", "52-Week Lows On Tuesday" and "... On
  Wednesday"), are different stories, however similar their words.

The state is memory only and can be rebuilt with `warm(...)` from stored rows, so a restarted worker assigns the
same stories.
"""

from __future__ import annotations

import copy
import csv
import heapq
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import xxhash
from datasketch import MinHash, MinHashLSH

HEADLINE_WORDS = Path(__file__).resolve().parent / "data" / "headline_words.csv"
SEED = 1  # fixed so signatures, and therefore story assignment, are the same in every process
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"(?<![^\W_])\d+(?:[.,]\d+)*")  # not inside a word: "$9.65B" and "52-week", not "FY19"
# Calendar words that tell the issues of a recurring headline apart. "May" and "March" are left out: they are
# also a verb and a noun in headlines.
_CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february april june july august september "
    "october november december jan feb apr jun jul aug sep sept oct nov dec".split()
)
# Words that open a wire's update rather than say what it is about ("UPDATE 1-", "REFILE-", "BRIEF-").
_WIRE_PREFIXES = ("UPDATE", "UPDATED", "REFILE", "CORRECTED", "CORRECTION", "BRIEF", "EXCLUSIVE", "BREAKING")
# "<Broker> Maintains/Upgrades/Initiates ... on <Company>": who rated, after a wire or rumour prefix. Two brokers' notes
# on one company are two stories, however alike their words ("Cascend Maintains Buy on Apple, Lowers Price Target to
# $325" / "UBS Maintains Buy on Apple, Raises Price Target to $325").
_RATER = re.compile(
    rf"^(?:(?:{'|'.join(_WIRE_PREFIXES)}|Hearing)\b(?:\s+\d+)?\W*)*"
    r"((?:(?:[A-Z][\w&.'-]*|of|&)\s+){1,4}?)"
    r"(?:Maintains|Reiterates|Upgrades|Downgrades|Initiates|Resumes|Reinstates|Assumes|Out)\b"
)
# Market-activity notes (an options sweep, a mover list, a 52-week high): about a company's stock, not its news, so
# never part of a burst of that company's news ("Apple Option Alert: May 15 $315 Calls Sweep ..." and "Apple To Give
# Masks To Customers Inside Retail Stores", the same minute).
_ACTIVITY = re.compile(
    r"\b(?:option alert|options? (?:sweep|activity)|sweep|unusual options|52-week|stocks moving|pre-market movers|"
    r"mid-day (?:gainers|losers)|short interest)\b",
    re.IGNORECASE,
)
# A live blog: a source's running coverage of a day's news under one title ("Business live UK personal insolvencies
# hit seven-year high; US consumer confidence slumps - as it happened"). The title names several stories; an article
# of the same hours whose words it holds tells one of them ("UK personal insolvencies hit seven-year high").
_LIVE = re.compile(r"^\s*(?:business live\b|live:)|\bas it happened\s*$|\blive (?:updates|blog)\b", re.IGNORECASE)
# "Shares of several <group> companies are trading ...": a source's template whose group of companies says who the
# news is about, as a company's name does ("Shares of several healthcare companies ..." / "... industrial companies
# ...", the same minute, on one jobs report: two stories).
_GROUP = re.compile(
    r"^\W*shares of (?:several|some|many|a few)\s+((?:[\w/&,'-]+\s+){0,4}?[\w/&'-]+)\s+(?:companies|stocks|names)\b",
    re.IGNORECASE,
)
# A time of day names the issue of a recurring bulletin ("REUTER COMMODITIES NEWS HIGHLIGHTS 1200 GMT - APRIL 7").
# Zones in capitals only ("$2.36 Est" is an estimate), and no price ("$2.30 pm").
_CLOCK = re.compile(
    r"(?<![$\d.,])\b(\d{1,2}[:.]?\d{2})\s*(?:GMT|UTC|BST|CET|EST|EDT|ET)\b"
    r"|(?<![$\d.,])\b(\d{1,2}(?:[:.]\d{2})?)\s*(?i:([ap])\.?m\.?)(?!\w)"
)
# A company's results for a period ("Advance Auto Parts Q2 Adj. EPS $2 Misses ...", "IRVING BANK CORP <V> 1ST QTR
# NET"): the period, when the headline also has a results word.
_PERIOD = re.compile(
    r"\b(?:Q[1-4]|FY ?(?:\d{4}|\d{2})|[1-4](?:ST|ND|RD|TH)[- ]QTR|(?:first|second|third|fourth)[- ]quarter)\b", re.I
)
_RESULTS = re.compile(r"\b(?:EPS|earnings|results|sales|revenues?|profits?|net|loss)\b", re.IGNORECASE)
# Before the results, not about them: "Apple Q2 Earnings Preview: What To Expect", "Apple To Report Q2 Earnings After
# The Bell" are their own items, not the release they wait for.
_AHEAD = re.compile(
    r"\b(?:previews?|to report|will report|set to report|ahead of|what to (?:expect|watch)|earnings (?:date|schedule)|"
    r"scheduled|on deck)\b",
    re.IGNORECASE,
)
_ORDINAL = {"first": "1", "second": "2", "third": "3", "fourth": "4"}


def _clock_key(m: re.Match[str]) -> str:
    """One spelling per time of day: "1200 GMT", "12:00 GMT" are "1200"; "4:30 p.m." is "430p"."""
    return (m.group(1) or m.group(2) + m.group(3).lower()).replace(":", "").replace(".", "")


def _period_key(text: str) -> str:
    """One spelling per period: "Q2", "2ND QTR", "second-quarter" are all "q2"; "FY 2019", "FY19" are "fy19"."""
    t = re.sub(r"[\s-]", "", text.casefold())
    if t.startswith("fy"):
        return "fy" + t[2:][-2:]
    if t.endswith("qtr") or t.endswith("quarter"):
        return "q" + _ORDINAL.get(t.removesuffix("quarter"), t[:1])
    return t


# A headline's opening word skips the wire prefixes (and an update's number). "Hearing" stays an opening word: a
# rumour ("Hearing Apple To Close All Retail Stores") is not the story of the company's other news of those minutes
# ("Apple shares are trading higher as tech stocks rebound ..."), which only the company's name would tie to it.
_WIRE_WORDS = frozenset([w.casefold() for w in _WIRE_PREFIXES] + "1 2 3 4 5".split())
_STOPWORDS = frozenset(
    """a an the and or but if then of to in on at by for with from as into onto over under about after before is
    are was were be been being has have had do does did will would shall should can could may might must it its
    this that these those he she they we you i his her their our your them us him me my not no nor so than too
    very s t just up down out off also amid says said say new""".split()
)


@dataclass(frozen=True, slots=True)
class DedupResult:
    """What the deduplicator decided about one item."""

    is_exact_duplicate: bool
    duplicate_of: Hashable | None  # the earlier item this one repeats exactly
    story_id: Hashable  # id of the first item of this item's story (its own id when it starts one)
    is_first_of_story: bool
    similar_before: int  # items of its story already in the window (novelty: 0 is new)


@dataclass(frozen=True, slots=True)
class Signature:
    """What `check` compares a headline by; computed from the headline alone (`Deduplicator.signature`)."""

    minhash: MinHash  # of `words`, for the LSH index of story-first articles
    words: frozenset[str]
    weights: Mapping[str, float]  # each word's weight (`word_weights`)
    weight: float  # their sum, the headline's whole weight
    rarest: tuple[str, ...]  # the fewest rarest words holding more than 1 - min(recent, company threshold) of it
    numbers: frozenset[str]
    calendar: frozenset[str]  # weekday and month names
    opening: str = ""  # the headline's first word after a wire prefix ("UPDATE:"): who or what it is about
    rater: str = ""  # the broker whose rating action the headline reports ("" when it reports none)
    activity: bool = False  # a market-activity note (options sweep, movers, 52-week high), not the company's news
    live: bool = False  # a live blog's title (`_LIVE`)
    periods: frozenset[str] = frozenset()  # the results periods it reports ("q2", "fy19"), when it reports results
    group: frozenset[str] = frozenset()  # the words of the group in "Shares of several <group> companies"
    clock: frozenset[str] = frozenset()  # times of day ("1200" for "1200 GMT", "430p" for "4:30 p.m.")


@dataclass(slots=True)
class _Entry:
    item_id: Hashable
    published_at: datetime
    story_id: Hashable
    url: str | None
    exact_key: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class _First:
    """A story's first article: what later items are compared with."""

    signature: Signature
    tickers: frozenset[str]
    published_at: datetime


@dataclass(frozen=True, slots=True)
class _Ticker:
    """A ticker as a key of the recent-window index, beside the words (no word equals it)."""

    symbol: str


class _Recent:
    """Story-first articles of the last `span` of publication time, by keys (their words, or their tickers); an
    article leaves every key once it is older than `span` behind the newest time seen (a heap keeps eviction
    O(log n) per article)."""

    def __init__(self, span: timedelta) -> None:
        self.span = span
        self._ids: dict[Hashable, set[Hashable]] = {}
        self._by_time: list[tuple[datetime, int, Hashable, Iterable[Hashable]]] = []

    def add(self, published_at: datetime, seq: int, item_id: Hashable, keys: Iterable[Hashable]) -> None:
        for key in keys:
            self._ids.setdefault(key, set()).add(item_id)
        heapq.heappush(self._by_time, (published_at, seq, item_id, keys))

    def get(self, key: Hashable) -> set[Hashable]:
        return self._ids.get(key, set())

    def evict(self, now: datetime) -> None:
        cutoff = now - self.span
        while self._by_time and self._by_time[0][0] < cutoff:
            _, _, item_id, keys = heapq.heappop(self._by_time)
            for key in keys:
                ids = self._ids[key]
                ids.discard(item_id)
                if not ids:
                    del self._ids[key]


def headline_words(text: str) -> frozenset[str]:
    """The casefolded words of a headline that story detection compares (common function words left out)."""
    return _content(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def _content(folded: list[str]) -> frozenset[str]:
    return frozenset(w for w in folded if w not in _STOPWORDS)


@lru_cache(maxsize=1)
def word_weights() -> tuple[dict[str, float], float]:
    """The weight of each headline word, log((N + 1) / (n + 1)) for a word in n of N headlines, and the weight of a
    word not in the table (`HEADLINE_WORDS`)."""
    with HEADLINE_WORDS.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        next(rows)  # the header
        counts = {word: int(n) for word, n in rows}
    total = counts.pop("")  # the row with no word holds the number of headlines
    return {w: math.log((total + 1) / (n + 1)) for w, n in counts.items()}, math.log(total + 1)


def _common_weight(a: Signature, b: Signature) -> float:
    return sum(a.weights[w] for w in a.words & b.words)


def weighted_jaccard(a: Signature, b: Signature) -> float:
    """Jaccard of two headlines' words, each word counted by its weight (0 when either is empty)."""
    common = _common_weight(a, b)
    union = a.weight + b.weight - common
    return common / union if union > 0 else 0.0


def weighted_containment(a: Signature, b: Signature) -> float:
    """The weight two headlines' words share, over the lighter headline's whole weight (0 when either is empty)."""
    lighter = min(a.weight, b.weight)
    return _common_weight(a, b) / lighter if lighter > 0 else 0.0


def jaccard(a: Collection[str], b: Collection[str]) -> float:
    """Exact Jaccard similarity of two sets (0 when either is empty)."""
    if not a or not b:
        return 0.0
    common = len(set(a) & set(b))
    return common / (len(a) + len(b) - common)


def _title_key(text: str) -> str:
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


def _two_raters(a: Signature, b: Signature) -> bool:
    """Both report a rating action, by two different brokers."""
    return bool(a.rater) and bool(b.rater) and a.rater != b.rater


def _disagree(a: frozenset[str], b: frozenset[str]) -> bool:
    """Both known and nothing in common."""
    return bool(a) and bool(b) and a.isdisjoint(b)


def _markers_apart(a: Signature, b: Signature) -> bool:
    """What tells two similar headlines apart whatever else they share: weekdays or months, two brokers, two groups of
    companies, two times of day."""
    return (
        _disagree(a.calendar, b.calendar)
        or _two_raters(a, b)
        or _disagree(a.group, b.group)
        or _disagree(a.clock, b.clock)
    )


class Deduplicator:
    """Sliding-window exact-duplicate and story detector with stable story ids."""

    def __init__(
        self,
        window: timedelta = timedelta(days=3),
        threshold: float = 0.8,
        *,
        num_perm: int = 128,
        title_window: timedelta = timedelta(days=1),
        recent_window: timedelta = timedelta(hours=6),
        recent_threshold: float = 0.65,
        company_threshold: float = 0.5,
        burst_window: timedelta = timedelta(minutes=6),
        live_containment: float = 0.6,
    ) -> None:
        thresholds = (("threshold", threshold), ("recent_threshold", recent_threshold),
                      ("company_threshold", company_threshold), ("live_containment", live_containment))  # fmt: skip
        for name, value in thresholds:
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        if company_threshold > recent_threshold:  # a company in common makes a join easier, never harder
            raise ValueError(f"company_threshold {company_threshold} is above recent_threshold {recent_threshold}")
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window}")
        for name, span in (("recent_window", recent_window), ("burst_window", burst_window)):
            if span < timedelta(0):
                raise ValueError(f"{name} must not be negative, got {span}")
        self.window = window
        self.threshold = threshold
        # Set on the judged pairs' dev half (docs/pipeline.md, "Stories"): the same story is mostly told within
        # hours, and a day later a similar headline is more often the next issue of a recurring one.
        self.recent_window = min(recent_window, window)
        self.recent_threshold = recent_threshold
        # Also set on the dev half: two headlines naming a company in common need less of their words in common
        # (0.5 within the 6 hours joined 3 more same-story pairs and no different one; 0.4 joined different ones).
        self.company_threshold = company_threshold
        # Set on the judged pairs' dev half too: same companies within 6 minutes joined 3 more same-story pairs and no
        # different one (3 minutes: fewer; 15 minutes: two different ones).
        self.burst_window = min(burst_window, window)
        # Set on the dev half too: a live blog and an article of its hours whose words it holds (weighted, over the
        # lighter headline) at 0.6 joined 5 more same-story pairs and no different one; 0.5 joined a different one
        # (two Davos live blogs of one week).
        self.live_containment = live_containment
        self.num_perm = num_perm
        # The same title from the same source is a repeat only within a day: a wire that sends "FHLBB CHANGES
        # SHORT-TERM DISCOUNT NOTE RATES" on Monday and on Wednesday sends two pieces of news.
        self.title_window = min(title_window, window)
        # Weighted towards recall: a missed candidate splits a story, while a false candidate is dropped by the
        # exact Jaccard and the rules in `check`, so it costs only a comparison. Only story-first articles are in it.
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.05, 0.95))
        self._entries: dict[Hashable, _Entry] = {}
        self._firsts: dict[Hashable, _First] = {}
        # Story-first articles of the recent window, by each of their words: candidates for the weighted similarity.
        self._recent = _Recent(self.recent_window)
        # Story-first articles of the burst window, by their linked tickers.
        self._burst = _Recent(self.burst_window)
        self._story_size: Counter[Hashable] = Counter()
        self._by_url: dict[str, Hashable] = {}
        self._by_key: dict[tuple[str, str], Hashable] = {}
        self._latest: datetime | None = None
        self._by_time: list[tuple[datetime, int, Hashable]] = []
        self._seq = 0  # tie-breaker, so the heap never compares item ids of different types
        # The permutations depend only on (num_perm, SEED): drawn once, in an empty MinHash that every signature
        # starts as a copy of (a MinHash built from the permutations checks them again, and costs more than a copy;
        # docs/performance.md, 'Measurements behind code choices').
        self._empty = MinHash(num_perm=num_perm, seed=SEED, hashfunc=xxhash.xxh32_intdigest)

    def __len__(self) -> int:
        return len(self._entries)

    def signature(self, title: str) -> Signature:
        """What `check` compares a headline by (callers with time to spare compute it ahead and pass it in)."""
        normal = unicodedata.normalize("NFKC", title)
        folded = _WORD.findall(normal.casefold())  # once: the words, and the weekdays and months among them
        words = _content(folded)
        # xxh32 as the hash: much faster than datasketch's default sha1 and as uniform for MinHash
        # (docs/performance.md, 'Measurements behind code choices'); signatures are memory only, rebuilt from
        # stored text, so nothing depends on the old.
        mh = copy.copy(self._empty)  # through MinHash's own pickling state
        mh.hashvalues = mh.hashvalues.copy()  # its own array: the empty one must stay empty
        mh.update_batch([word.encode("utf-8") for word in sorted(words)])
        table, unseen = word_weights()
        weights = {w: table.get(w, unseen) for w in words}
        # A headline at weighted similarity >= t to another shares at least one of these words: the others together
        # weigh less than t of its total, and the words in common weigh at least t of it (prefix filtering).
        lowest = min(self.recent_threshold, self.company_threshold)
        rarest: list[str] = []
        left = total = sum(weights.values())
        for word in sorted(words, key=lambda w: (-weights[w], w)):
            if left < lowest * total:
                break
            rarest.append(word)
            left -= weights[word]
        return Signature(
            minhash=mh,
            words=words,
            weights=weights,
            weight=total,
            rarest=tuple(rarest),
            numbers=frozenset(n.replace(",", "") for n in _NUMBER.findall(normal)),
            calendar=frozenset(w for w in folded if w in _CALENDAR),
            opening=next((w for w in folded if w not in _WIRE_WORDS), ""),
            rater=" ".join(m.group(1).casefold().split()) if (m := _RATER.match(normal)) else "",
            activity=_ACTIVITY.search(normal) is not None,
            live=_LIVE.search(normal) is not None,
            group=_content(_WORD.findall(g.group(1).casefold())) if (g := _GROUP.match(normal)) else frozenset(),
            clock=frozenset(_clock_key(m) for m in _CLOCK.finditer(normal)),
            periods=frozenset(_period_key(m) for m in _PERIOD.findall(normal))
            if _RESULTS.search(normal) and not _AHEAD.search(normal)
            else frozenset(),
        )

    def _evict(self, now: datetime) -> None:
        self._recent.evict(now)
        self._burst.evict(now)
        cutoff = now - self.window
        # A heap ordered by time makes eviction O(log n) per item instead of a scan of the whole window.
        while self._by_time and self._by_time[0][0] < cutoff:
            _, _, item_id = heapq.heappop(self._by_time)
            entry = self._entries.pop(item_id)
            if self._firsts.pop(item_id, None) is not None:
                self._lsh.remove(item_id)
            self._story_size[entry.story_id] -= 1
            if self._story_size[entry.story_id] <= 0:
                del self._story_size[entry.story_id]
            if entry.url and self._by_url.get(entry.url) == item_id:
                del self._by_url[entry.url]
            if entry.exact_key and self._by_key.get(entry.exact_key) == item_id:
                del self._by_key[entry.exact_key]

    def exact_duplicate(
        self, source: str, title: str, url: str | None = None, published_at: datetime | None = None
    ) -> Hashable | None:
        """The item in the window that this one would repeat exactly: the same URL, or the same title from the
        source within `title_window` of `published_at` (any time in the window when it is not given)."""
        url = (url or "").strip() or None
        if url and url in self._by_url:
            return self._by_url[url]
        key = _title_key(title)
        return self._same_title((source, key), published_at) if key else None

    def _same_title(self, key: tuple[str, str], published_at: datetime | None) -> Hashable | None:
        earlier = self._by_key.get(key)
        if earlier is None or published_at is None:
            return earlier
        return earlier if abs(published_at - self._entries[earlier].published_at) <= self.title_window else None

    def __contains__(self, item_id: Hashable) -> bool:
        return item_id in self._entries

    def _story_of(self, sig: Signature, tickers: frozenset[str], published_at: datetime) -> Hashable | None:
        """The story-first article this headline is most similar to, if one passes the rules (module docstring)."""
        candidates = set(self._lsh.query(sig.minhash))
        # A live blog's title is long: the article it holds may share none of its rarest words, so all are probed.
        for word in sig.words if sig.live else sig.rarest:
            candidates |= self._recent.get(word)
        for ticker in tickers:  # the same company's news of the recent hours
            candidates |= self._recent.get(_Ticker(ticker))
        scored: list[tuple[float, datetime, str, Hashable]] = []
        for c in candidates:
            first = self._firsts.get(c)
            if first is None:
                continue
            if _disagree(tickers, first.tickers) or _disagree(sig.numbers, first.signature.numbers):
                continue
            if _markers_apart(sig, first.signature):
                continue
            weighted = weighted_jaccard(sig, first.signature)
            recent = abs(published_at - first.published_at) <= self.recent_window
            needed = self.company_threshold if not tickers.isdisjoint(first.tickers) else self.recent_threshold
            live = recent and (sig.live or first.signature.live)
            # One company's results for one period, or one broker's note on it (the same companies: a broker that were
            # linked would be a company in common of its notes on two others), told twice within the hours; never a
            # market-activity note.
            activity = sig.activity or first.signature.activity
            release = recent and not activity and not tickers.isdisjoint(first.tickers)
            results = bool(sig.periods & first.signature.periods)
            note = sig.rater == first.signature.rater != "" and tickers == first.tickers
            release = release and (results or note)
            if (
                (recent and weighted >= needed)
                or jaccard(sig.words, first.signature.words) >= self.threshold
                or (live and weighted_containment(sig, first.signature) >= self.live_containment)
                or release
            ):
                scored.append((-weighted, first.published_at, str(c), c))
        if not scored and tickers and not sig.activity:
            for c in self._burst.get(tickers):
                first = self._firsts.get(c)
                if first is None or abs(published_at - first.published_at) > self.burst_window:
                    continue
                # The same opening word (the company, or the broker that rates it) and some word in common:
                # "Baird Maintains ... AmerisourceBergen" and "Deutsche Bank Maintains ..." are two brokers' notes,
                # "12 Stocks Moving In ..." that a source tagged with one of its tickers is a list, not its news.
                if sig.opening != first.signature.opening or sig.words.isdisjoint(first.signature.words):
                    continue
                if first.signature.activity:
                    continue
                if not _markers_apart(sig, first.signature):  # numbers may differ: one release's figures
                    scored.append((-weighted_jaccard(sig, first.signature), first.published_at, str(c), c))
        # The most similar first article; ties go to the earliest, then id order, for determinism.
        return min(scored)[3] if scored else None

    def check(
        self,
        item_id: Hashable,
        title: str,
        published_at: datetime,
        source: str,
        url: str | None = None,
        *,
        tickers: Iterable[str] = (),
        signature: Signature | None = None,
    ) -> DedupResult:
        """Classify one item and remember it, unless it is already outside the window.

        `published_at` is the original publication time; `tickers` those linked for the item; `signature` (default:
        computed here) `self.signature(title)`.
        """
        if item_id in self._entries:
            raise ValueError(f"item_id {item_id!r} was already checked")
        # Evict by the newest time seen, not this item's, so a late item cannot resurrect evicted stories.
        self._latest = published_at if self._latest is None else max(self._latest, published_at)
        self._evict(self._latest)
        url = (url or "").strip() or None
        key = _title_key(title)
        exact_key = (source, key) if key else None
        tickers = frozenset(tickers)

        duplicate_of = None
        if url and url in self._by_url:
            duplicate_of = self._by_url[url]
        elif exact_key:
            duplicate_of = self._same_title(exact_key, published_at)

        sig = signature if signature is not None else self.signature(title)
        if duplicate_of is not None:
            story_id = self._entries[duplicate_of].story_id
        else:
            found = self._story_of(sig, tickers, published_at)
            story_id = item_id if found is None else found
        similar_before = self._story_size[story_id] if story_id != item_id else 0

        # An item already outside the window (late or historical news) is compared like any other but not
        # remembered: the next check would evict it unseen, so remembering it costs an LSH insert and remove.
        if published_at >= self._latest - self.window:
            self._entries[item_id] = _Entry(item_id, published_at, story_id, url, exact_key)
            self._story_size[story_id] += 1
            if story_id == item_id:
                self._firsts[item_id] = _First(sig, tickers, published_at)
                self._lsh.insert(item_id, sig.minhash, check_duplication=False)  # `check` refused a known id
                if published_at >= self._latest - self.recent_window:
                    self._recent.add(published_at, self._seq, item_id, sig.words | {_Ticker(t) for t in tickers})
                if tickers and published_at >= self._latest - self.burst_window:
                    self._burst.add(published_at, self._seq, item_id, (tickers,))
            heapq.heappush(self._by_time, (published_at, self._seq, item_id))
            self._seq += 1
            if url:
                self._by_url.setdefault(url, item_id)
            if exact_key:
                if duplicate_of is None:  # the newest of a recurring title is the one a repeat is compared with
                    self._by_key[exact_key] = item_id
        return DedupResult(
            is_exact_duplicate=duplicate_of is not None,
            duplicate_of=duplicate_of,
            story_id=story_id,
            is_first_of_story=story_id == item_id,
            similar_before=similar_before,
        )

    def warm(self, items: Iterable[tuple[Any, ...]]) -> int:
        """Replay stored rows (item_id, title, published_at, source, url[, tickers]) in time order; returns the
        window size. Pass the same title and tickers that `check` got, or restored story ids may differ."""
        ordered = sorted(items, key=lambda row: (row[2], str(row[0])))
        for item_id, title, published_at, source, url, *rest in ordered:
            self.check(item_id, title, published_at, source, url, tickers=rest[0] if rest else ())
        return len(self._entries)
