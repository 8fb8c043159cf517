"""Metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix, calibration (ECE)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from model.network import LABELS


class EvaluationInputError(ValueError):
    """The evaluation file cannot be read as labelled data; the message says why."""


def classification_metrics(y_true: list[int], y_pred: list[int]) -> dict:
    """n, accuracy, macro_f1, per_class {label: precision, recall, f1, support}, confusion (rows = true)."""
    labels = list(range(len(LABELS)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)) if y_true else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            LABELS[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i in labels
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist() if y_true else [],
    }


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al., 2017)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature scaling: the T > 0 that minimises validation NLL of softmax(logits / T)."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


def read_labelled_csv(path: Path, text_col: str = "text", label_col: str = "label", target_col: str | None = None):
    """Texts and label ids from a CSV (and, with `target_col`, the company each row labels); raises
    EvaluationInputError naming the file, column, row or label."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationInputError(f"{path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # a BOM is not part of the first column's name
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            for col in (text_col, label_col, *([target_col] if target_col else [])):
                if col not in columns:
                    raise EvaluationInputError(f"{path}: no column {col!r} (columns: {', '.join(columns) or 'none'})")
            texts, labels, targets = [], [], []
            for line, row in enumerate(reader, start=2):
                label = (row[label_col] or "").strip().lower()
                if label not in LABELS:
                    raise EvaluationInputError(
                        f"{path}:{line}: unknown label {row[label_col]!r} (expected one of {', '.join(LABELS)})"
                    )
                texts.append(row[text_col] or "")
                labels.append(LABELS.index(label))
                if target_col:
                    if not (row[target_col] or "").strip():
                        raise EvaluationInputError(f"{path}:{line}: the {target_col!r} column is empty")
                    targets.append(row[target_col])
    except UnicodeDecodeError as exc:
        raise EvaluationInputError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise EvaluationInputError(f"{path}: malformed CSV ({exc})") from exc
    if not texts:
        raise EvaluationInputError(f"{path}: no rows")
    return (texts, labels, targets) if target_col else (texts, labels)


def evaluate_targets(scorer, texts: list[str], labels: list[int], targets: list[str]) -> dict:
    """Entity-level evaluation: each row's company (as written in its text) scored by a TargetScorer; the metrics of
    `evaluate_texts` plus `n_texts`, the distinct texts. A target not in its text raises TargetError naming the row
    (rows count from 2, the first data line)."""
    from model.scorer import ScoreInputError
    from model.target import TargetError, find_target

    pred, probs = [], []
    for line, (text, target) in enumerate(zip(texts, targets, strict=True), start=2):
        try:
            r = scorer.score(text, find_target(text, target), top_k=0)
        except (TargetError, ScoreInputError) as exc:
            raise type(exc)(f"line {line}: {exc}") from None
        pred.append(LABELS.index(r.label))
        probs.append([r.probabilities[name] for name in LABELS])
    metrics = classification_metrics(labels, pred)
    metrics["ece"] = expected_calibration_error(np.array(probs), np.array(labels))
    metrics["n_texts"] = len(set(texts))
    return metrics


def evaluate_texts(scorer, texts: list[str], labels: list[int], batch_size: int = 64) -> dict:
    """Score texts with a Scorer and compare to gold labels; adds ECE of the (calibrated) probabilities."""
    results = scorer.score(texts, batch_size=batch_size, top_k=0)
    pred = [LABELS.index(r.label) for r in results]
    metrics = classification_metrics(labels, pred)
    probs = np.array([[r.probabilities[name] for name in LABELS] for r in results])
    metrics["ece"] = expected_calibration_error(probs, np.array(labels))
    return metrics


def format_report(metrics: dict) -> str:
    """A human-readable table of one metrics dict."""
    lines = [
        f"n          {metrics['n']}",
        f"accuracy   {metrics['accuracy']:.4f}",
        f"macro-F1   {metrics['macro_f1']:.4f}",
    ]
    if "ece" in metrics:
        lines.append(f"ECE        {metrics['ece']:.4f}")
    lines += ["", f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for name, m in metrics["per_class"].items():
        lines.append(f"{name:<10}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}{m['support']:>9}")
    lines += ["", "confusion (rows = true, columns = predicted)", " " * 10 + "".join(f"{n:>10}" for n in LABELS)]
    for name, row in zip(LABELS, metrics["confusion"], strict=True):
        lines.append(f"{name:<10}" + "".join(f"{v:>10}" for v in row))
    return "\n".join(lines)
