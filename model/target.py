"""Sentiment for one company in a text (issue 20): "Pfizer wins as Moderna slumps" is good for Pfizer, bad for Moderna.

Design (docs/model.md, "Sentiment per company"): the shipped network's encoder and classifier are kept as they are;
only the pooling changes. The headline's pooling query `q` becomes, for one mention,

    q_m = q + W · mean(states of the mention's word-pieces)

and each word-piece's pooling score gets learned biases for where it stands from the mention: its distance in
word-pieces (before or after), whether it is inside the mention or inside another company's mention, and which
clause words lie between it and the mention (",", "as", "while", "but", "over", "from", ...). The pooled state goes
through the shipped classifier. So:

- the explanation is exactly what the decision used: the words are the mention's pooling weights, as for headlines;
- a head whose learned parts are zero is the headline's pooling: the head starts from the headline result and
  learns only where to look for one company;
- a text naming one company is scored by the headline path itself (`Scorer`), so nothing changes there.

Training data (`finsent model train-target`): the shipped network's own train splits only (PhraseBank, Twitter
financial news, FiQA posts), never their validation or test splits. A text the linker finds exactly one company in
carries its label for that company; two such texts of the training split are composed into one two-company text
("A rises, while B falls"), each company keeping its own label. FiQA posts carry their target. The dev half of the
hand-judged fixture (tests/model/fixtures/entity_sentiment.jsonl) chooses the epoch; its test half only reports.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from model.network import LABELS

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "model" / "fixtures" / "entity_sentiment.jsonl"
HEAD_FILE = "target_head.safetensors"
HEAD_CARD = "target_head.json"
# Words and marks that separate one company's clause from another's, as the uncased word-pieces write them.
BOUNDARIES = (",", ";", ":", "-", "|", "as", "while", "but", "after", "amid", "whereas", "despite", "over", "than",
              "vs", "and", "to", "from", "with", "by", "against", "for")  # fmt: skip
MAX_DISTANCE = 12  # distances beyond this many word-pieces share one bias
# The companies a text names, as (ticker, start, end): the linker, which lives a layer up (scoring.entities), is
# handed in by whoever wires this (the CLI, the training command); the worker passes its own spans instead.
Linker = Callable[[str], list[tuple[str, int, int]]]


class TargetError(ValueError):
    """A target that cannot be scored: empty, not in the text, or a span outside it. The message says which."""


@dataclass(frozen=True)
class Features:
    """What the head needs besides the encoder's states, for one (text, mention) pair: (T,) arrays."""

    mention: np.ndarray  # bool: the mention's word-pieces
    other: np.ndarray  # bool: word-pieces of another company's mention
    distance: np.ndarray  # int: bucket 0 .. 2*MAX_DISTANCE (MAX_DISTANCE is inside the mention)
    crossed: np.ndarray  # (T, len(BOUNDARIES) + 1) float: boundaries between the piece and the mention; last: a company


def boundary_ids(tokenizer) -> dict[int, int]:
    vocab = tokenizer.get_vocab()
    return {vocab[w]: k for k, w in enumerate(BOUNDARIES) if w in vocab}


def features(
    offsets: list[tuple[int, int]], ids: list[int], span: tuple[int, int], others: list[tuple[int, int]], bounds
) -> Features:
    """Features of every word-piece of one encoded text for the mention at character span `span`. `offsets` are the
    pieces' character offsets ((0, 0) for specials)."""
    t = len(ids)
    start, end = span
    real = np.array([e > s for s, e in offsets])
    mention = np.array([s < end and start < e for s, e in offsets]) & real
    if not mention.any():
        raise TargetError(f"the span {start}:{end} covers no word-piece of the text")
    other = np.zeros(t, dtype=bool)
    for a, b in others:
        other |= np.array([s < b and a < e for s, e in offsets]) & real & ~mention
    where = np.flatnonzero(mention)
    first, last = where[0], where[-1]
    pos = np.arange(t)
    signed = np.where(pos < first, pos - first, np.where(pos > last, pos - last, 0))
    distance = np.clip(signed, -MAX_DISTANCE, MAX_DISTANCE) + MAX_DISTANCE
    kinds = np.array([bounds.get(i, -1) for i in ids])
    crossed = np.zeros((t, len(BOUNDARIES) + 1), dtype=np.float32)
    for p in range(t):
        lo, hi = (p + 1, first) if p < first else (last + 1, p)
        if lo >= hi:
            continue
        for k in set(kinds[lo:hi].tolist()) - {-1}:
            crossed[p, k] = 1.0
        if other[lo:hi].any():
            crossed[p, -1] = 1.0
    return Features(mention, other, distance.astype(np.int64), crossed)


