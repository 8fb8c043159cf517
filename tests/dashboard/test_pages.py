"""Every dashboard page run by Streamlit's AppTest against the seeded database: what it shows and what it changes."""

from __future__ import annotations

import csv
import html as html_module
import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import make_engine
from core.schema import Alert, AlertEvent, Silence
from dashboard.render import md_escape

from .conftest import HOSTILE, ITEMS, REPO, VERSION, stories_in_buckets

CARD = json.loads((REPO / "model" / "weights" / VERSION / "card.json").read_text())


def html(at) -> str:
    """Everything the page rendered as HTML (st.html) or Markdown, in order."""
    return "\n".join([h.value for h in at.html] + [m.value for m in at.markdown] + [c.value for c in at.caption])


def visible(markup: str) -> str:
    """The text a browser shows for some HTML: tags dropped, entities decoded."""
    return html_module.unescape(re.sub(r"<[^>]+>", "", markup))


def assert_no_raw_markup(at) -> None:
    rendered = html(at).lower()
    assert "<script" not in rendered and "<img" not in rendered


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def chart_with(at, column: str) -> list[pd.DataFrame]:
    """The data sets of the page's Altair charts that have this column (Streamlit sends them as Arrow)."""
    import pyarrow as pa

    frames = [
        pa.ipc.open_stream(dataset.data.data).read_pandas()
        for element in at.get("vega_lite_chart")
        for dataset in element.proto.datasets
    ]
    return [f for f in frames if column in f.columns]


def rows(at, index: int = 0) -> int:
    return at.html[index].value.count('class="fs-row"')


def by_time(*, within_minutes: float | None = None, ticker: str | None = None) -> list[str]:
    items = sorted(ITEMS, key=lambda i: i.minutes_ago)
    return [
        i.title
        for i in items
        if (within_minutes is None or i.minutes_ago < within_minutes) and (ticker is None or ticker in i.tickers)
    ]


# ------------------------------------------------------------------------------------------------------------ Live


def test_live_page_shows_the_latest_news(seeded, app):
    at = app(seeded.url)
    assert [t.value for t in at.title] == ["Live news"]
    week = by_time(within_minutes=7 * 24 * 60)
    assert rows(at) == len(week) == 27  # published within the default 7 days (two items are older)
    table = at.dataframe[0].value
    assert table["headline"].tolist() == week
    first = table.iloc[0]
    nokia = seeded.ids["Nokia shares plunge after profit warning"]
    assert (first["source"], first["tickers"], first["label"]) == ("cnbc", "NOK", "negative")
    assert first["story"] == f"dup of #{nokia}" and table.iloc[1]["story"] == "new"
    assert first["top words"] == "plunge, warning, profit"
    news = at.html[0].value
    cells = re.findall(r'<td class="fs-(score|confidence)"[^>]*>([^<]*)</td>', news)
    assert cells[:2] == [("score", "-0.88"), ("confidence", "0.91")]  # score -0.883, confidence 0.91, formatted
    assert 'Nokia shares <span class="fs-word" style="background-color: rgba(220, 38, 38, 0.75)' in news
    assert f'href="explain?article={nokia}"' in news
    # The hostile headline is text: escaped in the HTML (its attended words highlighted in between), never a tag.
    assert "&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt; Corp" in news and "&lt;" in news
    assert HOSTILE in visible(news)
    assert_no_raw_markup(at)


def test_live_market_and_pipeline_panels(fresh_seeded, app):
    seeded = fresh_seeded
    at = app(seeded.url)
    assert metric(at, "Stories (1 h)") == "6" and metric(at, "Negative (1 h)") == "50%"
    assert metric(at, "Mean (1 h)").startswith("-")
    [day] = chart_with(at, "mean_score")
    # The page reads the clock seconds after the seed did; that can drop the oldest bucket, which holds no article.
    assert len(day) == 96 and day["stories"].sum() == stories_in_buckets(seeded.now, window_s=900, buckets=96)
    assert day["mean_score"].dropna().between(-1, 1).all()
    assert metric(at, "Items/min (15 min)") == "0.2"
    assert metric(at, "Last item") == "4 min ago"
    assert metric(at, "Rejects (1 h)") == "3"
    [per_minute] = chart_with(at, "minute")
    assert len(per_minute) == 15 and per_minute["items"].sum() == 3
    frames = {tuple(d.value.columns)[:2]: d.value for d in at.dataframe}
    assert frames[("stage", "count")].values.tolist() == [["decode", 2], ["normalize", 1]]
    sources = frames[("source", "kind")].set_index("source")
    assert sources.loc["cnbc", "status"] == "error" and sources.loc["cnbc", "last_error"].startswith("HTTP 503")
    assert sources.loc["sec-filings", "status"] == "no data yet"


