"""Explain: one article's verdict, the stored pooling-attention words, and on request rollout and Integrated Gradients.

The stored explanation is read from the database; the model (torch) is loaded only when the button asks for the
other two methods, and kept for the next request.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core.schema import LABELS
from dashboard import cache
from dashboard.render import WRAP, escape, highlight, label_badge, link, md_escape, signed

METHOD_TITLES = {"pooling": "Pooling attention (stored)", "rollout": "Attention rollout", "ig": "Integrated Gradients"}


def _why(ticker: dict) -> str:
    """A ticker with why it was linked: "TSCO.L (subject: 'Tesco')" (docs/entities.md); the bare ticker for rows
    stored before spans were kept."""
    parts = [p for p in (ticker.get("role"), f"'{ticker['words']}'" if ticker.get("words") else None) if p]
    return f"{ticker['ticker']} ({': '.join(parts)})" if parts else ticker["ticker"]


@st.cache_resource(show_spinner=False)
def explainer(version: str):
    """The fp32 explainer of the version shown, where its checkpoint is here, else of the shipped checkpoint; the
    only place the dashboard imports torch."""
    from model.checkpoints import version_checkpoint
    from model.explain import Explainer

    return Explainer(version_checkpoint(version))


@st.cache_data(show_spinner=False, max_entries=256)
def other_explanations(text: str, version: str) -> dict:
    """Rollout and IG for a text, as plain data: {method: {label, probabilities, words}} and the model version."""
    model = explainer(version)
    out = {"version": model.version}
    for method in ("rollout", "ig"):
        e = model.explain(text, method=method, top_k=5)
        out[method] = {
            "label": e.label,
            "probabilities": e.probabilities,
            "words": [{"word": a.word, "weight": a.weight, "start": a.start, "end": a.end} for a in e.attributions],
        }
    return out


def article_id_input(url: str, version: str) -> int | None:
    """The article from ?article=ID, else the newest one; a number input changes it (and the URL)."""
    param = st.query_params.get("article", "")
    if param.strip().isdigit():
        default = int(param)
    else:
        newest = cache.latest_news(url, version=version, limit=1)
        if not newest:
            return None
        default = newest[0]["article_id"]
    article_id = int(st.number_input("Article id", min_value=1, value=default, step=1))
    if param != str(article_id):
        st.query_params["article"] = str(article_id)
    return article_id


def words_frame(words: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"rank": i + 1, "word": w["word"], "weight": w["weight"], "start": w["start"], "end": w["end"]}
            for i, w in enumerate(words)
        ],
        columns=["rank", "word", "weight", "start", "end"],
    )


def probabilities_chart(probabilities: dict[str, float]) -> alt.Chart:
    data = pd.DataFrame({"label": list(LABELS), "probability": [probabilities[k] for k in LABELS]})
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("label:N", sort=list(LABELS), title=None),
            color=alt.Color(
                "label:N", scale=alt.Scale(domain=list(LABELS), range=["#dc2626", "#64748b", "#16a34a"]), legend=None
            ),
            tooltip=["label:N", alt.Tooltip("probability:Q", format=".3f")],
        )
        .properties(height={"step": 26})
    )


def faithfulness_section(version: str | None) -> None:
    """Faithfulness figures of the explanation methods, from the model card (a JSON file, no torch)."""
    try:
        card, _ = cache.model_card(version)
    except (FileNotFoundError, ValueError):
        card, _ = cache.model_card()
    faith = card.get("faithfulness", {})
    st.subheader("How faithful each method is")
    st.caption(
        f"Model {md_escape(card.get('version', '?'))} · ERASER on {faith.get('n', '?')} held-out sentences "
        f"({md_escape(faith.get('split', '?'))}), AOPC over removing the top {faith.get('k', '?')} words. "
        "Comprehensiveness: higher is better; sufficiency: lower is better."
    )
    methods = faith.get("methods", {})
    st.dataframe(
        pd.DataFrame(
            [
                {"method": m, "comprehensiveness": v.get("comprehensiveness"), "sufficiency": v.get("sufficiency")}
                for m, v in methods.items()
            ],
            columns=["method", "comprehensiveness", "sufficiency"],
        ),
        hide_index=True,
    )


def main() -> None:
    st.title("Explain")
    url = cache.database_url()
    version = cache.model_version()
    article_id = article_id_input(url, version)
    if article_id is None:
        note = cache.version_note(url, version=version)
        if note:
            st.warning(md_escape(note))
        else:
            st.info("No scored news yet.")
        return
    item = cache.article(url, version=version, article_id=article_id)
    if item is None:
        st.warning(f"No article {article_id}.")
        return
    score = item["score"]
    label = score["label"] if score else None
    st.html(
        f'<div class="fs-explain" style="font-size: 1.35em; line-height: 1.6; {WRAP}">'
        f"{highlight(item['title'], score['words'] if score else [], label)}</div>"
    )
    meta = [
        item["source"],
        f"{item['published_at']:%Y-%m-%d %H:%M:%S} UTC" + (" (ingest time)" if item["published_at_fallback"] else ""),
        ", ".join(_why(t) for t in item["tickers"]) or "no tickers",
        "new story" if item["is_first_of_story"] else f"near-duplicate of #{item['story_id']}",
    ]
    st.html(
        f'<div class="fs-meta" style="color: #64748b; {WRAP}">'
        + " · ".join([label_badge(label), *(escape(m) for m in meta)])
        + (f" · {link(item['url'], 'original')}" if item["url"] else "")
        + "</div>"
    )
    if score is None:
        others = ", ".join(dict.fromkeys(s["model_version"] for s in item["scores"]))
        if others:  # scored, but only by other versions: this page shows one version, never another's verdict
            st.warning(
                md_escape(
                    f"This article was scored only by {others}, not by {version}, the model version shown "
                    f"(FINSENT_MODEL_VERSION). Rescore it with `finsent rescore --model {version}`, or set "
                    f"FINSENT_MODEL_VERSION to one of those versions."
                )
            )
            st.dataframe(pd.DataFrame(item["scores"]), hide_index=True)
        else:
            st.warning("This article has no score.")
        return
    a, b, c, d = st.columns(4)
    a.metric("Label", score["label"])
    b.metric("Score", signed(score["score"]))
    c.metric("Confidence", f"{score['confidence']:.2f}")
    d.metric("Chunks", score["n_chunks"])
    st.altair_chart(probabilities_chart(score["probabilities"]), width="stretch")
    st.caption(f"Scored by {md_escape(score['model_version'])} at {score['scored_at']:%Y-%m-%d %H:%M:%S} UTC")

    st.subheader("Why: the words the model attended to")
    st.dataframe(words_frame(score["words"]), hide_index=True)
    companies = [t for t in item["tickers"] if t.get("sentiment")]
    if companies:
        st.subheader("Each company's own sentiment")
        st.caption(
            "The headline names two or more companies: each is scored for itself, with the words its own decision "
            "used. Windows, alerts and exports count each company in its own direction."
        )
        for t in companies:
            own = t["sentiment"]
            st.html(
                f'<div class="fs-company-explain" data-ticker="{escape(t["ticker"])}" style="{WRAP}">'
                f"{label_badge(own['label'])} <b>{escape(t['ticker'])}</b> {escape(signed(own['score']))} "
                f"(confidence {own['confidence']:.2f}): {highlight(item['title'], own['words'], own['label'])}</div>"
            )

    computed = st.session_state.setdefault("explained", {})
    if st.button("Compute rollout and Integrated Gradients", type="primary", key="explain-more"):
        with st.spinner("Loading the model and computing attention rollout and Integrated Gradients..."):
            computed[article_id] = other_explanations(item["title"], version)
    if article_id in computed:
        result = computed[article_id]
        if result["version"] != score["model_version"]:
            st.caption(f"Computed with {md_escape(result['version'])}, the shipped default model.")
        columns = st.columns(3)
        panels = [
            ("pooling", score["words"], label),
            *((m, result[m]["words"], result[m]["label"]) for m in ("rollout", "ig")),
        ]
        for column, (method, words, method_label) in zip(columns, panels, strict=True):
            with column:
                st.markdown(f"**{METHOD_TITLES[method]}**")
                st.html(
                    f'<div class="fs-method" data-method="{method}" style="{WRAP}">'
                    f"{highlight(item['title'], words, method_label)}</div>"
                )
                st.dataframe(words_frame(words), hide_index=True)

    faithfulness_section(score["model_version"])

    with st.expander("Body"):
        st.text(item["body"] or "(no body)")
    if item["story"]:
        with st.expander(f"Same story ({len(item['story'])} other articles)"):
            st.dataframe(pd.DataFrame(item["story"]), hide_index=True)
    if item["alerts"]:
        with st.expander(f"Cited by {len(item['alerts'])} alerts"):
            st.dataframe(pd.DataFrame(item["alerts"]), hide_index=True)
    if len(item["scores"]) > 1:
        with st.expander("Scores by other model versions"):
            st.dataframe(pd.DataFrame(item["scores"]), hide_index=True)


if __name__ == "__main__":
    main()
