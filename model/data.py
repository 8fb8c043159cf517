"""Labelled data: loading the development sets, splitting them without leaks, batching them by length.

Splits are made on unique (normalised) text, stratified, with a fixed seed. Any text that lands in any
test split is removed from every train and validation split, across datasets, so a test sentence is never
seen in training or model selection.
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from sklearn.model_selection import train_test_split

from model.network import LABELS

LABEL_TO_ID = {name: i for i, name in enumerate(LABELS)}


@dataclass(frozen=True)
class Example:
    """One labelled text. `agreement` is the PhraseBank annotator agreement level (100/75/66/50) or 0."""

    text: str
    label: str
    dataset: str
    agreement: int = 0


def text_key(text: str) -> str:
    """Normalised form used to find the same text across files: NFKC, casefolded, whitespace folded."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_phrasebank(data_dir: Path) -> list[Example]:
    """Unique PhraseBank sentences with their strongest agreement level; texts with conflicting labels dropped."""
    rows = _read_csv(data_dir / "financial_phrasebank" / "phrasebank_by_agreement.csv")
    by_key: dict[str, list[dict]] = {}
    for row in rows:
        by_key.setdefault(text_key(row["text"]), []).append(row)
    out = []
    for group in by_key.values():
        if len({r["label"] for r in group}) > 1:
            continue  # 2 sentences in 50Agree carry two labels; neither is trustworthy
        best = max(group, key=lambda r: int(r["strongest_agreement"]))
        out.append(Example(best["text"], best["label"], "phrasebank", int(best["strongest_agreement"])))
    return out


def load_twitter(data_dir: Path, part: str) -> list[Example]:
    rows = _read_csv(data_dir / "twitter_financial_news_sentiment" / f"{part}.csv")
    return [Example(r["text"], r["label"], "twitter") for r in rows]


def load_fiqa(data_dir: Path) -> list[Example]:
    rows = _read_csv(data_dir / "fiqa_2018_task1" / "fiqa_posts.csv")
    seen, out = set(), []
    for r in rows:
        key = text_key(r["text"])
        if key not in seen:
            seen.add(key)
            out.append(Example(r["text"], r["label"], "fiqa"))
    return out


def data_files(data_dir: Path) -> list[Path]:
    """Every file the splits are built from (their sha256 go into the model card)."""
    return [
        data_dir / "financial_phrasebank" / "phrasebank_by_agreement.csv",
        data_dir / "twitter_financial_news_sentiment" / "train.csv",
        data_dir / "twitter_financial_news_sentiment" / "valid.csv",
        data_dir / "fiqa_2018_task1" / "fiqa_posts.csv",
    ]


def _split(items: list[Example], fractions: tuple[float, float], seed: int, strat) -> tuple[list, list, list]:
    """Stratified train/val/test split; fractions are (val, test)."""
    val_frac, test_frac = fractions
    rest, test = train_test_split(items, test_size=test_frac, random_state=seed, stratify=[strat(e) for e in items])
    train, val = train_test_split(
        rest, test_size=val_frac / (1 - test_frac), random_state=seed, stratify=[strat(e) for e in rest]
    )
    return train, val, test


def make_splits(data_dir: Path, seed: int = 13) -> dict[str, dict[str, list[Example]]]:
    """{dataset: {"train", "val", "test"}}; tests are leak-free against every train and val split."""
    data_dir = Path(data_dir)
    pb = load_phrasebank(data_dir)
    pb_split = _split(pb, (0.10, 0.20), seed, lambda e: f"{e.label}/{e.agreement}")
    tw_train, tw_val = train_test_split(
        load_twitter(data_dir, "train"),
        test_size=0.10,
        random_state=seed,
        stratify=[e.label for e in load_twitter(data_dir, "train")],
    )
    tw_test = load_twitter(data_dir, "valid")  # the published split everyone reports on
    fq_split = _split(load_fiqa(data_dir), (0.10, 0.20), seed, lambda e: e.label)
    splits = {
        "phrasebank": dict(zip(("train", "val", "test"), pb_split, strict=True)),
        "twitter": {"train": tw_train, "val": tw_val, "test": tw_test},
        "fiqa": dict(zip(("train", "val", "test"), fq_split, strict=True)),
    }
    test_keys = {text_key(e.text) for s in splits.values() for e in s["test"]}
    val_keys = {text_key(e.text) for s in splits.values() for e in s["val"]}
    for s in splits.values():
        s["val"] = [e for e in s["val"] if text_key(e.text) not in test_keys]
        s["train"] = [e for e in s["train"] if text_key(e.text) not in test_keys | val_keys]
    return splits