def test_live_filters(seeded, app):
    at = app(seeded.url)
    at.multiselect(key="tickers").set_value(["AAPL"])
    at.multiselect(key="labels").set_value(["positive"])
    at.run()
    assert not at.exception

    def positive(within_minutes: float, ticker: str | None = None) -> list[str]:
        titles = by_time(within_minutes=within_minutes, ticker=ticker)
        return [t for t in titles if next(i for i in ITEMS if i.title == t).label == "positive"]

    assert at.dataframe[0].value["headline"].tolist() == positive(7 * 1440, "AAPL") and rows(at) == 4
    at.multiselect(key="tickers").set_value([]).run()
    assert at.dataframe[0].value["headline"].tolist() == positive(7 * 1440) and rows(at) == 12
    at.selectbox(key="within").set_value("24 hours").run()
    assert at.dataframe[0].value["headline"].tolist() == positive(1440) and rows(at) == 10
    at.multiselect(key="tickers").set_value(["AAPL"])
    at.multiselect(key="sources").set_value(["cnbc"])
    at.run()
    assert at.dataframe[0].value["headline"].tolist() == [
        "Goldman Sachs upgrades Apple to buy",
        "Apple supplier Foxconn reports record revenue",
    ]
    at.slider(key="min_confidence").set_value(0.95).run()
    assert not at.html and "No scored news matches" in at.info[0].value


def test_live_page_reads_any_stored_range(writable, app):
    _history(writable.url)
    at = app(writable.url, page="live", query={"since": "2020-03-01", "until": "2020-03-31"})
    assert not at.exception and at.selectbox(key="within").value == "Date range"
    assert "BA" in at.multiselect(key="tickers").options  # no news for years, still offered
    assert at.dataframe[0].value["headline"].tolist() == [
        "Boeing draws down its full $13.8 billion credit line",
        "Boeing shares plunge as airlines ground fleets",
    ]
    assert any(s.value == "News · 2020-03-01 to 2020-03-31" for s in at.subheader)
    at.selectbox(key="within").set_value("24 hours").run()  # back to live news: the range leaves the address
    assert "since" not in at.query_params and "Boeing draws down" not in " ".join(at.dataframe[0].value["headline"])


# ---------------------------------------------------------------------------------------------------------- Ticker


def test_ticker_page(seeded, app):
    at = app(seeded.url, page="ticker")
    assert [t.value for t in at.title] == ["Ticker"]
    assert at.multiselect(key="tickers").value == ["AAPL"]  # the most mentioned
    [series] = chart_with(at, "mean_score")
    assert set(series["ticker"]) == {"AAPL"} and len(series) == 7 * 24  # 7 days of 1-hour buckets
    assert series["stories"].sum() == 6
    # The rolling line: the last 24 hours of buckets, each weighted by its stories.
    day = series.tail(24)
    expected = (day["mean_score"].fillna(0) * day["stories"]).sum() / day["stories"].sum()
    assert series["rolling_score"].iloc[-1] == pytest.approx(expected) and -1 <= expected <= 1
    [markers] = chart_with(at, "starts_at")
    assert markers[["ticker", "rule", "status"]].values.tolist() == [["AAPL", "volume_spike", "resolved"]]
    assert rows(at) == 6
    assert all(t in visible(at.html[0].value) for t in by_time(ticker="AAPL"))
    words = {lbl: frame for lbl, frame in zip(("negative", "neutral", "positive"), at.dataframe[-3:], strict=True)}
    assert words["negative"].value["word"].tolist() == ["fine", "antitrust", "faces"]
    assert words["positive"].value.iloc[0].to_dict() == {"word": "upgrades", "weight": 0.5, "count": 1}


