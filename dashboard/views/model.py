"""Model card: the shipped model's card (card.md) and its figures (card.json) as tables. Files only, no torch."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.schema import LABELS
from dashboard import cache
from dashboard.render import md_escape
from model.checkpoints import WEIGHTS_DIR


def versions() -> list[str]:
    """Model versions with a card under model/weights/: the one the pages show first (when its card is here), then
    the shipped default."""
    found = sorted(p.parent.name for p in WEIGHTS_DIR.glob("*/card.json"))
    default, shown = cache.default_version(), cache.model_version()
    first = [shown] if shown in found and shown != default else []
    return [*first, default, *(v for v in found if v not in (shown, default))]


def metrics_frame(card: dict) -> pd.DataFrame:
    """Held-out test metrics: one row per inference path and split."""
    rows = [
        {
            "path": path,
            "split": split,
            "n": m.get("n"),
            "accuracy": m.get("accuracy"),
            "macro_f1": m.get("macro_f1"),
            "ece": m.get("ece"),
        }
        for path, splits in card.get("metrics", {}).get("test", {}).items()
        for split, m in splits.items()
    ]
    return pd.DataFrame(rows, columns=["path", "split", "n", "accuracy", "macro_f1", "ece"])


def confusion_frame(matrix: list[list[int]], labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        matrix, index=[f"true {x}" for x in labels], columns=[f"predicted {x}" for x in labels]
    ).reset_index(names="")


def main() -> None:
    st.title("Model card")
    choices = versions()
    version = st.selectbox("Version", choices, index=0, key="version") if len(choices) > 1 else choices[0]
    card, markdown = cache.model_card(version)
    labels = card.get("architecture", {}).get("labels", list(LABELS))
    inference = card.get("inference", {})
    calibration = card.get("calibration", {})
    a, b, c, d = st.columns(4)
    a.metric("Version", card.get("version", version))
    b.metric("Created", str(card.get("created_at", "–"))[:10])
    c.metric("CPU path", inference.get("cpu_default", "–"))
    d.metric("Temperature", f"{calibration.get('temperature', float('nan')):.3f}")
    shown = cache.model_version()
    if version == shown:
        st.caption("The version every page shows (FINSENT_MODEL_VERSION, else the shipped default).")
    elif shown not in choices:
        st.caption(f"The pages show {md_escape(shown)}, whose card is not here (its scores were made elsewhere).")
    if version == cache.default_version():
        st.caption("The shipped default (model/weights/DEFAULT).")

    tabs = st.tabs(["Card", "Metrics", "Confusion matrices", "Calibration", "Faithfulness", "Data", "Inference"])
    with tabs[0]:
        # The card is a file of this repository, written by `finsent model train`: trusted Markdown, no raw HTML.
        st.markdown(markdown or "(no card.md)")
    with tabs[1]:
        st.caption("Held-out test splits, per inference path.")
        st.dataframe(metrics_frame(card), hide_index=True)
    with tabs[2]:
        test = card.get("metrics", {}).get("test", {})
        if test:
            path = st.selectbox(
                "Path",
                list(test),
                index=list(test).index(inference.get("cpu_default", next(iter(test))))
                if inference.get("cpu_default") in test
                else 0,
                key="cm_path",
            )
            split = st.selectbox("Split", list(test[path]), key="cm_split")
            st.dataframe(confusion_frame(test[path][split]["confusion"], labels), hide_index=True)
            per_class = test[path][split].get("per_class", {})
            st.dataframe(pd.DataFrame([{"class": k, **v} for k, v in per_class.items()]), hide_index=True)
    with tabs[3]:
        rows = [
            {"part": part, "ece_before": v.get("ece_before"), "ece_after": v.get("ece_after")}
            for part, v in calibration.items()
            if isinstance(v, dict)
        ]
        st.caption(
            f"Temperature {calibration.get('temperature', float('nan')):.4f} fitted on validation; "
            f"{calibration.get('bins', '?')} bins for the expected calibration error (ECE)."
        )
        st.dataframe(pd.DataFrame(rows, columns=["part", "ece_before", "ece_after"]), hide_index=True)
    with tabs[4]:
        faith = card.get("faithfulness", {})
        st.caption(
            f"ERASER comprehensiveness (higher is better) and sufficiency (lower is better), AOPC over k = "
            f"{faith.get('k')}, {faith.get('n')} sentences of {md_escape(faith.get('split', '?'))}."
        )
        st.dataframe(
            pd.DataFrame(
                [{"method": m, **v} for m, v in faith.get("methods", {}).items()],
                columns=["method", "comprehensiveness", "sufficiency"],
            ),
            hide_index=True,
        )
    with tabs[5]:
        data = card.get("data", {})
        st.caption(md_escape(data.get("split_rule", "")))
        st.dataframe(pd.DataFrame(data.get("files", []), columns=["path", "sha256"]), hide_index=True)
        splits = [
            {"dataset": name, "part": part, **counts}
            for name, parts in data.get("splits", {}).items()
            for part, counts in parts.items()
        ]
        st.dataframe(pd.DataFrame(splits), hide_index=True)
        st.caption(md_escape(card.get("licenses", "")))
    with tabs[6]:
        st.caption(md_escape(inference.get("rule", "")))
        st.dataframe(pd.DataFrame([{"path": p, **v} for p, v in inference.get("paths", {}).items()]), hide_index=True)


if __name__ == "__main__":
    main()
