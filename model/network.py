"""The sentiment network: a pretrained encoder (BERT for the shipped student, MPNet for the teacher) topped by an
attention-pooling head.

The head is the whole decision: a learned query scores every real word-piece, the softmax of those scores
weights the token states, and a linear layer maps the pooled vector to three logits. The pooling weights
are therefore exactly what the decision used, and they are what we store as the explanation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModel, PretrainedConfig

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")


@dataclass
class NetworkConfig:
    """Everything needed to rebuild the network; saved inside every checkpoint."""

    encoder: dict = field(default_factory=dict)  # the encoder's transformers config as a dict (model_type names it)
    dropout: float = 0.1
    labels: tuple[str, ...] = LABELS
    max_length: int = 128  # window of one chunk, in word-pieces including [CLS] and [SEP]
    temperature: float = 1.0  # set by temperature scaling on the validation split
    # Words whose word-pieces the head never pools (PoolingRule), and whether pure punctuation is skipped too.
    # Empty for checkpoints trained before the rule: they pool every word-piece but [CLS]/[SEP].
    pool_skip: tuple[str, ...] = ()
    pool_skip_punctuation: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetworkConfig:
        data = dict(data)
        data["labels"] = tuple(data.get("labels", LABELS))
        data["pool_skip"] = tuple(data.get("pool_skip", ()))
        return cls(**data)

    def encoder_config(self, attn_implementation: str = "sdpa") -> PretrainedConfig:
        """The encoder's config; `model_type` picks the architecture (checkpoints before the teacher are BERT)."""
        fields = {k: v for k, v in self.encoder.items() if not k.startswith("_")}
        cfg = AutoConfig.for_model(fields.pop("model_type", "bert"), **fields)
        cfg._attn_implementation = attn_implementation
        return cfg


# Function words the head may not pool when a checkpoint asks for it (issue 18, point 5): an analyst reads the stored
# words as the reason for a score, and "the", "of" or "to" explain nothing. Words that carry direction or
# comparison stay poolable: not, no, up, down, over, under, more, less, than, against, above, below, off, out.
FUNCTION_WORDS: tuple[str, ...] = (
    "a", "an", "the", "and", "or", "but", "nor", "so", "yet", "if", "as", "of", "to", "in", "on", "at", "by",
    "for", "from", "with", "into", "onto", "about", "via", "per", "its", "it", "it's", "this", "that", "these",
    "those", "which", "who", "whom", "whose", "what", "he", "she", "his", "her", "him", "they", "them", "their",
    "we", "our", "you", "your", "i", "my", "is", "are", "was", "were", "be", "been", "being", "am", "has", "have",
    "had", "do", "does", "did", "will", "would", "shall", "should", "can", "could", "may", "might", "must", "s",
)  # fmt: skip


class PoolingRule:
    """Which word-pieces of an encoded row the head may pool: real tokens, never specials ([CLS], [SEP], padding),
    never the checkpoint's `pool_skip` words or (if asked) pure punctuation. A skipped word counts only as a whole
    word: "the" in "the ##ater" stays poolable. A row whose every piece would be skipped pools its real tokens, so
    every text gets a decision. Training and the scorer build their masks here, so the stored words are exactly
    the weights the decision used."""

    def __init__(self, tokenizer, config: NetworkConfig) -> None:
        vocab = tokenizer.get_vocab()
        size = max(len(tokenizer), max(vocab.values()) + 1)
        self.special = torch.zeros(size, dtype=torch.bool)
        self.special[[i for i in tokenizer.all_special_ids if i is not None]] = True
        self.skip_word = torch.zeros(size, dtype=torch.bool)
        self.continuation = torch.zeros(size, dtype=torch.bool)
        self.skip_piece = torch.zeros(size, dtype=torch.bool)
        words = {w.lower() for w in config.pool_skip}
        for token, i in vocab.items():
            if token.startswith("##"):
                self.continuation[i] = True
            elif token in words:
                self.skip_word[i] = True
            if config.pool_skip_punctuation and not any(ch.isalnum() for ch in token.removeprefix("##")):
                self.skip_piece[i] = True
        self.skip_piece &= ~self.special
        self.active = bool(words) or config.pool_skip_punctuation

    def mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: True where the head may pool."""
        real = attention_mask.bool() & ~self.special[input_ids]
        if not self.active:
            return real
        following = torch.zeros_like(real)
        following[:, :-1] = self.continuation[input_ids[:, 1:]] & attention_mask[:, 1:].bool()
        skip = (self.skip_word[input_ids] & ~following) | self.skip_piece[input_ids]
        pool = real & ~skip
        empty = ~pool.any(-1, keepdim=True)
        return torch.where(empty, real, pool)


@dataclass
class SentimentOutput:
    """What `SentimentNet.forward` returns (like transformers' output dataclasses)."""

    logits: torch.Tensor  # (B, 3)
    pooling_weights: torch.Tensor  # (B, T), sums to 1 over pooled tokens, 0 elsewhere
    loss: torch.Tensor | None = None
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, T) when asked for