def test_ticker_page_from_query_and_bucket(seeded, app):
    at = app(seeded.url, page="ticker", query={"ticker": "NOK"})
    assert at.multiselect(key="tickers").value == ["NOK"]
    assert rows(at) == 3  # two copies of the profit warning story and the older contract win
    at.selectbox(key="bucket").select_index(1).run()  # the newest hour with NOK news
    assert rows(at) == 2 and "Nokia wins" not in at.html[0].value
    negative = at.dataframe[-3].value
    assert negative.iloc[0].to_dict() == {"word": "plunge", "weight": 0.41, "count": 1}  # the story counted once
    at.multiselect(key="tickers").set_value(["NOK", "AAPL"]).run()
    [series] = chart_with(at, "mean_score")
    assert set(series["ticker"]) == {"AAPL", "NOK"}
    assert at.selectbox(key="focus").value == "NOK"


def _history(url: str) -> None:
    """Two 2020 headlines about Boeing (BA), scored by the seeded version, as a backfill of 2020 leaves them."""
    from core.schema import Article, Mention, Score, Source

    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        source = Source(name="archive", kind="file")
        session.add(source)
        session.flush()
        for i, (when, title, label) in enumerate([
            (datetime(2020, 3, 9, 14, tzinfo=UTC), "Boeing shares plunge as airlines ground fleets", "negative"),
            (datetime(2020, 3, 11, 9, tzinfo=UTC), "Boeing draws down its full $13.8 billion credit line", "negative"),
        ]):  # fmt: skip
            article = Article(source_id=source.id, title=title, published_at=when, content_hash=f"{i:064d}")
            session.add(article)
            session.flush()
            article.story_id = article.id
            session.add(Mention(article_id=article.id, ticker="BA", published_at=when))
            session.add(Score(article_id=article.id, model_version=VERSION, label=label, p_negative=0.9,
                              p_neutral=0.05, p_positive=0.05, score=-0.85, confidence=0.9))  # fmt: skip
    engine.dispose()


def test_ticker_page_shows_any_stored_period_from_a_deep_link(writable, app):
    """After a backfill of 2020: the ticker is offered although it has no recent news, the link's range is
    honoured and written back, and the stories behind a point are there."""
    _history(writable.url)
    at = app(writable.url, page="ticker", query={"ticker": "ba", "since": "2020-03-01", "until": "2020-03-31"})
    assert not at.exception and not at.warning
    assert at.multiselect(key="tickers").value == ["BA"] and "BA" in at.multiselect(key="tickers").options
    assert at.selectbox(key="period").value == "Date range"
    [series] = chart_with(at, "mean_score")
    assert len(series) == 31 * 24 and series["stories"].sum() == 2  # 1-hour buckets over March 2020
    assert series["bucket_start"].min() == pd.Timestamp("2020-03-01", tz="UTC")
    assert rows(at) == 2 and "Boeing draws down" in visible(at.html[0].value)
    assert at.query_params["since"] == "2020-03-01" and at.query_params["ticker"] in ("BA", ["BA"])
    at.selectbox(key="bucket").select_index(1).run()  # the newest hour with news: the stories behind that point
    assert rows(at) == 1 and "Boeing draws down" in visible(at.html[0].value)
    # A year asked for in 15-minute buckets: too many, drawn in days and said so.
    at.selectbox(key="window").set_value("15 minutes").run()
    at.date_input(key="period_range").set_value((datetime(2019, 6, 1).date(), datetime(2020, 5, 31).date())).run()
    [series] = chart_with(at, "mean_score")
    assert len(series) == 366 and series["stories"].sum() == 2
    assert any("showing 1 day" in c.value for c in at.caption)


def test_ticker_page_event_view_and_links_it_cannot_honour(writable, app):
    _history(writable.url)
    at = app(writable.url, page="ticker", query={"ticker": "BA", "at": "2020-03-10", "days": "2"})
    assert at.selectbox(key="period").value == "Around a date"
    [series] = chart_with(at, "mean_score")
    assert len(series) == 5 * 24 and series["stories"].sum() == 2  # 8 to 12 March
    assert any("2 days either side of 2020-03-10" in s.value for s in at.subheader)
    # An unknown ticker is kept and explained; an unreadable date is named, and the preset shown instead.
    at = app(writable.url, page="ticker", query={"ticker": ["BA", "ZZZZ"], "since": "2020-13-01"})
    assert at.multiselect(key="tickers").value == ["BA", "ZZZZ"]
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("No stored news mentions ZZZZ") for w in warnings)
    unread = md_escape("The link's since=2020-13-01 is not a date (YYYY-MM-DD): showing last 7 days instead.")
    assert unread in warnings
    assert at.selectbox(key="period").value == "Last 7 days"


