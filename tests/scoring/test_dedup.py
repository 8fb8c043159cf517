"""Deduplication: exact duplicates, near-duplicate stories across sources, window eviction, warm restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scoring.dedup import Deduplicator, shingles

T0 = datetime(2024, 6, 3, 9, tzinfo=UTC)
A = "Apple shares jump after the iPhone maker reports record quarterly revenue and raises its dividend"
A2 = "Apple shares jump after the iPhone maker reports record quarterly revenue and raises dividend again"
B = "Oil prices slide as OPEC ministers fail to agree on production cuts at their Vienna meeting"


def test_first_item_starts_a_story():
    r = Deduplicator().check(1, A, T0, "reuters")
    assert (r.is_exact_duplicate, r.duplicate_of, r.story_id, r.is_first_of_story, r.similar_before) == (
        False,
        None,
        1,
        True,
        0,
    )


def test_same_url_is_exact_duplicate():
    d = Deduplicator()
    d.check(1, A, T0, "reuters", "https://x/1")
    r = d.check(2, B, T0 + timedelta(minutes=1), "cnbc", "https://x/1")
    assert r.is_exact_duplicate and r.duplicate_of == 1 and r.story_id == 1


def test_same_title_same_source_is_exact_but_not_across_sources():
    d = Deduplicator()
    d.check(1, "Apple beats estimates", T0, "reuters")
    r = d.check(2, "APPLE beats, estimates!", T0 + timedelta(hours=1), "reuters")
    assert r.is_exact_duplicate and r.duplicate_of == 1
    other = d.check(3, "Apple beats estimates", T0 + timedelta(hours=2), "cnbc")
    assert not other.is_exact_duplicate and other.story_id == 1 and other.similar_before == 2


def test_near_duplicate_across_sources_joins_story_and_counts_predecessors():
    d = Deduplicator()
    d.check("r1", A, T0, "reuters")
    r2 = d.check("c1", A2, T0 + timedelta(hours=1), "cnbc")
    r3 = d.check("b1", B, T0 + timedelta(hours=2), "bbc")
    assert (r2.story_id, r2.is_first_of_story, r2.similar_before, r2.is_exact_duplicate) == ("r1", False, 1, False)
    assert (r3.story_id, r3.is_first_of_story, r3.similar_before) == ("b1", True, 0)


def test_window_evicts_old_items():
    d = Deduplicator(window=timedelta(days=3))
    d.check(1, A, T0, "reuters", "https://x/1")
    r = d.check(2, A, T0 + timedelta(days=4), "reuters", "https://x/1")
    assert not r.is_exact_duplicate and r.is_first_of_story and len(d) == 1


def test_threshold_is_configurable():
    loose, strict = Deduplicator(threshold=0.3), Deduplicator(threshold=0.95)
    text_b = "Apple shares jump after the iPhone maker reports strong quarterly sales in China"
    for d in (loose, strict):
        d.check(1, A, T0, "a")
    assert loose.check(2, text_b, T0, "b").story_id == 1
    assert strict.check(2, text_b, T0, "b").story_id == 2


def test_deterministic_and_warm_rebuilds_same_stories():
    rows = [(i, text, T0 + timedelta(minutes=i), src, None) for i, (text, src) in enumerate([(A, "a"), (B, "b")])]
    fresh = Deduplicator()
    fresh.warm(reversed(rows))  # stored rows come back in any order
    restarted = Deduplicator()
    restarted.warm(rows)
    later = T0 + timedelta(hours=1)
    assert fresh.check(10, A2, later, "c") == restarted.check(10, A2, later, "c")
    assert restarted.check(11, B + " today", later, "d").story_id == 1


def test_repeated_item_id_and_bad_settings_rejected():
    d = Deduplicator()
    d.check(1, A, T0, "a")
    with pytest.raises(ValueError):
        d.check(1, A, T0, "a")
    with pytest.raises(ValueError):
        Deduplicator(threshold=1.5)
    with pytest.raises(ValueError):
        Deduplicator(window=timedelta(0))


def test_shingles_short_and_empty_text():
    assert shingles("") == set()
    assert shingles("Apple up") == {"apple up"}
    assert shingles("a b c d") == {"a b c", "b c d"}


def test_warm_with_titles_restores_exact_duplicate_detection():
    d = Deduplicator()
    d.warm([("a", "Apple beats estimates. Shares rise in late trading", T0, "reuters", None, "Apple beats estimates")])
    lead = "Apple beats estimates. A different lead entirely here"
    r = d.check("b", lead, T0, "reuters", title="APPLE beats estimates")
    assert r.is_exact_duplicate and r.duplicate_of == "a"


def test_item_already_outside_the_window_is_classified_but_not_remembered():
    d = Deduplicator(timedelta(days=3))
    d.check(1, A, T0, "reuters")
    late = d.check(2, A2, T0 - timedelta(days=5), "cnbc")  # historical: older than the window before the newest
    assert (late.story_id, late.similar_before) == (1, 1)  # compared with the window like any item
    assert 2 not in d and len(d) == 1  # but not kept: the next check would evict it
    other = d.check(4, B, T0 - timedelta(days=4), "cnbc")
    assert (other.story_id, other.is_first_of_story, 4 in d) == (4, True, False)
    near = d.check(3, A2, T0 - timedelta(days=2), "cnbc")  # inside the window: joins item 1's story
    assert (near.story_id, near.similar_before, 3 in d) == (1, 1, True)


def test_signature_is_the_minhash_of_the_shingles_and_shares_no_state():
    """A signature starts as a copy of one empty MinHash: the same values as a MinHash built afresh, and filling one
    leaves the empty one and every other signature untouched."""
    import xxhash
    from datasketch import MinHash

    from scoring.dedup import SEED

    d = Deduplicator()
    texts = ["Nokia shares plunge after a profit warning", "Apple wins a 5G patent case in Texas", "Short"]
    for text in texts:
        fresh = MinHash(num_perm=d.num_perm, seed=SEED, hashfunc=xxhash.xxh32_intdigest)
        fresh.update_batch([s.encode("utf-8") for s in sorted(shingles(text))])
        assert (d.signature(text).hashvalues == fresh.hashvalues).all()
    first, second = d.signature(texts[0]), d.signature(texts[1])
    assert first.hashvalues is not second.hashvalues and first.jaccard(second) < 0.2
    assert (d.signature(texts[0]).hashvalues == first.hashvalues).all()  # nothing carried over from earlier ones
    empty = MinHash(num_perm=d.num_perm, seed=SEED, hashfunc=xxhash.xxh32_intdigest)
    assert (d._empty.hashvalues == empty.hashvalues).all()
