"""Write BENCHMARKS.md and its plots (bench/plots/*.png) from the JSON results of one `make bench` run.

    python bench/report.py [--results bench/results] [--out BENCHMARKS.md]

Every figure comes from the JSON files the benchmarks wrote in the same run; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PLOTS = REPO / "bench" / "plots"

TARGETS = {
    "ratio_fp32": 10.0,
    "ratio_same_opt": 5.0,
    "embedded_vs_model_only": 0.8,
    "dashboard_page_s": 1.5,
    "worker_rss_mb": 700.0,
    "gpu_headlines_per_s": 100_000.0,
    "host_only_headlines_per_s": 30_000.0,
}


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 2**20
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
        commit = commit.stdout.strip() or None
    except OSError:
        commit = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "python": platform.python_version(),
            "os": platform.platform(), "commit": commit}  # fmt: skip


def load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def fmt(x, digits: int = 0, suffix: str = "") -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}{suffix}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


# ------------------------------------------------------------------------------------------------------- plots


def plot_model(scoring: dict) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sizes = list(scoring["batch_sizes"])
    paths = list(scoring["accuracy_phrasebank_50agree_test"])
    bars = [(m, p) for m in ("ours", "finbert_size") for p in paths]
    width = 0.8 / len(bars)
    for k, (m, p) in enumerate(bars):
        ys = [scoring["batch_sizes"][b][m][p] for b in sizes]
        xs = [i + k * width for i in range(len(sizes))]
        ax.bar(xs, ys, width, label=f"{'ours' if m == 'ours' else 'FinBERT-size'} {p}")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], [f"batch {b}" for b in sizes])
    ax.set_yscale("log")
    ax.set_ylabel("headlines / s (log)")
    ax.set_title("Model throughput on this CPU")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(PLOTS / "model_throughput.png", dpi=110)
    plt.close(fig)
    return "bench/plots/model_throughput.png"


def plot_latency(pipeline: dict) -> str:
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    series = [("embedded + SQLite", pipeline.get("embedded"))]
    if pipeline.get("kafka_postgres"):
        series.append(("Kafka + PostgreSQL", pipeline["kafka_postgres"]["one_worker"]))
    for label, sweep in series:
        points = [*sweep["loads"], {**sweep["saturation"], "offered_per_s": sweep["saturation"]["items_per_s"]}]
        xs = [p["items_per_s"] for p in points]
        ax.plot(xs, [p["p50_ms"] for p in points], "o-", label=f"{label} p50")
        ax.plot(xs, [p["p99_ms"] for p in points], "s--", label=f"{label} p99")
        if any(p.get("mean_batch") for p in points):
            bx.plot(xs, [p.get("mean_batch") for p in points], "o-", label=label)
    ax.set_xlabel("achieved items / s (last point: saturation burst)")
    ax.set_ylabel("published → committed (ms, log)")
    ax.set_yscale("log")
    ax.set_title("Latency against load")
    ax.legend(fontsize=8)
    bx.set_xlabel("achieved items / s")
    bx.set_ylabel("mean batch size (log)")
    bx.set_yscale("log")
    bx.set_title("Dynamic batching: batch follows the backlog")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "latency_vs_load.png", dpi=110)
    plt.close(fig)
    return "bench/plots/latency_vs_load.png"


def plot_dashboard(dashboard: dict) -> str:
    fig, ax = plt.subplots(figsize=(6, 3))
    pages = list(dashboard["pages"])
    ax.barh(pages, [dashboard["pages"][p]["median_s"] for p in pages], color="#4c72b0")
    ax.axvline(TARGETS["dashboard_page_s"], color="red", linestyle="--", label="target 1.5 s")
    ax.set_xlabel("seconds (median, data cache cleared)")
    ax.set_title(f"Dashboard pages at {dashboard['seed']['articles']:,} articles (PostgreSQL)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS / "dashboard_pages.png", dpi=110)
    plt.close(fig)
    return "bench/plots/dashboard_pages.png"


# ------------------------------------------------------------------------------------------------------ report


def soak_section(results: Path) -> list[str]:
    """The last `make soak` result: a 30-minute run, so not part of `make bench` (which must finish in 20)."""
    path = results / "soak.json"
    soak = load(results, "soak")
    if not soak or "loss" not in soak:
        return [
            "No result here: `make soak` runs one worker on Kafka (tansu) + PostgreSQL at 70% of its measured "
            "capacity for 30",
            "minutes (memory growth under 10%, lag bounded, nothing lost) and writes `bench/results/soak.json`; "
            "`make bench` leaves it out to stay under 20 minutes.",
        ]
    when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    mem, lag, loss = soak["memory"], soak["lag"], soak["loss"]
    return [
        f"Last run, `bench/results/soak.json` written {when:%Y-%m-%d %H:%M} UTC (a separate 30-minute command, so "
        "`make bench` stays under 20 minutes): "
        f"**{'passed' if soak.get('ok') else 'FAILED'}**.",
        "",
        "| figure | measured | criterion | |",
        "| --- | --- | --- | --- |",
        f"| load | {fmt(soak.get('rate_per_s'))} items/s for {soak['minutes']:g} min "
        f"({fmt(100 * soak['load'])}% of a measured {fmt(soak.get('capacity_per_s'))}/s) | | |",
        f"| sent / stored / rejected / lost | {loss['sent']:,} / {loss['stored']:,} / {loss['rejected']:,} / "
        f"{loss['lost']:,} | lost = 0, one score per article | {verdict(loss['ok'])} |",
        f"| memory, median RSS after warm-up, first → last quarter | {fmt(mem['first_quarter_median_mb'])} → "
        f"{fmt(mem['last_quarter_median_mb'])} MiB ({100 * mem['growth']:+.1f}%) | < {100 * mem['limit']:.0f}% | "
        f"{verdict(mem['ok'])} |",
        f"| lag, median first → last quarter (max) | {fmt(lag['first_quarter_median'])} → "
        f"{fmt(lag['last_quarter_median'])} ({fmt(lag['max'])}), drained in {lag['drain_s']} s | bounded, drained | "
        f"{verdict(lag['ok'])} |",
    ]


RECORDED_EXPORT = Path(__file__).resolve().parent / "recorded" / "export.json"


def export_section(results: Path) -> list[str]:
    """`finsent export` at 1,000,000 articles: several minutes, so not part of `make bench`. This run's
    results/export.json when there is one, else the recorded run (bench/recorded/export.json, kept in git)."""
    export = load(results, "export")
    origin = "`bench/results/export.json` (this run)"
    if not export and RECORDED_EXPORT.is_file():
        export = json.loads(RECORDED_EXPORT.read_text())
        origin = "`bench/recorded/export.json`, a recorded run (regenerate: `python bench/export.py --json FILE`)"
    if not export or not export.get("exports"):
        return ["No result: `python bench/export.py --json bench/results/export.json` (several minutes)."]
    seeded = export.get("seeded") or {}
    lines = [
        f"From {origin}, measured {export.get('measured_at', '?')} on {export.get('host', 'this host')}: a throw-away "
        f"PostgreSQL database seeded by `bench/seed.py` with {fmt(seeded.get('articles'))} articles "
        f"({fmt(seeded.get('mentions'))} mentions); each export is `finsent export ... --out FILE` in a process of its "
        "own, peak RSS the child's own, rows/s over the whole command, start-up included. Flat RSS from a tenth of "
        "the rows to all of them is the streaming at work.",
        "",
        "| format | rows | seconds | rows/s | peak RSS (MB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in export["exports"]:
        rate = fmt(e["rows_per_s"]) if e["rows"] else ""
        lines.append(f"| {e['format']} | {e['rows']:,} ({e['size']}) | {e['seconds']:.1f} | {rate} | "
                     f"{fmt(e['peak_rss_mb'])} |")  # fmt: skip
    return lines


def cpu_paths_lines(data: dict) -> list[str]:
    """The CPU inference paths (bench/cpu_paths.py): accuracy, speed and batch dependence, measured in one run."""
    inf = data["inference"]
    rows = inf["paths"] | inf.get("retired", {})
    splits = data["main_splits"]
    accuracy = data["accuracy"] | {name: row["accuracy"] for name, row in inf.get("retired", {}).items()}
    lines = [
        "",
        "## CPU inference paths: one text, one score",
        "",
        f"`bench/cpu_paths.py`, {data['model_version']}, on {data['machine']['cpu']} ({data['machine']['cores']} "
        f"cores, native bf16: {'yes' if data['machine']['native_bf16'] else 'no'}). Batch dependence: 400 twitter test "
        "texts scored alone, then in batches of 50 and of 256; the largest change of any probability, and the labels "
        "that changed. `int8_per_batch` is the int8 path before issue 17 (torch dynamic quantisation, activations "
        "scaled per batch tensor, padding included), measured in the same run.",
        "",
        f"CPU default **{inf['cpu_default']}**, fallback **{inf['cpu_fallback']}** (rule: {inf['rule']}).",
        "",
        "| path | " + " | ".join(f"accuracy {n}" for n in splits) + " | worst loss vs fp32 | sentences/s (batch 32) "
        "| vs fp32 | max probability change | labels changed |",
        "| --- | " + " | ".join("---" for _ in splits) + " | --- | --- | --- | --- | --- |",
    ]
    fp32 = rows["fp32"]["sentences_per_s_batch32"]
    for name, row in rows.items():
        dep = row["batch_dependence"]
        acc = " | ".join(fmt(accuracy.get(name, {}).get(n), 4) for n in splits)
        lines.append(
            f"| {name} | {acc} | {row['max_accuracy_loss']:+.4f} | {fmt(row['sentences_per_s_batch32'], 0)} | "
            f"{row['sentences_per_s_batch32'] / fp32:.2f}x | {dep['max_probability_change']:.2g} | "
            f"{dep['labels_changed']} of {2 * dep['n']} |"
        )
    return lines


def report(results: Path) -> str:
    PLOTS.mkdir(parents=True, exist_ok=True)
    scoring, pipeline = load(results, "scoring"), load(results, "pipeline")
    dashboard, gpu = load(results, "dashboard"), load(results, "gpu")
    host = load(results, "host_only")
    profile = load(results, "profile")
    m = machine()
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`bench/report.py`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit "
        f"`{m['commit']}`. Every figure is the median of repeated runs, and every ratio compares figures measured in",
        "the same run. Regenerate with `make bench`; the raw numbers are in `bench/results/*.json`, written at "
        + ", ".join(
            f"{p.stem} {datetime.fromtimestamp(p.stat().st_mtime, UTC):%H:%M}" for p in sorted(results.glob("*.json"))
        )
        + " UTC.",
        "",
        "**Machine**: " + f"{m['cpu']}, {m['cores']} cores, {fmt(m['memory_gb'], 0)} GiB RAM, {m['os']}, "
        f"Python {m['python']}" + (f", torch {scoring['machine']['torch']}" if scoring else "") + ".",
        "**GPU**: "
        + (
            f"{gpu['device']}"
            if gpu and gpu.get("available")
            else f"none ({(gpu or {}).get('reason', 'bench/gpu.py did not run')})"
        )
        + ".",
        "",
        "## Summary",
        "",
        "| figure | measured | target | |",
        "| --- | --- | --- | --- |",
    ]
    if scoring:
        row = scoring["batch_sizes"]["32"]
        best = row["best_path"]
        lines += [
            f"| ours ({best}) / FinBERT-size fp32, CPU, batch 32 | {row['ratio_fp32']:.2f}x | "
            f"≥ {TARGETS['ratio_fp32']:.0f}x | {verdict(row['ratio_fp32'] >= TARGETS['ratio_fp32'])} |",
            f"| ours / FinBERT-size, same optimisation ({best}), batch 32 | {row['ratio_same_opt']:.2f}x | "
            f"≥ {TARGETS['ratio_same_opt']:.0f}x | {verdict(row['ratio_same_opt'] >= TARGETS['ratio_same_opt'])} |",
        ]
    if pipeline:
        emb = pipeline["embedded"]
        half = min(emb["loads"], key=lambda p: abs(p["fraction"] - 0.5))
        ratio = pipeline["embedded_vs_model_only"]
        # Each burst bracketed by model-only runs (results from before the bracketing: one figure).
        sat = emb["saturation"]
        model_only = sat.get("model_only_per_s") or pipeline["model_only_per_s"]
        how = f"; median of {len(sat['runs'])} bracketed bursts" if "vs_model_only" in sat else ""
        lines += [
            f"| embedded + SQLite end to end, saturation | {fmt(sat['items_per_s'])} items/s = "
            f"{ratio:.2f} of model-only ({fmt(model_only)}/s{how}) | ≥ 0.80 of model-only | "
            f"{verdict(ratio >= TARGETS['embedded_vs_model_only'])} |",
            f"| embedded + SQLite latency at {fmt(half['offered_per_s'])}/s offered | p50 {fmt(half['p50_ms'])} ms, "
            f"p99 {fmt(half['p99_ms'])} ms | | |",
        ]
        kp = pipeline.get("kafka_postgres")
        if kp:
            one = kp["one_worker"]
            khalf = min(one["loads"], key=lambda p: abs(p["fraction"] - 0.5))
            rss = kp["worker_peak_rss_mb"]
            lines += [
                f"| Kafka + PostgreSQL, 1 worker, saturation | {fmt(one['saturation']['items_per_s'])} items/s | | |",
                f"| Kafka + PostgreSQL latency at {fmt(khalf['offered_per_s'])}/s offered | p50 "
                f"{fmt(khalf['p50_ms'])} ms, p99 {fmt(khalf['p99_ms'])} ms | | |",
                f"| 2 workers / 1 worker (Kafka + PostgreSQL) | {kp['scaling_2_vs_1']:.2f}x | | |",
                f"| scoring worker peak RSS | {fmt(rss)} MB | ≤ {TARGETS['worker_rss_mb']:.0f} MB | "
                f"{verdict(rss <= TARGETS['worker_rss_mb'])} |",
            ]
        bf = pipeline.get("backfill")
        if bf:
            lines.append(f"| backfill, {bf['rows']:,} rows into SQLite | {fmt(bf['rows_per_s'])} rows/s | | |")
    if dashboard:
        slowest = max(dashboard["pages"], key=lambda p: dashboard["pages"][p]["median_s"])
        t = dashboard["pages"][slowest]["median_s"]
        lines.append(
            f"| slowest dashboard page at {dashboard['seed']['articles']:,} articles ({slowest}) | {t:.2f} s | "
            f"< {TARGETS['dashboard_page_s']} s | {verdict(t < TARGETS['dashboard_page_s'])} |"
        )
    if host:
        h = host["host_only"]
        lines.append(
            f"| Scorer host ceiling (network stubbed, top-5 words, {host['machine']['cores']} cores) | "
            f"{fmt(h['headlines_per_s'])} headlines/s | ≥ 30,000/s on a 2-core CPU | "
            f"{verdict(h['headlines_per_s'] >= TARGETS['host_only_headlines_per_s'])} |"
        )
    if gpu and gpu.get("available"):
        r = gpu["model_only"]["1024"]
        lines.append(
            f"| GPU model-only, batch 1024 ({gpu['device']}) | {fmt(r['headlines_per_s'])} headlines/s | "
            f"≥ 100,000/s on an H100 | {verdict(r['headlines_per_s'] >= TARGETS['gpu_headlines_per_s'])} |"
        )
    else:
        lines.append("| GPU model-only | no GPU in this run | ≥ 100,000/s on an H100 | n/a |")

    if scoring:
        acc = scoring["accuracy_phrasebank_50agree_test"]
        paths = list(acc)
        lines += [
            "",
            "## Model: every inference path against a FinBERT-size model",
            "",
            "The FinBERT-size model is BERT-base shaped (12 layers, hidden 768) with random weights, run through the "
            "same `Scorer` code",
            "(tokenising, chunking, pooling weights, word merging), so the ratio compares the networks. Accuracy is "
            "PhraseBank 50Agree test",
            f"({scoring['model_version']}); a path qualifies as the CPU default when it is within 0.5 point of the "
            "most accurate path.",
            "",
            "| path | accuracy | "
            + " | ".join(f"ours, batch {b}" for b in scoring["batch_sizes"])
            + " | "
            + " | ".join(f"FinBERT-size, batch {b}" for b in scoring["batch_sizes"])
            + " |",
            "| --- | --- | " + " | ".join("---" for _ in range(2 * len(scoring["batch_sizes"]))) + " |",
        ]
        for p in paths:
            cells = [fmt(scoring["batch_sizes"][b]["ours"][p], 1) for b in scoring["batch_sizes"]]
            cells += [fmt(scoring["batch_sizes"][b]["finbert_size"][p], 1) for b in scoring["batch_sizes"]]
            lines.append(f"| CPU {p} | {acc[p]:.4f} | " + " | ".join(cells) + " |")
        lines += ["", "| batch | fastest qualifying path | ours / FinBERT-size fp32 | ours / FinBERT-size, same path |",
                  "| --- | --- | --- | --- |"]  # fmt: skip
        for b, row in scoring["batch_sizes"].items():
            lines.append(f"| {b} | {row['best_path']} | {row['ratio_fp32']:.2f}x | {row['ratio_same_opt']:.2f}x |")
        lines += ["", f"![model throughput]({plot_model(scoring)})"]

    if cpu_paths := load(results, "cpu_paths"):
        lines += cpu_paths_lines(cpu_paths)

    if pipeline:
        bursts = sorted(r["vs_model_only"] for r in pipeline["embedded"]["saturation"]["runs"] if "vs_model_only" in r)
        each = f" (each: {', '.join(f'{x:.2f}' for x in bursts)})" if bursts else ""
        lines += [
            "",
            "## End to end: throughput and latency against offered load",
            "",
            "Real headlines (../shared/data/news_stream), each published once. Latency is the time from the record's "
            "broker timestamp",
            "to the commit of its score row (`scores.latency_ms`). Saturation is a burst of items published at once; "
            "the offered loads",
            "are fractions of it, each a steady stream for a few seconds. Worker: dynamic batching, at most "
            f"{pipeline['worker']['max_batch']} records, queue delay {pipeline['worker']['max_delay_s'] * 1000:.0f} ms;"
            f" model batches of {pipeline['scorer']['model_batch']} ({pipeline['scorer']['precision']}).",
            "",
            f"Model only, same scorer and batches, same run: **{fmt(pipeline['model_only_per_s'])} headlines/s** at "
            "the start; the embedded ratio brackets each saturation burst with model-only runs of the same size "
            "just before and just after it (this host's speed drifts by tens of percent within minutes) and takes "
            f"the median of the bursts' ratios to their brackets{each}.",
            "",
            "| pipeline | offered (items/s) | achieved (items/s) | p50 (ms) | p99 (ms) | mean batch |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        sweeps = [("embedded + SQLite", pipeline["embedded"])]
        if pipeline.get("kafka_postgres"):
            sweeps.append(("Kafka + PostgreSQL, 1 worker", pipeline["kafka_postgres"]["one_worker"]))
        for label, sweep in sweeps:
            for p in sweep["loads"]:
                lines.append(
                    f"| {label} | {fmt(p['offered_per_s'])} | {fmt(p['items_per_s'])} | {fmt(p['p50_ms'])} | "
                    f"{fmt(p['p99_ms'])} | {fmt(p.get('mean_batch'), 1)} |"
                )
            s = sweep["saturation"]
            lines.append(
                f"| {label} | burst (saturation) | {fmt(s['items_per_s'])} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} | "
                f"{fmt(s.get('mean_batch'), 1)} |"
            )
        lines += [
            "",
            "Dynamic batching shows in the last column: under light load the worker sends batches of one or a few "
            "items after the",
            "queue delay (low latency); under a backlog it takes full batches at once (throughput). Mean batch sizes "
            "come from the",
            "in-process worker's counters and from the Kafka workers' `/metrics` (`finsent_batch_size`).",
            "",
            "Where the embedded worker's time went over the whole sweep: "
            + ", ".join(f"{k} {v:.0%}" for k, v in pipeline["embedded"].get("stage_share", {}).items())
            + " (admit: decode, normalise, dedup lookups, ticker linking; score: tokenising, the model, word merging;",
            "store: bulk inserts of articles, stories, mentions, scores and words, and the commit).",
            "",
            f"![latency against load]({plot_latency(pipeline)})",
        ]
        if profile:
            lines += [
                "",
                f"Profile (`bench/profile_worker.py`, pyinstrument, {profile['items']:,} headlines in batches of "
                f"{profile['batch']} into SQLite): the network's forward pass is **{profile['forward_share']:.0%}** "
                "of the batch path's wall time;",
                "the call tree is in `bench/results/profile.txt` and `.html`.",
            ]
        kp = pipeline.get("kafka_postgres")
        if kp:
            two = kp["two_workers"]
            lines += [
                "",
                "## Scaling scoring workers (Kafka consumer group, PostgreSQL)",
                "",
                "| workers | torch threads each | saturation (items/s) | peak RSS per worker (MB) |",
                "| --- | --- | --- | --- |",
                f"| 1 | {m['cores']} | {fmt(kp['one_worker']['saturation']['items_per_s'])} | "
                f"{fmt(kp['worker_peak_rss_mb'])} |",
                f"| 2 | {max(1, (m['cores'] or 2) // 2)} | {fmt(two['saturation']['items_per_s'])} | "
                + ", ".join(fmt(x) for x in two["peak_rss_mb"])
                + " |",
                "",
                f"2 workers / 1 worker: **{kp['scaling_2_vs_1']:.2f}x**. Both configurations share the same "
                f"{m['cores']} cores (torch threads split",
                "between the workers), so the gain is what one worker leaves idle while it waits on the broker and the "
                "database; with",
                "more cores or a GPU per worker, workers scale with the topic's partitions.",
            ]
        bf = pipeline.get("backfill")
        if bf:
            lines += [
                "",
                "## Backfill",
                "",
                f"{bf['rows']:,} rows in {bf['files']} files through `finsent backfill`'s code path into SQLite: the "
                "51k news_stream rows, then",
                "the same rows again as a second, syndicating source (distinct URLs), so half of the history groups "
                "into existing stories.",
                f"Stored {bf['stored']:,}, duplicates {bf['duplicates']:,}, rejected {bf['rejected']:,}; "
                f"{bf['seconds']:.0f} s in all.",
                "",
                "| file | " + " | ".join(str(i + 1) for i in range(bf["files"])) + " | median |",
                "| --- | " + " | ".join("---" for _ in range(bf["files"])) + " | --- |",
                "| rows/s | " + " | ".join(fmt(x) for x in bf["rows_per_s_per_file"]) + f" | {fmt(bf['rows_per_s'])} |",
            ]
    if dashboard:
        lines += [
            "",
            "## Dashboard page times",
            "",
            f"{dashboard['seed']['articles']:,} articles seeded into PostgreSQL by COPY (`bench/seed.py`); every page "
            "rendered by Streamlit's",
            "AppTest (the whole script: queries, charts, widgets) with the data cache cleared before each run.",
            "",
            "| page | first run (s) | median (s) |",
            "| --- | --- | --- |",
        ]
        for page, t in dashboard["pages"].items():
            lines.append(f"| {page} | {t['cold_s']:.2f} | {t['median_s']:.2f} |")
        lines += ["", f"![dashboard pages]({plot_dashboard(dashboard)})"]

    lines += ["", "## GPU", ""]
    if gpu and gpu.get("available"):
        lines += [
            f"Device: {gpu['device']} (bf16 dense peak {fmt(gpu.get('bf16_peak_tflops'), 1)} TFLOP/s), "
            f"precision {gpu['precision']}, torch {gpu['torch']}.",
            "",
            "| batch | prefetch thread | headlines/s | TFLOP/s | share of bf16 peak |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key, r in gpu["model_only"].items():
            batch, _, rest = key.partition("_")
            share = fmt(100 * r["fraction_of_peak"], 1, "%") if r.get("fraction_of_peak") else "n/a"
            lines.append(
                f"| {batch} | {'off' if rest else 'on'} | {fmt(r['headlines_per_s'])} | {r['tflops']:.1f} | {share} |"
            )
        if gpu.get("embedded"):
            s = gpu["embedded"]["saturation"]
            lines += ["", f"End to end with the model on the GPU (embedded + SQLite): {fmt(s['items_per_s'])} items/s "
                          f"at saturation, p99 {fmt(s['p99_ms'])} ms."]  # fmt: skip
    else:
        lines += [
            f"No figures: {(gpu or {}).get('reason', 'bench/gpu.py did not run')}. The CUDA path (bf16 weights, fused "
            "SDPA attention,",
            "batches of 512, pinned memory, a prefetch thread building the next batches while the GPU runs, one "
            "device sync per call)",
            "is covered by the `gpu`-marked tests, which run on a machine with a CUDA device; `python bench/gpu.py` "
            "fills this section there.",
        ]
    lines += ["", "## Export (`python bench/export.py`)", "", *export_section(results)]
    lines += ["", "## Soak (`make soak`)", "", *soak_section(results)]
    lines += [
        "",
        "## Reproduce",
        "",
        "```",
        "make bench            # all of the above, then this file",
        "python bench/scoring.py --json bench/results/scoring.json",
        "python bench/scoring.py --host-only --json bench/results/host_only.json",
        "python bench/pipeline.py --json bench/results/pipeline.json",
        "python bench/dashboard.py --json bench/results/dashboard.json",
        "python bench/gpu.py --json bench/results/gpu.json",
        "python bench/report.py",
        "make soak             # 30 minutes; its result shows here at the next report",
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args()
    args.out.write_text(report(args.results))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
