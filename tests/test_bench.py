"""The benchmark scripts' own plumbing: they run, and the report is written from their results (no timings here:
figures are measured by `make bench`, never asserted in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_bench(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, timeout=600, cwd=REPO)


def test_gpu_bench_without_a_gpu_says_why(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: tests/model/test_gpu.py covers the real run")
    out = tmp_path / "gpu.json"
    run_bench("bench/gpu.py", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["available"] is False and "no CUDA device" in result["reason"]


def test_gpu_bench_code_path_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    run_bench("bench/gpu.py", "--device", "cpu", "--headlines", "64", "--repeats", "1", "--skip-pipeline",
              "--json", str(out))  # fmt: skip
    result = json.loads(out.read_text())
    assert result["available"] is False  # a CPU smoke run is never reported as a GPU figure
    assert set(result["model_only"]) == {"256", "1024", "256_no_prefetch", "1024_no_prefetch"}
    for r in result["model_only"].values():
        assert r["headlines_per_s"] > 0 and r["tflops"] > 0 and r["fraction_of_peak"] is None


def sweep(base: float) -> dict:
    loads = [
        {
            "fraction": f,
            "offered_per_s": f * base,
            "items_per_s": f * base * 0.98,
            "p50_ms": 30 + 100 * f,
            "p99_ms": 60 + 300 * f,
            "mean_batch": 1 + 40 * f,
        }  # fmt: skip
        for f in (0.1, 0.25, 0.5, 0.75, 0.9)
    ]
    return {"saturation": {"items_per_s": base, "p50_ms": 700.0, "p99_ms": 900.0, "mean_batch": 150.0}, "loads": loads}


def test_report_writes_every_section_and_plot_from_the_results(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "bench"))
    import report

    results = tmp_path / "results"
    results.mkdir()
    by_batch = {
        b: {
            "ours": {"fp32": 200.0 * k, "int8": 380.0 * k},
            "finbert_size": {"fp32": 23.0 * k, "int8": 66.0 * k},
            "best_path": "int8",
            "ratio_fp32": 380 / 23,
            "ratio_same_opt": 380 / 66,
        }  # fmt: skip
        for b, k in (("1", 0.2), ("32", 1.0), ("256", 1.1))
    }
    (results / "scoring.json").write_text(json.dumps({
        "machine": {"torch": "2.13.0"}, "model_version": "minilm6-test",
        "accuracy_phrasebank_50agree_test": {"fp32": 0.845, "int8": 0.848}, "batch_sizes": by_batch,
    }))  # fmt: skip
    embedded = sweep(360.0)  # bursts bracketed by model-only runs, as bench/pipeline.py writes them
    embedded["saturation"] |= {"model_only_per_s": 410.0, "vs_model_only": 0.9, "runs": [{}] * 5}
    (results / "pipeline.json").write_text(json.dumps({
        "scorer": {"version": "v", "precision": "int8", "model_batch": 32},
        "worker": {"max_batch": 256, "max_delay_s": 0.02}, "repeats": 3, "model_only_per_s": 400.0,
        "embedded": embedded, "embedded_vs_model_only": 0.9,
        "kafka_postgres": {"one_worker": sweep(250.0), "worker_peak_rss_mb": 650.0,
                           "two_workers": {"saturation": {"items_per_s": 260.0}, "peak_rss_mb": [600.0, 610.0]},
                           "scaling_2_vs_1": 1.04},
        "backfill": {"rows": 100000, "stored": 99000, "duplicates": 1000, "rejected": 0, "files": 4,
                     "rows_per_s_per_file": [350.0, 340.0, 330.0, 345.0], "rows_per_s": 342.5,
                     "rows_per_s_overall": 340.0, "seconds": 294.0},
    }))  # fmt: skip
    (results / "dashboard.json").write_text(json.dumps({
        "seed": {"articles": 1000000},
        "pages": {p: {"cold_s": 0.5, "median_s": 0.3} for p in ("live", "ticker", "alerts", "explain", "model",
                                                                  "search")},
    }))  # fmt: skip
    (results / "gpu.json").write_text(json.dumps({"available": False, "reason": "no CUDA device on this machine"}))
    (results / "host_only.json").write_text(
        json.dumps({"machine": {"cores": 2}, "host_only": {"headlines_per_s": 31234.5}})
    )
    monkeypatch.setattr(report, "PLOTS", tmp_path / "plots")

    text = report.report(results)

    # Two decimals against a target: 4.99x must not read "5.0x ... missed".
    assert "| ours (int8) / FinBERT-size fp32, CPU, batch 32 | 16.52x | ≥ 10x | met |" in text
    assert (
        "| embedded + SQLite end to end, saturation | 360 items/s = 0.90 of model-only "
        "(410/s; median of 5 bracketed bursts)" in text
    )
    assert "| scoring worker peak RSS | 650 MB | ≤ 700 MB | met |" in text
    assert "| backfill, 100,000 rows into SQLite | 342 rows/s |" in text
    assert "| 2 workers / 1 worker (Kafka + PostgreSQL) | 1.04x |" in text
    assert "No figures: no CUDA device on this machine" in text
    assert "| Scorer host ceiling (network stubbed, top-5 words, 2 cores) | 31,234 headlines/s | ≥ 30,000/s" in text
    assert "| Kafka + PostgreSQL, 1 worker | 125 | 122 |" in text  # the sweep table, one row per offered load
    for png in ("model_throughput.png", "latency_vs_load.png", "dashboard_pages.png"):
        assert (tmp_path / "plots" / png).stat().st_size > 10_000
        assert f"bench/plots/{png}" in text
    assert "No result here: `make soak` runs one worker" in text  # no soak.json: said so, not left blank

    (results / "soak.json").write_text(json.dumps({
        "minutes": 30, "load": 0.7, "capacity_per_s": 600.0, "rate_per_s": 420.0, "ok": False,
        "memory": {"first_quarter_median_mb": 630.0, "last_quarter_median_mb": 650.0, "growth": 0.0317,
                   "limit": 0.1, "ok": True},
        "lag": {"max": 1340, "first_quarter_median": 168, "last_quarter_median": 1900, "drain_s": 1.9,
                "ok": False},
        "loss": {"sent": 756000, "stored": 755990, "rejected": 10, "lost": 0, "ok": True},
    }))  # fmt: skip
    text = report.report(results)
    assert "(a separate 30-minute command, so `make bench` stays under 20 minutes): **FAILED**" in text
    assert (
        "| sent / stored / rejected / lost | 756,000 / 755,990 / 10 / 0 | lost = 0, one score per article | met |"
        in text
    )
    assert "| 630 → 650 MiB (+3.2%) | < 10% | met |" in text
    assert "| 168 → 1,900 (1,340), drained in 1.9 s | bounded, drained | **missed** |" in text


def test_host_only_benchmark_times_the_scorer_without_its_network(tmp_path):
    out = tmp_path / "host.json"
    run_bench("bench/scoring.py", "--host-only", "--headlines", "300", "--batch-size", "64", "--repeats", "1",
              "--json", str(out))  # fmt: skip
    h = json.loads(out.read_text())["host_only"]
    assert h["headlines"] == 300 and h["top_k"] == 5 and h["tokenizer_threads"] >= 1
    assert h["headlines_per_s"] > 0 and h["headlines_per_s_per_item_results"] > 0
    assert set(h["stage_us_per_headline"]) == {"tokenize", "batches_and_network", "words", "results"}
