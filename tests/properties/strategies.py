"""Shared Hypothesis settings and strategies for the property tests (bounded: the suite stays under a minute)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# deadline=None: the first call of a test pays for imports and caches (the ticker dictionary), and this 2-core
# machine is shared; examples are bounded instead.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like what hostile or broken sources send: markup, entities, controls, bidi and zero-width
# characters, compatibility forms and homoglyphs, mixed with ordinary words.
_PIECES = st.sampled_from(
    [
        "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<b>", "</b>", "<p>", "<!--", "-->",
        "<![CDATA[", "]]>", "<!DOCTYPE x>", "&amp;", "&lt;", "&#0;", "&#xD800;", "&#1114112;", "&nbsp;", "&", "<",
        ">", "\x00", "\x07", "\x1b", "\r\n", "\t", "\u200b", "\u202e", "\ufeff", "\ud800", "\ud7ff", "\ue000", "\ufdfa",
        "ﬁ", "Ａ", "\u0410", "\u0391", "$AAPL", "NASDAQ:MSFT", "<SRD>", "(AAPL)", "Apple", "'; DROP TABLE articles;--",
        " OR 1=1 ", "%s", "{0}", "\\", '"', "  ", "Nokia shares plunge", "https://x.test/a?b=1&c=2",
    ]
)  # fmt: skip
HOSTILE_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=25).map("".join),
)