# ---------------------------------------------------------------------------------------------------------- Alerts


def test_alerts_page_lists_alerts_with_evidence(seeded, app, monkeypatch):
    monkeypatch.setenv("FINSENT_FEED_URL", "https://feeds.example.com/")
    at = app(seeded.url, page="alerts")
    assert [t.value for t in at.title] == ["Alerts"]
    labels = [e.label for e in at.expander if "·" in e.label]
    assert labels == [
        md_escape("FIRING · negative_burst · NOK · critical"),
        md_escape("PENDING · negative_burst · EVIL · critical"),
        md_escape("RESOLVED · volume_spike · AAPL · warning"),
    ]
    assert (metric(at, "Firing"), metric(at, "Pending"), metric(at, "Resolved")) == ("1", "1", "1")
    assert at.code[0].value == "https://feeds.example.com/alerts.atom\nhttps://feeds.example.com/alerts.json"
    evidence = [h.value for h in at.html]
    assert evidence[0].count('class="fs-evidence"') == 2 and ">plunge</span>" in evidence[0]
    assert "Nokia shares plunge after a profit warning" in visible(evidence[0])
    assert HOSTILE in visible(evidence[1]) and "&lt;/script&gt;" in evidence[1]
    assert_no_raw_markup(at)
    # Only open, unacknowledged alerts can be acknowledged.
    assert len([b for b in at.button if b.label == "Acknowledge"]) == 2
    at.multiselect(key="statuses").set_value(["resolved"]).run()
    assert [e.label for e in at.expander if "·" in e.label] == [md_escape("RESOLVED · volume_spike · AAPL · warning")]


def test_alerts_page_filters_by_ticker_in_any_case_and_shows_replayed_history_on_request(writable, app):
    engine = make_engine(writable.url)
    with Session(engine) as session, session.begin():
        when = writable.now - timedelta(days=400)
        session.add(Alert(fingerprint="replayed-aapl", rule="negative_burst", severity="critical", ticker="AAPL",
                          labels=json.dumps({"alertname": "negative_burst", "ticker": "AAPL"}), annotations="{}",
                          status="resolved", active_at=when, starts_at=when, ends_at=when, replayed=True,
                          updated_at=writable.now))  # fmt: skip
    engine.dispose()
    at = app(writable.url, page="alerts")
    labels = [e.label for e in at.expander if "·" in e.label]
    assert len(labels) == 3 and not any("REPLAYED" in label for label in labels)  # live alerts only, by default
    at.checkbox(key="alert_replayed").check().run()
    labels = [e.label for e in at.expander if "·" in e.label]
    assert md_escape("REPLAYED · RESOLVED · negative_burst · AAPL · critical") in labels and len(labels) == 4
    at.text_input(key="alert_tickers").set_value("nok, aapl").run()
    assert sorted(e.label for e in at.expander if "·" in e.label) == [
        md_escape("FIRING · negative_burst · NOK · critical"),
        md_escape("REPLAYED · RESOLVED · negative_burst · AAPL · critical"),
        md_escape("RESOLVED · volume_spike · AAPL · warning"),
    ]
    at.text_input(key="alert_tickers").set_value("zzzz").run()
    assert not [e for e in at.expander if "·" in e.label]
    assert at.info[0].value == ("No alerts match: statuses pending, firing, resolved about ZZZZ.")


def test_acknowledge_an_alert(writable, app):
    alert_id = writable.ids["alert:firing"]
    at = app(writable.url, page="alerts")
    at.text_input(key=f"ack-who-{alert_id}").set_value("ana")
    at.text_input(key=f"ack-comment-{alert_id}").set_value("looking into it")
    at.button(key=f"ack-submit-{alert_id}").click().run()
    assert not at.exception
    engine = make_engine(writable.url)
    with Session(engine) as session:
        alert = session.get(Alert, alert_id)
        assert alert.acked_by == "ana" and alert.acked_at is not None
        events = session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert_id, AlertEvent.event == "acked"))
        assert [e.detail for e in events] == ["ana: looking into it"]
    engine.dispose()
    assert at.success[0].value == f"Alert {alert_id} acknowledged by ana."
    facts = at.dataframe[0].value.set_index("")
    assert facts.loc["acknowledged", "value"].startswith("ana at ")
    assert len([b for b in at.button if b.label == "Acknowledge"]) == 1  # the pending one is left


