import random

import pytest
import torch

from model.data import Encoded, bucketed_batches
from model.network import SentimentNet
from model.train import TrainConfig, run_training
from tests.conftest import tiny_config

TEXTS = [
    ("Operating profit rose to EUR 13.1 mn from EUR 8.7 mn", 2),
    ("Net sales increased by 18.5 % to EUR 167.8 mn", 2),
    ("The company swung to a loss and cut its dividend", 0),
    ("Shares plunged after the profit warning", 0),
    ("The annual general meeting will be held in Helsinki", 1),
    ("The report covers the period from January to March", 1),
]


def test_tiny_model_trains_and_loss_falls(tokenizer):
    torch.manual_seed(0)
    net = SentimentNet(tiny_config(tokenizer, dropout=0.0))
    data = Encoded(tokenizer, [t for t, _ in TEXTS], [y for _, y in TEXTS], max_length=32)
    batch = data.collate(list(range(len(TEXTS))))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = net(**batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0], f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_run_training_keeps_the_best_validation_state(tokenizer):
    torch.manual_seed(0)
    net = SentimentNet(tiny_config(tokenizer))
    train = Encoded(tokenizer, [t for t, _ in TEXTS] * 4, [y for _, y in TEXTS] * 4, max_length=32)
    val = Encoded(tokenizer, [t for t, _ in TEXTS], [y for _, y in TEXTS], max_length=32)
    cfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, head_lr=3e-3, evals_per_epoch=1, patience=10, bf16="off")
    best, history = run_training(net, train, {"phrasebank": val}, cfg, torch.device("cpu"), log=lambda _: None)
    assert len(history) == 3
    assert set(best) == set(net.state_dict())
    assert max(h["selection"] for h in history) == pytest.approx(max(h["val_macro_f1"]["phrasebank"] for h in history))


def test_pooling_weights_sum_to_one_and_are_zero_on_padding_and_specials(tokenizer):
    net = SentimentNet(tiny_config(tokenizer)).eval()
    data = Encoded(tokenizer, ["Short one", "A much longer headline about quarterly earnings and guidance"], None, 64)
    batch = data.collate([0, 1])
    out = net(**batch)
    w = out.pooling_weights
    assert out.logits.shape == (2, 3)
    assert torch.allclose(w.sum(-1), torch.ones(2), atol=1e-6)
    assert torch.all(w[batch["attention_mask"] == 0] == 0), "padding got weight"
    assert torch.all(w[:, 0] == 0), "[CLS] got weight"
    sep = batch["attention_mask"].sum(1) - 1
    assert torch.all(w[torch.arange(2), sep] == 0), "[SEP] got weight"


def test_mismatched_masks_name_both_shapes(tokenizer):
    net = SentimentNet(tiny_config(tokenizer))
    ids = torch.ones((2, 5), dtype=torch.long)
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 5\)"):
        net(ids, torch.ones((2, 5), dtype=torch.long), pool_mask=torch.ones((2, 4), dtype=torch.bool))


def test_bucketed_batches_cover_every_index_once():
    lengths = [random.Random(1).randint(3, 60) for _ in range(1000)]
    batches = bucketed_batches(lengths, 32, random.Random(2))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    assert bucketed_batches(lengths, 32, random.Random(2)) == batches  # deterministic for a seed