def held_out_keys(splits: dict[str, dict[str, list[Example]]]) -> set[str]:
    """text_key of every validation and test text: what no unlabelled or soft-labelled training text may be."""
    return {text_key(e.text) for parts in splits.values() for part in ("val", "test") for e in parts[part]}


def evaluation_sets(splits: dict[str, dict[str, list[Example]]], part: str) -> dict[str, list[Example]]:
    """Named evaluation sets of one part: PhraseBank at each agreement level, TFNS, FiQA posts."""
    pb = splits["phrasebank"][part]
    return {
        "phrasebank_50agree": pb,
        "phrasebank_66agree": [e for e in pb if e.agreement >= 66],
        "phrasebank_75agree": [e for e in pb if e.agreement >= 75],
        "phrasebank_allagree": [e for e in pb if e.agreement == 100],
        "twitter": splits["twitter"][part],
        "fiqa": splits["fiqa"][part],
    }


def split_counts(splits: dict[str, dict[str, list[Example]]]) -> dict:
    return {
        name: {part: {"n": len(items), **Counter(e.label for e in items)} for part, items in parts.items()}
        for name, parts in splits.items()
    }


def write_split_csv(path: Path, items: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for e in items:
            writer.writerow([e.text, e.label])


class Encoded:
    """Pre-tokenised examples: word-piece ids, which positions the head may pool, gold labels (-100: none) and,
    for distillation, the teacher's probabilities (None: none)."""

    def __init__(
        self,
        tokenizer,
        texts: list[str],
        labels: list[int] | None,
        max_length: int,
        rule=None,
        soft: list[list[float] | None] | None = None,
    ) -> None:
        enc = tokenizer(texts, truncation=True, max_length=max_length, return_special_tokens_mask=True)
        self.input_ids: list[list[int]] = enc["input_ids"]
        self.special: list[list[int]] = enc["special_tokens_mask"]
        self.labels = labels
        self.soft = soft
        self.rule = rule  # a model.network.PoolingRule, or None: pool every non-special piece
        self.pad_id = tokenizer.pad_token_id

    def __len__(self) -> int:
        return len(self.input_ids)

    def collate(self, idx: list[int]) -> dict[str, torch.Tensor]:
        """Dynamic padding: the batch is as wide as its longest member."""
        width = max(len(self.input_ids[i]) for i in idx)
        ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        pool = torch.zeros((len(idx), width), dtype=torch.bool)
        for row, i in enumerate(idx):
            n = len(self.input_ids[i])
            ids[row, :n] = torch.tensor(self.input_ids[i])
            attn[row, :n] = 1
            pool[row, :n] = torch.tensor(self.special[i]) == 0
        if self.rule is not None:
            pool = self.rule.mask(ids, attn)
        batch = {"input_ids": ids, "attention_mask": attn, "pool_mask": pool}
        if self.labels is not None:
            batch["labels"] = torch.tensor([self.labels[i] for i in idx], dtype=torch.long)
        if self.soft is not None:
            rows = [self.soft[i] for i in idx]
            batch["soft_targets"] = torch.tensor([r if r is not None else [0.0] * 3 for r in rows])
            batch["soft_mask"] = torch.tensor([r is not None for r in rows])
        return batch


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random | None, pool: int = 50) -> list[list[int]]:
    """Length bucketing: sort within pools of `pool` batches so padding is small, then shuffle batches.

    With rng=None the order is deterministic and unshuffled (evaluation).
    """
    order = list(range(len(lengths)))
    if rng is not None:
        rng.shuffle(order)
    batches = []
    span = batch_size * pool
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    if rng is not None:
        rng.shuffle(batches)
    return batches
