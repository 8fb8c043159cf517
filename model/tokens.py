"""The Scorer's host side as arrays: tokenisation across threads, chunk plans, padded batches, words.

The host must not wait on Python per item (the text-embeddings-inference way): texts are tokenised by the `tokenizers`
library's native code on several threads at once (it releases the GIL), every word-piece of every text of a call
lives in one flat NumPy array, batches are filled by index arithmetic, and word-pieces are merged into words and
ranked with array operations. The only per-item Python left is cutting the top-k words' strings out of their texts.

Shapes: N texts, T word-pieces in all (text after text), C chunks (one per text unless a text is longer than a
window), W words.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from tokenizers import Tokenizer

# Texts per tokenizer call when a call is spread over threads: small enough that the threads take turns converting
# their results to arrays (under the GIL) while the others tokenise (without it), large enough to amortise a call.
ENCODE_PART = 256
# Cashtags and hashtags: a "$" or "#" piece right before a word stays part of it ("$AAPL", "#earnings").
WORD_SIGNS = ("$", "#")


def host_threads() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="finsent-tokenize")


@dataclass
class Tokens:
    """Every content word-piece of every text of a call (no [CLS]/[SEP]), text after text."""

    ids: np.ndarray  # (T,) int64 vocabulary ids
    starts: np.ndarray  # (T,) int64 character offsets into the text: [start, end)
    ends: np.ndarray  # (T,)
    lengths: np.ndarray  # (N,) int64 word-pieces per text
    first: np.ndarray  # (N,) int64 index of each text's first piece in `ids`

    @property
    def doc(self) -> np.ndarray:
        """(T,) the text each piece belongs to."""
        return np.repeat(np.arange(len(self.lengths)), self.lengths)

    @classmethod
    def concat(cls, parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Tokens:
        ids = np.concatenate([p[0] for p in parts])
        offsets = np.concatenate([p[1] for p in parts])
        lengths = np.concatenate([p[2] for p in parts])
        first = np.zeros(len(lengths), np.int64)
        np.cumsum(lengths[:-1], out=first[1:])
        return cls(ids, offsets[:, 0].copy(), offsets[:, 1].copy(), lengths, first)


def ranges(firsts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[first, first + length) for every pair, one after the other: the indices of many slices at once."""
    within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(firsts, lengths) + within


def _encode_part(tokenizer: Tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)  # native code, GIL released
    lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
    total = int(lengths.sum())
    ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=total)
    offsets = np.fromiter((x for e in encodings for pair in e.offsets for x in pair), dtype=np.int64, count=2 * total)
    return ids, offsets.reshape(total, 2), lengths


def encode(tokenizer: Tokenizer, texts: list[str], threads: int = 1) -> Tokens:
    """Tokenise `texts` (character offsets into each text) on up to `threads` threads."""
    if threads <= 1 or len(texts) <= ENCODE_PART:
        return Tokens.concat([_encode_part(tokenizer, texts)])
    parts = [texts[i : i + ENCODE_PART] for i in range(0, len(texts), ENCODE_PART)]
    return Tokens.concat(list(_pool(threads).map(lambda p: _encode_part(tokenizer, p), parts)))


@dataclass
class Chunks:
    """Windows of word-pieces the network runs on: a text of at most `window` pieces is one chunk; a longer one is
    cut into overlapping chunks of `window` pieces that advance by `window - overlap`."""

    doc: np.ndarray  # (C,) the text of each chunk, chunks in text order
    first: np.ndarray  # (C,) index of the chunk's first piece in Tokens.ids
    length: np.ndarray  # (C,) its pieces
    share: np.ndarray  # (C,) float32 its pieces / its text's pieces in all its chunks (1 for a one-chunk text)
    per_doc: np.ndarray  # (N,) chunks per text
    slot: np.ndarray  # (C,) where the chunk's pieces start when every chunk's pieces are laid out in chunk order

    @property
    def single(self) -> np.ndarray:
        """(C,) bool: the chunk is its text's only one."""
        return self.per_doc[self.doc] == 1


