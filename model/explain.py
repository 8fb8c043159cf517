"""Explanations and how faithful they are.

Methods, all reduced to one weight per word-piece and merged into words the same way as the Scorer:
- `pooling`: the attention-pooling head's weights, exactly what the decision used (the stored default).
- `rollout`: attention rollout (Abnar & Zuidema, 2020) through the encoder layers, read out through the
  pooling weights: relevance = a^T · R with R = Π_l (0.5·mean_heads(A_l) + 0.5·I), rows renormalised.
- `ig`: Integrated Gradients (captum) on the word embeddings toward the predicted class, baseline [PAD].

Faithfulness follows ERASER (DeYoung et al., 2020): comprehensiveness = p(ŷ|x) − p(ŷ|x without the top-k
words), sufficiency = p(ŷ|x) − p(ŷ|only the top-k words), each averaged over k ∈ {1, 2, 3, 5} (AOPC).
Higher comprehensiveness and lower sufficiency are better; a random ranking of words is the baseline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model.checkpoints import default_checkpoint
from model.network import attention_rollout
from model.scorer import Attribution, Scorer, load_network, validate_text

METHODS = ("pooling", "rollout", "ig")
AOPC_K = (1, 2, 3, 5)


@dataclass
class Explanation:
    method: str
    label: str
    probabilities: dict[str, float]
    attributions: list[Attribution]
    words: list[tuple[str, float, int, int]]  # every word: (word, weight, start, end)


class Explainer:
    """On-demand explanations with the fp32 network (eager attention, so attention maps are available)."""

    def __init__(self, path: str | Path | None = None, ig_steps: int = 32) -> None:
        self.path = Path(path) if path else default_checkpoint()
        self.net, cfg = load_network(self.path, attn_implementation="eager")
        self.version = cfg["version"]
        self.scorer = Scorer(self.path, device="cpu", precision="fp32")
        self.tokenizer = self.scorer.tokenizer
        self.ig_steps = ig_steps

    def _encode(self, text: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        enc = self.tokenizer(
            text,
            return_offsets_mapping=True,
            truncation=True,
            max_length=self.net.config.max_length,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )
        ids, attn = enc["input_ids"], enc["attention_mask"]
        real = enc["special_tokens_mask"] == 0
        offsets = [tuple(o) for o, sp in zip(enc["offset_mapping"][0].tolist(), real[0].tolist(), strict=True) if sp]
        return ids, attn, real, offsets

    def token_weights(self, text: str, method: str) -> tuple[list[tuple[int, int]], np.ndarray, int]:
        """(offsets of content word-pieces, their weights, predicted class) for one text (first window)."""
        if method not in METHODS:
            raise ValueError(f"unknown explanation method {method!r} (choose from {', '.join(METHODS)})")
        ids, attn, real, offsets = self._encode(text)
        content = real[0]  # every word-piece of the text; the words are built from these
        pool = self.scorer.rule.mask(ids, attn)  # what the head may pool: the scorer's mask, so the decision is one
        if method == "ig":
            attr = self._integrated_gradients(ids, attn, pool, real)
            return offsets, attr[content].numpy(), self._predict(ids, attn, pool)
        with torch.no_grad():
            out = self.net(ids, attn, pool, output_attentions=(method == "rollout"))
        pred = int(out.logits.argmax(-1))
        a = out.pooling_weights[0]  # (T,)
        if method == "pooling":
            return offsets, a[content].numpy(), pred
        relevance = attention_rollout(out.attentions, out.pooling_weights, pool)[0]  # (T,)
        return offsets, relevance[content].numpy(), pred

    def _predict(self, ids, attn, pool) -> int:
        with torch.no_grad():
            return int(self.net(ids, attn, pool).logits.argmax(-1))

    def _integrated_gradients(self, ids, attn, pool, real) -> torch.Tensor:
        from captum.attr import LayerIntegratedGradients

        target = self._predict(ids, attn, pool)

        def forward(input_ids, attention_mask, pool_mask):
            return self.net(input_ids, attention_mask, pool_mask).logits

        baseline = ids.clone()
        baseline[real] = self.tokenizer.pad_token_id
        lig = LayerIntegratedGradients(forward, self.net.encoder.embeddings.word_embeddings)
        attr = lig.attribute(
            ids,
            baselines=baseline,
            target=target,
            additional_forward_args=(attn, pool),
            n_steps=self.ig_steps,
            internal_batch_size=self.ig_steps,
        )
        return attr.sum(-1)[0].detach()  # (T,) signed: positive pushes toward the predicted class

    def words(self, text: str, method: str) -> list[tuple[str, float, int, int]]:
        offsets, weights, _ = self.token_weights(text, method)
        return Scorer.merge_words(text, offsets, weights.tolist())

    def explain(self, text: str, method: str = "pooling", top_k: int = 5) -> Explanation:
        text = validate_text(text)
        result = self.scorer.score([text], top_k=0)[0]
        words = self.words(text, method)
        ranked = sorted((w for w in words if w[1] > 0), key=lambda w: (-w[1], w[2]))[:top_k]  # 0: not used
        return Explanation(
            method=method,
            label=result.label,
            probabilities=result.probabilities,
            attributions=[Attribution(r + 1, w, float(x), s, e) for r, (w, x, s, e) in enumerate(ranked)],
            words=words,
        )


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    keep, pos = [], 0
    for s, e in sorted(spans):
        keep.append(text[pos:s])
        pos = e
    keep.append(text[pos:])
    return " ".join("".join(keep).split())


def faithfulness(
    explainer: Explainer,
    texts: list[str],
    seed: int = 13,
    min_words: int = 6,
    log=None,
    methods: tuple[str, ...] = METHODS,
) -> dict:
    """ERASER comprehensiveness and sufficiency (AOPC over k = 1, 2, 3, 5) per method and for random words."""
    rng = random.Random(seed)
    methods = (*methods, "random")
    comp = {m: [] for m in methods}
    suff = {m: [] for m in methods}
    used = 0
    for n, text in enumerate(texts):
        # words the head may pool (weight > 0): with a content-word rule, random function words would make a weak
        # baseline, so random words are drawn from the same words the pooling method ranks
        base_words = [w for w in explainer.words(text, "pooling") if w[1] > 0]
        if len(base_words) < min_words:
            continue
        used += 1
        full = explainer.scorer.score([text], top_k=0)[0]
        target = max(full.probabilities, key=full.probabilities.get)
        p_full = full.probabilities[target]
        for m in methods:
            if m == "random":
                ranked = base_words[:]
                rng.shuffle(ranked)
            else:
                ranked = sorted(explainer.words(text, m), key=lambda w: (-w[1], w[2]))
            removed, kept = [], []
            for k in AOPC_K:
                top = ranked[:k]
                removed.append(_without(text, [(s, e) for _, _, s, e in top]) or ".")
                kept.append(" ".join(w for w, _, _, _ in sorted(top, key=lambda w: w[2])))
            probs = explainer.scorer.score(removed + kept, top_k=0)
            comp[m].append(np.mean([p_full - r.probabilities[target] for r in probs[: len(AOPC_K)]]))
            suff[m].append(np.mean([p_full - r.probabilities[target] for r in probs[len(AOPC_K) :]]))
        if log and (n + 1) % 50 == 0:
            log(f"  faithfulness: {n + 1}/{len(texts)} texts")
    return {
        "n": used,
        "k": list(AOPC_K),
        "methods": {
            m: {"comprehensiveness": float(np.mean(comp[m])), "sufficiency": float(np.mean(suff[m]))} for m in methods
        },
    }
