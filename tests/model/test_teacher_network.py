"""The teacher's architecture (an MPNet encoder under the same attention-pooling head) on a tiny random network:
it trains (the loss falls), saves, and scores through the Scorer on every CPU path, like the student."""

from __future__ import annotations

import torch

from model.network import NetworkConfig, SentimentNet
from model.scorer import Scorer
from model.train import save_checkpoint
from tests.conftest import tiny_config


def tiny_mpnet(tokenizer) -> NetworkConfig:
    config = tiny_config(tokenizer, max_length=24)
    config.encoder |= {"model_type": "mpnet", "pad_token_id": 0}  # 32 relative buckets: MPNet hard-codes them
    return config


def test_an_mpnet_encoder_trains_and_scores_through_the_same_head(tokenizer, tmp_path):
    torch.manual_seed(0)
    net = SentimentNet(tiny_mpnet(tokenizer))
    assert type(net.encoder).__name__ == "MPNetModel"
    assert net.encoder.config._attn_implementation == "eager"  # transformers has no SDPA for MPNet
    texts = ["Shares jump after record profit", "Profit warning sends shares down", "Company holds annual meeting"]
    enc = tokenizer(texts, padding=True, return_tensors="pt", return_special_tokens_mask=True)
    pool = (enc["special_tokens_mask"] == 0) & enc["attention_mask"].bool()
    labels = torch.tensor([2, 0, 1])
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        out = net(enc["input_ids"], enc["attention_mask"], pool, labels=labels, output_attentions=True)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert out.attentions is not None and len(out.attentions) == 2  # rollout alignment needs them
    net.eval()
    _, path = save_checkpoint(net, tokenizer, tmp_path, "tiny-mpnet")
    for precision in ("fp32", "int8"):
        results = Scorer(path, device="cpu", precision=precision).score(texts)
        assert [r.label for r in results] == ["positive", "negative", "neutral"], precision
        assert all(abs(sum(r.probabilities.values()) - 1) < 1e-4 and r.attributions for r in results)


def test_the_training_recipe_runs_on_an_mpnet_encoder_folder(tokenizer, tmp_path, shared_data):
    """What `finsent model train-teacher` runs, on a tiny random MPNet saved as a pretrained encoder folder."""
    import json

    from transformers import MPNetConfig, MPNetModel

    from model.train import TrainConfig, train

    torch.manual_seed(0)
    encoder_dir = tmp_path / "tiny-mpnet"
    cfg = MPNetConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=130, pad_token_id=0)  # fmt: skip
    MPNetModel(cfg, add_pooling_layer=False).save_pretrained(encoder_dir)
    tokenizer.save_pretrained(encoder_dir)
    path = train(
        TrainConfig(
            data_dir=str(shared_data),
            out_dir=str(tmp_path / "out"),
            encoder_dir=str(encoder_dir),
            name="tiny-teacher",
            epochs=1,
            batch_size=16,
            lr=1e-3,
            max_length=48,
            max_train=64,
            evaluate_paths=False,
            evals_per_epoch=1,
            device="cpu",
        ),  # fmt: skip
        log=lambda _: None,
    )
    card = json.loads((path / "card.json").read_text())
    assert path.name.startswith("tiny-teacher-") and card["version"] == path.name
    assert "mpnet, 2 layers, hidden 32" in card["architecture"]["encoder"]
    assert json.loads((path / "config.json").read_text())["encoder"]["model_type"] == "mpnet"
    assert Scorer(path, device="cpu", precision="fp32").score(["Shares jump"])[0].label in (
        "negative",
        "neutral",
        "positive",
    )
