"""The shipped model on our own headlines (model/indomain, test half) through `finsent model evaluate`.

Measured for minilm6-attnpool-934d646c8207 on the CPU default path (bf16), 2026-12-04: accuracy 0.694, macro-F1 0.665
on the 320 test headlines. Its successor, the distilled minilm6-distilled-84a2a9576251 (issue 18), fp32 on an
AVX2-only host, 2026-12-05: accuracy 0.700, macro-F1 0.687. The floor leaves room for other CPUs' kernels.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

INDOMAIN = Path(__file__).resolve().parents[2] / "model" / "indomain" / "headlines.csv"
MACRO_F1_FLOOR = 0.645


def test_the_shipped_model_on_the_in_domain_test_half(tmp_path):
    with open(INDOMAIN, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    test = tmp_path / "indomain_test.csv"
    with open(test, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["headline", "gold"])
        writer.writerows([r["text"], r["label"]] for r in rows)
    out = subprocess.run(
        [sys.executable, "-m", "cli", "model", "evaluate", str(test), "--text-col", "headline", "--label-col", "gold",
         "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["n"] == 320
    assert result["macro_f1"] >= MACRO_F1_FLOOR, result["macro_f1"]
