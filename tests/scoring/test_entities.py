"""Ticker linking: one test per rule class (each with its own example), symbols, the desk's file, relevance and roles,
and quality on the hand-labelled spans (tests/scoring/fixtures/ticker_spans.jsonl)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from bench.entities import evaluate
from core.messages import decode
from ingest.replay import shifted
from scoring.entities import WORD_TICKERS, dictionary, find, link
from scoring.pipeline import original_time
from scoring.universe import formal_aliases


def tickers(title: str, body: str = "", provided=()) -> set[str]:
    return {m.ticker for m in link(title, body, provided)}


def skipped(title: str) -> dict[str, str]:
    return {s.text: s.skipped for s in find(title) if s.skipped}


# ------------------------------------------------------------------------------------------------ the universe


def test_universe_has_the_package_indices_the_curated_file_and_former_companies():
    d = dictionary()
    assert {"AAPL", "BRK.B", "BP.L", "SAP.DE", "GOOGL", "AIR.PA", "NESN.SW", "7203.T"} <= d.symbols
    # Former companies and big names outside the indices (scoring/data/companies.csv).
    assert {"MRW.L", "SAB.L", "SHP.L", "BG.L", "BHP"} <= d.symbols
    assert dictionary() is d  # built once per desk file


def test_former_companies_link():
    assert tickers("Morrisons sales rise for third quarter") == {"MRW.L"}
    assert tickers("SABMiller agrees to AB InBev takeover") >= {"SAB.L"}
    assert tickers("Shire shares jump on Baxalta deal") >= {"SHP.L"}


def test_former_tickers_name_the_company_under_its_ticker_today():
    # AmerisourceBergen's ABC is Cencora's COR; Facebook's FB is Meta's; Yahoo's YHOO is Altaba's AABA, its last one.
    assert tickers("Calls Sold on AmerisourceBergen (ABC)") == {"COR"}
    assert tickers("Options traders bet on $FB ahead of earnings") == {"META"}
    assert tickers("Top Upgrades & Downgrades on 5/13/11- NVDA, YHOO, DF") >= {"NVDA", "AABA"}
    # A former ticker names today's company only while no company trades under it ("CTL" is CenturyLink's, now LUMN).
    assert dictionary().universe.formerly["CTL"] == "LUMN"
    assert all(symbol not in dictionary().symbols for symbol in dictionary().universe.formerly)


def test_a_company_is_linked_only_while_it_was_listed():
    headline = "Aldi partners Deliveroo for 30-minute grocery delivery service"
    assert {m.ticker for m in link(headline, at=date(2020, 5, 19))} == set()  # private until its March 2021 IPO
    why = [s.skipped for s in find(headline, at=date(2020, 5, 19)) if s.ticker == "ROO.L"]
    assert why == ["not listed on 2020-05-19: ROO.L lists from 2021-03-31"]
    assert {m.ticker for m in link(headline, at=date(2021, 6, 1))} == {"ROO.L"}
    assert {m.ticker for m in link(headline)} == {"ROO.L"}  # no date: no point-in-time check
    # After its last trading day, as its row says; and what the source itself tagged is kept.
    assert tickers("Twitter bans political ads") == {"TWTR"}
    assert {m.ticker for m in link("Twitter bans political ads", at=datetime(2023, 1, 5, tzinfo=UTC))} == set()
    assert {m.ticker for m in link("Uber files for IPO", provided=["UBER"], at=date(2018, 12, 7))} == {"UBER"}


def test_a_replayed_item_is_linked_as_of_its_original_time():
    """A replay moves published_at to now and keeps the original in extras; linking reads the original, so a 2020
    Twitter headline replayed in a demo years after Twitter's delisting still links TWTR."""
    raw = json.dumps({"title": "Twitter bans political ads", "published_at": "2020-05-06T14:00:00+00:00",
                      "source": "wire"}).encode()  # fmt: skip
    message = decode(shifted(raw, datetime(2026, 12, 6, 9, tzinfo=UTC)))
    assert message.published_at.year == 2026
    at = original_time(message, message.published_at)
    assert at == datetime(2020, 5, 6, 14, tzinfo=UTC)
    assert {m.ticker for m in link(message.title, at=at)} == {"TWTR"}
    assert {m.ticker for m in link(message.title, at=message.published_at)} == set()
    # A time with an offset is read in UTC: 23:00 in New York on 9 May 2019 is 10 May, Uber's first trading day.
    eve = decode(json.dumps({"title": "Uber shares open", "source": "wire",
                             "extras": {"original_published_at": "2019-05-09T23:00:00-05:00"}}).encode())  # fmt: skip
    assert {m.ticker for m in link(eve.title, at=original_time(eve, datetime(2026, 1, 1, tzinfo=UTC)))} == {"UBER"}
    assert {m.ticker for m in link(eve.title, at=datetime(2019, 5, 9, 23, tzinfo=UTC))} == set()
    bad = decode(json.dumps({"title": "x", "source": "wire", "extras": {"original_published_at": "soon"}}).encode())
    assert original_time(bad, datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------------------- misses, by rule


def test_hyphen_glued_wire_prefix_is_a_boundary():
    assert tickers("UPDATE 1-Shell secures $3bn LNG supply contract") == {"SHEL.L"}
    assert tickers("REFILE-Hikma buys Roxane for $2.65bn") == {"HIK.L"}
    assert tickers("BRIEF-Glencore cuts debt faster than planned") == {"GLEN.L"}
    assert tickers("Kraft-Heinz to close plants") == tickers("Kraft Heinz to close plants") == {"KHC"}
    # A hyphenated word is not a prefix: "Anglo-American" relations are not Anglo American plc.
    assert "AAL.L" not in tickers("Anglo-American relations sour")


def test_possessive_is_a_boundary():
    assert tickers("Tesco's profits jump") == {"TSCO.L"}
    assert tickers("Glencore’s debt falls") == {"GLEN.L"}


def test_bank_as_subject_of_its_own_news_is_linked():
    assert tickers("Barclays settles US mortgage case for $2bn") == {"BARC.L"}
    assert tickers("Barclays raises £2bn from investors") == {"BARC.L"}
    assert tickers("HSBC cuts 10,000 jobs") == {"HSBA.L"}
    assert tickers("Goldman Sachs profit jumps") == {"GS"}


def test_bank_as_source_of_a_rating_is_not_linked():
    assert tickers("Tesco cut to hold at Barclays") == {"TSCO.L"}
    assert tickers("Barclays upgrades Tesco to overweight") == {"TSCO.L"}
    assert tickers("Goldman Sachs Raises Price Target On Agilent Technologies To $80") == {"A"}
    assert tickers("UPDATE: J.P. Morgan Lowering Price Target On Agilent Technologies") == {"A"}
    assert tickers("Bank of America Reduces AllianceBernstein to Underperform") == set()
    assert skipped("Tesco cut to hold at Barclays")["Barclays"].startswith("a broker")


def test_banks_listed_outside_new_york_and_london_are_sources_too():
    # Their names link to Tokyo, Toronto or Nordic lines; as raters they are the source, not the subject.
    assert tickers("Mizuho Initiates Coverage On AbbVie with Buy Rating, Announces $96 Price Target") == {"ABBV"}
    assert tickers("Nomura Instinet Maintains Neutral on Apple, Raises Price Target to $240") == {"AAPL"}
    assert tickers("CIBC Upgrades Barrick Gold Corporation to Outperform") == {"ABX.TO"}
    assert tickers("Nordea Upgrades ABB Ltd to Buy") == {"ABBN.SW"}
    assert skipped("RBC market analyst: Tech is an area of risk in the stock market")["RBC"].startswith("a broker")
    # A person of the bank giving a view on the market: "<Bank>'s <Name>: ...".
    assert skipped("BMO's Andrew Kaip: The Gold Majors Are Back")["BMO"].startswith("a broker")
    # Their own news still links them.
    assert tickers("Westpac blames tech and human error for money-laundering breaches") == {"WBC.AX"}
    assert tickers("Mizuho fined over money laundering") == {"8411.T"}
    assert tickers("Barclays' Jes Staley: bank to cut jobs") == {"BARC.L"}
    assert tickers("JPMorgan's Q2: Trading Revenue Beats As Markets Rally") == {"JPM"}
    assert tickers("Goldman Sachs's CEO David Solomon: Bank Will Cut Jobs, Stocks Fall") == {"GS"}
    # National Bank of Canada's brokerage is not the US National Bank Holdings.
    assert tickers("National Bank of Canada profit rises") == {"NA.TO"}
    assert skipped("National Bank Financial upgrades Shopify to outperform")["National Bank Financial"].startswith(
        "a broker"
    )


def test_names_stored_with_a_qualifier():
    assert tickers("Rio Tinto profit beats forecasts") == {"RIO.L"}


def test_aliases_once_blocked_link_when_they_are_the_subject():
    assert tickers("SSE to sell stake in wind farm") == {"SSE.L"}
    assert tickers("Prudential to split off its UK arm") >= {"PRU.L"}


@pytest.mark.parametrize(
    ("headline", "ticker"),
    [
        ("StanChart profit falls", "STAN.L"),
        ("L&G sells general insurance arm", "LGEN.L"),
        ("LSE agrees merger with Deutsche Boerse", "LSEG.L"),
        ("BAT bids for Reynolds American", "BATS.L"),
        ("RBS fined over mis-selling", "NWG.L"),
        ("Glaxo wins approval for asthma drug", "GSK.L"),
        ("SoftBank to buy ARM for £24bn", "ARM"),
    ],
)
def test_short_and_former_names(headline, ticker):
    assert ticker in tickers(headline)


def test_wrong_package_rows_are_corrected():
    assert tickers("SES wins satellite contract") == {"SESG.PA"}
    assert tickers("Airbus wins order from Emirates") == {"AIR.PA"}
    assert "SMIN.L" not in tickers("SES wins satellite contract")


# ---------------------------------------------------------------------------------------- false links, by rule


def test_place_is_not_the_company():
    assert tickers("Corporations pile pressure on Brazil over Amazon fires") == set()
    assert tickers("Brazil's Amazon faces record deforestation") == set()
    assert tickers("Amazon opens new warehouse") == {"AMZN"}


def test_another_companys_name_is_not_the_company():
    assert "ALB" not in tickers("Albemarle & Bond shares slump")
    assert "DPZ" not in tickers("Domino's Pizza Group opens 50 UK stores")
    assert "KGF.L" not in tickers("Kingfisher Airlines grounded")
    assert tickers("Kingfisher profits slide") == {"KGF.L"}


@pytest.mark.parametrize(
    "headline",
    [
        "Former minister Mr Pearson joins bank board",
        "Hotel heir Bill Marriott steps down as chairman",
        "Labour's Diane Abbott says rail fares too high",
        "Actor Harrison Ford buys a plane",
        "Economist Sir Goldman warns on inflation",
    ],
)
def test_surnames_are_not_companies(headline):
    assert tickers(headline) == set()


def test_lower_case_words_are_not_names():
    assert tickers("Holiday travelers stranded by strikes") == set()
    assert tickers("It is all on now: key low prices, so the cat and A are fine") == set()
    assert tickers("Target beats; Next falls; Dow slides as Nasdaq drops") == set()


# ------------------------------------------------------------------------------------------------ symbols


def test_cashtags_including_share_classes():
    assert tickers("Buying $AAPL and $BRK.B today") == {"AAPL", "BRK.B"}
    assert tickers("$5 coffee and $10bn deals") == set()


def test_exchange_qualified_symbols():
    assert tickers("Apple (NASDAQ:AAPL) and NYSE: IBM rally, LON:BP slips") == {"AAPL", "IBM", "BP.L"}


def test_provided_and_reuters_angle_symbols():
    assert tickers("STANDARD OIL <SRD> TO FORM FINANCIAL UNIT") == {"SRD"}
    assert tickers("Quiet day", provided=["MSFT", "LON:BP"]) == {"MSFT", "BP.L"}
    assert tickers("Markets <b>rally</b>") == set()


def test_a_parents_finance_arm_before_its_tag_is_not_the_parent():
    # "IBM CREDIT" is the unlisted finance arm; the tag <IBM> still links IBM, and only the tag is IBM's span.
    found = [s for s in find("IBM CREDIT <IBM> FILES FOR NOTE OFFERING") if not s.skipped]
    assert [(s.ticker, s.text) for s in found] == [("IBM", "<IBM>")]
    assert skipped("IBM CREDIT <IBM> FILES FOR NOTE OFFERING")["IBM"].startswith("the parent's name in its finance")
    assert [s.text for s in find("XEROX CREDIT <XRX> NOTES YIELD 8.061 PCT") if not s.skipped] == ["<XRX>"]
    # A parent whose own name ends in such a word keeps its name: "STIFEL FINANCIAL" is Stifel itself.
    assert "STIFEL FINANCIAL" in [
        s.text for s in find("STIFEL FINANCIAL <SF> RECEIVES MERGER PROPOSAL") if not s.skipped
    ]
    assert [s.text for s in find("IBM Credit <IBM> files for note offering") if not s.skipped] == ["<IBM>"]


def test_sec_names_with_legal_forms_in_capitals_link_by_their_short_form():
    # "BOSTON BEER CO INC", "COLUMBIA SPORTSWEAR CO": the SEC writes a third of its filers in capitals, and "INC" or
    # "CO" in capitals hid their short forms, so only "Boston Beer Co Inc" could link.
    assert tickers("Cramer: Sam Adams-parent Boston Beer is the comeback stock to own") == {"SAM"}
    assert tickers("Columbia Sportswear CEO: There are better 'sourcing countries' than China") == {"COLM"}
    # Such a short form links as a capitalised name in mixed-case text only: many are phrases too.
    assert tickers("TWO UTAH FINANCIAL INSTITUTIONS FAIL") == set()
    assert tickers("boston beer sales rise") == set()
    assert tickers("Global industrial output slows as trade war bites") == set()  # GLOBAL INDUSTRIAL Co
    assert tickers("Commercial metals prices rally") == set()  # COMMERCIAL METALS Co
    # A filing tag is set off by a space or closed by a slash, or is "/ADR"; a name like "AC/DC" keeps its end.
    assert "Core Laboratories" in formal_aliases("Core Laboratories Inc. /DE/")[0]
    assert "Sectra" in formal_aliases("Sectra AB/ADR")[0]
    assert "AC/DC" in formal_aliases("AC/DC Holdings")[0]
    # Capitalised word by word, acronyms and connectors as headlines write them.
    assert tickers("BCB Bancorp raises its dividend") == {"BCBP"}
    # A name that keeps its legal form is no phrase, and it does not hide a shorter case-blind name.
    assert tickers("WHIRLPOOL CORP 1ST QTR SHR 66 CTS VS 67 CTS") == {"WHR"}


def test_lists_of_symbols_at_the_end_or_in_parentheses():
    # In a list of symbols even a one-letter one is a symbol ("A" is Agilent).
    assert tickers("Top Upgrades & Downgrades on 5/13/11- NVDA, AAPL, A") == {"NVDA", "AAPL", "A"}
    assert tickers("What happens to gold stocks in the mania stage? (CSCO, INTC)") == {"CSCO", "INTC"}
    assert tickers("Pre-Market Losers (JNJ, QGEN, ZZZZ, EGLE)") == {"JNJ"}  # symbols nobody knows are not linked
    assert tickers("Sales rise across the region (UK, US, EU)") == set()  # places, not symbols


def test_names_longest_match():
    assert tickers("Apple Hospitality REIT raises its dividend") == {"APLE"}  # a name, not Apple
    assert tickers("Apple unveils a new iPhone") == {"AAPL"}
    assert tickers("Pineapple prices rise; Applebee's opens") == set()


@pytest.mark.parametrize("word", sorted(WORD_TICKERS))
def test_ordinary_word_tickers_only_when_explicit(word):
    assert word not in tickers(f"{word} it is all on now and low key, so cat is a t f ({word})")
    assert word in tickers(f"Watching ${word} today") | tickers("x", provided=[word])


@pytest.mark.parametrize("text", ["$\u0391APL to the moon", "NASDAQ:\u0391APL", "$ＡAPL\u0391"])
def test_homoglyph_tickers_do_not_link(text):
    assert "AAPL" not in tickers(text)


def test_rare_one_word_filer_names_link_as_written():
    # A filer's one-word name links when it is rare in English (tools/sec_companies.py: wordfreq Zipf < 2.5) ...
    assert tickers("Mid-Day Market Update: Coty Jumps On Report of Deal With P&G") == {"COTY", "PG"}
    assert tickers("Cramer's lightning round: Take profits and sell some shares of Sonos") == {"SONO"}
    # ... in its own case only, and never as a label in capitals
    assert "COTY" not in tickers("coty jumps on report of deal") | tickers("COTY JUMPS ON REPORT OF DEAL")
    # an English word, a surname or a place stays out (Here 5.97, Rockwell 3.2); a name two filers share links neither
    assert tickers("Here is what to watch") == set()
    assert tickers("Rockwell to Purchase Hiprom") == set()
    assert tickers("Acadia Stops Nuplazid Study Early") == set()  # ACADIA Pharmaceuticals and Acadia Healthcare


def test_pharma_short_form_and_a_hyphenated_pair_of_companies():
    assert tickers("Baker Brothers Ups Acadia Pharma Stake") == {"ACAD"}
    assert {"CRON", "MO"} <= tickers("Canopy Growth still best way to play cannabis even with Cronos-Altria deal")


def test_all_caps_and_all_lower_text_link_long_names_only():
    assert tickers("GENERAL MOTORS CUTS OUTPUT") == {"GM"}
    assert tickers("APPLE AND MICROSOFT LEAD GAINS") == tickers("apple and microsoft lead gains") == {"MSFT"}
    assert "AAPL" not in tickers("the ibm of apple tea")
    assert {"MSFT"} <= tickers("İstanbul exchange: Microsoft Corporation shares up")


def test_review_findings_each_with_its_example():
    # Typographic apostrophes and dashes are read as ASCII ones, offsets unchanged.
    assert tickers("McDonald’s sales rise") == {"MCD"} and tickers("Rolls–Royce wins order") == {"RR.L"}
    # A dateline is not a symbol; a lower-case word after an exchange is not one either.
    assert tickers("Nasdaq: Apple shares jump") == {"AAPL"} and tickers("NYSE: Stocks fall as Apple slides") == {"AAPL"}
    # Acronyms in parentheses that only an SEC filer uses as a ticker, and labels in capitals, link nothing.
    assert tickers("Regulator reviews the deal (NHS) today") == set()
    assert tickers("LIVE: Stocks fall as Fed decision looms") == set()
    # A country's possessive is Reuters style, not a place guard ("Brazil's Amazon" is, for a place-like name).
    assert tickers("Germany's Siemens cuts 5,000 jobs") == {"SIE.DE"}
    # "& Name" keeps the first of two companies.
    assert tickers("Apple & Google team up") == {"AAPL", "GOOGL"}
    # A month before a name is not a first name.
    assert tickers("In June Apple sold more phones than expected") == {"AAPL"}
    # A bank's own deal with another company keeps it the subject; its rating of one does not.
    assert tickers("Barclays raises stake in Tesco") == {"BARC.L", "TSCO.L"}
    assert tickers("JPMorgan cuts ties with Tesla") == {"JPM", "TSLA"}
    assert tickers("Tesco buys Dunnhumby stake from Barclays") == {"TSCO.L", "BARC.L"}
    assert tickers("Moody's cuts 4,000 jobs") == {"MCO"}
    # A single provided symbol is a symbol, not its letters; hyphenated tickers resolve as written.
    assert tickers("x", provided="AAPL") == {"AAPL"} and tickers("x", provided=["BT-A.L"]) == {"BT-A.L"}


# --------------------------------------------------------------------------------------- roles and relevance


def test_roles_and_relevance_reflect_position():
    spans = {s.ticker: s for s in find("Pfizer wins as Moderna slumps")}
    assert (spans["PFE"].role, spans["MRNA"].role) == ("subject", "object")
    assert 0 < spans["MRNA"].relevance < spans["PFE"].relevance <= 100
    listed = {s.ticker: s.role for s in find("Apple, Microsoft, Alphabet and Meta lead Nasdaq higher")}
    assert listed["AAPL"] == "subject" and listed["META"] == "passing"
    (headline,) = link("Apple beats", "")
    (body,) = link("Earnings roundup", "Apple beats")
    (late,) = link("Earnings roundup", "x " * 400 + "Apple beats")
    (repeated,) = link("Apple beats", "Apple, Apple and Apple again")
    (cashtag,) = link("$AAPL beats", "")
    assert 0 < late.relevance < body.relevance < headline.relevance < repeated.relevance <= 100
    assert cashtag.relevance > headline.relevance
    assert (headline.in_headline, body.in_headline, headline.method, cashtag.method) == (True, False, "name", "cashtag")


def test_spans_are_offsets_into_the_text():
    text = "UPDATE 1-Shell and BP's $3bn deal"
    for s in find(text):
        assert text[s.start : s.end] == s.text


def test_huge_body_only_lead_is_scanned():
    body = "Apple rallies. " + "filler words here " * 600_000 + " $MSFT"
    assert tickers("Markets", body) == {"AAPL"}


# ------------------------------------------------------------------------------------ quality on judged data

# Measured on all 600 rows (listing dates, former tickers, symbol lists, rare one-word filer names, banks as sources
# on every exchange, finance arms, SEC names in capitals): all P 0.988 R 0.817; UK/US files P 0.984 R 0.916; the
# linker before issue 19 scored R 0.53 (UK/US 0.67) at P 0.95. Issue 19's targets (P >= 0.98, R >= 0.90) hold for the
# UK/US files and are asserted there; overall recall does not reach them (Benzinga's delisted small caps;
# docs/entities.md, "Quality"): that floor guards what was reached, with a small margin.
FLOORS = {"all": (0.98, 0.80), "uk_us": (0.98, 0.90)}


@pytest.mark.parametrize("subset", sorted(FLOORS))
def test_quality_on_hand_labelled_spans(subset, capsys):
    result = evaluate()
    r = result[subset]
    precision_floor, recall_floor = FLOORS[subset]
    with capsys.disabled():
        print(f"\nticker spans {subset}: precision {r['precision']:.3f} recall {r['recall']:.3f} "
              f"on {r['rows']} headlines, {r['gold']} gold mentions")  # fmt: skip
    assert result["all"]["rows"] >= 500
    assert r["precision"] >= precision_floor
    assert r["recall"] >= recall_floor