class TargetPooling(nn.Module):
    """The headline's pooling query plus a term from the mention's states, and learned position biases. All learned
    parts start at zero: the untrained head pools exactly as the headline does."""

    def __init__(self, query: torch.Tensor) -> None:
        super().__init__()
        hidden = query.numel()
        self.register_buffer("query", query.detach().clone().float())
        self.from_mention = nn.Linear(hidden, hidden, bias=False)
        nn.init.zeros_(self.from_mention.weight)
        self.distance = nn.Parameter(torch.zeros(2 * MAX_DISTANCE + 1))
        self.crossed = nn.Parameter(torch.zeros(len(BOUNDARIES) + 1))
        self.inside = nn.Parameter(torch.zeros(2))  # the mention's own pieces, another company's pieces
        self.scale = 1.0 / math.sqrt(hidden)

    def forward(self, states, pool_mask, mention, other, distance, crossed):
        """states (B, T, C); pool_mask, mention, other (B, T) bool; distance (B, T) long; crossed (B, T, K)."""
        states = states.float()
        m = mention.float()
        summary = (states * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp_min(1.0)  # (B, C)
        q = self.query + self.from_mention(summary)  # (B, C)
        scores = torch.einsum("btc,bc->bt", states, q) * self.scale
        scores = scores + self.distance[distance] + crossed @ self.crossed
        scores = scores + self.inside[0] * m + self.inside[1] * other.float()
        scores = scores.masked_fill(~pool_mask, float("-inf"))
        weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
        pooled = torch.einsum("bt,btc->bc", weights, states)
        return pooled, weights


def load_head(checkpoint: Path, query: torch.Tensor) -> TargetPooling | None:
    """The checkpoint's targeted head, or None when it has none."""
    path = Path(checkpoint) / HEAD_FILE
    if not path.is_file():
        return None
    head = TargetPooling(query)
    head.load_state_dict(load_file(str(path)))
    head.eval()
    return head


def find_target(text: str, name: str) -> tuple[int, int]:
    """The character span of `name` in `text` (first whole-word occurrence, case-insensitive)."""
    import re

    name = (name or "").strip()
    if not name:
        raise TargetError("the target is empty: give a company name as written in the text, or --span START:END")
    m = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text, flags=re.IGNORECASE)
    if m is None:
        raise TargetError(f"the target {name!r} does not occur in the text")
    return m.span()


def check_span(text: str, span: tuple[int, int]) -> tuple[int, int]:
    start, end = span
    if not (0 <= start < end <= len(text)):
        raise TargetError(f"the span {start}:{end} is outside the text (0:{len(text)})")
    if not text[start:end].strip():
        raise TargetError(f"the span {start}:{end} holds no word")
    return start, end


@dataclass
class TargetResult:
    """One company's sentiment in one text, with the words its decision pooled (as the headline's ScoreResult)."""

    target: str  # the text of the mention
    start: int
    end: int
    label: str
    probabilities: dict[str, float]
    score: float  # p_positive - p_negative
    attributions: list  # model.scorer.Attribution, most weight first
    targeted: bool  # False: the text names no other company, so this is the headline's result
    others: list[tuple[int, int]]  # the other companies' spans the decision knew of