def test_create_and_expire_silences(writable, app):
    at = app(writable.url, page="alerts")
    at.text_area(key="silence_matchers").set_value("ticker=NOK\nalertname=~neg.*")
    at.text_input(key="silence_author").set_value("bo")
    at.text_input(key="silence_comment").set_value("known issue")
    at.text_input(key="silence_duration").set_value("1h")
    before = datetime.now(UTC)
    at.button(key="silence-create").click().run()
    assert not at.exception
    engine = make_engine(writable.url)
    with Session(engine) as session:
        created = session.scalars(select(Silence).order_by(Silence.id.desc())).first()
        assert session.query(Silence).count() == 3
        assert json.loads(created.matchers) == [
            {"name": "ticker", "op": "=", "value": "NOK"},
            {"name": "alertname", "op": "=~", "value": "neg.*"},
        ]
        assert (created.author, created.comment) == ("bo", "known issue")
        assert timedelta(minutes=59) < created.ends_at - before < timedelta(minutes=61)
    assert at.success[0].value == f"Silence {created.id} created."
    facts = at.dataframe[0].value.set_index("")  # the firing NOK alert now matches the new silence
    assert facts.loc["silenced by", "value"] == f"#{created.id}"
    silences = next(d.value for d in at.dataframe if "matchers" in d.value.columns)
    assert silences.iloc[0][["id", "active", "matchers"]].tolist() == [created.id, True, "ticker=NOK, alertname=~neg.*"]

    # A bad matcher is refused with the monitor's message, and nothing is stored.
    at.text_area(key="silence_matchers").set_value("ticker")
    at.button(key="silence-create").click().run()
    assert at.error[0].value.startswith(md_escape("matcher 'ticker': expected NAME=VALUE"))
    # Expire the BA silence now.
    ba = next(s.id for s in session.scalars(select(Silence)) if "BA" in s.matchers)
    at.selectbox(key="expire_id").set_value(ba)
    at.button(key="silence-expire").click().run()
    with Session(engine) as session:
        assert session.query(Silence).count() == 3
        expired = session.get(Silence, ba)
        assert expired.expired_early_at is not None and expired.ends_at <= datetime.now(UTC)
    engine.dispose()
    assert at.success[0].value == f"Silence {ba} expired."


# --------------------------------------------------------------------------------------------------------- Explain


def test_explain_page_for_an_article(seeded, app):
    hostile = seeded.ids[HOSTILE]
    at = app(seeded.url, page="explain", query={"article": str(hostile)})
    assert [t.value for t in at.title] == ["Explain"]
    assert at.number_input[0].value == hostile
    headline = at.html[0].value
    assert HOSTILE in visible(headline) and ">falls</span>" in headline and "&lt;/script&gt;" in headline
    assert_no_raw_markup(at)
    assert (metric(at, "Label"), metric(at, "Score"), metric(at, "Confidence")) == ("negative", "-0.74", "0.80")
    [probabilities] = chart_with(at, "probability")
    assert probabilities.set_index("label")["probability"].round(3).to_dict() == {
        "negative": 0.8,
        "neutral": 0.14,
        "positive": 0.06,
    }
    words = next(d.value for d in at.dataframe if "rank" in d.value.columns)
    assert words[["word", "weight"]].values.tolist() == [["falls", 0.5], ["Evil", 0.2], ["script", 0.05]]
    assert all(HOSTILE[s:e] == w for w, s, e in words[["word", "start", "end"]].values.tolist())
    faith = next(d.value for d in at.dataframe if "comprehensiveness" in d.value.columns).set_index("method")
    assert faith.loc["pooling", "comprehensiveness"] == CARD["faithfulness"]["methods"]["pooling"]["comprehensiveness"]
    assert faith.loc["ig", "sufficiency"] == CARD["faithfulness"]["methods"]["ig"]["sufficiency"]
    assert any(VERSION in md_escape(c.value) or md_escape(VERSION) in c.value for c in at.caption)
    assert [b.label for b in at.button] == ["Compute rollout and Integrated Gradients"]
    assert at.text[0].value.startswith(HOSTILE)  # the body, as plain text


