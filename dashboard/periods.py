"""The period a page shows: a preset ("Last 7 days"), any stored date range, or the days around an event.

Deep links carry it: `?since=2020-03-01&until=2020-03-31` (dates, UTC, `until` included) or `?at=2020-03-09&days=3`
(an event view: the days either side of a date). A page honours them, or says which parameter it could not read and
what it shows instead; and it writes the period chosen back into the address, so the address can be shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from dashboard.render import md_escape

RANGE = "Date range"
AROUND = "Around a date"
MAX_AROUND_DAYS = 90
_PARAMS = ("since", "until", "at", "days")


@dataclass(frozen=True)
class Period:
    since: datetime
    until: datetime  # exclusive
    label: str  # "Last 7 days", "2020-03-01 to 2020-03-31", "3 days either side of 2020-03-09"
    live: bool  # a preset ending now (its data changes as news arrives), not a fixed stretch of history


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat((text or "").strip()[:10]) if text else None
    except ValueError:
        return None


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _from_address(problems: list[str]) -> tuple[str | None, dict]:
    """The mode and values the address asks for (None: a preset), noting every parameter it could not read."""
    params = st.query_params
    if params.get("at"):
        at, days = _day(params.get("at")), params.get("days", "3")
        if at is None:
            problems.append(f"at={params.get('at')} is not a date (YYYY-MM-DD)")
        elif not days.isdigit() or not 1 <= int(days) <= MAX_AROUND_DAYS:
            problems.append(f"days={days} is not a whole number of days from 1 to {MAX_AROUND_DAYS}")
        else:
            return AROUND, {"at": at, "days": int(days)}
    elif params.get("since") or params.get("until"):
        since, until = _day(params.get("since")), _day(params.get("until"))
        for name, value in (("since", since), ("until", until)):
            if params.get(name) and value is None:
                problems.append(f"{name}={params.get(name)} is not a date (YYYY-MM-DD)")
        if not problems:
            since = since or (until - timedelta(days=30))
            until = until or datetime.now(UTC).date()
            if since > until:
                problems.append(f"since={since} is after until={until}")
            else:
                return RANGE, {"since": since, "until": until}
    return None, {}


def choose(
    container, presets: dict[str, timedelta], *, default: str, key: str = "period", label: str = "Period"
) -> Period:
    """The period widgets in `container` (the page or its sidebar), set from the address first; returns the
    period chosen. Presets end at the next whole hour, a stable cache key for an hour."""
    problems: list[str] = []
    address = {name: st.query_params[name] for name in _PARAMS if name in st.query_params}
    state, memo = st.session_state, f"{key}_address"
    today = datetime.now(UTC).date()
    # The address decides when it is new (a link was opened, or edited by hand); afterwards the widgets do, and
    # write what they show back into it. Widget values are set through the session state only, never as defaults.
    if key not in state or state.get(memo) != address:
        mode, values = _from_address(problems)
        state[key] = mode or default
        if mode == RANGE:
            state[f"{key}_range"] = (values["since"], values["until"])
        elif mode == AROUND:
            state[f"{key}_at"], state[f"{key}_days"] = values["at"], values["days"]
    state.setdefault(f"{key}_range", (today - timedelta(days=30), today))
    state.setdefault(f"{key}_at", today)
    state.setdefault(f"{key}_days", 3)
    chosen = container.selectbox(label, [*presets, RANGE, AROUND], key=key)
    if chosen == RANGE:
        picked = container.date_input("From – to (UTC, both included)", key=f"{key}_range")
        ends = list(picked) if isinstance(picked, tuple | list) else [picked]
        start = ends[0] if ends and ends[0] else today
        end = ends[1] if len(ends) > 1 and ends[1] else start  # a range still being picked: its first day
        written = {"since": start.isoformat(), "until": end.isoformat()}
        period = Period(_start(start), _start(end) + timedelta(days=1), f"{start} to {end}", live=False)
    elif chosen == AROUND:
        at = container.date_input("Date (UTC)", key=f"{key}_at") or today  # a cleared field: today
        days = int(container.number_input("Days either side", 1, MAX_AROUND_DAYS, key=f"{key}_days"))
        written = {"at": at.isoformat(), "days": str(days)}
        period = Period(_start(at) - timedelta(days=days), _start(at) + timedelta(days=days + 1),
                        f"{days} day{'s' * (days != 1)} either side of {at}", live=False)  # fmt: skip
    else:
        written = {}
        until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        period = Period(until - presets[chosen], until, chosen if chosen[0].isupper() else f"the last {chosen}",
                        live=True)  # fmt: skip
    for name in _PARAMS:
        if name in written:
            st.query_params[name] = written[name]
        else:
            st.query_params.pop(name, None)
    state[memo] = written
    for problem in problems:
        st.warning(md_escape(f"The link's {problem}: showing {period.label.lower()} instead."))
    return period