class TargetScorer:
    """Scores (text, mention) pairs with a checkpoint's targeted head, on the network of a headline `Scorer` (the
    worker's own: no second copy; or a CPU fp32 one). `score` serves one text (the CLI): when the linker finds no
    other company in it, the result is the headline's, from the Scorer itself. `score_mentions` serves a batch of
    texts that name two or more companies (the worker)."""

    def __init__(self, checkpoint: str | Path | None = None, scorer=None, linker: Linker | None = None) -> None:
        from model.checkpoints import CheckpointError
        from model.scorer import Scorer

        self.scorer = scorer if scorer is not None else Scorer(checkpoint, device="cpu", precision="fp32")
        self.path, self.version = self.scorer.path, self.scorer.version
        head = load_head(self.path, self.scorer.net.pool.query.detach().float().cpu())
        if head is None:
            raise CheckpointError(f"checkpoint {self.path} has no targeted head ({HEAD_FILE}): train one with "
                                  "`finsent model train-target`")  # fmt: skip
        self.head = head.to(self.scorer.device)
        self.tokenizer = self.scorer.tokenizer
        self.bounds = boundary_ids(self.tokenizer)
        self.temperature = float(self.scorer.config.temperature)
        self.linker = linker

    def others(self, text: str, span: tuple[int, int]) -> list[tuple[int, int]]:
        """One span for each other company the linker finds in the text, as the worker gives them: the first span of
        each ticker other than the target's (the company whose span overlaps the target); none without a linker."""
        start, end = span
        found = self.linker(text) if self.linker is not None else []
        target = {t for t, s, e in found if s < end and start < e}
        first: dict[str, tuple[int, int]] = {}
        for ticker, s, e in found:
            if ticker not in target and ticker not in first:
                first[ticker] = (s, e)
        return list(first.values())

    def score(self, text: str, span: tuple[int, int], others: list[tuple[int, int]] | None = None, top_k: int = 5):
        """One company's result in one text; with no other company in it, the headline's result itself."""
        from model.scorer import validate_text

        text = validate_text(text)
        span = check_span(text, span)
        others = self.others(text, span) if others is None else others
        if not others:
            r = self.scorer.score([text], top_k=top_k)[0]
            return TargetResult(text[span[0] : span[1]], *span, r.label, r.probabilities, r.score, r.attributions,
                                False, [])  # fmt: skip
        result = self.score_mentions([text], [[span, *others]], top_k=top_k)[0][0]
        if result is None:
            limit = self.scorer.config.max_length
            raise TargetError(f"the span {span[0]}:{span[1]} lies past the {limit} word-pieces the model reads")
        return result

    def score_mentions(
        self, texts: list[str], spans: list[list[tuple[int, int]]], top_k: int = 5
    ) -> list[list[TargetResult | None]]:
        """For each text, a result per span, in order (each scored with the text's other spans as the other
        companies); None for a mention past the model's word-pieces, which keeps its headline's result.

        A row is padded to the Scorer's `padded_width` of its own length and batched with rows of that width only,
        so its result does not depend on the other texts of the call (docs/model.md, 'One text, one score')."""
        from model.scorer import on_torch_thread

        enc = self.tokenizer(texts, truncation=True, max_length=self.scorer.config.max_length,
                             return_offsets_mapping=True)  # fmt: skip
        widths: dict[int, list[int]] = {}
        for i, ids in enumerate(enc["input_ids"]):
            widths.setdefault(self.scorer.padded_width(len(ids)), []).append(i)
        out: list[list[TargetResult | None]] = [[None] * len(s) for s in spans]
        step = self.scorer.batch_size
        for width, rows in widths.items():
            for b in range(0, len(rows), step):
                part = rows[b : b + step]
                ids = torch.full((len(part), width), self.tokenizer.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(part), width), dtype=torch.long)
                for r, i in enumerate(part):
                    n = len(enc["input_ids"][i])
                    ids[r, :n] = torch.tensor(enc["input_ids"][i])
                    mask[r, :n] = 1
                states, pool = on_torch_thread(self._encode, ids, mask)
                items, where = [], []
                for r, i in enumerate(part):
                    n = len(enc["input_ids"][i])
                    offsets = [tuple(o) for o in enc["offset_mapping"][i]]
                    encoded = {"states": states[r, :n], "pool": pool[r, :n], "ids": enc["input_ids"][i],
                               "offsets": offsets}  # fmt: skip
                    for k, span in enumerate(spans[i]):
                        others = [x for j, x in enumerate(spans[i]) if j != k]
                        try:
                            f = features(offsets, encoded["ids"], span, others, self.bounds)
                        except TargetError:  # past the word-pieces the model reads: the headline's result stays
                            continue
                        items.append((encoded, f))
                        where.append((i, k, span, others))
                if not items:
                    continue
                probs, weights = on_torch_thread(self._head, items, width)
                for row, (i, k, span, others) in enumerate(where):
                    p = {name: float(x) for name, x in zip(LABELS, probs[row].tolist(), strict=True)}
                    words = self._words(texts[i], items[row][0], weights[row], top_k)
                    out[i][k] = TargetResult(texts[i][span[0] : span[1]], *span, LABELS[int(probs[row].argmax())], p,
                                             p["positive"] - p["negative"], words, True, others)  # fmt: skip
        return out

    @torch.inference_mode()
    def _encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        ids, mask = input_ids.to(self.scorer.device), attention_mask.to(self.scorer.device)
        with self.scorer.amp:
            states = self.scorer.net.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return states.float().cpu(), self.scorer.rule.mask(input_ids, attention_mask)

    @torch.inference_mode()
    def _head(self, items, width: int):
        device = self.scorer.device
        batch = [x.to(device) for x in collate(items, width)]
        pooled, weights = self.head(*batch)
        cuda_bf16 = device.type == "cuda" and self.scorer.precision == "bf16"
        with self.scorer.amp:
            logits = self.scorer.net.classifier(pooled.to(torch.bfloat16 if cuda_bf16 else torch.float32))
        probs = torch.softmax(logits.float() / self.temperature, dim=-1)
        return probs.cpu().numpy(), weights.float().cpu().numpy()

    def _words(self, text: str, encoded: dict, weights: np.ndarray, top_k: int) -> list:
        """The top-k words of one mention's pooling weights, merged from word-pieces by the rule the headline's
        stored words follow (model.tokens.merge_words: punctuation dropped, "$"/"#" kept with their word)."""
        from model.scorer import Attribution
        from model.tokens import merge_words, text_is_punct

        keep = [k for k, (s, e) in enumerate(encoded["offsets"]) if e > s]  # no [CLS], [SEP]
        if not keep or top_k <= 0:
            return []
        ids = np.asarray([encoded["ids"][k] for k in keep], np.int64)
        starts = np.asarray([encoded["offsets"][k][0] for k in keep], np.int64)
        ends = np.asarray([encoded["offsets"][k][1] for k in keep], np.int64)
        punct = self.scorer.punct[ids].copy()
        for j in np.flatnonzero(ids == self.tokenizer.unk_token_id).tolist():  # an unknown piece: read its characters
            punct[j] = text_is_punct(text, int(starts[j]), int(ends[j]))
        sign = np.isin(ids, self.scorer.sign_ids)
        w = np.asarray(weights[keep], np.float64)
        words = merge_words(np.zeros(len(keep), np.int64), starts, ends, w, punct, sign).top(top_k)
        return [
            Attribution(int(r), text[s:e], float(x), s, e)
            for s, e, x, r in zip(
                words.start.tolist(), words.end.tolist(), words.weight.tolist(), words.rank.tolist(), strict=True
            )  # fmt: skip
        ]


