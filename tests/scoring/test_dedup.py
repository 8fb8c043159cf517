"""Deduplication: exact duplicates, stories across sources (headline similarity to the story's first article,
companies and markers that must agree), window eviction, warm restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.db import make_session_factory
from core.messages import Envelope
from core.schema import Article
from scoring.dedup import (
    Deduplicator,
    headline_words,
    jaccard,
    weighted_containment,
    weighted_jaccard,
    word_weights,
)
from scoring.pipeline import Pipeline

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


def test_headline_words_leave_out_function_words_and_fold_case():
    assert headline_words("") == set()
    assert headline_words("Apple Is Up On The Day") == {"apple", "day"}
    assert headline_words("ＡＰＰＬＥ shares") == {"apple", "shares"}  # NFKC: full-width letters are letters


def test_warm_restores_exact_duplicate_detection():
    d = Deduplicator()
    d.warm([("a", "Apple beats estimates", T0, "reuters", None)])
    r = d.check("b", "APPLE beats estimates", T0, "reuters")
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


def test_signature_is_the_minhash_of_the_headline_words_and_shares_no_state():
    """A signature's MinHash starts as a copy of one empty MinHash: the same values as a MinHash built afresh, and
    filling one leaves the empty one and every other signature untouched."""
    import xxhash
    from datasketch import MinHash

    from scoring.dedup import SEED

    d = Deduplicator()
    texts = ["Nokia shares plunge after a profit warning", "Apple wins a 5G patent case in Texas", "Short"]
    for text in texts:
        fresh = MinHash(num_perm=d.num_perm, seed=SEED, hashfunc=xxhash.xxh32_intdigest)
        fresh.update_batch([w.encode("utf-8") for w in sorted(headline_words(text))])
        assert (d.signature(text).minhash.hashvalues == fresh.hashvalues).all()
    first, second = d.signature(texts[0]).minhash, d.signature(texts[1]).minhash
    assert first.hashvalues is not second.hashvalues and first.jaccard(second) < 0.2
    assert (d.signature(texts[0]).minhash.hashvalues == first.hashvalues).all()  # nothing carried over
    empty = MinHash(num_perm=d.num_perm, seed=SEED, hashfunc=xxhash.xxh32_intdigest)
    assert (d._empty.hashvalues == empty.hashvalues).all()


# ----------------------------------------------------------------------------------------------- story rules

TEMPLATE = "{} shares are trading higher after the company reported better-than-expected Q4 EPS and sales results"


def test_templated_headlines_about_different_companies_are_different_stories():
    """The words of two templated headlines agree; the companies linked to them do not."""
    d = Deduplicator()
    d.check("aaon", TEMPLATE.format("AAON"), T0, "benzinga", tickers=["AAON"])
    other = d.check("abm", TEMPLATE.format("ABM"), T0 + timedelta(hours=1), "benzinga", tickers=["ABM"])
    assert other.is_first_of_story
    # Sharing a ticker, or one side without any (the linker found no company): the words decide.
    shared = d.check("both", TEMPLATE.format("AAON"), T0 + timedelta(hours=2), "wire", tickers=["AAON", "ABM"])
    unknown = d.check("none", TEMPLATE.format("The") + " today", T0 + timedelta(hours=3), "paper")
    assert shared.story_id == unknown.story_id == "aaon"


def test_weekdays_months_and_numbers_keep_recurring_headlines_apart():
    """However alike the words (a loose threshold here), different days or numbers are different issues."""
    d = Deduplicator(threshold=0.5)
    d.check("tue", "Stocks That Hit 52-Week Lows On Tuesday", T0, "benzinga")
    assert (
        d.check("wed", "Stocks That Hit 52-Week Lows On Wednesday", T0 + timedelta(days=1), "benzinga").story_id
        == "wed"
    )
    d.check("ten", "10 Stocks Moving In Thursday's Pre-Market Session", T0, "benzinga")
    thirty = d.check("thirty", "30 Stocks Moving In Thursday's Pre-Market Session", T0, "benzinga")
    assert thirty.is_first_of_story
    d.check("jan", "Stocks Trading Ex Dividend For January 14", T0, "benzinga")
    assert d.check("feb", "Stocks Trading Ex Dividend For February 14", T0, "benzinga").is_first_of_story
    # A number in common (a revised figure beside the same ones) is the same release; "FY19" is a word, not 19.
    d.check("eps", "ACADIA Q4 EPS $(0.50) Beats $(0.55) Estimate, Sales $59.57M Beat $59.46M Estimate", T0, "wire")
    fixed = "ACADIA Q4 EPS $(0.50) Beats $(0.55) Estimate, Sales $59.571M Beat $59.46M Estimate"
    assert d.check("eps2", fixed, T0 + timedelta(hours=1), "wire").story_id == "eps"
    assert d.signature("Advance Auto Parts Sees FY19 Sales $9.65B").numbers == {"9.65"}


def test_two_groups_of_companies_or_two_times_of_day_keep_a_template_apart():
    # Judged different (story_pairs.jsonl, test): one cause, two groups of companies, the same minute.
    d = Deduplicator()
    healthcare = ("Shares of several healthcare companies are trading lower in sympathy with the overall market on "
                  "continued fears of a recession amid a weak ADP jobs report.")  # fmt: skip
    industrial = ("Shares of several industrial companies are trading lower on continued fears of a recession "
                  "following weak ADP jobs report.")  # fmt: skip
    assert d.signature(healthcare).group == {"healthcare"}
    d.check("h", healthcare, T0, "benzinga", tickers={"JNJ"})
    assert d.check("i", industrial, T0 + timedelta(minutes=5), "benzinga", tickers={"JNJ"}).is_first_of_story
    # A group in common is still one story ("technology, semiconductor, and software" / "technology").
    tech = "Shares of several technology, semiconductor, and software companies are trading lower on the jobs report"
    tech2 = "Shares of several technology companies are trading lower on the jobs report"
    assert d.check("t", tech, T0, "benzinga").is_first_of_story
    assert d.check("t2", tech2, T0 + timedelta(minutes=1), "benzinga").story_id == "t"
    # A recurring bulletin's issues: "1200 GMT" and "1600 GMT" share the day's number, not the hour.
    d.check("noon", "REUTER COMMODITIES NEWS HIGHLIGHTS 1200 GMT - APRIL 7", T0, "reuters")
    assert d.check("four", "REUTER COMMODITIES NEWS HIGHLIGHTS 1600 GMT - APRIL 7", T0 + timedelta(hours=4),
                   "reuters").is_first_of_story  # fmt: skip
    assert d.signature("Shares to resume trade at 4:30 p.m. EST").clock == {"430p"}
    # A price before "Est" is an estimate, not a time: the two items stay one release.
    assert not d.signature("Apple Q2 EPS $2.46 Beats $2.36 Est").clock
    e = Deduplicator()
    e.check("a", "Apple Q2 EPS $2.46 Beats $2.36 Est", T0, "benzinga", tickers={"AAPL"})
    assert e.check("b", "Apple Q2 EPS $2.46 Beats $2.37 Est", T0 + timedelta(minutes=5), "benzinga",
                   tickers={"AAPL"}).story_id == "a"  # fmt: skip


def test_an_item_joins_by_its_similarity_to_the_first_article_so_stories_do_not_chain():
    words = [f"word{i}" for i in range(12)]
    first = " ".join(words)  # 12 words
    second = " ".join(words[:11] + ["other1"])  # 11 of 12 shared with the first: 11/13
    third = " ".join(words[:9] + ["other1", "other2"])  # 10/13 with the second, but 9/14 with the first
    d = Deduplicator()
    assert d.check(1, first, T0, "a").story_id == 1
    r2 = d.check(2, second, T0 + timedelta(minutes=1), "b")
    r3 = d.check(3, third, T0 + timedelta(minutes=2), "c")
    assert (r2.story_id, r2.similar_before) == (1, 1)
    assert (r3.story_id, r3.is_first_of_story) == (3, True)  # not pulled into story 1 through item 2


# A judged same-story pair (story_pairs.jsonl, dev): the Guardian's live blog and its report; Jaccard 0.62.
LIVE = "Business live FCA chair-elect admits 'error of judgment' over tax avoidance vehicle – as it happened"
REPORT = "FCA's chair-elect admits error of judgment over tax avoidance scheme"


def test_rare_words_in_common_within_hours_make_one_story_and_not_days_apart():
    """'business live', 'as it happened' weigh little, 'FCA', 'chair-elect', 'avoidance' much: within the recent
    window the weighted similarity joins them; two days later only the plain 0.8 would."""
    d = Deduplicator()
    assert jaccard(headline_words(LIVE), headline_words(REPORT)) < d.threshold
    assert weighted_jaccard(d.signature(LIVE), d.signature(REPORT)) >= d.recent_threshold
    d.check("live", LIVE, T0, "guardian")
    assert d.check("report", REPORT, T0 + timedelta(hours=2), "guardian").story_id == "live"
    later = Deduplicator()
    later.check("live", LIVE, T0, "guardian")
    later.check("other", B, T0 + timedelta(hours=7), "reuters")  # moves the recent window past the live blog
    assert later.check("report", REPORT, T0 + timedelta(hours=7), "guardian").is_first_of_story
    assert Deduplicator(recent_window=timedelta(0)).recent_window == timedelta(0)
    with pytest.raises(ValueError, match="recent_threshold"):
        Deduplicator(recent_threshold=1.0)


# Judged same-story pairs (story_pairs.jsonl, dev): a live blog's title names several stories of the day.
LIVE_DAY = "Business live UK personal insolvencies hit seven-year high; US consumer confidence slumps - business live"
ONE_OF_THEM = "UK personal insolvencies hit seven-year high"


def test_an_article_whose_words_a_live_blog_of_its_hours_holds_joins_it():
    d = Deduplicator()
    a, b = d.signature(LIVE_DAY), d.signature(ONE_OF_THEM)
    assert a.live and not b.live
    assert weighted_jaccard(a, b) < d.recent_threshold  # the title's other story kept the two apart before
    assert weighted_containment(a, b) >= d.live_containment
    d.check("report", ONE_OF_THEM, T0, "guardian")
    assert d.check("live", LIVE_DAY, T0 + timedelta(hours=3), "guardian").story_id == "report"  # either order
    d2 = Deduplicator()
    d2.check("live", LIVE_DAY, T0, "guardian")
    assert d2.check("report", ONE_OF_THEM, T0 + timedelta(hours=1), "guardian").story_id == "live"
    # Outside the hours of the recent window, or holding too little of the article, it stays apart.
    d3 = Deduplicator()
    d3.check("live", LIVE_DAY, T0, "guardian")
    d3.check("other", B, T0 + timedelta(hours=7), "reuters")
    assert d3.check("report", ONE_OF_THEM, T0 + timedelta(hours=7), "guardian").is_first_of_story
    d4 = Deduplicator()
    d4.check("live", LIVE_DAY, T0, "guardian")
    assert d4.check("other", "US consumer spending slumps as prices rise", T0, "guardian").is_first_of_story
    # Two plain articles are not compared this way: "a live blog" is the title's own words.
    assert not d.signature("UK personal insolvencies hit seven-year high; US consumer confidence slumps").live
    with pytest.raises(ValueError, match="live_containment"):
        Deduplicator(live_containment=0.0)


def test_one_companys_results_for_one_period_or_one_brokers_note_told_twice_within_hours_is_one_story():
    # Judged same-story pairs (story_pairs.jsonl): the release, then the move it caused, in other words.
    d = Deduplicator()
    release = "Advance Auto Parts Q2 Adj. EPS $2 Misses $2.21 Estimate, Sales $2.3B Miss $2.36B Estimate"
    move = "Advance Auto Parts Falls After Q2 Earnings Miss"
    assert d.signature(release).periods == d.signature(move).periods == {"q2"}
    assert weighted_jaccard(d.signature(release), d.signature(move)) < d.company_threshold
    d.check("release", release, T0, "benzinga", tickers={"AAP"})
    assert d.check("move", move, T0 + timedelta(hours=1), "benzinga", tickers={"AAP"}).story_id == "release"
    # Another quarter, another company, no results word, or past the recent hours: apart.
    assert d.check("q3", "Advance Auto Parts Falls After Q3 Earnings Miss", T0 + timedelta(hours=2), "benzinga",
                   tickers={"AAP"}).is_first_of_story  # fmt: skip
    assert d.check("other", "AutoZone Falls After Q2 Earnings Miss", T0 + timedelta(hours=2), "benzinga",
                   tickers={"AZO"}).is_first_of_story  # fmt: skip
    assert not d.signature("Advance Auto Parts Opens Q2 Store In Texas").periods
    late = Deduplicator()
    late.check("release", release, T0, "benzinga", tickers={"AAP"})
    late.check("x", B, T0 + timedelta(hours=7), "reuters")
    assert late.check("move", move, T0 + timedelta(hours=7), "benzinga", tickers={"AAP"}).is_first_of_story
    # "2ND QTR", "second-quarter" and "Q2" are one period.
    assert d.signature("IRVING BANK <V> 2ND-QTR NET HURT BY BRAZIL").periods == {"q2"}
    assert d.signature("Irving Bank second-quarter profit falls").periods == {"q2"}
    # A preview or a schedule waits for the results; it is not them.
    p = Deduplicator()
    p.check("preview", "Apple Q2 Earnings Preview: What To Expect", T0, "benzinga", tickers={"AAPL"})
    assert p.check("results", "Apple Q2 Net Income Falls 10%", T0 + timedelta(hours=4), "benzinga",
                   tickers={"AAPL"}).is_first_of_story  # fmt: skip
    assert not p.signature("Apple To Report Q2 Earnings After The Bell").periods
    # One broker's note and its update, hours later.
    note = "Raymond James Maintains Outperform on Apple, Raises Price Target to $340"
    update = "UPDATE: Raymond James Maintains Outperform On Apple, Raises Target To $340 Notes 'our optimism remains'"
    r = Deduplicator()
    r.check("note", note, T0, "benzinga", tickers={"AAPL"})
    assert r.check("update", update, T0 + timedelta(hours=3), "benzinga", tickers={"AAPL"}).story_id == "note"


def test_one_announcement_sent_as_several_items_within_minutes_is_one_story():
    """A source splits an earnings release into items whose numbers differ by design; the same companies, the same
    opening word and a word in common within `burst_window` make them one story. Two brokers' notes on one company,
    or a mover list the source tagged with that company, are not its story; nor is the same company's next item
    after the burst window."""
    d = Deduplicator()
    aap = frozenset({"AAP"})
    d.check("eps", "Advance Auto Parts Q1 Adj. EPS $2.46 Beats $2.36 Estimate, Sales $2.952B Beat $2.95B Estimate",
            T0, "benzinga", tickers=aap)  # fmt: skip
    comps = d.check("comps", "Advance Auto Parts Sees FY19 Comps Up 1-2.5%", T0 + timedelta(minutes=1), "benzinga",
                    tickers=aap)  # fmt: skip
    assert comps.story_id == "eps"
    update = d.check("upd", "UPDATE: Advance Auto Parts Reaffirms FY19 Outlook", T0 + timedelta(minutes=4),
                     "benzinga", tickers=aap)  # fmt: skip
    assert update.story_id == "eps"  # a wire prefix is not the opening word
    movers = d.check("movers", "28 Stocks Moving In Wednesday's Pre-Market Session", T0 + timedelta(minutes=2),
                     "benzinga", tickers=aap)  # fmt: skip
    assert movers.is_first_of_story
    options = d.check("sweep", "Advance Auto Parts Option Alert: Jun 21 $150 Calls Sweep (12) near the Ask",
                      T0 + timedelta(minutes=2), "benzinga", tickers=aap)  # fmt: skip
    assert options.is_first_of_story  # the stock's activity, not the company's news
    later = d.check("buyback", "Advance Auto Parts Announces $400M Buyback", T0 + timedelta(minutes=7), "benzinga",
                    tickers=aap)  # fmt: skip
    assert later.is_first_of_story  # beyond the 6-minute burst window
    other = d.check("other", "Advance Auto Parts Sees Store Count Flat", T0 + timedelta(minutes=3), "benzinga",
                    tickers=frozenset({"AAP", "ORLY"}))  # fmt: skip
    assert other.is_first_of_story  # the companies must be the same, not just overlap

    brokers = Deduplicator()
    cor = frozenset({"COR"})
    brokers.check("baird", "Baird Maintains Neutral on AmerisourceBergen, Raises Price Target to $94", T0, "benzinga",
                  tickers=cor)  # fmt: skip
    db = brokers.check("db", "Deutsche Bank Maintains Hold on AmerisourceBergen, Raises Price Target to $93",
                       T0 + timedelta(minutes=5), "benzinga", tickers=cor)  # fmt: skip
    assert db.is_first_of_story
    off = Deduplicator(burst_window=timedelta(0))  # no burst rule: the two items of one release stay apart
    off.check("eps", "Advance Auto Parts Q1 Adj. EPS $2.46 Beats $2.36 Estimate", T0, "benzinga", tickers=aap)
    assert off.check("comps", "Advance Auto Parts Sees FY19 Comps Up 1-2.5%", T0 + timedelta(minutes=1), "benzinga",
                     tickers=aap).is_first_of_story  # fmt: skip
    sweep_first = Deduplicator()  # a market-activity note as the first article takes no burst either
    sweep_first.check("sweep", "Advance Auto Parts Option Alert: Jun 21 $150 Calls Sweep", T0, "benzinga", tickers=aap)
    assert sweep_first.check("news", "Advance Auto Parts Names New CFO", T0 + timedelta(minutes=1), "benzinga",
                             tickers=aap).is_first_of_story  # fmt: skip
    with pytest.raises(ValueError, match="burst_window"):
        Deduplicator(burst_window=timedelta(minutes=-1))
    with pytest.raises(ValueError, match="company_threshold"):
        Deduplicator(company_threshold=0.7)  # above the 0.65 it is meant to lower


def test_a_company_in_common_needs_fewer_words_in_common_within_hours():
    first = "ACADIA Pharma's Phase 3 HARMONY Trial Met its Primary Endpoint"
    follow = (
        "ACADIA Pharmaceuticals shares are trading higher after the company announced its Harmony Phase 3 Trial met "
        "its primary endpoint."
    )
    d = Deduplicator()
    weighted = weighted_jaccard(d.signature(first), d.signature(follow))
    assert d.company_threshold <= weighted < d.recent_threshold
    d.check("trial", first, T0, "benzinga", tickers={"ACAD"})
    assert d.check("shares", follow, T0 + timedelta(hours=2), "benzinga", tickers={"ACAD"}).story_id == "trial"
    apart = Deduplicator()  # no company in common (or none linked): the 0.65 applies
    apart.check("trial", first, T0, "benzinga")
    assert apart.check("shares", follow, T0 + timedelta(hours=2), "benzinga").is_first_of_story


def test_two_brokers_rating_one_company_are_two_stories():
    d = Deduplicator()
    apple = {"AAPL"}
    d.check("cascend", "Cascend Maintains Buy on Apple, Lowers Price Target to $325", T0, "benzinga", tickers=apple)
    ubs = d.check("ubs", "UBS Maintains Buy on Apple, Raises Price Target to $325", T0 + timedelta(hours=2),
                  "benzinga", tickers=apple)  # fmt: skip
    assert ubs.is_first_of_story
    again = d.check("cascend2", "CORRECTION: Cascend Maintains Buy on Apple, Lowers Price Target to $325",
                    T0 + timedelta(hours=3), "benzinga", tickers=apple)  # fmt: skip
    assert again.story_id == "cascend"  # the same broker's note again is its story
    assert d.signature("UPDATE 1-UBS Maintains Buy on Apple").rater == "ubs"  # after a wire prefix too
    assert d.signature("EXCLUSIVE: Cascend Maintains Buy on Apple").rater == "cascend"
    assert d.signature("Apple shares rise after UBS upgrade").rater == ""  # not a rating headline of its own
    rumour = Deduplicator()
    rumour.check("a", "Hearing Stephens Out Defending Aaron's, Saying No Change In Regulation", T0, "benzinga",
                 tickers={"PRG"})  # fmt: skip
    assert rumour.check("b", "Hearing KeyBanc Out Defending Aaron's; Unconfirmed", T0 + timedelta(minutes=3),
                        "benzinga", tickers={"PRG"}).is_first_of_story  # fmt: skip


def test_word_weights_are_how_rare_a_word_is_in_real_headlines():
    table, unseen = word_weights()
    assert len(table) > 10_000
    assert table["business"] < table["shares"] < table["fca"] < table["misconduct"] < table["judgment"] < unseen
    assert table["live"] < table["fca"]


_VOCAB = ["shares", "live", "business", "happened", "fca", "ghosn", "misconduct", "apple", "zzqx", "qqvv", "oil", "uk"]


@settings(max_examples=300, deadline=None)
@given(st.sets(st.sampled_from(_VOCAB), min_size=1), st.sets(st.sampled_from(_VOCAB), min_size=1))
def test_a_headline_weighted_similar_enough_shares_one_of_its_rarest_words(a, b):
    """The recent-window index is probed by a signature's rarest words only: that must find every headline at or
    above the weighted threshold (prefix filtering)."""
    d = Deduplicator()
    sa, sb = d.signature(" ".join(sorted(a))), d.signature(" ".join(sorted(b)))
    if weighted_jaccard(sa, sb) >= d.recent_threshold:
        assert set(sa.rarest) & sb.words


def test_similar_before_counts_the_story_in_the_window():
    d = Deduplicator(window=timedelta(days=3))
    d.check(1, A, T0, "reuters")
    assert d.check(2, A2, T0 + timedelta(hours=1), "cnbc").similar_before == 1
    assert d.check(3, A2 + " now", T0 + timedelta(hours=2), "bbc").similar_before == 2


def test_warm_restores_the_companies_of_stored_articles():
    d = Deduplicator()
    d.warm([("aaon", TEMPLATE.format("AAON"), T0, "benzinga", None, ["AAON"])])
    assert d.check("abm", TEMPLATE.format("ABM"), T0, "benzinga", tickers=["ABM"]).is_first_of_story
    assert d.check("aaon2", TEMPLATE.format("AAON") + "!", T0, "wire", tickers=["AAON"]).story_id == "aaon"


# ------------------------------------------------------------------------------------- through the pipeline

LEAD = (
    "\"Mad Money\" host Jim Cramer rings the lightning round bell, which means he's giving his answers to callers' "
    "stock questions at rapid speed. It's that time again: here is what he said about the stocks the callers asked "
    "about tonight."
)


def _store(pipeline: Pipeline, session, values: list[dict], prefix: str) -> list[int]:
    envs = [Envelope(value=json.dumps(v).encode(), origin=f"{prefix}:{i}") for i, v in enumerate(values)]
    admitted = pipeline.admit(session, envs).admitted
    return pipeline.store_articles(session, admitted)


def test_a_lead_the_source_repeats_does_not_make_a_story(migrated_engine):
    """CNBC's lightning-round items share a long boilerplate lead (headline + lead: 3-word-shingle Jaccard 0.70-0.74,
    one story by the old rule); their headlines are about different stocks."""
    factory = make_session_factory(migrated_engine)
    items = [
        {"source": "CNBC", "title": title, "body": LEAD, "published_at": f"2020-03-0{day}T23:50:00Z"}
        for day, title in enumerate(
            [
                "Cramer's lightning round: I like Amarin stock here",
                "Cramer's lightning round: United Technologies is a 'rocky situation'",
                "Cramer's lightning round: DocuSign can be a 'stay-at-home stock'",
            ],
            start=3,
        )
    ]
    with factory() as session, session.begin():
        ids = _store(Pipeline(), session, items, "cnbc")
    with factory() as session:
        stories = session.scalars(select(Article.story_id).order_by(Article.id)).all()
    assert stories == ids  # three stories, each its own


def test_a_restarted_pipeline_keeps_companies_apart_from_stored_mentions(migrated_engine):
    """The window rebuilt from the database knows which tickers each stored article was linked to."""
    factory = make_session_factory(migrated_engine)
    t0 = "2026-11-24T09:00:00Z"
    first = {"source": "benzinga", "title": TEMPLATE.format("AAON"), "tickers": ["AAON"], "published_at": t0}
    with factory() as session, session.begin():
        (aaon,) = _store(Pipeline(), session, [first], "a")
    later = "2026-11-24T10:00:00Z"
    other = {"source": "wire", "title": TEMPLATE.format("ABM"), "tickers": ["ABM"], "published_at": later}
    same = {"source": "paper", "title": TEMPLATE.format("AAON") + " today", "tickers": ["AAON"], "published_at": later}
    with factory() as session, session.begin():
        abm, again = _store(Pipeline(), session, [other, same], "b")  # a fresh pipeline: a restarted worker
    with factory() as session:
        story = dict(session.execute(select(Article.id, Article.story_id)).all())
    assert (story[abm], story[again]) == (abm, aaon)


# ------------------------------------------------------------------------------------ quality on judged data

# Measured on the hand-judged pairs (bench/stories.py, with the burst, company, broker, live-blog, results, group and
# clock rules): dev half 41 joined, 2.4% judged different, 67% of same-story pairs joined; test half 42 joined, 7.1%
# different, 56% (before the live-blog rule 2.9% / 57% and 14.6% / 50%; on 2026-12-06: 3.4% / 47% and 20.7% / 33%).
# Issue 19's targets (at most 5% different, at least 90% joined) are not met for recall (docs/pipeline.md,
# "Stories"); these floors guard what was reached.
STORY_FLOORS = {"all/dev": (0.05, 0.63), "all/test": (0.10, 0.52)}


def test_story_quality_on_hand_judged_pairs(capsys):
    from bench.stories import judged_pairs

    result = judged_pairs()
    for key, (false_ceiling, recall_floor) in STORY_FLOORS.items():
        r = result[key]
        with capsys.disabled():
            print(f"\nstory pairs {key}: {r['joined']} joined, {100 * r['false_join_share']:.1f}% judged different, "
                  f"recall {r['recall']:.3f} of {r['same']} same-story pairs")  # fmt: skip
        assert r["same"] + r["different"] >= 220
        assert r["false_join_share"] <= false_ceiling
        assert r["recall"] >= recall_floor