def plan_chunks(tokens: Tokens, window: int, overlap: int) -> Chunks:
    lengths = tokens.lengths
    step = window - overlap
    per_doc = np.where(lengths <= window, 1, 1 + -(-(lengths - window) // step))
    doc = np.repeat(np.arange(len(lengths)), per_doc)
    start = ranges(np.zeros(len(lengths), np.int64), per_doc) * step  # chunk number within its text x step
    length = np.minimum(start + window, lengths[doc]) - start
    share = np.ones(len(doc), np.float32)
    long = per_doc[doc] > 1
    if long.any():  # as the per-item path computed it: float32 sizes over their float32 sum
        sizes = length.astype(np.float32)
        totals = np.zeros(len(lengths), np.float32)
        np.add.at(totals, doc[long], sizes[long])
        share[long] = sizes[long] / totals[doc[long]]
    return Chunks(doc, tokens.first[doc] + start, length, share, per_doc, np.cumsum(length) - length)


def spans(widths: np.ndarray | Sequence[int], batch_size: int, budget: int) -> Iterator[tuple[int, int]]:
    """[start, end) spans of rows sorted by padded width: one width per span, at most `batch_size` rows and `budget`
    padded tokens each (a row wider than the budget runs alone)."""
    widths = np.asarray(widths)
    n = len(widths)
    run_ends = np.searchsorted(widths, widths, side="right")  # where each row's width run ends
    start = 0
    while start < n:
        w = int(widths[start])
        end = min(start + batch_size, int(run_ends[start]), start + max(1, budget // w))
        yield start, end
        start = end


@dataclass
class Batch:
    """One padded model batch: rows are chunks of one width."""

    rows: np.ndarray  # (B,) chunk indices
    ids: np.ndarray  # (B, width) int64, [CLS] pieces [SEP] then padding
    attention: np.ndarray  # (B, width) int64, 1 on [CLS], pieces and [SEP]
    dst: np.ndarray  # (P,) where each content piece sits, row after row, as a flat index into a (B, width) array


def fill_batch(
    tokens: Tokens, chunks: Chunks, rows: np.ndarray, width: int, cls_id: int, sep_id: int, pad_id: int
) -> Batch:
    lengths = chunks.length[rows]
    dst = ranges(np.arange(len(rows)) * width + 1, lengths)  # after each row's [CLS]
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    ids.reshape(-1)[dst] = tokens.ids[ranges(chunks.first[rows], lengths)]
    ids[:, 0] = cls_id
    ids[np.arange(len(rows)), lengths + 1] = sep_id
    attention = (np.arange(width)[None, :] < (lengths + 2)[:, None]).astype(np.int64)
    return Batch(rows, ids, attention, dst)


@dataclass
class Words:
    """Words of texts (word-pieces whose character spans touch, punctuation trimmed from their edges)."""

    doc: np.ndarray  # (W,) the text of each word, words in text order (or ranked: see `top`)
    start: np.ndarray  # (W,) character offsets [start, end)
    end: np.ndarray
    weight: np.ndarray  # (W,) float64: the sum of its pieces' weights
    rank: np.ndarray | None = None  # (W,) 1-based rank within its text, after `top`

    @classmethod
    def empty(cls) -> Words:
        none = np.zeros(0, np.int64)
        return cls(none, none, none, np.zeros(0, np.float64), none)

    def top(self, k: int) -> Words:
        """Each text's k heaviest words (ties: the earlier word first), words of weight 0 left out: the head did not
        pool them, so the decision did not use them."""
        used = self.weight > 0
        doc, start, end, weight = self.doc[used], self.start[used], self.end[used], self.weight[used]
        order = np.lexsort((-weight, doc))  # stable: equal weights keep text order, so the earlier word first
        doc, start, end, weight = doc[order], start[order], end[order], weight[order]
        first_of_doc = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]]) if len(doc) else np.zeros(0, np.int64)
        counts = np.diff(np.r_[first_of_doc, len(doc)])
        rank = np.arange(len(doc)) - np.repeat(first_of_doc, counts) + 1
        keep = rank <= k
        return Words(doc[keep], start[keep], end[keep], weight[keep], rank[keep])


def merge_words(
    doc: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    weights: np.ndarray,
    punct: np.ndarray,
    sign: np.ndarray,
) -> Words:
    """Merge word-pieces into words, all texts at once; pieces given in text order.

    Pieces whose character spans touch form one word ("$AAPL", "5.5", "Nokia's"), except that punctuation at a word's
    edges is split off (a trailing "," or a bracket), keeping a leading "$" or "#" (`sign`) right before a piece that
    is not punctuation. A word's weight is the sum of its kept pieces' weights; a group of punctuation only is no word.
    `punct`: the piece's text holds no letter or digit.
    """
    real = ends > starts  # a piece with no characters joins nothing
    doc, starts, ends, weights, punct, sign = (a[real] for a in (doc, starts, ends, weights, punct, sign))
    n = len(doc)
    if n == 0:
        return Words.empty()
    new_group = np.ones(n, bool)
    new_group[1:] = (doc[1:] != doc[:-1]) | (starts[1:] != ends[:-1])
    group = np.cumsum(new_group) - 1
    group_first = np.flatnonzero(new_group)
    group_last = np.r_[group_first[1:], n] - 1
    same_group_next = np.zeros(n, bool)
    same_group_next[:-1] = ~new_group[1:]
    next_punct = np.ones(n, bool)
    next_punct[:-1] = punct[1:]
    # A word starts at its group's first anchor (a piece that is not punctuation, or a sign before one) and ends at
    # the group's last piece that is not punctuation.
    anchor = ~punct | (sign & same_group_next & ~next_punct)
    position = np.arange(n)
    last_anchor_so_far = np.maximum.accumulate(np.where(anchor, position, -1))
    solid = np.where(~punct, position, n)
    next_solid = np.minimum.accumulate(solid[::-1])[::-1]
    kept = (last_anchor_so_far >= group_first[group]) & (next_solid <= group_last[group])
    kept_at = np.flatnonzero(kept)
    if len(kept_at) == 0:
        return Words.empty()
    kept_group = group[kept_at]
    word_first = np.flatnonzero(np.r_[True, kept_group[1:] != kept_group[:-1]])
    word_of = np.cumsum(np.r_[True, kept_group[1:] != kept_group[:-1]]) - 1
    word_last = np.r_[word_first[1:], len(kept_at)] - 1
    # summed in piece order in float64, as the per-item path's sum() did on Python 3.11 (3.12's sum() compensates,
    # which can differ in the last bit for pieces of very different weights)
    weight = np.bincount(word_of, weights=weights[kept_at].astype(np.float64), minlength=len(word_first))
    return Words(
        doc[kept_at[word_first]], starts[kept_at[word_first]], ends[kept_at[word_last]], weight.astype(np.float64)
    )


def punct_table(vocab: dict[str, int], size: int) -> np.ndarray:
    """(V,) bool per vocabulary id: the piece holds no letter or digit (a continuation's "##" not counted)."""
    table = np.zeros(size, bool)
    for token, i in vocab.items():
        table[i] = not any(ch.isalnum() for ch in token.removeprefix("##"))
    return table


def text_is_punct(text: str, start: int, end: int) -> bool:
    return not any(ch.isalnum() for ch in text[start:end])
