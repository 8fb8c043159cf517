"""GPU benchmark, in one run: the raw network fed pre-built batches (the hardware's rate for our model), the Scorer
model-only at batch 256 and 1024 with and without the top-5 words (bf16, fused SDPA attention, pinned memory, the
prefetch thread) and the fraction of the GPU's bf16 peak that this is, the Scorer's host ceiling on this machine's
cores (network stubbed, as `bench/scoring.py --host-only`), and end-to-end items/s with the model on the GPU
(embedded + SQLite, the same sweep as bench/pipeline.py).

    python bench/gpu.py [--json FILE] [--headlines 65536] [--repeats 3]

Without a CUDA device it records why there are no figures and exits 0, so `make bench` runs everywhere.
`--device cpu --headlines 512` runs the same code on the CPU (a smoke test of the script, not a GPU figure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # bench/ itself is not put on the path: its scoring.py would hide the scoring package

import torch  # noqa: E402

from model.scorer import Scorer  # noqa: E402
from model.tokens import plan_chunks  # noqa: E402

# Dense bf16 tensor-core peak (TFLOP/s, no sparsity) from the vendors' data sheets, by device-name fragment.
BF16_PEAK_TFLOPS = {
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.4,  # the HBM3 (SXM) part unless the name says otherwise
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
    "A10G": 70.0,
}


def bf16_peak(name: str) -> float | None:
    for fragment, peak in BF16_PEAK_TFLOPS.items():
        if fragment in name:
            return peak
    return None


def encoder_flops(config: dict, lengths: list[int]) -> float:
    """Forward FLOPs of a BERT encoder over sequences of these lengths (multiply-add = 2 FLOPs).

    Per layer and sequence of T tokens: Q, K, V, output projections 8·T·H², feed-forward 4·T·H·I, attention
    scores and their product with V 4·T²·H. The pooling head and embeddings are negligible.
    """
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return float(sum(layers * (8 * t * h * h + 4 * t * h * i + 4 * t * t * h) for t in lengths))


def synchronize(scorer: Scorer) -> None:
    if scorer.device.type == "cuda":
        torch.cuda.synchronize()


def model_only(scorer: Scorer, texts: list[str], batch: int, repeats: int, top_k: int = 5) -> dict:
    """The Scorer on `texts` (results as columns, as the worker stores them), top-k words or none."""
    scorer.score_batch(texts[: batch * 2], batch_size=batch, top_k=top_k)  # warm-up: kernels chosen, allocator primed
    rates = []
    for _ in range(repeats):
        synchronize(scorer)
        start = time.perf_counter()
        results = scorer.score_batch(texts, batch_size=batch, top_k=top_k)
        rates.append(len(texts) / (time.perf_counter() - start))
    lengths = (results.n_tokens + 2).tolist()
    per_s = statistics.median(rates)
    flops = encoder_flops(scorer.config.encoder, lengths) / len(texts) * per_s
    return {
        "headlines_per_s": per_s,
        "runs": rates,
        "tflops": flops / 1e12,
        "mean_tokens": statistics.mean(lengths),
        "stage_s": results.seconds,
    }


def raw_network(scorer: Scorer, texts: list[str], batch: int, repeats: int) -> dict:
    """The network alone on the Scorer's own padded batches, already on the device: the rate the hardware gives
    our model, which the Scorer's host path is measured against."""
    tokens = scorer._tokens(texts)
    chunks = plan_chunks(tokens, scorer.window, scorer.overlap)
    batches = [tuple(t.to(scorer.device) for t in tensors) for _, tensors in scorer._batches(tokens, chunks, batch)]

    def forward_all() -> None:
        with torch.inference_mode(), scorer.amp:
            for ids, attn, pool in batches:
                scorer.net(ids, attn, pool)
        synchronize(scorer)

    forward_all()  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward_all()
        rates.append(len(texts) / (time.perf_counter() - start))
    return {"headlines_per_s": statistics.median(rates), "runs": rates}


def main() -> None:
    from bench.scoring import headlines, host_only

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--headlines", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()

    out: dict = {"available": False}
    if args.device == "cuda" and not torch.cuda.is_available():
        out["reason"] = (
            f"no CUDA device on this machine ({platform.processor() or platform.machine()}, torch {torch.__version__},"
            f" cuda build {torch.version.cuda})"
        )
        print(f"GPU benchmark skipped: {out['reason']}")
    else:
        name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU smoke run ({platform.machine()})"
        out |= {"available": args.device == "cuda", "device": name, "torch": torch.__version__}
        texts = headlines(args.headlines)
        peak = bf16_peak(name) if args.device == "cuda" else None
        out["bf16_peak_tflops"] = peak
        out["model_only"] = {}
        out["model_only_no_words"] = {}
        out["raw_network"] = {}
        for prefetch in (True, False):
            scorer = Scorer(
                device=args.device, precision="bf16" if args.device == "cuda" else "auto", prefetch=prefetch
            )
            out["precision"] = scorer.precision
            for batch in (256, 1024):
                r = model_only(scorer, texts, batch, args.repeats)
                r["fraction_of_peak"] = r["tflops"] / peak if peak else None
                out["model_only"][f"{batch}{'' if prefetch else '_no_prefetch'}"] = r
                print(
                    f"{name}: batch {batch:>4} prefetch {'on ' if prefetch else 'off'} {r['headlines_per_s']:10.0f}"
                    f" headlines/s  {r['tflops']:7.1f} TFLOP/s"
                    + (f" = {r['fraction_of_peak']:.1%} of bf16 peak" if peak else ""),
                    flush=True,
                )
            if prefetch:
                for batch in (256, 1024, 4096):
                    bare = model_only(scorer, texts, batch, args.repeats, top_k=0)
                    out["model_only_no_words"][str(batch)] = bare
                    raw = raw_network(scorer, texts, batch, args.repeats)
                    out["raw_network"][str(batch)] = raw
                    print(
                        f"{name}: batch {batch:>4} without words {bare['headlines_per_s']:10.0f} headlines/s;"
                        f" network alone {raw['headlines_per_s']:10.0f}/s",
                        flush=True,
                    )
        if args.device == "cuda":
            out["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        out["host_only"] = host_only(min(args.headlines, 65536), 1024, args.repeats)
        print(f"host ceiling (network stubbed): {out['host_only']['headlines_per_s']:10.0f} headlines/s", flush=True)
        if not args.skip_pipeline:
            from bench import pipeline as pipe

            scorer = Scorer(device=args.device)
            opts = argparse.Namespace(
                repeats=args.repeats, saturation_repeats=3, seconds=4.0, burst=20000, max_batch=4096, max_delay=0.02
            )
            if args.device != "cuda":
                opts.burst, opts.max_batch, opts.seconds = 300, 256, 1.0
            with tempfile.TemporaryDirectory() as tmp:
                out["embedded"] = pipe.embedded(scorer, pipe.Messages(), opts, Path(tmp))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
