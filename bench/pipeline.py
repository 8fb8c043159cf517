"""End-to-end pipeline benchmark: items/s and latency (published → score committed), and backfill rows/s.

    python bench/pipeline.py [--items 20000] [--backfill-rows 50000] [--json FILE] [--skip-kafka]

1. embedded + SQLite: MemoryTransport, one scoring worker thread (what `finsent run` does);
2. Kafka + PostgreSQL: a local tansu broker and the PostgreSQL server on 127.0.0.1 (what `finsent score` does);
3. backfill rows/s straight into SQLite (`finsent backfill`).

Each pipeline run is measured twice: at saturation (every item published at once: throughput) and at a steady
offered load of half that throughput (latency p50/p99 when the worker keeps up). Real headlines from
../shared/data/news_stream; the model-only rate of the same scorer in the same run gives the end-to-end ratio.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from core.db import make_engine, make_session_factory, upgrade  # noqa: E402
from core.schema import Score  # noqa: E402
from core.transport import KafkaTransport, MemoryBroker, MemoryTransport  # noqa: E402
from ingest.backfill import Backfill  # noqa: E402
from ingest.pipeline import Pipeline  # noqa: E402
from ingest.sources.files import read_file  # noqa: E402
from model.scorer import Scorer  # noqa: E402
from model.worker import BatchProcessor, ScoringWorker  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "news_stream"
FILES = ("benzinga_analyst_ratings_sample.csv", "cnbc_guardian_2017_2020.csv", "reuters21578_1987.csv")


def messages(n: int) -> list[bytes]:
    """n news.raw messages from the real files, made unique per run so nothing is a duplicate of a previous run."""
    out: list[bytes] = []
    run = uuid.uuid4().hex[:6]
    for name in FILES:
        for record in read_file(DATA / name):
            if record.value is not None:
                data = json.loads(record.value)
                data["external_id"] = f"{run}-{len(out)}"
                data["source"] = f"{data['source']}-{run}"
                out.append(json.dumps(data).encode())
                if len(out) == n:
                    return out
    return out


def latencies(session_factory, after_id: int) -> np.ndarray:
    """Latencies (ms) of the scores stored after score id `after_id`."""
    with session_factory() as s:
        rows = s.scalars(select(Score.latency_ms).where(Score.id > after_id, Score.latency_ms.is_not(None)))
        return np.array(list(rows))


def run_pipeline(make_transport, session_factory, scorer, values: list[bytes], rate: float | None, label: str) -> dict:
    """Publish `values` (all at once, or at `rate` items/s), run one worker until all are stored."""
    topic, group = f"news.raw.{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:6]}"
    producer = make_transport()
    producer.ensure_topics([topic, topic + ".dlq"], partitions=3)
    worker = ScoringWorker(
        transport=make_transport(),
        processor=BatchProcessor(session_factory=session_factory, scorer=scorer, pipeline=Pipeline()),
        topic=topic,
        dlq_topic=topic + ".dlq",
        group=group,
        max_batch=64,
        max_wait_s=0.05,
    )
    with session_factory() as s:
        before = s.scalar(select(func.max(Score.id))) or 0
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    # Let a Kafka consumer join its group first, so the join is not counted as processing time.
    deadline = time.monotonic() + 60
    while isinstance(producer, KafkaTransport) and not worker.transport.assignment() and time.monotonic() < deadline:
        time.sleep(0.1)
    start = time.perf_counter()
    for i, value in enumerate(values):
        producer.publish(topic, f"k{i}".encode(), value)
        if rate:
            producer.flush()
            lag = start + (i + 1) / rate - time.perf_counter()
            if lag > 0:
                time.sleep(lag)
    producer.flush()
    while worker.stats.received < len(values) and thread.is_alive():
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join(timeout=60)
    producer.close()
    lat = latencies(session_factory, before)
    out = {
        "label": label,
        "offered_per_s": rate,
        "items": len(values),
        "stored": worker.stats.stored,
        "items_per_s": len(values) / elapsed,
        "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "mean_batch": worker.stats.received / max(1, worker.stats.batches),
    }
    print(
        f"{label:<28} {'saturation' if not rate else f'{rate:.0f}/s offered':>16} {out['items_per_s']:8.0f} items/s"
        f"   p50 {out['latency_p50_ms'] or 0:8.0f} ms   p99 {out['latency_p99_ms'] or 0:8.0f} ms"
        f"   mean batch {out['mean_batch']:.0f}",
        flush=True,
    )
    return out


def model_only(scorer: Scorer, values: list[bytes], n: int = 2000) -> float:
    texts = [json.loads(v)["title"] for v in values[:n]]
    scorer.score(texts[:64])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(texts), 64):
        scorer.score(texts[i : i + 64])
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--backfill-rows", type=int, default=50000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-kafka", action="store_true")
    parser.add_argument(
        "--postgres", default=os.environ.get("FINSENT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
    )
    args = parser.parse_args()

    scorer = Scorer(device="cpu")
    values = messages(args.items)
    results: dict = {"scorer": {"version": scorer.version, "precision": scorer.precision}, "runs": []}
    results["model_only_per_s"] = model_only(scorer, values)
    print(f"model only ({scorer.precision}, batch 64): {results['model_only_per_s']:.0f} headlines/s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        broker = MemoryBroker()
        sat = run_pipeline(lambda: MemoryTransport(broker), factory, scorer, values, None, "embedded + SQLite")
        results["runs"].append(sat)
        steady = messages(min(args.items, 4000))
        results["runs"].append(
            run_pipeline(
                lambda: MemoryTransport(broker), factory, scorer, steady, sat["items_per_s"] / 2, "embedded + SQLite"
            )  # fmt: skip
        )
        engine.dispose()

        if not args.skip_kafka:
            import psycopg

            from core.devbroker import local_broker

            name = f"finsent_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            pg_url = f"{args.postgres}/{name}"
            try:
                upgrade(pg_url)
                engine = make_engine(pg_url)
                factory = make_session_factory(engine)
                with local_broker(Path(tmp) / "tansu.log") as bootstrap:
                    kafka = lambda: KafkaTransport(bootstrap)  # noqa: E731
                    sat = run_pipeline(kafka, factory, scorer, messages(args.items), None, "Kafka + PostgreSQL")
                    results["runs"].append(sat)
                    results["runs"].append(
                        run_pipeline(
                            kafka,
                            factory,
                            scorer,
                            messages(min(args.items, 4000)),
                            sat["items_per_s"] / 2,
                            "Kafka + PostgreSQL",
                        )  # fmt: skip
                    )
                engine.dispose()
            finally:
                with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        # Backfill: the real files, straight into SQLite.
        url = f"sqlite:///{Path(tmp) / 'backfill.db'}"
        upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        sample = Path(tmp) / "backfill.csv"
        rows = 0
        with open(sample, "w", newline="", encoding="utf-8") as out:
            writer = None
            for name in FILES:
                with open(DATA / name, newline="", encoding="utf-8") as fh:
                    reader = csv.DictReader(fh)
                    writer = writer or csv.DictWriter(out, fieldnames=reader.fieldnames, extrasaction="ignore")
                    if rows == 0:
                        writer.writeheader()
                    for row in reader:
                        if rows >= args.backfill_rows:
                            break
                        writer.writerow(row)
                        rows += 1
        processor = BatchProcessor(session_factory=factory, scorer=scorer, pipeline=Pipeline())
        start = time.perf_counter()
        report = Backfill(session_factory=factory, process=processor.process, batch_size=256, progress=False).run(
            [sample]
        )
        elapsed = time.perf_counter() - start
        engine.dispose()
        results["backfill"] = {
            "rows": report.rows,
            "stored": report.stored,
            "duplicates": report.duplicates,
            "rejected": report.rejected,
            "rows_per_s": report.rows / elapsed,
        }
        print(
            f"backfill {report.rows} rows: {report.rows / elapsed:.0f} rows/s "
            f"(stored {report.stored}, duplicates {report.duplicates}, rejected {report.rejected})",
            flush=True,
        )
    embedded = results["runs"][0]["items_per_s"]
    results["embedded_vs_model_only"] = embedded / results["model_only_per_s"]
    print(f"embedded end-to-end / model-only: {results['embedded_vs_model_only']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
