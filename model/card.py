"""The model card: metrics of every shipped inference path on every held-out split, explanation
faithfulness, and a Markdown rendering of card.json."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from model.evaluate import evaluate_texts, read_labelled_csv
from model.network import FUNCTION_WORDS, LABELS
from model.scorer import Scorer, cpu_has_bf16, cpu_has_int8_dot

MAX_ACCURACY_LOSS = 0.005  # a faster path may cost at most 0.5 accuracy point to be the CPU default
# A path may be the default only if a text's probabilities move by at most this much between being scored alone and
# inside any batch (fp32 moves by ~2e-7: float sums in another order; int8 and bf16 by 0 on same-shape rows).
MAX_BATCH_DEPENDENCE = 1e-4
BATCH_SIZES = (1, 50, 256)  # batch_dependence compares scoring alone with these
MAIN_SPLITS = ("phrasebank_50agree", "twitter")  # the large splits; the others are subsets or have < 500 rows


def evaluate_splits(scorer: Scorer, split_dir: Path) -> dict:
    """Metrics of one scorer on every splits/<name>_test.csv."""
    out = {}
    for csv_path in sorted(split_dir.glob("*_test.csv")):
        texts, labels = read_labelled_csv(csv_path)
        out[csv_path.name.removesuffix("_test.csv")] = evaluate_texts(scorer, texts, labels)
    return out


def cpu_paths() -> list[str]:
    """The CPU inference paths this machine can run well: int8 where it has int8 dot products, bf16 where it has
    native bf16 (model.scorer.cpu_has_int8_dot, cpu_has_bf16)."""
    return ["fp32"] + (["int8"] if cpu_has_int8_dot() else []) + (["bf16"] if cpu_has_bf16() else [])


def sentences_per_second(scorer: Scorer, texts: list[str], batch_size: int = 32, repeats: int = 3) -> float:
    """Median throughput of scoring texts in batches (top-5 words included), after a warm-up batch."""
    scorer.score(texts[:batch_size], batch_size=batch_size)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            scorer.score(texts[i : i + batch_size], batch_size=batch_size)
        rates.append(len(texts) / (time.perf_counter() - start))
    return statistics.median(rates)


def batch_dependence(scorer: Scorer, texts: list[str]) -> dict:
    """How much a text's result depends on its batch: each text scored alone, then the same texts in batches of
    BATCH_SIZES; the largest change of any probability, and how many labels differ from scored alone."""
    alone = [scorer.score([t], batch_size=1)[0] for t in texts]
    worst, flips = 0.0, 0
    for size in BATCH_SIZES[1:]:
        for a, b in zip(alone, scorer.score(texts, batch_size=size), strict=True):
            worst = max(worst, max(abs(a.probabilities[k] - b.probabilities[k]) for k in LABELS))
            flips += a.label != b.label
    return {"n": len(texts), "batch_sizes": list(BATCH_SIZES), "max_probability_change": worst, "labels_changed": flips}


def path_rows(metrics: dict, speed: dict, dependence: dict) -> dict:
    """Each path's worst accuracy loss against fp32 on the main splits, its speed and its batch dependence."""
    return {
        p: {
            "max_accuracy_loss": max(metrics["fp32"][n]["accuracy"] - metrics[p][n]["accuracy"] for n in MAIN_SPLITS),
            "sentences_per_s_batch32": speed[p],
            **({"batch_dependence": dependence[p]} if p in dependence else {}),
        }
        for p in metrics
    }


