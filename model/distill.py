"""Distillation (issue 18, point 2): the teacher's calibrated probabilities on the student's training texts and on
the unlabelled news_stream headlines, kept in a small compressed file keyed by text hash, so the student can be
retrained from the repository without the teacher.

    python -m model.distill TEACHER_DIR [--out model/distill] [--max-news N]

writes `model/distill/<teacher version>.csv.gz` (columns: key, set, p_negative, p_neutral, p_positive) and
`<teacher version>.json` (the teacher's version and figures, the data files' sha256, counts, the news-domain
correction). `finsent model train --soft-labels FILE` reads them back (model/train.py).

Which texts: the training splits of PhraseBank, TFNS and FiQA (the same seed and split rule as the student), and
every distinct headline of news_stream except the in-domain headline set (both halves: model/indomain) and any
text of a labelled validation or test split. A key is the first 16 hex digits of sha256(text_key(text)).

The news-domain correction: the teacher learned TFNS's convention along with PhraseBank's, and TFNS calls much
company news neutral that our question (good or bad for the company's investors, docs/labelling.md) does not. On
news_stream headlines the teacher's logits get one bias per class, fitted by maximum likelihood on the
in-domain set's *validation* half (3 parameters; the test half is never read here), before the temperature. The
labelled sets keep the teacher's own probabilities.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer

from model.data import Encoded, data_files, held_out_keys, make_splits, sha256_file, text_key
from model.evaluate import classification_metrics
from model.network import LABELS, PoolingRule

HERE = Path(__file__).resolve().parent
SOFT_DIR = HERE / "distill"
INDOMAIN = HERE / "indomain" / "headlines.csv"
NEWS_FILES = ("reuters21578_1987.csv", "cnbc_guardian_2017_2020.csv", "benzinga_analyst_ratings_sample.csv")
COLUMNS = ("key", "set", *(f"p_{name}" for name in LABELS))


class SoftLabelError(ValueError):
    """The soft-label file is missing, malformed, or made from other data."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text_key(text).encode()).hexdigest()[:16]


def indomain_rows(split: str | None = None) -> list[dict]:
    """The hand-labelled in-domain headlines (model/indomain/headlines.csv), one split or both."""
    with open(INDOMAIN, newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if split is None or r["split"] == split]


def _indomain_key(text: str) -> str:
    from model.indomain.sample import normalise

    return normalise(text)


