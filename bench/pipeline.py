"""End-to-end pipeline benchmark: items/s and latency (published → score committed) against offered load,
worker scaling, backfill rows/s and a scoring worker's peak memory.

    python bench/pipeline.py [--json FILE] [--repeats 3] [--seconds 3] [--backfill-rows 100000] [--skip-kafka]
    python bench/pipeline.py --host-only --skip-kafka --backfill-rows 0 [--max-batch 1024]

`--host-only` replaces the network by bench/scoring.py's stub (outputs of the right shapes at once): what is left is
the pipeline's own ceiling on this host, the rate a fast network (a GPU) would be held to by everything around it.

1. model only: the same scorer, the worker's batch (`--max-batch`), real headlines: the ceiling;
2. embedded + SQLite: MemoryTransport and one scoring-worker thread in this process (what `finsent run` does);
3. Kafka + PostgreSQL: a local tansu broker, the PostgreSQL server on 127.0.0.1, and `finsent score` worker
   processes (what a deployment runs); 1 worker, then 2 workers splitting the cores (OMP_NUM_THREADS);
4. backfill: `--backfill-rows` rows of ../shared/data/news_stream into SQLite (`finsent backfill`'s code path);
5. peak RSS (VmHWM) of the `finsent score` process after all its runs.

Load: saturation first (a burst of items published at once: throughput, median of `--saturation-repeats`; in the
embedded case each burst is bracketed by model-only runs just before and after it, and the ratio is the median of
the bursts' ratios to them),
then steady offered loads at fractions of it for `--seconds` each (latency p50/p99 from the score rows'
`latency_ms`, the time from the broker's record timestamp to the commit; median of `--repeats`). Every ratio is of
figures measured in this run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from core.db import make_engine, make_session_factory, upgrade  # noqa: E402
from core.schema import Reject, Score  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.transport import KafkaTransport, MemoryBroker, MemoryTransport  # noqa: E402
from ingest.backfill import Backfill  # noqa: E402
from ingest.sources.files import read_file  # noqa: E402
from model.scorer import Scorer  # noqa: E402
from scoring.build import build_processor, build_worker  # noqa: E402
from scoring.normalize import title_key  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "news_stream"
FILES = ("benzinga_analyst_ratings_sample.csv", "cnbc_guardian_2017_2020.csv", "reuters21578_1987.csv")
LOAD_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 0.9)


class Messages:
    """news.raw messages from the real files, each title once, made unique per draw so nothing is a duplicate."""

    def __init__(self) -> None:
        self.pool: list[dict] = []
        seen: set[str] = set()
        for name in FILES:
            for record in read_file(DATA / name):
                if record.value is not None:
                    data = json.loads(record.value)
                    key = title_key(data["title"])  # what exact dedup compares
                    if key not in seen:
                        seen.add(key)
                        data.pop("url", None)
                        self.pool.append(data)
        # One mix of sources in every draw: the files differ in headline length (Benzinga's are short), so a draw
        # in file order would time the model on short headlines and the pipeline on long ones.
        random.Random(0).shuffle(self.pool)
        self.drawn = 0

    def take(self, n: int) -> list[bytes]:
        run = uuid.uuid4().hex[:6]
        out = []
        for _ in range(n):
            data = dict(self.pool[self.drawn % len(self.pool)])
            data["external_id"] = f"{run}-{self.drawn}"
            data["source"] = f"{data['source']}-{run}"
            out.append(json.dumps(data).encode())
            self.drawn += 1
        return out


class Stored:
    """Counts of score and reject rows past a starting point: how many published items are done."""

    def __init__(self, session_factory) -> None:
        self.session_factory = session_factory
        with session_factory() as s:
            self.score_id = s.scalar(select(func.max(Score.id))) or 0
            self.reject_id = s.scalar(select(func.max(Reject.id))) or 0

    def done(self) -> int:
        with self.session_factory() as s:
            scores = s.scalar(select(func.count()).where(Score.id > self.score_id))
            rejects = s.scalar(select(func.count()).select_from(Reject).where(Reject.id > self.reject_id))
            return scores + rejects

    def latencies(self) -> np.ndarray:
        with self.session_factory() as s:
            rows = s.scalars(select(Score.latency_ms).where(Score.id > self.score_id, Score.latency_ms.is_not(None)))
            return np.array(list(rows), dtype=float)


def offer(
    producer,
    topic: str,
    values: list[bytes],
    rate: float | None,
    session_factory,
    processed: Callable[[], int] | None = None,
    timeout_s: float = 180,
):
    """Publish `values` (a burst, or at `rate` items/s) and wait until all are stored or rejected.

    `processed` (messages a worker has finished, from its own counters) is how an in-process worker is watched;
    without it the database is asked, which is how separate worker processes are watched.
    """
    mark = Stored(session_factory)
    progress = mark.done
    if processed is not None:
        base = processed()
        progress = lambda: processed() - base  # noqa: E731 - no queries racing the worker for the GIL and the cores
    start = time.perf_counter()
    for i, value in enumerate(values):
        producer.publish(topic, f"k{i}".encode(), value)
        if rate:  # the producer batches for at most linger_ms (5 ms); a flush per message would cap the rate
            ahead = start + (i + 1) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    producer.flush()
    while (done := progress()) < len(values):
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"only {done} of {len(values)} items stored after {timeout_s:.0f} s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    lat = mark.latencies()
    return {
        "items": len(values),
        "items_per_s": len(values) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
    }


def median_of(runs: list[dict]) -> dict:
    out = {"runs": runs}
    for key in ("items_per_s", "p50_ms", "p99_ms", "mean_batch", "model_only_per_s", "vs_model_only"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    return out


def sweep(
    label: str,
    publish: Callable,
    msgs: Messages,
    args,
    batch_stats: Callable[[], tuple[int, int]],
    ceiling: Callable[[int], float] | None = None,
) -> dict:
    """Saturation (`args.saturation_repeats` bursts), then offered loads at fractions of it (`args.repeats` runs
    each); medians.

    With `ceiling` (model-only headlines/s on n new headlines), each burst is bracketed by model-only runs of the
    same size just before and just after it (one run between two bursts serves both), and `vs_model_only` is the
    median of the bursts' ratios to their brackets: the host's speed drifts from minute to minute, and a ratio
    of figures taken minutes apart would measure the drift (docs/performance.md, 'Measurements behind code
    choices').
    """

    def run(values, rate):
        before = batch_stats()
        result = publish(values, rate)
        after = batch_stats()
        if after[1] > before[1]:
            result["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
        return result

    brackets: list[float] = []  # model-only runs between bursts: each is the after of one and the before of the next

    def burst():
        if ceiling and not brackets:
            brackets.append(ceiling(args.burst))
        result = run(msgs.take(args.burst), None)
        if ceiling:
            # Bracketed: model-only just before and just after, their mean time per headline, so a drift of the
            # host's speed during the burst moves both sides of the ratio alike.
            brackets.append(ceiling(args.burst))
            model = 2 / (1 / brackets[-2] + 1 / brackets[-1])
            result |= {"model_only_per_s": model, "vs_model_only": result["items_per_s"] / model}
        return result

    saturation = median_of([burst() for _ in range(args.saturation_repeats)])
    print(
        f"{label:<22} saturation {saturation['items_per_s']:8.0f} items/s   p50 {saturation['p50_ms']:7.0f} ms"
        f"   p99 {saturation['p99_ms']:7.0f} ms   batch {saturation.get('mean_batch') or 0:5.1f}",
        flush=True,
    )
    loads = []
    for fraction in LOAD_FRACTIONS:
        rate = fraction * saturation["items_per_s"]
        n = max(50, int(rate * args.seconds))
        point = median_of([run(msgs.take(n), rate) for _ in range(args.repeats)])
        point |= {"fraction": fraction, "offered_per_s": rate}
        loads.append(point)
        print(
            f"{label:<22} {rate:7.0f}/s offered {point['items_per_s']:8.0f} items/s   p50 {point['p50_ms']:7.0f} ms"
            f"   p99 {point['p99_ms']:7.0f} ms   batch {point.get('mean_batch') or 0:5.1f}",
            flush=True,
        )
    return {"saturation": saturation, "loads": loads}


def model_only(scorer: Scorer, msgs: Messages, batch: int, repeats: int, n: int = 2048) -> float:
    """Headlines/s of `scorer.score` on batches of `batch` real headlines (tokenising and word merging included)."""
    texts = [json.loads(v)["title"] for v in msgs.take(n)]
    scorer.score(texts[:batch])  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), batch):
            scorer.score(texts[i : i + batch])
        rates.append(len(texts) / (time.perf_counter() - start))
    return statistics.median(rates)


def embedded(scorer: Scorer, msgs: Messages, args, tmp: Path) -> dict:
    url = f"sqlite:///{tmp / 'embedded.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    broker = MemoryBroker()
    settings = Settings(transport="memory", batch_max_size=args.max_batch, batch_max_delay_s=args.max_delay)
    processor = build_processor(session_factory=factory, scorer=scorer)  # as `finsent run` builds it
    worker = build_worker(settings=settings, transport=MemoryTransport(broker), processor=processor)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    producer = MemoryTransport(broker)
    try:
        processed = lambda: worker.stats.received  # noqa: E731 - counted after each batch's commit
        offer(producer, "news.raw", msgs.take(64), None, factory, processed)  # warm-up
        result = sweep(
            "embedded + SQLite",
            lambda values, rate: offer(producer, "news.raw", values, rate, factory, processed),
            msgs,
            args,
            lambda: (worker.stats.received, worker.stats.batches),
            ceiling=lambda n: model_only(scorer, msgs, args.max_batch, 1, n=n),
        )
        busy = sum(worker.stats.seconds.values())
        result["stage_share"] = {stage: t / busy for stage, t in worker.stats.seconds.items()}
        print("worker time by stage: " + ", ".join(f"{k} {v:.0%}" for k, v in result["stage_share"].items()))
        return result
    finally:
        stop.set()
        thread.join(timeout=60)
        engine.dispose()


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of a process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scraped_batches(ports: list[int]) -> tuple[float, float]:
    """(messages, batches) summed over workers, from their Prometheus `finsent_batch_size` histograms."""
    from prometheus_client.parser import text_string_to_metric_families

    total = count = 0.0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == "finsent_batch_size":
                for sample in family.samples:
                    if sample.name == "finsent_batch_size_sum":
                        total += sample.value
                    elif sample.name == "finsent_batch_size_count":
                        count += sample.value
    return total, count


def kafka_postgres(msgs: Messages, args, tmp: Path) -> dict:
    import psycopg

    from tests.support.broker import local_broker

    name = f"finsent_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.postgres}/{name}"
    results: dict = {}
    try:
        upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        with local_broker(tmp / "tansu.log") as bootstrap:
            producer = KafkaTransport(bootstrap)

            def workers(n: int, threads: int, topic: str):
                env = os.environ | {
                    "FINSENT_DATABASE_URL": url,
                    "FINSENT_TRANSPORT": "kafka",
                    "FINSENT_KAFKA_BOOTSTRAP": bootstrap,
                    "FINSENT_TOPIC_RAW": topic,
                    "FINSENT_TOPIC_DLQ": topic + ".dlq",
                    "FINSENT_TOPIC_PARTITIONS": "4",
                    "FINSENT_CONSUMER_GROUP": f"bench-{topic}",
                    "FINSENT_BATCH_MAX_SIZE": str(args.max_batch),
                    "FINSENT_BATCH_MAX_DELAY_S": str(args.max_delay),
                    "OMP_NUM_THREADS": str(threads),
                }
                ports = [free_port() for _ in range(n)]
                finsent = str(Path(sys.executable).with_name("finsent"))
                log = open(tmp / f"{topic}.log", "ab")  # noqa: SIM115 - closed with the processes
                procs = [
                    subprocess.Popen(
                        [finsent, "score", "--device", "cpu", "--metrics-port", str(port)],
                        env=env,
                        stdout=log,
                        stderr=log,
                    )  # fmt: skip
                    for port in ports
                ]
                # Warm-up until every worker has joined the group and loaded its model: a burst big enough to
                # reach every partition, twice (the second after any rebalance the joins caused).
                for _ in range(2):
                    offer(producer, topic, msgs.take(200), None, factory)
                return procs, log, ports

            def stop(procs, log, _ports) -> list[float]:
                peaks = [vm_hwm_mb(p.pid) for p in procs]
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(timeout=60)
                log.close()
                return peaks

            topic = f"news.raw.{uuid.uuid4().hex[:6]}"
            producer.ensure_topics([topic, topic + ".dlq"], partitions=4)
            running = workers(1, os.cpu_count() or 1, topic)
            try:
                results["one_worker"] = sweep(
                    "Kafka + PostgreSQL",
                    lambda values, rate: offer(producer, topic, values, rate, factory),
                    msgs,
                    args,
                    lambda: scraped_batches(running[2]),
                )
            finally:
                results["worker_peak_rss_mb"] = max(stop(*running))
            print(f"scoring worker peak RSS {results['worker_peak_rss_mb']:.0f} MB", flush=True)

            topic = f"news.raw.{uuid.uuid4().hex[:6]}"
            producer.ensure_topics([topic, topic + ".dlq"], partitions=4)
            running = workers(2, max(1, (os.cpu_count() or 2) // 2), topic)
            try:
                runs = [offer(producer, topic, msgs.take(args.burst), None, factory) for _ in range(args.repeats)]
                results["two_workers"] = {"saturation": median_of(runs)}
            finally:
                results["two_workers"]["peak_rss_mb"] = stop(*running)
            one = results["one_worker"]["saturation"]["items_per_s"]
            two = results["two_workers"]["saturation"]["items_per_s"]
            results["scaling_2_vs_1"] = two / one
            print(f"2 workers: {two:.0f} items/s = {two / one:.2f}x one worker", flush=True)
            producer.close()
        engine.dispose()
    finally:
        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def backfill(scorer: Scorer, rows: int, tmp: Path, parts: int = 4) -> dict:
    """`rows` real rows in `parts` files: the news_stream files (51k rows), then again as a second source that
    syndicates the same stories (its URLs made distinct), which exercises story grouping rather than exact dedup."""
    table, fields, copy = [], None, 0
    while len(table) < rows:
        for name in FILES:
            with open(DATA / name, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                fields = fields or reader.fieldnames
                for row in reader:
                    if copy:
                        row["source"] = f"{row['source']} syndication {copy}"
                        row["url"] = f"{row['url']}#copy{copy}" if row["url"] else ""
                    table.append(row)
        copy += 1
    table = table[:rows]
    files = []
    for part in range(parts):
        files.append(tmp / f"backfill-{part}.csv")
        with open(files[-1], "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(table[part * rows // parts : (part + 1) * rows // parts])
    url = f"sqlite:///{tmp / 'backfill.db'}"
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    processor = build_processor(session_factory=factory, scorer=scorer)  # as `finsent backfill` builds it
    job = Backfill(session_factory=factory, processor=processor, batch_size=256, progress=False)
    per_file, total_start = [], time.perf_counter()
    for path in files:
        before = job.report.rows
        start = time.perf_counter()
        job.run([path])
        per_file.append((job.report.rows - before) / (time.perf_counter() - start))
        print(f"  backfill {path.name}: {per_file[-1]:.0f} rows/s", flush=True)
    elapsed = time.perf_counter() - total_start
    engine.dispose()
    r = job.report
    out = {
        "rows": r.rows,
        "stored": r.stored,
        "duplicates": r.duplicates,
        "rejected": r.rejected,
        "files": len(files),
        "rows_per_s_per_file": per_file,
        "rows_per_s": statistics.median(per_file),
        "rows_per_s_overall": r.rows / elapsed,
        "seconds": elapsed,
    }
    print(
        f"backfill {r.rows} rows: median {out['rows_per_s']:.0f} rows/s over {len(files)} files "
        f"(stored {r.stored}, duplicates {r.duplicates}, rejected {r.rejected}, {elapsed:.0f} s)",
        flush=True,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one offered-load run")
    parser.add_argument("--burst", type=int, default=1024, help="items in one saturation run (4 full batches)")
    parser.add_argument("--saturation-repeats", type=int, default=9, help="saturation runs (embedded: bracketed)")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--max-delay", type=float, default=0.02)
    parser.add_argument("--backfill-rows", type=int, default=100_000)
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument(
        "--postgres", default=os.environ.get("FINSENT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
    )
    parser.add_argument("--host-only", action="store_true", help="the network stubbed: the pipeline's own ceiling")
    args = parser.parse_args()

    scorer = Scorer(device="cpu")
    if args.host_only:
        from bench.scoring import HostOnlyNet

        scorer.net = HostOnlyNet()
    msgs = Messages()
    results: dict = {
        "scorer": {"version": scorer.version, "precision": scorer.precision, "model_batch": scorer.batch_size},
        "worker": {"max_batch": args.max_batch, "max_delay_s": args.max_delay},
        "repeats": args.repeats,
        "host_only": args.host_only,
    }
    results["model_only_per_s"] = model_only(scorer, msgs, args.max_batch, args.repeats, n=args.burst)
    print(f"model only ({scorer.precision}, batches of {args.max_batch}): {results['model_only_per_s']:.0f}/s")
    with tempfile.TemporaryDirectory() as tmp:
        results["embedded"] = embedded(scorer, msgs, args, Path(tmp))
        sat = results["embedded"]["saturation"]
        results["embedded_vs_model_only"] = sat["vs_model_only"]
        print(
            f"embedded end-to-end / model-only: {sat['vs_model_only']:.2f} (median of {len(sat['runs'])} bursts, each "
            f"bracketed by model-only runs: median {sat['model_only_per_s']:.0f}/s)",
            flush=True,
        )
        if not args.skip_kafka:
            results["kafka_postgres"] = kafka_postgres(msgs, args, Path(tmp))
        if args.backfill_rows:
            results["backfill"] = backfill(scorer, args.backfill_rows, Path(tmp))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