def choose_cpu_default(metrics: dict, speed: dict, dependence: dict | None = None) -> dict:
    """The fastest path that loses at most MAX_ACCURACY_LOSS accuracy against fp32 on each main split and whose
    results do not depend on their batch (MAX_BATCH_DEPENDENCE)."""
    rows = path_rows(metrics, speed, dependence or {})
    qualifying = [
        p
        for p, row in rows.items()
        if row["max_accuracy_loss"] <= MAX_ACCURACY_LOSS
        and row.get("batch_dependence", {}).get("max_probability_change", 0.0) <= MAX_BATCH_DEPENDENCE
    ]
    fastest = max(qualifying, key=lambda p: speed[p])
    fallback = max((p for p in qualifying if p != "bf16"), key=lambda p: speed[p])
    return {
        "cpu_default": fastest,
        "cpu_fallback": fallback,
        "cuda_default": "bf16",
        "rule": f"the fastest CPU path (batch 32) whose accuracy is within {MAX_ACCURACY_LOSS:.3f} of fp32 on "
        f"{' and '.join(MAIN_SPLITS)} and whose probabilities move by at most {MAX_BATCH_DEPENDENCE:g} between a text "
        "scored alone and in a batch; cpu_fallback is used on CPUs without native bf16",
        "paths": rows,
    }


def measure_cpu_paths(path: Path, retired: dict | None = None, log=print) -> tuple[dict, dict]:
    """Test metrics, speed and batch dependence of every CPU path, and the CPU default they choose: the card's
    "metrics" and "inference" sections. `retired` maps a name to a function building a Scorer of a path that is no
    longer offered: measured in the same run for comparison (under inference["retired"]), never chosen."""
    path = Path(path)
    speed_texts, _ = read_labelled_csv(path / "splits" / "twitter_test.csv")
    builders = {p: (lambda p=p: Scorer(path, device="cpu", precision=p)) for p in cpu_paths()} | (retired or {})
    metrics, speed, dependence = {}, {}, {}
    for name, build in builders.items():
        scorer = build()
        metrics[name] = evaluate_splits(scorer, path / "splits")
        speed[name] = sentences_per_second(scorer, speed_texts[:512])
        dependence[name] = batch_dependence(scorer, speed_texts[:400])
        del scorer
        summary = ", ".join(f"{n} acc {m['accuracy']:.4f} F1 {m['macro_f1']:.4f}" for n, m in metrics[name].items())
        log(
            f"{name} ({speed[name]:.0f} sentences/s, batch dependence "
            f"{dependence[name]['max_probability_change']:.2g}): {summary}"
        )
    offered = [p for p in builders if p not in (retired or {})]
    inference = choose_cpu_default({p: metrics[p] for p in offered}, speed, dependence)
    if retired:
        rows = path_rows(metrics, speed, dependence)
        inference["retired"] = {
            name: rows[name] | {"accuracy": {n: m["accuracy"] for n, m in metrics[name].items()}} for name in retired
        }
    return {"test": {p: metrics[p] for p in offered}}, inference


def refresh_inference(path: Path, retired: dict | None = None, log=print) -> dict:
    """Re-measure the CPU paths of a shipped checkpoint and rewrite its card (faithfulness and the rest kept)."""
    path = Path(path)
    card = json.loads((path / "card.json").read_text())
    card["metrics"], card["inference"] = measure_cpu_paths(path, retired, log=log)
    (path / "card.json").write_text(json.dumps(card, indent=2))
    (path / "card.md").write_text(render_markdown(card))
    return card


def function_word_share(scorer: Scorer, texts: list[str], k: int = 3) -> dict:
    """How often the top-k stored words are function words (network.FUNCTION_WORDS) or punctuation."""
    words = [a.word for r in scorer.score(texts, top_k=k) for a in r.attributions]
    bad = [w for w in words if w.lower() in FUNCTION_WORDS or not any(ch.isalnum() for ch in w)]
    return {"texts": len(texts), "k": k, "words": len(words), "function_words": len(bad),
            "share": len(bad) / max(1, len(words))}  # fmt: skip


def explanation_words(path: Path) -> dict:
    """function_word_share of a checkpoint's default CPU path on the in-domain validation headlines."""
    from model.distill import indomain_rows

    texts = [r["text"] for r in indomain_rows("val")]
    return {"texts_from": "model/indomain val half", **function_word_share(Scorer(path, device="cpu"), texts)}


