"""The Scorer's array host path (model/tokens.py) gives what the per-item path gave: held to results recorded before
it changed (fixtures/scorer_reference.json, made by fixtures/make_scorer_reference.py at commit 8032aa0)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from model.scorer import ScoreBatch, Scorer
from model.tokens import Words, merge_words, text_is_punct

REFERENCE = Path(__file__).parent / "fixtures" / "scorer_reference.json"


@pytest.fixture(scope="module")
def reference(checkpoint):
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    if data["model_version"] != checkpoint.name:
        pytest.skip(f"reference made with {data['model_version']}, shipped model is {checkpoint.name}: remake it")
    return data["items"]


def assert_like_reference(reference: list[dict], results) -> None:
    for ref, r in zip(reference, results, strict=True):
        where = repr(ref["text"][:50])
        assert r.label == ref["label"], where
        for k, p in ref["probabilities"].items():
            assert r.probabilities[k] == pytest.approx(p, abs=1e-5), where
        assert (r.n_chunks, r.n_tokens) == (ref["n_chunks"], ref["n_tokens"]), where
        assert [(a.word, a.start, a.end) for a in r.attributions] == [(w, s, e) for w, _, s, e in ref["words"]], where
        assert [a.rank for a in r.attributions] == list(range(1, len(ref["words"]) + 1))
        for a, (_, weight, _, _) in zip(r.attributions, ref["words"], strict=True):
            assert a.weight == pytest.approx(weight, abs=1e-6), where


@pytest.mark.parametrize("batch_size", [7, 256])
def test_per_item_results_are_todays(scorer_fp32, reference, batch_size):
    texts = [r["text"] for r in reference]
    assert_like_reference(reference, scorer_fp32.score(texts, batch_size=batch_size, top_k=5))


def test_columns_hold_exactly_the_per_item_results(scorer_fp32, reference):
    texts = [r["text"] for r in reference]
    batch = scorer_fp32.score_batch(texts, batch_size=32, top_k=5)
    per_item = scorer_fp32.score(texts, batch_size=32, top_k=5)
    assert batch.results() == per_item
    assert batch.labels == [r.label for r in per_item]
    assert batch.scores.tolist() == [r.score for r in per_item]
    assert batch.confidence.tolist() == [r.confidence for r in per_item]
    rows = batch.word_rows()
    assert rows == [
        (i, a.rank, a.word, a.weight, a.start, a.end) for i, r in enumerate(per_item) for a in r.attributions
    ]


def test_reference_covers_what_the_words_must_survive(scorer_fp32, reference):
    """Chunked long texts, accents, cashtags, and top words made of several word-pieces are all in the reference."""
    assert sum(r["n_chunks"] > 1 for r in reference) >= 3
    assert any("$" in w for r in reference for w, *_ in r["words"])
    assert any(any(ord(c) > 127 for c in w) for r in reference for w, *_ in r["words"])
    pieces = 0
    for r in reference:
        enc = scorer_fp32.tokenizer(r["text"], add_special_tokens=False, return_offsets_mapping=True)
        for _, _, s, e in r["words"]:
            pieces = max(pieces, sum(s <= a and b <= e for a, b in enc["offset_mapping"]))
    assert pieces >= 3


def test_without_words_and_with_one_tokenizer_thread_the_results_agree(checkpoint, reference):
    texts = [r["text"] for r in reference] * 5  # more than one tokenizer part
    one = Scorer(checkpoint, device="cpu", precision="fp32", tokenizer_threads=1)
    two = Scorer(checkpoint, device="cpu", precision="fp32", tokenizer_threads=2)
    a, b = one.score_batch(texts, top_k=5), two.score_batch(texts, top_k=5)
    assert a.results() == b.results()
    bare = two.score_batch(texts, top_k=0)
    assert len(bare.words.doc) == 0 and np.array_equal(bare.probabilities, b.probabilities)


def test_the_vocabulary_says_which_pieces_are_punctuation_as_the_text_does(scorer_fp32, reference, shared_data):
    """The host path reads "no letter or digit" from a table over the vocabulary (an unknown piece from its text):
    on every piece of the reference and 3,000 real headlines it agrees with reading the text itself."""
    texts = [r["text"] for r in reference]
    for path in sorted((shared_data / "news_stream").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            texts += [row["headline"] for _, row in zip(range(1000), csv.DictReader(fh), strict=False)]
    tokens = scorer_fp32._tokens(texts)
    doc = tokens.doc
    from_text = [
        text_is_punct(texts[d], s, e)
        for d, s, e in zip(doc.tolist(), tokens.starts.tolist(), tokens.ends.tolist(), strict=True)
    ]
    from_table = scorer_fp32.punct[tokens.ids]
    unknown = tokens.ids == scorer_fp32.tokenizer.unk_token_id
    assert unknown.any()  # emoji and other characters outside the vocabulary are in the set
    assert (from_table[~unknown] == np.asarray(from_text)[~unknown]).all()


def merged(pieces: list[tuple[int, int, int]], text: str | list[str]) -> list[tuple[int, str, float]]:
    """Pieces (doc, start, end) of `text` (one per doc) with weight 1 each: [(doc, word, weight)]."""
    texts = [text] if isinstance(text, str) else text
    doc = np.asarray([d for d, _, _ in pieces])
    starts = np.asarray([s for _, s, _ in pieces])
    ends = np.asarray([e for _, _, e in pieces])
    punct = np.asarray([text_is_punct(texts[d], s, e) for d, s, e in pieces])
    sign = np.asarray([texts[d][s:e] in ("$", "#") for d, s, e in pieces])
    w = merge_words(doc, starts, ends, np.ones(len(pieces)), punct, sign)
    return [
        (d, texts[d][s:e], x)
        for d, s, e, x in zip(w.doc.tolist(), w.start.tolist(), w.end.tolist(), w.weight.tolist(), strict=True)
    ]


def test_edge_punctuation_is_trimmed_and_signs_kept_before_a_word():
    text = "($$AAPL) 5.5% ... #"
    pieces = [(0, 0, 1), (0, 1, 2), (0, 2, 3), (0, 3, 7), (0, 7, 8), (0, 9, 10), (0, 10, 11), (0, 11, 12)]
    pieces += [(0, 12, 13), (0, 14, 17), (0, 18, 19)]
    assert merged(pieces, text) == [(0, "$AAPL", 2.0), (0, "5.5", 3.0)]


def test_pieces_of_two_texts_never_make_one_word():
    # the first text's last piece ends where the second text's first piece starts: still two words
    assert merged([(0, 0, 1), (1, 1, 2)], ["ab", "ab"]) == [(0, "a", 1.0), (1, "b", 1.0)]


def test_empty_pieces_are_skipped_without_breaking_a_word():
    assert merged([(0, 0, 2), (0, 2, 2), (0, 2, 4)], "abcd") == [(0, "abcd", 2.0)]


def test_top_words_rank_by_weight_then_position_and_leave_out_unpooled_words():
    words = Words(
        doc=np.asarray([0, 0, 0, 0, 1, 1]),
        start=np.asarray([0, 5, 9, 14, 0, 4]),
        end=np.asarray([4, 8, 13, 20, 3, 8]),
        weight=np.asarray([0.2, 0.5, 0.2, 0.0, 0.0, 0.7]),
    )
    top = words.top(2)
    assert top.doc.tolist() == [0, 0, 1] and top.start.tolist() == [5, 0, 4] and top.rank.tolist() == [1, 2, 1]


def test_batches_concatenate_in_order(scorer_fp32):
    a = scorer_fp32.score_batch(["Nokia shares fall after profit warning", "Apple sales rise"], top_k=3)
    b = scorer_fp32.score_batch(["Tesla recalls cars"], top_k=3)
    both = ScoreBatch.concat([a, b])
    assert both.results() == a.results() + b.results()
    assert len(ScoreBatch.concat([])) == 0 and ScoreBatch.concat([]).word_rows() == []
