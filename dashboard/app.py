"""The analyst dashboard: `streamlit run dashboard/app.py` (reads FINSENT_DATABASE_URL, like every stage).

A multipage app that reads the database only (its one write path is the Alerts page's acknowledgements and
silences, through monitor.alerts). The pages live in dashboard/views/ (not pages/, which Streamlit would pick up
on its own and list twice); each is a script Streamlit runs and a module with no side effects on import.
With FINSENT_DASHBOARD_PASSWORD set, nothing but a login form is shown until the password is given (dashboard/auth.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository: make `dashboard.*` importable
# also when finsent is not installed.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from sqlalchemy.exc import OperationalError, ProgrammingError  # noqa: E402

from dashboard import auth  # noqa: E402
from dashboard.cache import settings_problem  # noqa: E402
from dashboard.links import follow_explain_links  # noqa: E402
from dashboard.render import md_escape  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"

# (file, title in the menu, url path, icon); the first is the default page.
PAGES = [
    ("live.py", "Live", "live", ":material/bolt:"),
    ("ticker.py", "Ticker", "ticker", ":material/show_chart:"),
    ("alerts.py", "Alerts", "alerts", ":material/notifications:"),
    ("explain.py", "Explain", "explain", ":material/manage_search:"),
    ("model.py", "Model", "model", ":material/description:"),
    ("search.py", "Search", "search", ":material/search:"),
]


def main() -> None:
    st.set_page_config(page_title="finsent", page_icon=":material/bolt:", layout="wide")
    pages = [st.Page(VIEWS / file, title=title, url_path=url_path, icon=icon) for file, title, url_path, icon in PAGES]
    # The root address opens the first page at its own address (/live): a default page would be served at / only,
    # and /live (a bookmark, a link in the docs) said "Page not found".
    home = st.Page(lambda: st.switch_page(pages[0]), title="finsent", url_path="home", default=True,
                   visibility="hidden")  # fmt: skip
    allowed = auth.gate()  # False: a password is set and not yet given here, or none is set on a non-local address
    # The pages are declared, hidden, also before login, so the address asked for (explain?article=7, opened in a
    # new tab) survives the login form and opens after it; no page runs before the gate lets the session in.
    page = st.navigation([home, *pages], position="sidebar" if allowed else "hidden")
    if not allowed:
        return
    follow_explain_links(next(p for p in pages if p.url_path == "explain"))
    try:
        problem = settings_problem()  # a bad FINSENT_ variable or an unknown FINSENT_MODEL_VERSION: no page can read
        if problem is not None:
            st.error(md_escape(problem))
            return
        page.run()
    except (OperationalError, ProgrammingError) as exc:  # no database there, or one that was never migrated
        from core.settings import redact_url
        from dashboard.cache import database_url

        st.error(
            md_escape(f"Cannot read the database at {redact_url(database_url())}: {str(exc.orig).strip()}")
            + "  \nCreate or migrate it with `finsent db upgrade`, or point FINSENT_DATABASE_URL at another one."
        )


if __name__ == "__main__":
    main()