def spread(items: list, n: int) -> list:
    """At most n of the items, evenly spaced in their order (over every source of the news files); n=0: all."""
    return items[:: max(1, len(items) // n)][:n] if n else items


def news_headlines(data_dir: Path, exclude: set[str]) -> list[str]:
    """Distinct news_stream headlines in file order, minus the in-domain set and the texts keyed in `exclude`."""
    held_out = {_indomain_key(r["text"]) for r in indomain_rows()}
    seen: set[str] = set()
    out = []
    for name in NEWS_FILES:
        with open(data_dir / "news_stream" / name, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                text = " ".join((row.get("headline") or "").split())
                key = text_key(text)
                if not text or key in seen or key in exclude or _indomain_key(text) in held_out:
                    continue
                seen.add(key)
                out.append(text)
    return out


@torch.no_grad()
def teacher_logits(teacher: Path, texts: list[str], batch_size: int = 64, log=print) -> tuple[torch.Tensor, float]:
    """The teacher's raw logits (N, 3) on CPU fp32 (or CUDA) and its temperature."""
    from model.scorer import load_network
    from model.train import predict_logits

    net, cfg = load_network(Path(teacher))
    tokenizer = AutoTokenizer.from_pretrained(str(teacher))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net.to(device)
    rule = PoolingRule(tokenizer, net.config)
    out = []
    step = 4096
    for start in range(0, len(texts), step):  # in slices, so a long run shows progress
        part = Encoded(tokenizer, texts[start : start + step], None, net.config.max_length, rule=rule)
        out.append(predict_logits(net, part, device, batch_size=batch_size))
        log(f"  teacher: {min(start + step, len(texts))}/{len(texts)} texts")
    return torch.cat(out) if out else torch.empty((0, 3)), float(net.config.temperature)


def fit_bias(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> list[float]:
    """One additive bias per class on the logits, maximising the likelihood of `labels` (class 'neutral' fixed
    at 0: only differences matter)."""
    bias = torch.zeros(3, requires_grad=True)
    opt = torch.optim.LBFGS([bias], lr=0.1, max_iter=200)
    fixed = torch.tensor([1.0, 0.0, 1.0])

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy((logits + bias * fixed) / temperature, labels)
        loss.backward()
        return loss

    opt.step(closure)
    return [round(float(b), 4) for b in (bias * fixed).detach()]


def _metrics(probs: torch.Tensor, labels: list[int]) -> dict:
    m = classification_metrics(labels, probs.argmax(-1).tolist())
    return {"n": m["n"], "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4)}


def label_with_teacher(
    teacher: Path, data_dir: Path, out_dir: Path = SOFT_DIR, seed: int = 13, max_news: int = 0, log=print
) -> Path:
    """Write the teacher's soft labels and their record; returns the .csv.gz path."""
    teacher, data_dir = Path(teacher), Path(data_dir)
    card = json.loads((teacher / "card.json").read_text()) if (teacher / "card.json").is_file() else {}
    version = json.loads((teacher / "config.json").read_text())["version"]
    splits = make_splits(data_dir, seed)
    labelled = [(name, e.text) for name, parts in splits.items() for e in parts["train"]]
    news = spread(news_headlines(data_dir, held_out_keys(splits)), max_news)
    val = indomain_rows("val")
    log(f"teacher {version}: {len(labelled)} labelled training texts, {len(news)} news headlines, {len(val)} val")

    # Each labelled set's validation split too: the bias that best fits each set's own labels shows how far its
    # convention sits from the others' (record["convention_bias"]).
    set_val = [(name, e) for name, parts in splits.items() for e in parts["val"]]
    texts = [t for _, t in labelled] + [e.text for _, e in set_val] + [r["text"] for r in val] + news
    logits, temperature = teacher_logits(teacher, texts, log=log)
    n_lab, n_set, n_val = len(labelled), len(set_val), len(val)
    lab_logits, set_logits = logits[:n_lab], logits[n_lab : n_lab + n_set]
    val_logits, news_logits = logits[n_lab + n_set : n_lab + n_set + n_val], logits[n_lab + n_set + n_val :]
    val_labels = torch.tensor([LABELS.index(r["label"]) for r in val])
    bias = fit_bias(val_logits, val_labels, temperature)
    convention = {}
    for name in splits:
        rows = [i for i, (n, _) in enumerate(set_val) if n == name]
        gold = torch.tensor([LABELS.index(set_val[i][1].label) for i in rows])
        convention[name] = {
            "bias": fit_bias(set_logits[rows], gold, temperature),
            **_metrics(torch.softmax(set_logits[rows] / temperature, -1), gold.tolist()),
        }
    convention["indomain"] = {"bias": bias}
    shift = torch.tensor(bias)
    indomain_val = {
        "teacher": _metrics(torch.softmax(val_logits / temperature, -1), val_labels.tolist()),
        "teacher_with_news_bias": _metrics(torch.softmax((val_logits + shift) / temperature, -1), val_labels.tolist()),
    }
    log(f"news-domain bias {bias}; in-domain val {indomain_val}")
    probs = torch.cat(
        [torch.softmax(lab_logits / temperature, -1), torch.softmax((news_logits + shift) / temperature, -1)]
    ).numpy()
    sets = [name for name, _ in labelled] + ["news"] * len(news)
    texts = [t for _, t in labelled] + news

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{version}.csv.gz"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for text, name, p in zip(texts, sets, probs, strict=True):
        writer.writerow([text_hash(text), name, *(f"{x:.4f}" for x in p)])
    with gzip.GzipFile(path, "wb", mtime=0) as fh:  # mtime 0: the same labels give the same bytes
        fh.write(buf.getvalue().encode())
    record = {
        "teacher": version,
        "teacher_test": card.get("metrics", {}).get("test", {}).get("fp32", {}),
        "temperature": temperature,
        "news_bias": bias,
        "convention_bias": convention,
        "indomain_val": indomain_val,
        "seed": seed,
        "counts": {name: sets.count(name) for name in dict.fromkeys(sets)},
        "data_files": [
            {"path": str(p.relative_to(data_dir)), "sha256": sha256_file(p)}
            for p in [*data_files(data_dir), *(data_dir / "news_stream" / n for n in NEWS_FILES)]
        ],
        "indomain_sha256": sha256_file(INDOMAIN),
        "file_sha256": sha256_file(path),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m model.distill " + " ".join(sys.argv[1:]),
    }
    path.with_suffix("").with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    log(f"soft labels written to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def read_soft_labels(path: Path) -> tuple[dict[str, tuple[str, list[float]]], dict]:
    """{key: (set, [p_negative, p_neutral, p_positive])} and the record beside the file."""
    path = Path(path)
    if not path.is_file():
        raise SoftLabelError(f"{path}: no such soft-label file")
    record_path = path.with_suffix("").with_suffix(".json")
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if record.get("file_sha256") and record["file_sha256"] != sha256_file(path):
        raise SoftLabelError(f"{path}: sha256 differs from the one in {record_path.name}: the file was changed")
    out: dict[str, tuple[str, list[float]]] = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        if tuple(next(reader, ())) != COLUMNS:
            raise SoftLabelError(f"{path}: the header is not {','.join(COLUMNS)}")
        for n, row in enumerate(reader, start=2):
            try:
                p = [float(x) for x in row[2:5]]
            except (ValueError, IndexError):
                raise SoftLabelError(f"{path}: line {n} is not key,set,3 probabilities") from None
            if len(row) != 5 or not np.isclose(sum(p), 1.0, atol=2e-3) or min(p) < 0:
                raise SoftLabelError(f"{path}: line {n} holds no probability distribution")
            out[row[0]] = (row[1], p)
    return out, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("teacher", type=Path, help="the teacher's checkpoint folder")
    parser.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=SOFT_DIR)
    parser.add_argument("--max-news", type=int, default=0, help="label at most N news headlines (0: all)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    label_with_teacher(args.teacher, args.data_dir, args.out, max_news=args.max_news)
    return 0


if __name__ == "__main__":
    sys.exit(main())