def side_by_side(columns: dict[str, dict]) -> dict:
    """{split: {column: {accuracy, macro_f1}}} from the fp32 test metrics of several cards (teacher, old and new
    student), for the splits every card has or that a column measured."""
    rows: dict[str, dict] = {}
    for name, card in columns.items():
        for split, m in card.get("metrics", {}).get("test", {}).get("fp32", {}).items():
            rows.setdefault(split, {})[name] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    return {"columns": list(columns), "rows": rows}


def complete_card(path: Path, faithfulness_n: int = 300, log=print) -> dict:
    """Add test metrics for each CPU path, the CPU default path, and faithfulness; write card.json and card.md."""
    from model.explain import Explainer, faithfulness

    path = Path(path)
    card = json.loads((path / "card.json").read_text())
    card["metrics"], card["inference"] = measure_cpu_paths(path, log=log)
    if faithfulness_n:
        texts, _ = read_labelled_csv(path / "splits" / "phrasebank_50agree_test.csv")
        card["faithfulness"] = {
            "split": "phrasebank_50agree_test",
            **faithfulness(Explainer(path), texts[:faithfulness_n], log=log),
        }
    card["explanation_words"] = explanation_words(path)
    (path / "card.json").write_text(json.dumps(card, indent=2))
    (path / "card.md").write_text(render_markdown(card))
    return card


def _metrics_table(metrics: dict) -> list[str]:
    lines = ["| split | n | accuracy | macro-F1 | ECE |", "|---|---:|---:|---:|---:|"]
    for name, m in metrics.items():
        lines.append(f"| {name} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m.get('ece', 0):.4f} |")
    return lines


