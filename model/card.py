"""The model card: metrics of every shipped inference path on every held-out split, explanation
faithfulness, and a Markdown rendering of card.json."""

from __future__ import annotations

import json
from pathlib import Path

from model.evaluate import evaluate_texts, read_labelled_csv
from model.network import LABELS
from model.scorer import Scorer

INT8_MAX_LOSS = 0.005  # the int8 path may cost at most 0.5 accuracy point to be the CPU default


def evaluate_splits(scorer: Scorer, split_dir: Path) -> dict:
    """Metrics of one scorer on every splits/<name>_test.csv."""
    out = {}
    for csv_path in sorted(split_dir.glob("*_test.csv")):
        texts, labels = read_labelled_csv(csv_path)
        out[csv_path.name.removesuffix("_test.csv")] = evaluate_texts(scorer, texts, labels)
    return out


def complete_card(path: Path, faithfulness_n: int = 300, log=print) -> dict:
    """Add test metrics for each CPU path, the CPU default path, and faithfulness; write card.json and card.md."""
    from model.explain import Explainer, faithfulness

    path = Path(path)
    card = json.loads((path / "card.json").read_text())
    metrics = {}
    for precision in ("fp32", "int8"):
        metrics[precision] = evaluate_splits(Scorer(path, device="cpu", precision=precision), path / "splits")
        summary = ", ".join(
            f"{n} acc {m['accuracy']:.4f} F1 {m['macro_f1']:.4f}" for n, m in metrics[precision].items()
        )
        log(f"{precision}: {summary}")
    card["metrics"] = {"test": metrics}
    loss = max(metrics["fp32"][n]["accuracy"] - metrics["int8"][n]["accuracy"] for n in metrics["fp32"])
    card["inference"] = {
        "cpu_default": "int8" if loss <= INT8_MAX_LOSS else "fp32",
        "int8_max_accuracy_loss": loss,
        "rule": f"int8 is the CPU default when it loses at most {INT8_MAX_LOSS:.3f} accuracy on every test split",
        "cuda_default": "bf16",
    }
    if faithfulness_n:
        texts, _ = read_labelled_csv(path / "splits" / "phrasebank_50agree_test.csv")
        card["faithfulness"] = {
            "split": "phrasebank_50agree_test",
            **faithfulness(Explainer(path), texts[:faithfulness_n], log=log),
        }
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
            f"- CPU default: **{inf['cpu_default']}** ({inf['rule']}; "
            f"measured worst loss {inf['int8_max_accuracy_loss']:.4f}). CUDA: {inf['cuda_default']}.",
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
    return "\n".join(lines) + "\n"
