"""In-session links: a "why?" link opens the Explain page in the same Streamlit session.

A plain `<a href>` loads a new page, and a new page is a new Streamlit session: behind the password gate every "why?"
asked for the password again (issue 17, D7). This JavaScript-only component (`st.components.v2`, Streamlit's
documented way to let inline links talk to Python) catches a plain left click on a link marked
`data-explain="<article id>"` and hands the id to Python, which calls `st.switch_page` in the same session. The
href stays: a link opened in a new tab, or copied, goes through the login form and then to that article.
"""

from __future__ import annotations

from functools import cache

import streamlit as st

_NAME = "finsent_explain_links"
_KEY = "finsent_explain_links"
# Constant code, no data: nothing from the news ever reaches this script (the id is checked as digits on both sides).
_JS = """
export default function (component) {
    const { setTriggerValue } = component;
    const onClick = (event) => {
        if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey
            || event.altKey) {
            return;  // a new tab or window: the href, then the login form, then the article
        }
        const link = event.target instanceof Element ? event.target.closest("a[data-explain]") : null;
        const article = link ? link.getAttribute("data-explain") : null;
        if (!article || !/^[0-9]+$/.test(article)) {
            return;
        }
        event.preventDefault();
        setTriggerValue("article", article);
    };
    document.addEventListener("click", onClick);
    return () => document.removeEventListener("click", onClick);
}
"""


@cache
def _component():
    return st.components.v2.component(_NAME, js=_JS)


def follow_explain_links(explain_page: st.Page) -> None:
    """Mount the click catcher; when a "why?" link was clicked, switch to `explain_page` for its article."""
    with st.sidebar:  # mounted where it takes no room in the page (the sidebar stays mounted when collapsed)
        result = _component()(key=_KEY, on_article_change=lambda: None, height=0)
    article = str(getattr(result, "article", None) or "")
    if article.isdigit():
        st.switch_page(explain_page, query_params={"article": article})