class AttentionPooling(nn.Module):
    """Single learned query: s_i = q·h_i / sqrt(d), masked softmax, weighted sum of states."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(hidden) * 0.02)
        self.scale = 1.0 / math.sqrt(hidden)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # states (B, T, C), mask (B, T) bool: True where a token may be pooled
        scores = (states @ self.query.to(states.dtype)) * self.scale  # (B, T)
        scores = scores.float().masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T)
        weights = torch.nan_to_num(weights, nan=0.0)  # a row with nothing to pool gives zeros, not NaN
        pooled = torch.einsum("bt,btc->bc", weights.to(states.dtype), states)  # (B, C)
        return pooled, weights


def attention_rollout(
    attentions: tuple[torch.Tensor, ...], pooling_weights: torch.Tensor, pool_mask: torch.Tensor
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) read out through the pooling weights; rows sum to 1 on pool_mask.

    R = Π_l (0.5·mean_heads(A_l) + 0.5·I), rows renormalised; relevance = a^T · R. attentions: per layer
    (B, H, T, T); pooling_weights, pool_mask: (B, T).
    """
    b, t = pooling_weights.shape
    eye = torch.eye(t, device=pooling_weights.device).expand(b, t, t)
    rollout = eye
    for layer in attentions:
        att = 0.5 * layer.float().mean(1) + 0.5 * eye
        att = att / att.sum(-1, keepdim=True)
        rollout = att @ rollout  # (B, T, T)
    relevance = torch.einsum("bt,bts->bs", pooling_weights.float(), rollout) * pool_mask
    return relevance / relevance.sum(-1, keepdim=True).clamp_min(1e-12)


class SentimentNet(nn.Module):
    """Encoder + attention pooling + linear classifier."""

    def __init__(self, config: NetworkConfig, attn_implementation: str = "sdpa") -> None:
        super().__init__()
        self.config = config
        try:
            self.encoder = AutoModel.from_config(config.encoder_config(attn_implementation), add_pooling_layer=False)
        except ValueError:  # MPNet has no SDPA attention in transformers: its eager attention does the same sums
            self.encoder = AutoModel.from_config(config.encoder_config("eager"), add_pooling_layer=False)
        hidden = self.encoder.config.hidden_size
        self.pool = AttentionPooling(hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(hidden, len(config.labels))

    @classmethod
    def from_pretrained_encoder(cls, encoder_dir: str, attn_implementation: str = "sdpa", **overrides) -> SentimentNet:
        """A fresh head on top of pretrained encoder weights read from a local directory."""
        config = NetworkConfig(encoder=AutoConfig.from_pretrained(encoder_dir).to_dict(), **overrides)
        net = cls(config, attn_implementation=attn_implementation)
        pretrained = AutoModel.from_pretrained(encoder_dir, add_pooling_layer=False)
        net.encoder.load_state_dict(pretrained.state_dict())
        return net

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pool_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool = False,
        class_weights: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> SentimentOutput:
        """input_ids, attention_mask, pool_mask: (B, T). pool_mask defaults to the attention mask."""
        if input_ids is not None and input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, tokens), got shape {tuple(input_ids.shape)}")
        if pool_mask is None:
            pool_mask = attention_mask
        if pool_mask.shape != attention_mask.shape:
            raise ValueError(
                f"pool_mask shape {tuple(pool_mask.shape)} != attention_mask shape {tuple(attention_mask.shape)}"
            )
        enc = self.encoder(
            input_ids=None if inputs_embeds is not None else input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
        )
        states = enc.last_hidden_state  # (B, T, C)
        pooled, weights = self.pool(states, pool_mask.bool() & attention_mask.bool())
        logits = self.classifier(self.dropout(pooled)).float()  # (B, 3)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits, labels, weight=class_weights, label_smoothing=label_smoothing)
        return SentimentOutput(
            logits=logits,
            pooling_weights=weights,
            loss=loss,
            attentions=enc.attentions if output_attentions else None,
        )
