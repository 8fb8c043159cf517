"""Alerts: pending, firing and resolved alerts with their evidence; acknowledgements, silences, feed URLs."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import cache
from dashboard.render import evidence_table, md_escape
from monitor.alerts import STATES, ack, add_silence, expire_silence, subject_of

ORDER = {"firing": 0, "pending": 1, "resolved": 2}
STATUS_ICON = {
    "pending": ":material/hourglass_top:",
    "firing": ":material/local_fire_department:",
    "resolved": ":material/check_circle:",
}


def flash(message: str) -> None:
    """A message that survives the rerun after a change."""
    st.session_state["alerts_flash"] = message


def show_flash() -> None:
    message = st.session_state.pop("alerts_flash", None)
    if message:
        st.success(message)


def _when(value: datetime | None) -> str:
    return "–" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def ack_form(alert: dict) -> None:
    with st.form(f"ack-{alert['id']}", clear_on_submit=True):
        st.caption("Acknowledge: no more reminders for this episode.")
        who = st.text_input("Who", key=f"ack-who-{alert['id']}")
        comment = st.text_input("Comment", key=f"ack-comment-{alert['id']}")
        if not st.form_submit_button("Acknowledge", key=f"ack-submit-{alert['id']}"):
            return
    if not who.strip():
        st.error("Say who acknowledges the alert.")
        return
    with cache.session() as session, session.begin():
        ack(session, alert["id"], by=who.strip(), now=datetime.now(UTC), comment=comment.strip())
    cache.clear_alerts()
    flash(f"Alert {alert['id']} acknowledged by {md_escape(who.strip())}.")
    st.rerun()


def alert_block(alert: dict) -> None:
    subject = subject_of(alert["ticker"], alert["labels"])
    title = f"{alert['status'].upper()} · {alert['rule']} · {subject} · {alert['severity']}"
    if alert["replayed"]:
        title = f"REPLAYED · {title}"
    with st.expander(md_escape(title), expanded=alert["status"] != "resolved", icon=STATUS_ICON[alert["status"]]):
        summary = alert["annotations"].get("summary") or alert["annotations"].get("description")
        if summary:
            st.markdown(md_escape(summary))
        facts = {
            "id": alert["id"],
            "status": alert["status"],
            "value": "–" if alert["value"] is None else f"{alert['value']:.3g}",
            "active since": _when(alert["active_at"]),
            "fired": _when(alert["starts_at"]),
            "resolved": _when(alert["ends_at"]),
            "acknowledged": f"{alert['acked_by']} at {_when(alert['acked_at'])}" if alert["acked_by"] else "no",
            "silenced by": ", ".join(f"#{s}" for s in alert["silenced_by"]) or "no",
            "labels": ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items())),
        }
        st.dataframe(pd.DataFrame({"": list(facts), "value": [str(v) for v in facts.values()]}), hide_index=True)
        st.caption(f"Evidence: {len(alert['evidence'])} articles")
        if alert["evidence"]:
            st.html(evidence_table(alert["evidence"]))
        if alert["events"]:
            st.caption("History")
            st.dataframe(pd.DataFrame(alert["events"], columns=["at", "event", "detail"]), hide_index=True)
        if alert["status"] != "resolved" and not alert["acked_by"]:
            ack_form(alert)


def silences_section(url: str) -> None:
    st.subheader("Silences")
    rows = cache.silences(url)
    if rows:
        frame = pd.DataFrame(rows)[
            ["id", "active", "matchers_text", "author", "comment", "starts_at", "ends_at", "expired_early_at"]
        ].rename(columns={"matchers_text": "matchers"})
        st.dataframe(frame, hide_index=True)
    else:
        st.caption("No silences.")
    active = [s for s in rows if s["active"]]
    if active:
        with st.form("expire-silence"):
            chosen = st.selectbox(
                "Expire a silence now",
                [s["id"] for s in active],
                format_func=lambda i: next(
                    f"#{s['id']}: {s['matchers_text']} ({s['author']})" for s in active if s["id"] == i
                ),
                key="expire_id",
            )
            if st.form_submit_button("Expire silence", key="silence-expire"):
                with cache.session() as session, session.begin():
                    expire_silence(session, int(chosen), now=datetime.now(UTC))
                cache.clear_alerts()
                flash(f"Silence {int(chosen)} expired.")
                st.rerun()
    with st.form("new-silence", clear_on_submit=False):
        st.caption("New silence: mutes notifications of alerts whose labels match every matcher.")
        matchers = st.text_area(
            "Matchers, one per line", placeholder="ticker=AAPL\nalertname=~neg.*", key="silence_matchers"
        )
        author = st.text_input("Author", key="silence_author")
        comment = st.text_input("Comment", key="silence_comment")
        duration = st.text_input("Duration", value="2h", help="e.g. 30m, 4h, 1d", key="silence_duration")
        if st.form_submit_button("Create silence", key="silence-create"):
            lines = [line.strip() for line in matchers.splitlines() if line.strip()]
            try:
                with cache.session() as session, session.begin():
                    silence = add_silence(
                        session,
                        matchers=lines,
                        author=author,
                        comment=comment,
                        now=datetime.now(UTC),
                        duration=duration.strip(),
                    )
                    silence_id = silence.id
            except ValueError as exc:
                st.error(md_escape(exc))
                return
            cache.clear_alerts()
            flash(f"Silence {silence_id} created.")
            st.rerun()


def main() -> None:
    st.title("Alerts")
    url = cache.database_url()
    show_flash()
    feed = cache.feed_url()
    with st.expander("Subscribe (feed server: `finsent feed serve`)"):
        st.code(f"{feed}/alerts.atom\n{feed}/alerts.json", language=None)
        st.caption("Filters: ?ticker=AAPL&severity=critical&status=firing&since=2024-01-01T00:00:00Z&limit=50")
    statuses = st.multiselect("Status", list(STATES), default=list(STATES), key="statuses")
    left, right = st.columns(2)
    typed = left.text_input("Tickers", key="alert_tickers", placeholder="AAPL, barc.l (any case; empty: all)")
    tickers = tuple(sorted({t.strip().upper() for t in typed.replace(";", ",").split(",") if t.strip()}))
    replayed = right.checkbox(
        "Include replayed history", key="alert_replayed", help="Alerts that `finsent alerts replay` recorded over "
        "past news; never notified. The Ticker page marks them too."
    )  # fmt: skip
    limit = st.number_input("Alerts", min_value=10, max_value=500, value=50, step=10, key="alert_limit")
    # Firing first, then pending, then resolved; most recently changed first within each.
    found = cache.alerts(url, version=cache.model_version(), statuses=tuple(statuses), limit=int(limit),
                         tickers=tickers, include_replayed=replayed)  # fmt: skip
    found = sorted(found, key=lambda a: ORDER[a["status"]])
    counts = {s: sum(1 for a in found if a["status"] == s) for s in STATES}
    a, b, c = st.columns(3)
    a.metric("Firing", counts["firing"])
    b.metric("Pending", counts["pending"])
    c.metric("Resolved", counts["resolved"])
    if not found:
        wanted = f" about {', '.join(tickers)}" if tickers else ""
        st.info(f"No alerts match: statuses {', '.join(statuses) or 'none'}{wanted}"
                + ("" if replayed else " (replayed history not included)") + ".")  # fmt: skip
    for alert in found:
        alert_block(alert)
    silences_section(url)


if __name__ == "__main__":
    main()