# ----------------------------------------------------------------------------------------------------- training


def single_company_examples(splits, linker: Linker) -> list[tuple[str, str, tuple[int, int]]]:
    """(text, label, span) from the train splits: texts in which `linker` finds exactly one company."""
    out = []
    for name in ("phrasebank", "twitter"):
        for e in splits[name]["train"]:
            if len(e.text) > 220:
                continue
            spans = linker(e.text)
            if len({t for t, _, _ in spans}) == 1:
                out.append((e.text, e.label, (spans[0][1], spans[0][2])))
    return out


def fiqa_examples(data_dir: Path, splits) -> list[tuple[str, str, tuple[int, int]]]:
    import csv

    from model.data import text_key

    train = {text_key(e.text) for e in splits["fiqa"]["train"]}
    out = []
    with (data_dir / "fiqa_2018_task1" / "fiqa_posts.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if text_key(row["text"]) not in train:
                continue
            for cand in (row["target"], "$" + row["target"]):
                try:
                    out.append((row["text"], row["label"], find_target(row["text"], cand)))
                    break
                except TargetError:
                    continue
    return out


CONNECTORS = (", while ", " as ", "; ", ", but ", " - ", ", even as ", ", whereas ", " after ", ". ")


def compose(singles, n: int, rng: random.Random) -> list[tuple[str, list[tuple[str, tuple[int, int]]]]]:
    """Two single-company texts joined into one, each company with its own label; 3 in 4 pairs differ in label."""
    by_label: dict[str, list] = {lab: [s for s in singles if s[1] == lab] for lab in LABELS}
    out = []
    while len(out) < n:
        a = rng.choice(singles)
        if rng.random() < 0.75:
            b = rng.choice(by_label[rng.choice([lab for lab in LABELS if lab != a[1]])])
        else:
            b = rng.choice(by_label[a[1]])
        if a[0] == b[0]:
            continue
        lead = len(a[0]) - len(a[0].lstrip())
        left = a[0].strip().rstrip(".")
        right = b[0].strip()
        conn = rng.choice(CONNECTORS)
        cut = len(b[0]) - len(b[0].lstrip())
        shift = len(left) + len(conn) - cut
        spans = [(a[1], (a[2][0] - lead, a[2][1] - lead)), (b[1], (b[2][0] + shift, b[2][1] + shift))]
        text = left + conn + right
        if text[spans[1][1][0] : spans[1][1][1]].casefold() != b[0][b[2][0] : b[2][1]].casefold():
            continue
        if a[2][0] < lead or a[2][1] - lead > len(left):
            continue
        out.append((text, spans))
    return out


class Encoded:
    """Texts encoded once by the frozen encoder: states and the pieces' offsets, for many (text, mention) pairs."""

    def __init__(self, net, tokenizer, pool_rule, max_length: int = 128) -> None:
        self.net, self.tokenizer, self.rule, self.max_length = net, tokenizer, pool_rule, max_length
        self.bounds = boundary_ids(tokenizer)

    @torch.inference_mode()
    def encode(self, texts: list[str], batch: int = 64) -> list[dict]:
        out = []
        for i in range(0, len(texts), batch):
            part = texts[i : i + batch]
            enc = self.tokenizer(part, truncation=True, max_length=self.max_length, padding=True,
                                 return_offsets_mapping=True, return_tensors="pt")  # fmt: skip
            states = self.net.encoder(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            ).last_hidden_state
            pool = self.rule.mask(enc["input_ids"], enc["attention_mask"])
            for j in range(len(part)):
                n = int(enc["attention_mask"][j].sum())
                out.append({
                    "states": states[j, :n].clone(), "pool": pool[j, :n].clone(),
                    "ids": enc["input_ids"][j, :n].tolist(),
                    "offsets": [tuple(o) for o in enc["offset_mapping"][j, :n].tolist()],
                })  # fmt: skip
        return out


def collate(items: list[tuple[dict, Features]], width: int | None = None):
    """Tensors for the head; rows padded to `width` (default: the longest row)."""
    t = max(width or 0, max(len(e["ids"]) for e, _ in items))
    b, c = len(items), items[0][0]["states"].shape[-1]
    states = torch.zeros(b, t, c)
    pool = torch.zeros(b, t, dtype=torch.bool)
    mention = torch.zeros(b, t, dtype=torch.bool)
    other = torch.zeros(b, t, dtype=torch.bool)
    distance = torch.full((b, t), MAX_DISTANCE, dtype=torch.long)
    crossed = torch.zeros(b, t, len(BOUNDARIES) + 1)
    for i, (e, f) in enumerate(items):
        n = len(e["ids"])
        states[i, :n] = e["states"]
        pool[i, :n] = e["pool"]
        mention[i, :n] = torch.from_numpy(f.mention)
        other[i, :n] = torch.from_numpy(f.other)
        distance[i, :n] = torch.from_numpy(f.distance)
        crossed[i, :n] = torch.from_numpy(f.crossed)
    return states, pool, mention, other, distance, crossed


def pairs_of(encoder: Encoded, rows: list[tuple[str, list[tuple[str, tuple[int, int]]]]]):
    """(encoded text, features, label id) for each mention of each row; rows are (text, [(label, span), ...])."""
    encoded = encoder.encode([r[0] for r in rows])
    out = []
    for (_, mentions), e in zip(rows, encoded, strict=True):
        for k, (label, span) in enumerate(mentions):
            others = [s for j, (_, s) in enumerate(mentions) if j != k]
            try:
                f = features(e["offsets"], e["ids"], span, others, encoder.bounds)
            except TargetError:
                continue  # the mention fell beyond max_length
            out.append((e, f, LABELS.index(label)))
    return out


def fixture_rows(path: Path, split: str) -> list[tuple[str, list[tuple[str, tuple[int, int]]], bool]]:
    """(headline, [(label, first span) per company], companies differ) from the judged fixture's half."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r.get("skip") or r["split"] != split or len(r["companies"]) < 2:
            continue
        if any(c.get("label") not in LABELS for c in r["companies"]):
            raise ValueError(f"{path.name}: {r['headline']!r} has a company without a label")
        mentions = [(c["label"], (c["mentions"][0]["start"], c["mentions"][0]["end"])) for c in r["companies"]]
        rows.append((r["headline"], mentions, len({lab for lab, _ in mentions}) > 1))
    return rows


@torch.inference_mode()
def predict(head: TargetPooling, classifier: nn.Module, pairs, batch: int = 256) -> np.ndarray:
    out = []
    for i in range(0, len(pairs), batch):
        part = pairs[i : i + batch]
        states, pool, mention, other, distance, crossed = collate([(e, f) for e, f, _ in part])
        pooled, _ = head(states, pool, mention, other, distance, crossed)
        out.append(classifier(pooled).float().argmax(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def macro_f1(gold: list[int], pred: list[int]) -> float:
    """Macro-F1 over the three labels, as `finsent model evaluate` reports it."""
    from model.evaluate import classification_metrics

    return classification_metrics(gold, pred)["macro_f1"]


def train(
    checkpoint: Path, data_dir: Path, fixture: Path, linker: Linker, epochs: int = 8, seed: int = 13,
    n_composed: int = 12000,
):  # fmt: skip
    """Train the targeted head on the checkpoint's frozen network; write it beside the checkpoint."""
    from transformers import AutoTokenizer

    from model.data import make_splits
    from model.network import PoolingRule
    from model.scorer import load_network

    torch.manual_seed(seed)
    rng = random.Random(seed)
    net, _ = load_network(checkpoint)
    net.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    encoder = Encoded(net, tokenizer, PoolingRule(tokenizer, net.config))
    splits = make_splits(data_dir, seed=seed)
    singles = single_company_examples(splits, linker) + fiqa_examples(data_dir, splits)
    composed = compose(singles, n_composed, rng)
    rows = [(t, [(lab, s)]) for t, lab, s in singles] + composed
    print(f"single-company texts {len(singles)}, composed two-company texts {len(composed)}", file=sys.stderr)
    train_pairs = pairs_of(encoder, rows)
    dev = fixture_rows(fixture, "dev")
    dev_pairs, differ = [], []
    for text, mentions, differs in dev:  # the issue's measure: headlines whose companies' labels differ
        pairs = pairs_of(encoder, [(text, mentions)])
        dev_pairs += pairs
        differ += [differs] * len(pairs)
    dev_gold = [lab for _, _, lab in dev_pairs]

    def scores() -> tuple[float, float]:
        pred = predict(head, classifier, dev_pairs).tolist()
        pick = [i for i, d in enumerate(differ) if d]
        return macro_f1(dev_gold, pred), macro_f1([dev_gold[i] for i in pick], [pred[i] for i in pick])

    head = TargetPooling(net.pool.query)
    classifier = net.classifier
    for p in classifier.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    base = scores()
    best = (base[1], {k: v.detach().clone() for k, v in head.state_dict().items()}, 0)
    print(f"epoch 0 (the headline's pooling): dev per-company macro-F1 {base[0]:.3f}, differing {base[1]:.3f}",
          file=sys.stderr)  # fmt: skip
    for epoch in range(1, epochs + 1):
        head.train()
        order = list(range(len(train_pairs)))
        rng.shuffle(order)
        total = 0.0
        for i in range(0, len(order), 64):
            part = [train_pairs[j] for j in order[i : i + 64]]
            states, pool, mention, other, distance, crossed = collate([(e, f) for e, f, _ in part])
            pooled, _ = head(states, pool, mention, other, distance, crossed)
            loss = nn.functional.cross_entropy(classifier(pooled).float(), torch.tensor([y for _, _, y in part]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(part)
        head.eval()
        f1 = scores()
        print(f"epoch {epoch}: train loss {total / len(order):.4f}, dev per-company macro-F1 {f1[0]:.3f}, "
              f"differing {f1[1]:.3f}", file=sys.stderr)  # fmt: skip
        if f1[1] > best[0]:
            best = (f1[1], {k: v.detach().clone() for k, v in head.state_dict().items()}, epoch)
    head.load_state_dict(best[1])
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(Path(checkpoint) / HEAD_FILE))
    card = {"epochs": epochs, "chosen_epoch": best[2], "chosen_by": "dev half, headlines whose companies differ",
            "dev_differing_macro_f1": round(best[0], 4), "seed": seed,
            "single_company_texts": len(singles), "composed_texts": len(composed), "boundaries": list(BOUNDARIES),
            "max_distance": MAX_DISTANCE, "headline_pooling_dev_differing_macro_f1": round(base[1], 4)}  # fmt: skip
    (Path(checkpoint) / HEAD_CARD).write_text(json.dumps(card, indent=2) + "\n")
    return head, card
