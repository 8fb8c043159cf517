"""Duplicate and story detection: exact duplicates by URL or (source, title key), near-duplicates by MinHash LSH.

Near-duplicates are found across sources within a sliding time window; each group of similar items is a story
whose id is the id of its first item. The state is memory only and can be rebuilt with `warm(...)` from stored
rows, so a restarted worker assigns the same stories.
"""

from __future__ import annotations

import copy
import heapq
import re
import unicodedata
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import xxhash
from datasketch import MinHash, MinHashLSH

SEED = 1  # fixed so signatures, and therefore story assignment, are the same in every process
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class DedupResult:
    """What the deduplicator decided about one item."""

    is_exact_duplicate: bool
    duplicate_of: Hashable | None  # the earlier item this one repeats exactly
    story_id: Hashable  # id of the first item of this item's story (its own id when it starts one)
    is_first_of_story: bool
    similar_before: int  # how many similar items in the window preceded it (novelty: 0 is new)


@dataclass(slots=True)
class _Entry:
    item_id: Hashable
    published_at: datetime
    story_id: Hashable
    url: str | None
    exact_key: tuple[str, str] | None


def shingles(text: str, size: int = 3) -> set[str]:
    """Word n-gram shingles of casefolded text; texts shorter than `size` words give one shingle of all words."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    if len(words) < size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def _title_key(text: str) -> str:
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


class Deduplicator:
    """Sliding-window exact and near-duplicate detector with stable story ids."""

    def __init__(
        self,
        window: timedelta = timedelta(days=3),
        threshold: float = 0.65,
        *,
        num_perm: int = 128,
        shingle_size: int = 3,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window}")
        self.window = window
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        # Weighted towards recall: a missed candidate splits a story, while a false candidate is dropped by the
        # Jaccard check in `check`, so it costs only a comparison.
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.05, 0.95))
        self._entries: dict[Hashable, _Entry] = {}
        self._hashes: dict[Hashable, MinHash] = {}
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

    def signature(self, text: str) -> MinHash:
        """The MinHash `check` compares `text` by (callers with time to spare compute it ahead and pass it in)."""
        # xxh32 as the shingle hash: much faster than datasketch's default sha1 and as uniform for MinHash
        # (docs/performance.md, 'Measurements behind code choices'); signatures are memory only, rebuilt from
        # stored text, so nothing depends on the old.
        mh = copy.copy(self._empty)  # through MinHash's own pickling state
        mh.hashvalues = mh.hashvalues.copy()  # its own array: the empty one must stay empty
        mh.update_batch([shingle.encode("utf-8") for shingle in sorted(shingles(text, self.shingle_size))])
        return mh

    def _evict(self, now: datetime) -> None:
        cutoff = now - self.window
        # A heap ordered by time makes eviction O(log n) per item instead of a scan of the whole window.
        while self._by_time and self._by_time[0][0] < cutoff:
            _, _, item_id = heapq.heappop(self._by_time)
            entry = self._entries.pop(item_id)
            self._lsh.remove(item_id)
            self._hashes.pop(item_id, None)
            if entry.url and self._by_url.get(entry.url) == item_id:
                del self._by_url[entry.url]
            if entry.exact_key and self._by_key.get(entry.exact_key) == item_id:
                del self._by_key[entry.exact_key]

    def exact_duplicate(self, source: str, title: str, url: str | None = None) -> Hashable | None:
        """The item in the window that this one would repeat exactly (same URL, or same title from the source)."""
        url = (url or "").strip() or None
        if url and url in self._by_url:
            return self._by_url[url]
        key = _title_key(title)
        return self._by_key.get((source, key)) if key else None

    def __contains__(self, item_id: Hashable) -> bool:
        return item_id in self._entries

    def check(
        self,
        item_id: Hashable,
        text: str,
        published_at: datetime,
        source: str,
        url: str | None = None,
        *,
        title: str | None = None,
        signature: MinHash | None = None,
    ) -> DedupResult:
        """Classify one item and remember it, unless it is already outside the window.

        `text` is the headline plus lead, `title` (default: text) the headline, `signature` (default: computed
        here) `self.signature(text)`.
        """
        if item_id in self._entries:
            raise ValueError(f"item_id {item_id!r} was already checked")
        # Evict by the newest time seen, not this item's, so a late item cannot resurrect evicted stories.
        self._latest = published_at if self._latest is None else max(self._latest, published_at)
        self._evict(self._latest)
        url = (url or "").strip() or None
        key = _title_key(title if title is not None else text)
        exact_key = (source, key) if key else None

        duplicate_of = None
        if url and url in self._by_url:
            duplicate_of = self._by_url[url]
        elif exact_key and exact_key in self._by_key:
            duplicate_of = self._by_key[exact_key]

        mh = signature if signature is not None else self.signature(text)
        # Candidates from LSH are confirmed with the estimated Jaccard, so the threshold means what it says.
        similar = [c for c in self._lsh.query(mh) if self._hashes[c].jaccard(mh) >= self.threshold]
        if duplicate_of is not None and duplicate_of not in similar:
            similar.append(duplicate_of)
        if similar:
            # The story is the one its earliest similar item belongs to; ties break on id order for determinism.
            first = min(similar, key=lambda c: (self._entries[c].published_at, str(c)))
            story_id = self._entries[first].story_id
        else:
            story_id = item_id

        # An item already outside the window (late or historical news) is compared like any other but not
        # remembered: the next check would evict it unseen, so remembering it costs an LSH insert and remove.
        if published_at >= self._latest - self.window:
            self._remember(item_id, published_at, story_id, url, exact_key, mh)
        return DedupResult(
            is_exact_duplicate=duplicate_of is not None,
            duplicate_of=duplicate_of,
            story_id=story_id,
            is_first_of_story=story_id == item_id,
            similar_before=len(similar),
        )

    def _remember(
        self,
        item_id: Hashable,
        published_at: datetime,
        story_id: Hashable,
        url: str | None,
        exact_key: tuple[str, str] | None,
        mh: MinHash,
    ) -> None:
        self._entries[item_id] = _Entry(item_id, published_at, story_id, url, exact_key)
        self._hashes[item_id] = mh
        self._lsh.insert(item_id, mh, check_duplication=False)  # `check` refused a known id already
        heapq.heappush(self._by_time, (published_at, self._seq, item_id))
        self._seq += 1
        if url:
            self._by_url.setdefault(url, item_id)
        if exact_key:
            self._by_key.setdefault(exact_key, item_id)

    def warm(self, items: Iterable[tuple[Any, ...]]) -> int:
        """Replay stored rows (item_id, text, published_at, source, url[, title]) in time order; returns window size.

        Pass the same text (and title) that `check` got, or restored story ids may differ.
        """
        ordered = sorted(items, key=lambda row: (row[2], str(row[0])))
        for item_id, text, published_at, source, url, *rest in ordered:
            self.check(item_id, text, published_at, source, url, title=rest[0] if rest else None)
        return len(self._entries)