def test_explain_page_story_and_missing_article(seeded, app):
    at = app(seeded.url, page="explain", query={"article": str(seeded.ids["Nokia shares plunge after profit warning"])})
    story = next(d.value for d in at.dataframe if "title" in d.value.columns and "article_id" in d.value.columns)
    assert story["title"].tolist() == ["Nokia shares plunge after a profit warning"]
    cited = next(d.value for d in at.dataframe if "rule" in d.value.columns)
    assert cited[["rule", "status"]].values.tolist() == [["negative_burst", "firing"]]
    at.number_input[0].set_value(999999).run()
    assert at.warning[0].value == "No article 999999."
    assert at.query_params["article"] == "999999"  # the URL follows the input


def test_explain_page_never_imports_torch(seeded):
    """Every dashboard module imports without torch, and the Explain page renders without it."""
    script = f"""
import importlib, pkgutil, sys
import dashboard, dashboard.views
for package in (dashboard, dashboard.views):
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{{package.__name__}}.{{module.name}}")
assert "torch" not in sys.modules, "importing the dashboard imported torch"
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(REPO / "dashboard" / "app.py")!r}, default_timeout=60).run()
at.switch_page("views/explain.py")
at.query_params["article"] = "{seeded.ids["Nokia shares plunge after profit warning"]}"
at.run()
assert not at.exception, at.exception
assert [t.value for t in at.title] == ["Explain"], at.title
assert "torch" not in sys.modules, "the Explain page imported torch"
print("ok", len(sys.modules))
"""
    env = os.environ | {"FINSENT_DATABASE_URL": seeded.url}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")


@pytest.mark.slow
def test_explain_button_computes_rollout_and_ig(seeded, app):
    """The button loads the real model (seconds) and shows the three explanations side by side."""
    title = "Nokia shares plunge after profit warning"
    at = app(seeded.url, page="explain", query={"article": str(seeded.ids[title])})
    at.button(key="explain-more").click().run(timeout=180)
    assert not at.exception
    panels = [h.value for h in at.html if 'class="fs-method"' in h.value]
    assert [p.split('data-method="')[1].split('"')[0] for p in panels] == ["pooling", "rollout", "ig"]
    for panel in panels:
        assert panel.count('class="fs-word"') >= 1
    word_tables = [d.value for d in at.dataframe if "rank" in d.value.columns]
    assert len(word_tables) == 4  # the stored words, then one table per method
    for table in word_tables[1:]:
        assert 1 <= len(table) <= 5 and all(title[s:e] == w for w, s, e in table[["word", "start", "end"]].values)


# ----------------------------------------------------------------------------------------------------------- Model


def test_model_card_page(seeded, app):
    at = app(seeded.url, page="model")
    assert [t.value for t in at.title] == ["Model card"]
    assert metric(at, "Version") == VERSION and metric(at, "CPU path") == CARD["inference"]["cpu_default"]
    assert at.markdown[0].value.startswith(f"# Model card: `{VERSION}`")
    metrics = at.dataframe[0].value.set_index(["path", "split"])
    for path, splits in CARD["metrics"]["test"].items():  # every measured path (the card says which were)
        assert metrics.loc[(path, "phrasebank_50agree"), "accuracy"] == splits["phrasebank_50agree"]["accuracy"]
    assert len(metrics) == sum(len(v) for v in CARD["metrics"]["test"].values())
    default = CARD["metrics"]["test"][CARD["inference"]["cpu_default"]]  # the page opens on the default path
    confusion = at.dataframe[1].value
    assert confusion.drop(columns=[""]).values.tolist() == default["fiqa"]["confusion"]
    at.selectbox(key="cm_split").set_value("twitter").run()
    assert at.dataframe[1].value.drop(columns=[""]).values.tolist() == default["twitter"]["confusion"]
    faith = next(d.value for d in at.dataframe if "comprehensiveness" in d.value.columns)
    assert faith["method"].tolist() == list(CARD["faithfulness"]["methods"])
    calibration = next(d.value for d in at.dataframe if "ece_after" in d.value.columns).set_index("part")
    assert calibration.loc["test", "ece_after"] == CARD["calibration"]["test"]["ece_after"]