def render_markdown(card: dict) -> str:
    """card.json as a readable Markdown page."""
    arch, data, train = card["architecture"], card["data"], card["training"]
    lines = [
        f"# Model card: `{card['version']}`",
        "",
        "## What it is",
        f"- Encoder: {arch['encoder']}, from the PyPI package `{arch['encoder_package']['name']}` "
        f"{arch['encoder_package']['version']}.",
        f"- Head: {arch['head']}.",
        f"- Parameters: {arch['parameters']:,}; window {arch['max_length']} word-pieces (longer texts are chunked).",
        f"- Labels: {', '.join(arch['labels'])}. Score = p(positive) − p(negative).",
        f"- Licence: {card['licenses']}",
        "",
        "## How it was made",
        f"- Command: `{train['command']}` (seed {card['seed']}), on {train['device']}, {train['seconds']:.0f} s, "
        f"torch {train['torch']}, transformers {train['transformers']}.",
        f"- Split rule: {data['split_rule']}.",
        f"- Domain-adaptive MLM texts: {data['mlm_texts']}.",
        "- Hyper-parameters: " + ", ".join(f"`{k}={v}`" for k, v in card["hyperparameters"].items()),
        "",
        "| data file | sha256 |",
        "|---|---|",
        *[f"| {f['path']} | `{f['sha256']}` |" for f in data["files"]],
        "",
        "| dataset | part | n | negative | neutral | positive |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, parts in data["splits"].items():
        for part, c in parts.items():
            counts = " | ".join(str(c.get(label, 0)) for label in LABELS)
            lines.append(f"| {name} | {part} | {c['n']} | {counts} |")
    for precision, metrics in card.get("metrics", {}).get("test", {}).items():
        lines += ["", f"## Held-out test metrics, CPU {precision}", "", *_metrics_table(metrics)]
    if "metrics" in card:
        lines += ["", "## Confusion matrices (fp32; rows = true, columns = predicted: " + ", ".join(LABELS) + ")", ""]
        for name, m in card["metrics"]["test"]["fp32"].items():
            lines.append(f"- {name}: `{m['confusion']}`")
    if "inference" in card:
        inf = card["inference"]
        lines += [
            "",
            "## Inference paths",
            f"CPU default **{inf['cpu_default']}**, fallback {inf['cpu_fallback']}, CUDA {inf['cuda_default']}: "
            f"{inf['rule']}.",
            "",
            "| CPU path | worst accuracy loss vs fp32 | sentences/s (batch 32, this machine) "
            "| batch dependence: max probability change, labels changed |",
            "|---|---:|---:|---|",
            *[
                f"| {p} | {v['max_accuracy_loss']:+.4f} | {v['sentences_per_s_batch32']:.0f} | "
                + (
                    f"{v['batch_dependence']['max_probability_change']:.2g}, "
                    f"{v['batch_dependence']['labels_changed']} of {v['batch_dependence']['n']} texts × "
                    f"{len(v['batch_dependence']['batch_sizes']) - 1} batch sizes"
                    if "batch_dependence" in v
                    else "not measured"
                )
                + " |"
                for p, v in (inf["paths"] | inf.get("retired", {})).items()
            ],
            *(
                ["", "Retired (measured in the same run, no longer offered): " + ", ".join(inf["retired"]) + "."]
                if inf.get("retired")
                else []
            ),
        ]
    if "side_by_side" in card:
        cols = card["side_by_side"]["columns"]
        lines += [
            "",
            "## Side by side (CPU fp32, held-out test; accuracy / macro-F1)",
            "",
            "| split | " + " | ".join(cols) + " |",
            "|---|" + "---:|" * len(cols),
        ]
        for split, row in card["side_by_side"]["rows"].items():
            cells = [f"{row[c]['accuracy']:.3f} / {row[c]['macro_f1']:.3f}" if c in row else "–" for c in cols]
            lines.append(f"| {split} | " + " | ".join(cells) + " |")
    distilled = card["data"].get("distillation")
    if distilled:
        lines += [
            "",
            "## Distillation",
            f"- Teacher `{distilled['teacher']}`; soft labels `model/distill/{distilled['soft_labels']}` (sha256 "
            f"`{distilled['soft_labels_sha256'][:12]}…`): {distilled['labelled_with_soft']} labelled training texts "
            f"and {distilled['news_headlines']} news_stream headlines; loss on a labelled text "
            f"{1 - distilled['distill_weight']:.2f} × cross-entropy(gold) + {distilled['distill_weight']:.2f} × "
            "KL(teacher ‖ student), on a headline KL only.",
            f"- News-domain class bias on the teacher's logits (negative, neutral, positive): {distilled['news_bias']}"
            f"; the teacher on the in-domain validation half: {distilled['teacher_indomain_val']}.",
        ]
    cal = card["calibration"]
    lines += [
        "",
        "## Calibration (temperature scaling fitted on validation)",
        f"- Temperature {cal['temperature']:.3f}; ECE ({cal['bins']} bins) on validation "
        f"{cal['val']['ece_before']:.4f} → {cal['val']['ece_after']:.4f}, on test "
        f"{cal['test']['ece_before']:.4f} → {cal['test']['ece_after']:.4f}.",
    ]
    if "faithfulness" in card:
        f = card["faithfulness"]
        lines += [
            "",
            f"## Explanation faithfulness (ERASER AOPC, k = {f['k']}, {f['n']} sentences of {f['split']})",
            "Comprehensiveness: higher is better. Sufficiency: lower is better.",
            "",
            "| method | comprehensiveness | sufficiency |",
            "|---|---:|---:|",
            *[f"| {m} | {v['comprehensiveness']:.4f} | {v['sufficiency']:.4f} |" for m, v in f["methods"].items()],
        ]
    if "explanation_words" in card:
        e = card["explanation_words"]
        lines += [
            "",
            f"Function words or punctuation among the top-{e['k']} stored words ({e['texts']} headlines of the "
            f"{e['texts_from']}): {e['function_words']} of {e['words']} ({e['share']:.1%}).",
        ]
    return "\n".join(lines) + "\n"
