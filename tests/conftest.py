"""Shared fixtures. Real files, real checkpoints; services get their own fixtures as the stages arrive."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where torch sees a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"the development data must sit beside the repo at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="session")
def checkpoint() -> Path:
    """The shipped checkpoint (model/weights/DEFAULT)."""
    from model.scorer import default_checkpoint

    return default_checkpoint()


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from model.train import default_encoder_dir

    return AutoTokenizer.from_pretrained(default_encoder_dir())


def tiny_config(tokenizer, **overrides):
    from model.network import NetworkConfig

    encoder = dict(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    return NetworkConfig(encoder=encoder, **overrides)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tokenizer) -> Path:
    """A random-initialised tiny network saved as a checkpoint: fast tests of the scorer's mechanics."""
    from model.network import SentimentNet
    from model.train import save_checkpoint

    torch.manual_seed(0)
    net = SentimentNet(tiny_config(tokenizer, max_length=24))
    _, path = save_checkpoint(net, tokenizer, tmp_path_factory.mktemp("weights"), "tiny")
    return path


@pytest.fixture(scope="session")
def scorer_fp32(checkpoint):
    from model.scorer import Scorer

    return Scorer(checkpoint, device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def scorer_default(checkpoint):
    from model.scorer import Scorer

    return Scorer(checkpoint, device="cpu")
