"""Ticker: rolling sentiment and story volume of chosen tickers, with alert markers, the stories and the words."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from core.schema import LABELS
from dashboard import cache, periods
from dashboard.queries import MAX_BUCKETS
from dashboard.render import highlight, md_escape, news_table

PERIODS = {"Last 24 hours": timedelta(days=1), "Last 7 days": timedelta(days=7), "Last 30 days": timedelta(days=30)}
WINDOWS = {"15 minutes": 900, "1 hour": 3600, "1 day": 86400}


# The rolling line spans this many buckets: 4 hours of 15 minutes, a day of hours, a week of days.
ROLLING = {900: 16, 3600: 24, 86400: 7}


def with_rolling(series: pd.DataFrame, buckets: int) -> pd.DataFrame:
    """Adds `rolling_score`: the mean score over the last `buckets` buckets, each bucket weighted by its stories.

    A presentation of the SQL aggregates (at most 2,000 buckets a ticker): the buckets keep no total weight, so
    stories stand in for relevance x confidence across buckets.
    """
    parts = []
    for _, part in series.sort_values(["ticker", "bucket_start"]).groupby("ticker", sort=False):
        part = part.copy()
        stories = part["stories"].rolling(buckets, min_periods=1).sum()
        weighted = (part["mean_score"].fillna(0.0) * part["stories"]).rolling(buckets, min_periods=1).sum()
        part["rolling_score"] = (weighted / stories).where(stories > 0)
        parts.append(part)
    return pd.concat(parts) if parts else series.assign(rolling_score=pd.Series(dtype=float))


def sentiment_chart(series: pd.DataFrame, alerts: pd.DataFrame, rolling_label: str) -> alt.LayerChart:
    """Rolling sentiment per ticker (lines; dots: each bucket; alert start times as red rules)."""
    data = series[["ticker", "bucket_start", "mean_score", "rolling_score", "stories", "items"]].copy()
    x = alt.X("bucket_start:T", title="time (UTC)")
    y_scale = alt.Scale(domain=[-1, 1])
    tooltip = [
        "ticker:N",
        alt.Tooltip("bucket_start:T", format="%Y-%m-%d %H:%M"),
        alt.Tooltip("mean_score:Q", format="+.2f", title="bucket mean"),
        alt.Tooltip("rolling_score:Q", format="+.2f", title=f"rolling {rolling_label}"),
        "stories:Q",
    ]
    line = (
        alt.Chart(data)
        .mark_line(interpolate="monotone")
        .encode(x=x, y=alt.Y("rolling_score:Q", title="mean score", scale=y_scale), color="ticker:N", tooltip=tooltip)
    )
    dots = (
        alt.Chart(data)
        .mark_point(filled=True, opacity=0.5, size=30)
        .encode(x=x, y=alt.Y("mean_score:Q", scale=y_scale), color="ticker:N", tooltip=tooltip)
    )
    layers = [line, dots]
    if not alerts.empty:
        markers = alerts[["alert_id", "ticker", "rule", "severity", "status", "starts_at"]].copy()
        layers.append(
            alt.Chart(markers)
            .mark_rule(color="#dc2626", strokeDash=[4, 3], strokeWidth=2)
            .encode(
                x="starts_at:T",
                tooltip=[
                    "alert_id:Q",
                    "ticker:N",
                    "rule:N",
                    "severity:N",
                    "status:N",
                    alt.Tooltip("starts_at:T", format="%Y-%m-%d %H:%M"),
                ],
            )
        )
    return alt.layer(*layers).properties(
        height=260,
        title=f"Sentiment (line: rolling {rolling_label}; dots: each bucket; red: alerts fired)",
    )


def volume_chart(series: pd.DataFrame) -> alt.Chart:
    """Stories per ticker and bucket (bars stacked by ticker)."""
    x = alt.X("bucket_start:T", title="time (UTC)")
    return (
        alt.Chart(series[["ticker", "bucket_start", "stories", "items"]])
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("stories:Q", title="stories"),
            color="ticker:N",
            tooltip=["ticker:N", alt.Tooltip("bucket_start:T", format="%Y-%m-%d %H:%M"), "stories:Q", "items:Q"],
        )
        .properties(height=140, title="Story volume (stories per bucket, near-duplicates once)")
    )


def words_chart(words: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(words)
        .mark_bar()
        .encode(
            x=alt.X("weight:Q", title="summed attention"),
            y=alt.Y("word:N", sort="-x", title=None),
            color=alt.Color(
                "label:N",
                scale=alt.Scale(domain=list(LABELS), range=["#dc2626", "#64748b", "#16a34a"]),
                legend=None,
            ),
            column=alt.Column("label:N", sort=list(LABELS), title=None),
            tooltip=["label:N", "word:N", alt.Tooltip("weight:Q", format=".3f"), "count:Q"],
        )
        .resolve_scale(y="independent")
        .properties(width=180, height=260)
    )


def fitting_window(span: timedelta, wanted_s: int) -> int:
    """The bucket length to draw `span` with: the one asked for, or the shortest longer one that keeps the series
    within MAX_BUCKETS buckets (a year of hours would be 8,760)."""
    for window_s in sorted(w for w in WINDOWS.values() if w >= wanted_s):
        if span.total_seconds() / window_s <= MAX_BUCKETS:
            return window_s
    return max(WINDOWS.values())


def main() -> None:
    st.title("Ticker")
    url = cache.database_url()
    options = cache.known_tickers(url, since=None)  # every ticker stored, most mentioned first, back to 1987
    wanted = list(dict.fromkeys(t.strip().upper() for t in st.query_params.get_all("ticker") if t.strip()))
    unknown = [t for t in wanted if t not in options]
    left, middle, right = st.columns([3, 2, 1])
    tickers = left.multiselect("Tickers", [*options, *unknown], default=wanted or options[:1],
                               accept_new_options=True, key="tickers")  # fmt: skip
    period = periods.choose(middle, PERIODS, default="Last 7 days")
    window = right.selectbox("Window", list(WINDOWS), index=1, key="window")
    tickers = list(dict.fromkeys(t.strip().upper() for t in tickers if t.strip()))
    st.query_params["ticker"] = tickers  # the address names what is shown, so it can be shared
    stored = set(cache.stored_tickers(url, tickers=tuple(tickers))) if tickers else set()
    for ticker in (t for t in tickers if t not in stored):
        st.warning(md_escape(f"No stored news mentions {ticker}: nothing to chart for it. Backfill its history "
                             "(finsent backfill) or check the symbol."))  # fmt: skip
    if not tickers:
        st.info("Pick one or more tickers.")
        return
    since, until = period.since, period.until
    window_s = fitting_window(until - since, WINDOWS[window])
    if window_s != WINDOWS[window]:
        shown = next(name for name, seconds in WINDOWS.items() if seconds == window_s)
        st.caption(f"{md_escape(window)} buckets over {md_escape(period.label)} are too many; showing {shown}.")
    version = cache.model_version()
    data = cache.ticker_series(url, version=version, tickers=tickers, since=since, until=until, window_s=window_s)
    rolling_label = {900: "4 hours", 3600: "24 hours", 86400: "7 days"}[window_s]
    series, alerts = with_rolling(data["series"], ROLLING[window_s]), data["alerts"]

    st.subheader("Rolling sentiment and volume")
    if not series["stories"].sum():
        note = cache.version_note(url, version=version, since=since, until=until)
        if note:  # the period holds news, all of it scored by another model version
            st.warning(md_escape(note))
    st.altair_chart(sentiment_chart(series, alerts, rolling_label), width="stretch", height=300)
    st.altair_chart(volume_chart(series), width="stretch", height=180)
    totals = series.groupby("ticker", as_index=False).agg(stories=("stories", "sum"), items=("items", "sum"))
    st.dataframe(totals, hide_index=True)
    if not alerts.empty:
        replayed = int(alerts["replayed"].sum())
        note = f"; {replayed} of them replayed over history (finsent alerts replay), never notified" * bool(replayed)
        st.caption(f"{len(alerts)} alerts fired in this period (dashed red lines){note}.")
        st.dataframe(alerts, hide_index=True)

    st.subheader(f"Stories · {period.label}" if not period.live else "Stories")
    focus = st.selectbox("Ticker", tickers, key="focus") if len(tickers) > 1 else tickers[0]
    buckets = series[(series["ticker"] == focus) & (series["stories"] > 0)]["bucket_start"].tolist()
    whole = "whole period"
    chosen = st.selectbox(
        "Window",
        [whole, *reversed(buckets)],
        format_func=lambda b: b if isinstance(b, str) else f"{b:%Y-%m-%d %H:%M} UTC",
        key="bucket",
    )
    start, end = (since, until) if isinstance(chosen, str) else (chosen, chosen + timedelta(seconds=window_s))
    stories = cache.ticker_stories(url, version=version, ticker=focus, since=start, until=end, limit=100)
    st.caption(f"{len(stories)} articles about {md_escape(focus)}, newest first")
    if stories:
        st.html(news_table(stories))

    st.subheader("Words that drove sentiment")
    words = cache.ticker_words(url, version=version, ticker=focus, since=start, until=end)
    if words.empty:
        st.caption("No attended words in this window.")
        return
    st.altair_chart(words_chart(words))
    columns = st.columns(len(LABELS))
    for column, label in zip(columns, LABELS, strict=True):
        with column:
            st.html(f"<b>{highlight(label, [(0, len(label), 1.0)], label)}</b>")
            st.dataframe(words[words["label"] == label][["word", "weight", "count"]], hide_index=True)


if __name__ == "__main__":
    main()
