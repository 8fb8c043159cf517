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


def test_cuda_defaults_to_large_batches_and_the_prefetch_thread(checkpoint):
    from model.scorer import Scorer

    gpu = Scorer(checkpoint, device="cuda")
    assert (gpu.batch_size, gpu.prefetch, gpu.net.encoder.config._attn_implementation) == (512, True, "sdpa")
    assert next(gpu.net.parameters()).dtype == torch.bfloat16


def test_cuda_prefetch_and_plain_paths_agree(checkpoint):
    from model.scorer import Scorer

    texts = ["Nokia shares fall after profit warning", "Operating profit rose to EUR 13.1 mn", "x " * 300] * 400
    fetched = Scorer(checkpoint, device="cuda", prefetch=True).score(texts, batch_size=1024)
    plain = Scorer(checkpoint, device="cuda", prefetch=False).score(texts, batch_size=1024)
    assert [r.label for r in fetched] == [r.label for r in plain]
    for a, b in zip(fetched, plain, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-3)


def test_gpu_benchmark_reports_throughput_and_share_of_peak(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "gpu.json"
    subprocess.run(
        [sys.executable, str(repo / "bench" / "gpu.py"), "--headlines", "4096", "--repeats", "1", "--skip-pipeline",
         "--json", str(out)],
        check=True, timeout=600,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["available"] and result["precision"] == "bf16"
    for key in ("256", "1024", "256_no_prefetch", "1024_no_prefetch"):
        r = result["model_only"][key]
        assert r["headlines_per_s"] > 0 and r["tflops"] > 0
        if result["bf16_peak_tflops"]:
            assert 0 < r["fraction_of_peak"] < 1
    for key in ("256", "1024", "4096"):
        assert result["raw_network"][key]["headlines_per_s"] > 0
        assert result["model_only_no_words"][key]["headlines_per_s"] > 0
    assert result["host_only"]["headlines_per_s"] > 0


def test_cuda_columns_match_per_item_results_and_the_cpu_reference(checkpoint):
    """The array host path on the GPU: columns and per-item results are one result, and the fp32 CUDA path gives
    the recorded CPU results (tests/model/fixtures/scorer_reference.json) up to kernel rounding."""
    import json
    from pathlib import Path

    from model.scorer import Scorer

    reference = json.loads((Path(__file__).parent / "fixtures" / "scorer_reference.json").read_text())["items"]
    texts = [r["text"] for r in reference]
    gpu = Scorer(checkpoint, device="cuda", precision="fp32")
    batch = gpu.score_batch(texts, batch_size=64, top_k=5)
    items = gpu.score(texts, batch_size=64, top_k=5)
    assert batch.results() == items
    same_words = 0
    for ref, r in zip(reference, items, strict=True):
        assert r.label == ref["label"] and r.n_chunks == ref["n_chunks"]
        for k, p in ref["probabilities"].items():
            assert r.probabilities[k] == pytest.approx(p, abs=1e-3)
        same_words += [(a.word, a.start, a.end) for a in r.attributions] == [(w, s, e) for w, _, s, e in ref["words"]]
    assert same_words >= 0.95 * len(reference)