# ---------------------------------------------------------------------------------------------------------- Search


@pytest.fixture
def downloads(monkeypatch):
    """The media stores AppTest creates, so a download button's bytes can be read back."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import app_test

    stores = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, endpoint: str) -> None:
            super().__init__(endpoint)
            stores.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)

    def read(button) -> bytes:
        name = button.proto.url.rsplit("/", 1)[1]
        return stores[-1].get_file(name).content

    return read


def test_search_page_finds_headlines_and_exports_csv(seeded, app, downloads):
    at = app(seeded.url, page="search")
    assert [t.value for t in at.title] == ["Search"]
    assert not at.download_button  # nothing searched yet
    at.text_input(key="q").set_value("profit warning").run()
    found = [
        "Nokia shares plunge after a profit warning",
        "Nokia shares plunge after profit warning",
        "IBM profit warning rattles investors",
    ]
    assert at.dataframe[0].value["headline"].tolist() == found
    assert rows(at) == 3 and "3 headlines" in [c.value for c in at.caption]
    assert all(t in visible(at.html[0].value) for t in found)
    assert "Apple" not in at.html[0].value and "Oracle" not in at.html[0].value
    exported = list(csv.DictReader(io.StringIO(downloads(at.download_button[0]).decode())))
    assert [r["title"] for r in exported] == found
    assert exported[0]["label"] == "negative" and exported[0]["tickers"] == "NOK" and exported[0]["score"] == "-0.8830"
    assert at.download_button[0].proto.label == "Download CSV"
    # Narrower: the last two days only, then negative Nokia news only.
    today = datetime.now(UTC).date()
    at.date_input(key="dates").set_value((today - timedelta(days=2), today)).run()
    assert at.dataframe[0].value["headline"].tolist() == found[:2]
    at.text_input(key="q").set_value("nokia").run()
    at.date_input(key="dates").set_value((today - timedelta(days=29), today)).run()
    at.multiselect(key="search_labels").set_value(["positive"]).run()
    assert at.dataframe[0].value["headline"].tolist() == ["Nokia wins 5G contract in Japan"]


def test_search_page_escapes_hostile_headlines(seeded, app, downloads):
    at = app(seeded.url, page="search")
    at.text_input(key="q").set_value("<script>").run()
    assert at.dataframe[0].value["headline"].tolist() == [HOSTILE]  # text in a table cell, not markup
    assert "&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;" in at.html[0].value
    assert HOSTILE in visible(at.html[0].value)
    assert_no_raw_markup(at)
    [row] = csv.DictReader(io.StringIO(downloads(at.download_button[0]).decode()))
    assert row["title"] == HOSTILE
    at.text_input(key="q").set_value("no such headline anywhere").run()
    assert not at.download_button and "No headline matches" in at.info[0].value


# ------------------------------------------------------------------------------------------------ empty databases


@pytest.mark.parametrize("page", ["live", "ticker", "alerts", "explain", "model", "search"])
def test_every_page_renders_on_an_empty_database(page, tmp_path, app):
    from core.db import upgrade

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    at = app(url, page=page)
    assert not at.error and len(at.title) == 1


def test_an_unmigrated_database_is_explained(tmp_path, app):
    at = app(f"sqlite:///{tmp_path / 'nothing.db'}")
    assert [t.value for t in at.title] == ["Live news"]
    assert "no such table" in at.error[0].value and "finsent db upgrade" in at.error[0].value


def test_a_database_a_newer_finsent_migrated_and_a_misspelt_setting_are_explained(writable, app, monkeypatch):
    """Started by `streamlit run` (not `finsent dashboard`, which checks first), the page says what is wrong."""
    import sqlite3

    with sqlite3.connect(writable.path) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    at = app(writable.url)
    assert "the database is at revision 'ffffffffffff', which this finsent does not know" in at.error[0].value
    monkeypatch.setenv("FINSENT_DATABSE_URL", writable.url)
    at = app(writable.url)
    assert at.error[0].value.startswith(md_escape("FINSENT_DATABSE_URL is not a finsent setting"))
