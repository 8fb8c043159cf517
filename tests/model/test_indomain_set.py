"""The in-domain headline set of issue 18 (model/indomain/): complete, well formed, disjoint from the training data,
and exactly what model/indomain/sample.py draws."""

from __future__ import annotations

from collections import Counter

import pytest

from model.indomain import sample

ROWS = sample.read()
needs_data = pytest.mark.skipif(not (sample.DATA / "news_stream").is_dir(), reason="../shared/data is not here")


def test_the_file_has_640_rows_with_the_documented_columns():
    with sample.OUTPUT.open(encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    assert header == sample.COLUMNS
    assert len(ROWS) == 640


def test_every_row_is_labelled_with_the_guide_values():
    assert {row["label"] for row in ROWS} <= set(sample.LABELS)
    assert {row["confidence"] for row in ROWS} <= {"sure", "unsure"}
    assert {row["about_markets"] for row in ROWS} <= {"yes", "no"}
    assert all(row["text"].strip() for row in ROWS)


def test_each_source_is_split_half_val_half_test():
    counts = Counter((row["source"], row["split"]) for row in ROWS)
    expected = {(name, split): 80 for name, _, _ in sample.SOURCES for split in ("val", "test")}
    assert dict(counts) == expected


def test_ids_are_unique_and_name_their_source():
    ids = [row["id"] for row in ROWS]
    assert len(set(ids)) == len(ids)
    assert all(row["id"].startswith(row["source"] + "-") for row in ROWS)


def test_no_text_repeats_another_row():
    keys = Counter(sample.normalise(row["text"]) for row in ROWS)
    assert [key for key, n in keys.items() if n > 1] == []


@needs_data
def test_no_text_is_in_the_labelled_training_data():
    training = sample.training_texts()
    assert len(training) > 10_000  # PhraseBank, TFNS and FiQA were all read
    assert [row["id"] for row in ROWS if sample.normalise(row["text"]) in training] == []


@needs_data
def test_a_fresh_draw_gives_the_same_ids_splits_and_texts():
    fresh = [(row.id, row.source, row.split, row.text) for row in sample.draw()]
    stored = [(row["id"], row["source"], row["split"], row["text"]) for row in ROWS]
    assert fresh == stored


def test_the_normaliser_ignores_case_whitespace_and_urls():
    assert sample.normalise("  Acme  WINS order https://t.co/x ") == sample.normalise("acme wins\torder")
