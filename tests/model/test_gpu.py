"""CUDA path (skipped without a GPU; run on a lent GPU machine)."""

import csv

import pytest
import torch

pytestmark = pytest.mark.gpu


def test_cuda_bf16_agrees_with_cpu_fp32(checkpoint, scorer_fp32):
    from model.scorer import Scorer

    gpu = Scorer(checkpoint, device="cuda")
    assert gpu.precision == "bf16"
    with open(checkpoint / "splits" / "phrasebank_50agree_test.csv", newline="", encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)][:300]
    cpu_labels = [r.label for r in scorer_fp32.score(texts, top_k=0)]
    gpu_results = gpu.score(texts, batch_size=256, top_k=5)
    agree = sum(a == b.label for a, b in zip(cpu_labels, gpu_results, strict=True)) / len(texts)
    assert agree >= 0.98
    for r in gpu_results:
        assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        assert r.attributions and all(0 <= a.weight <= 1 for a in r.attributions)
    assert torch.cuda.max_memory_allocated() > 0
