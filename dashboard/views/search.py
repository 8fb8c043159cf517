"""Search: headlines containing words or phrases, within dates, tickers and labels; the result as CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from core.schema import LABELS
from dashboard import cache
from dashboard.export import news_csv
from dashboard.render import md_escape, news_frame, news_table


def date_range(value) -> tuple[datetime | None, datetime | None]:
    """[since, until) in UTC from the date input (a range may be half chosen)."""
    days = [d for d in (value if isinstance(value, tuple | list) else (value,)) if isinstance(d, date)]
    if not days:
        return None, None
    since = datetime.combine(days[0], time.min, UTC)
    until = datetime.combine(days[-1], time.min, UTC) + timedelta(days=1)
    return since, until


def main() -> None:
    st.title("Search")
    url = cache.database_url()
    text = st.text_input(
        "Words in the headline",
        placeholder='profit warning, "guidance cut", NOK',
        help='Every word must appear (case-insensitive, also inside words); "quote" a phrase.',
        key="q",
    )
    today = datetime.now(UTC).date()
    left, middle, right, far = st.columns([2, 2, 2, 1])
    days = left.date_input("Published between", value=(today - timedelta(days=30), today), key="dates")
    tickers = middle.multiselect(
        "Tickers",
        cache.known_tickers(url, since=datetime.combine(today - timedelta(days=30), time.min, UTC)),
        accept_new_options=True,
        key="search_tickers",
    )
    labels = right.multiselect("Labels", list(LABELS), key="search_labels")
    limit = far.number_input("At most", min_value=10, max_value=1000, value=200, step=50, key="search_limit")
    if not text.strip() and not tickers:
        st.caption("Type words to search for, or pick tickers.")
        return
    since, until = date_range(days)
    version = cache.model_version()
    rows = cache.search(
        url,
        version=version,
        text=text,
        since=since,
        until=until,
        tickers=[t.upper() for t in tickers],
        labels=list(labels),
        limit=int(limit),
    )
    st.caption(
        f"{len(rows)} headline{'' if len(rows) == 1 else 's'}"
        + (" (the limit: narrow the search)" if len(rows) >= int(limit) else "")
    )
    if not rows:
        note = cache.version_note(url, version=version, since=since, until=until)
        if note:  # the dates hold news, all of it scored by another model version
            st.warning(md_escape(note))
        else:
            st.info(f"No headline matches {md_escape(text.strip()) or 'these filters'}.")
        return
    st.download_button(
        "Download CSV",
        data=news_csv(rows),
        file_name=f"finsent-search-{today:%Y%m%d}.csv",
        mime="text/csv",
        on_click="ignore",
        key="download",
    )
    st.html(news_table(rows))
    with st.expander("As a table"):
        st.dataframe(news_frame(rows), hide_index=True)


if __name__ == "__main__":
    main()
