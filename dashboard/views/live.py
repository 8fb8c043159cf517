"""Live news: the latest scored items, market-wide sentiment and the pipeline's health, refreshing themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from core.schema import LABELS
from dashboard import cache, periods
from dashboard.render import age, md_escape, news_frame, news_table, signed

DAY_BUCKET_S = 900  # the day chart: 96 buckets of 15 minutes
NOW_WINDOW_S = 3600  # "now" is the last hour
# How far back the list may reach: also what bounds the work of a filter that matches little.
WITHIN = {"24 hours": timedelta(days=1), "7 days": timedelta(days=7), "30 days": timedelta(days=30)}


def filters(url: str) -> dict:
    """The sidebar: which news to show and how often to refresh."""
    sidebar = st.sidebar
    sidebar.header("Filters")
    tickers = sidebar.multiselect(
        "Tickers", cache.known_tickers(url, since=None), accept_new_options=True, key="tickers"
    )  # every stored ticker, most mentioned first: a backfilled history is as searchable as today's news
    sources = sidebar.multiselect("Sources", cache.source_names(url), key="sources")
    labels = sidebar.multiselect("Labels", list(LABELS), key="labels")
    min_confidence = sidebar.slider("Minimum confidence", 0.0, 1.0, 0.0, 0.05, key="min_confidence")
    period = periods.choose(sidebar, WITHIN, default="7 days", key="within", label="Published within")
    limit = sidebar.number_input("Items", min_value=10, max_value=500, value=50, step=10, key="limit")
    refresh = sidebar.number_input(
        "Refresh every (s)", min_value=1.0, max_value=600.0, value=cache.refresh_interval_s(), step=1.0, key="refresh"
    )
    return {
        "tickers": tuple(t.upper() for t in tickers),
        "sources": tuple(sources),
        "labels": tuple(labels),
        "min_confidence": float(min_confidence),
        "limit": int(limit),
        "period": period,
        "refresh": float(refresh),
    }


def news_panel(url: str, version: str, chosen: dict) -> None:
    period = chosen["period"]
    if period.live:
        minute = datetime.now(UTC).replace(second=0, microsecond=0)  # the window moves once a minute (a cache key)
        since, until = minute - (period.until - period.since), None
    else:
        since, until = period.since, period.until
    rows = cache.latest_news(
        url,
        version=version,
        since=since,
        until=until,
        limit=chosen["limit"],
        tickers=list(chosen["tickers"]),
        sources=list(chosen["sources"]),
        labels=list(chosen["labels"]),
        min_confidence=chosen["min_confidence"],
    )
    st.subheader("Latest news" if period.live else f"News · {period.label}")
    st.caption(f"{len(rows)} items, newest first · refreshed {datetime.now(UTC):%H:%M:%S} UTC")
    if not rows:
        note = cache.version_note(url, version=version, since=since, until=until)
        if note:
            st.warning(md_escape(note))
        else:
            st.info("No scored news matches these filters yet.")
        return
    st.html(news_table(rows))
    with st.expander("As a table"):
        st.dataframe(news_frame(rows), hide_index=True)


def sentiment_chart(series: pd.DataFrame) -> alt.Chart:
    """Mean score (line, -1..1) over story counts (bars) per bucket."""
    data = series[["bucket_start", "mean_score", "stories", "items"]].copy()
    base = alt.Chart(data).encode(x=alt.X("bucket_start:T", title="time (UTC)"))
    line = base.mark_line(point=True).encode(
        y=alt.Y("mean_score:Q", title="mean score", scale=alt.Scale(domain=[-1, 1])),
        tooltip=[
            alt.Tooltip("bucket_start:T", format="%H:%M"),
            alt.Tooltip("mean_score:Q", format="+.2f"),
            "stories:Q",
            "items:Q",
        ],
    )
    bars = base.mark_bar(opacity=0.3).encode(y=alt.Y("stories:Q", title="stories"))
    return alt.layer(bars, line).resolve_scale(y="independent").properties(height=220)


def market_panel(url: str, version: str) -> None:
    st.subheader("Market sentiment")
    now = cache.sentiment_now(url, version=version, window_s=NOW_WINDOW_S)
    a, b, c = st.columns(3)
    a.metric("Mean (1 h)", signed(now["mean_score"]), help="Weighted by confidence, near-duplicates once")
    b.metric("Stories (1 h)", now["stories"])
    c.metric("Negative (1 h)", f"{now['share_negative']:.0%}", help="Share of negative stories")
    series = cache.market_sentiment(url, version=version, window_s=DAY_BUCKET_S, buckets=96)
    if len(series) and not series["stories"].sum():  # a quiet day, or one only another version scored?
        note = cache.version_note(url, version=version, since=series["bucket_start"].min().to_pydatetime())
        if note:
            st.warning(md_escape(note))
            return
    if series.empty:
        st.caption("Nothing scored yet.")
        return
    st.altair_chart(sentiment_chart(series), width="stretch")
    st.caption(f"Last 24 hours in 15-minute buckets · model {now['version'] or '–'}")


def pipeline_panel(url: str) -> None:
    st.subheader("Pipeline")
    status = cache.pipeline_status(url)
    a, b = st.columns(2)
    c, d = st.columns(2)
    a.metric("Items/min (15 min)", f"{status['rate_per_min']:.1f}")
    b.metric("Last item", age(status["last_item_age_s"]) + (" ago" if status["last_item_age_s"] is not None else ""))
    c.metric("Rejects (1 h)", status["rejects_last_hour"])
    latency = status["mean_latency_ms"]
    d.metric("Latency (15 min)", "–" if latency is None else f"{latency:.0f} ms", help="Published → stored, mean")
    per_minute = status["items_per_minute"]
    st.altair_chart(
        alt.Chart(per_minute)
        .mark_bar()
        .encode(x=alt.X("minute:T", title="minute (UTC)"), y=alt.Y("items:Q", title="items"))
        .properties(height=120),
        width="stretch",
    )
    left, right = st.columns([1, 2])
    with left:
        st.caption("Rejects by stage, last hour")
        st.dataframe(pd.DataFrame(status["rejects_by_stage"], columns=["stage", "count"]), hide_index=True)
    with right:
        st.caption("Sources")
        sources = pd.DataFrame(
            status["sources"],
            columns=["source", "kind", "status", "items_seen", "last_success_at", "last_error_at", "last_error"],
        )
        st.dataframe(sources, hide_index=True)
    if status["recent_rejects"]:
        with st.expander("Latest rejects"):
            st.dataframe(pd.DataFrame(status["recent_rejects"]), hide_index=True)


def main() -> None:
    st.title("Live news")
    url = cache.database_url()
    chosen = filters(url)
    every = timedelta(seconds=chosen["refresh"])

    version = cache.model_version()

    @st.fragment(run_every=every)
    def live_news() -> None:
        news_panel(url, version, chosen)

    @st.fragment(run_every=max(every, timedelta(seconds=30)))
    def live_market() -> None:
        market_panel(url, version)

    @st.fragment(run_every=every)
    def live_pipeline() -> None:
        pipeline_panel(url)

    news, side = st.columns([5, 3])
    with news:
        live_news()
    with side:
        live_market()
        live_pipeline()


if __name__ == "__main__":
    main()
