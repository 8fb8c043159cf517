"""The CPU inference paths of the shipped checkpoint, in one run: accuracy on every held-out split, speed (batch
32), and how much a text's result depends on its batch; the CPU default they choose. Today's int8 (per token,
torchao) is measured beside the int8 it replaced (torch dynamic quantisation, activations scaled per batch tensor).

    python bench/cpu_paths.py [--json FILE] [--card]

--card rewrites the checkpoint's card.json and card.md "metrics" and "inference" sections with these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from model.card import MAIN_SPLITS, measure_cpu_paths, refresh_inference  # noqa: E402
from model.checkpoints import default_checkpoint  # noqa: E402
from model.scorer import Scorer, cpu_has_bf16, on_torch_thread  # noqa: E402


def int8_per_batch(path: Path) -> Scorer:
    """The int8 path before issue 17: torch's dynamic quantisation, weights per channel, activations per batch."""
    from torch.ao.quantization import per_channel_dynamic_qconfig

    scorer = Scorer(path, device="cpu", precision="fp32")

    def quantize(net):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the eager quantisation API is deprecated in torch 2.13; it still works
            return torch.ao.quantization.quantize_dynamic(
                net, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
            )

    scorer.net = on_torch_thread(quantize, scorer.net)
    return scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--card", action="store_true", help="rewrite the checkpoint's card with these figures")
    args = parser.parse_args()
    path = default_checkpoint()
    retired = {"int8_per_batch": lambda: int8_per_batch(path)}
    if args.card:
        card = refresh_inference(path, retired)
        metrics, inference = card["metrics"], card["inference"]
    else:
        metrics, inference = measure_cpu_paths(path, retired)
    rows = inference["paths"] | inference["retired"]
    print(f"\nCPU default {inference['cpu_default']}, fallback {inference['cpu_fallback']} ({path.name})")
    print("path             | accuracy loss vs fp32 | sentences/s b32 | max probability change | labels changed")
    for name, row in rows.items():
        dep = row["batch_dependence"]
        print(
            f"{name:<16} | {row['max_accuracy_loss']:+21.4f} | {row['sentences_per_s_batch32']:15.0f} | "
            f"{dep['max_probability_change']:22.2g} | {dep['labels_changed']:>3} of {dep['n']} x 2 batch sizes"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result(path, metrics, inference), indent=2))
        print(f"wrote {args.json}")


def result(path: Path, metrics: dict, inference: dict) -> dict:
    """What bench/report.py reads: the machine, and every path's accuracy, speed and batch dependence."""
    return {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "native_bf16": cpu_has_bf16(),
            "torch": torch.__version__,
        },
        "model_version": path.name,
        "main_splits": list(MAIN_SPLITS),
        "accuracy": {p: {n: m["accuracy"] for n, m in splits.items()} for p, splits in metrics["test"].items()},
        "inference": inference,
    }


if __name__ == "__main__":
    main()
