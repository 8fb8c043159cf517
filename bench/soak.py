"""Soak: a `finsent score` worker on Kafka (tansu) + PostgreSQL at 70% of its capacity for a long while.

    python bench/soak.py [--minutes 30] [--rate ITEMS_PER_S | --load 0.7] [--sample-every 5] [--json FILE]

1. A throw-away PostgreSQL database and a local tansu broker; one `finsent score` subprocess (the CLI, settings
   from FINSENT_* variables), waited for until it stored a first item.
2. Capacity, unless --rate is given: a burst published at once (about 15 s of work at the warm-up's pace, at most
   --capacity-items); items/s between 10% and 90% of the burst stored. The soak rate is --load (0.7) times that.
3. The soak: a producer publishes at that fixed rate for --minutes while every --sample-every seconds the worker's
   RSS (psutil) and the lag are sampled. Lag = messages acknowledged by the broker − items stored or rejected: a
   broker-independent measure (tansu answers ListOffsets wrongly, so end offsets are not used).
4. Drain, stop the worker with SIGTERM, count.

Before the capacity burst, the 512 longest headlines are published at once (the largest batches the worker will
see), so the memory it needs for them is taken before anything is measured. The warm-up excluded from the memory
comparison lasts until the soak has handled --warmup-items (20,000) items, at least 10% of the run and at most half
of it: glibc's heap keeps growing with the mix of batch shapes for about that long and then levels off (the growth
is the allocator's, not accumulating Python objects: a fixed mmap threshold keeps it flat but slows the worker too
much; docs/performance.md, 'Measurements behind code choices'), so growth before that is the allocator settling,
and growth after it is what a leak would look like.

Criteria (exit 1 if one fails): memory growth (median RSS of the last quarter of the samples after the warm-up
against the first quarter's) under 10%; lag bounded (the last quarter's median lag at most twice the first
quarter's plus two seconds of arrivals, and everything drained at the end); nothing lost (every sent item has
exactly one article and one score row, no extra rows).

Real headlines from ../shared/data/news_stream, unique per (source, title): after the files are used up they are
reused under a new source name. published_at advances --step-s (130 s) per item, so the 3-day dedup window holds
about 2,000 items after the first 2,000 and then stays that size: the steady state a long-running worker reaches
after three days, reached within the capacity burst here. Memory growth beyond it is not the window filling up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402
import psycopg  # noqa: E402

from core.db import upgrade  # noqa: E402
from core.transport import KafkaTransport, TransportError  # noqa: E402
from tests.support.broker import local_broker  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "news_stream"
FILES = ("benzinga_analyst_ratings_sample.csv", "cnbc_guardian_2017_2020.csv", "reuters21578_1987.csv")
FINSENT = Path(sys.executable).parent / "finsent"
MEMORY_GROWTH_LIMIT = 0.10
LONGEST = 512  # the warm-up burst: this many of the longest headlines, published at once


def headlines() -> list[dict]:
    """The news_stream records, interleaved across the files, one per (source, title key)."""
    from ingest.sources.files import read_file
    from scoring.normalize import clean_text, title_key

    readers = [(r for r in read_file(DATA / name) if r.value is not None) for name in FILES]
    seen: set[tuple[str, str]] = set()
    out = []
    for record in itertools.chain.from_iterable(itertools.zip_longest(*readers)):
        if record is None:
            continue
        data = json.loads(record.value)
        key = (data["source"], title_key(clean_text(data["title"])))
        if key[1] and key not in seen:
            seen.add(key)
            out.append({k: data.get(k) for k in ("source", "title", "body", "tickers")})
    return out


class Messages:
    """Message i: headline i mod n under a per-run, per-cycle source name, with published_at = start + i·step."""

    def __init__(self, records: list[dict], *, step_s: float, count_hint: int) -> None:
        self.records, self.step = records, timedelta(seconds=step_s)
        self.run = uuid.uuid4().hex[:6]
        # Everything in the past (a time more than a day ahead is rejected), the last item about now.
        self.start = datetime.now(UTC) - self.step * count_hint - timedelta(hours=1)

    def __getitem__(self, i: int) -> bytes:
        cycle, record = divmod(i, len(self.records))
        data = dict(self.records[record])
        data["source"] = f"{data['source']}-{self.run}-{cycle}"
        data["external_id"] = f"{self.run}-{i}"
        data["published_at"] = (self.start + self.step * i).isoformat()
        return json.dumps(data).encode()


class Producer(threading.Thread):
    """Publishes messages[first:first+count] at `rate` per second (or all at once with rate None), flushing every
    twentieth of a second; `acked` counts what the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str, messages: Messages, first: int, count: int, rate: float | None):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.messages = bootstrap, topic, messages
        self.first, self.count, self.rate = first, count, rate
        self.acked = 0
        self.error: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        transport = KafkaTransport(self.bootstrap)
        chunk = max(1, int((self.rate or 2000) / 20))
        start = time.monotonic()
        try:
            for lo in range(0, self.count, chunk):
                if self.stop.is_set():
                    break
                hi = min(self.count, lo + chunk)
                for i in range(self.first + lo, self.first + hi):
                    transport.publish(self.topic, f"k{i}".encode(), self.messages[i])
                transport.flush(timeout_s=30)
                self.acked = hi
                if self.rate:
                    ahead = start + hi / self.rate - time.monotonic()
                    if ahead > 0:
                        self.stop.wait(ahead)
        except TransportError as exc:
            self.error = str(exc)
        finally:
            try:
                transport.close()
            except TransportError:
                pass


def done_count(conn) -> int:
    """Items the worker finished: articles stored plus inputs rejected."""
    return conn.execute("SELECT (SELECT count(*) FROM articles) + (SELECT count(*) FROM rejects)").fetchone()[0]


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def quarters(samples: list[dict], key: str, warmup_s: float) -> tuple[float | None, float | None, int]:
    """Medians of `key` over the first and the last quarter of the samples taken after the warm-up."""
    kept = [s[key] for s in samples if s["t"] >= warmup_s]
    q = max(1, len(kept) // 4)
    return median(kept[:q]), median(kept[-q:]), len(kept)


def measure_capacity(bootstrap, topic, messages, conn, items: int, first: int) -> float:
    """Items/s of the worker on a burst of `items` published at once (between 10% and 90% of the burst done)."""
    base = done_count(conn)
    producer = Producer(bootstrap, topic, messages, first, items, None)
    producer.start()
    marks: dict[float, float] = {}
    deadline = time.monotonic() + max(120, items / 10)
    while time.monotonic() < deadline:
        done = done_count(conn) - base
        now = time.monotonic()
        for frac in (0.1, 0.9):
            if frac not in marks and done >= frac * items:
                marks[frac] = now
        if 0.9 in marks:
            break
        time.sleep(0.1)
    producer.join(timeout=60)
    if producer.error or 0.9 not in marks:
        raise RuntimeError(f"capacity burst did not finish: {producer.error or 'timeout'}")
    wait_for(lambda: done_count(conn) - base >= items, 120, "the capacity burst to drain")
    return 0.8 * items / max(1e-6, marks[0.9] - marks[0.1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, help="items/s to offer (default: --load × measured capacity)")
    parser.add_argument("--load", type=float, default=0.7, help="fraction of the measured capacity to offer")
    parser.add_argument("--capacity-items", type=int, default=3000, help="the capacity burst's size, at most")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--warmup-s", type=float, help="samples before this are not compared (default: see --warmup-items)"
    )
    parser.add_argument(
        "--warmup-items",
        type=int,
        default=20000,
        help="default warm-up: until the soak has handled this many items, at least 10%% of the run, at most half",
    )
    parser.add_argument("--step-s", type=float, default=130.0, help="published_at advance per item (seconds)")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--log-dir", type=Path, help="where the worker's and the broker's logs go (default: temp)")
    parser.add_argument(
        "--postgres", default=os.environ.get("FINSENT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
    )
    args = parser.parse_args()
    duration_s = args.minutes * 60

    records = headlines()
    by_length = sorted(range(len(records)), key=lambda i: -len(records[i]["title"]))
    longest = set(by_length[:LONGEST])
    records = [records[i] for i in by_length[:LONGEST]] + [r for i, r in enumerate(records) if i not in longest]
    hint = int((args.rate or 3000) * duration_s) + args.capacity_items + LONGEST + 1000  # items the run may send
    messages = Messages(records, step_s=args.step_s, count_hint=hint)
    name = f"finsent_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.postgres}/{name}"
    tmp = tempfile.TemporaryDirectory()
    log_dir = args.log_dir or Path(tmp.name)
    log_dir.mkdir(parents=True, exist_ok=True)
    worker: subprocess.Popen | None = None
    result: dict = {"minutes": args.minutes, "load": args.load, "sample_every_s": args.sample_every}
    try:
        upgrade(url)
        with local_broker(log_dir / "tansu.log") as bootstrap, psycopg.connect(url, autocommit=True) as conn:
            topic = f"news.raw.soak.{uuid.uuid4().hex[:6]}"
            admin_t = KafkaTransport(bootstrap)
            admin_t.ensure_topics([topic, topic + ".dlq"], partitions=3)
            admin_t.close()
            env = {
                **os.environ,
                "FINSENT_TRANSPORT": "kafka",
                "FINSENT_DATABASE_URL": url,
                "FINSENT_KAFKA_BOOTSTRAP": bootstrap,
                "FINSENT_TOPIC_RAW": topic,
                "FINSENT_TOPIC_DLQ": topic + ".dlq",
                "FINSENT_CONSUMER_GROUP": f"soak-{uuid.uuid4().hex[:6]}",
            }
            with open(log_dir / "worker.out", "wb") as out, open(log_dir / "worker.err", "wb") as err:
                worker = subprocess.Popen([str(FINSENT), "score"], stdout=out, stderr=err, env=env, cwd=REPO)
            proc = psutil.Process(worker.pid)
            sent = 0
            first = Producer(bootstrap, topic, messages, sent, 1, None)
            first.run()
            sent += first.acked
            wait_for(lambda: worker.poll() is None and done_count(conn) >= 1 or worker.poll() is not None, 180,
                     "the worker's first stored item")  # fmt: skip
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; see {log_dir / 'worker.err'}")
            # The longest headlines at once: the largest batches the worker will see, so its allocator has grown
            # to them before anything is measured (a high-water mark reached later would look like a leak).
            warm_start = time.monotonic()
            burst = Producer(bootstrap, topic, messages, sent, LONGEST, None)
            burst.run()
            sent += burst.acked
            wait_for(lambda: done_count(conn) >= sent, 180, "the warm-up burst")
            warm_rate = LONGEST / (time.monotonic() - warm_start)  # a floor: the longest headlines are the slowest

            if args.rate:
                rate, capacity = args.rate, None
            else:
                # About 15 s of work at the warm-up's pace (smaller on a busy machine), at most --capacity-items.
                items = min(args.capacity_items, max(1000, int(15 * warm_rate)))
                capacity = measure_capacity(bootstrap, topic, messages, conn, items, sent)
                sent += items
                result["capacity_items"] = items
                rate = args.load * capacity
            result |= {"capacity_per_s": capacity, "rate_per_s": rate}
            print(
                f"capacity {capacity:.0f} items/s (burst of {result['capacity_items']}); " if capacity else "",
                f"soaking at {rate:.0f} items/s for {args.minutes:g} min",
                sep="",
                flush=True,
            )

            count = int(rate * duration_s)
            base_sent, base_done = sent, done_count(conn)
            producer = Producer(bootstrap, topic, messages, sent, count, rate)
            samples: list[dict] = []
            start = time.monotonic()
            producer.start()
            next_sample = start
            while producer.is_alive():
                next_sample += args.sample_every
                producer.join(timeout=max(0.0, next_sample - time.monotonic()))
                if worker.poll() is not None:
                    producer.stop.set()
                    raise RuntimeError(f"the worker exited with {worker.returncode}; see {log_dir / 'worker.err'}")
                done = done_count(conn) - base_done
                sample = {
                    "t": round(time.monotonic() - start, 2),
                    "rss_mb": round(proc.memory_info().rss / 2**20, 1),
                    "sent": producer.acked,
                    "done": done,
                    "lag": max(0, producer.acked - done),
                    "load1": round(os.getloadavg()[0], 2),  # other work on the machine slows the worker too
                }
                samples.append(sample)
                print(
                    f"t={sample['t']:7.1f}s  rss {sample['rss_mb']:7.1f} MiB  sent {sample['sent']:7d}  "
                    f"done {sample['done']:7d}  lag {sample['lag']:5d}  load {sample['load1']:.2f}",
                    flush=True,
                )
            if producer.error:
                raise RuntimeError(f"producer failed: {producer.error}")
            sent = base_sent + producer.acked
            lag_at_stop = max(0, sent - done_count(conn))
            drain_start = time.monotonic()
            try:
                wait_for(lambda: done_count(conn) >= sent, args.drain_timeout, "the worker to drain")
                drained = True
            except TimeoutError:
                drained = False
            drain_s = time.monotonic() - drain_start
            worker.send_signal(signal.SIGTERM)
            try:
                exit_code = worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                exit_code = worker.wait()

            stored, score_rows, rejected, not_one = conn.execute(
                "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM scores), (SELECT count(*) FROM rejects),"
                " (SELECT count(*) FROM (SELECT a.id FROM articles a LEFT JOIN scores s ON s.article_id = a.id"
                "  GROUP BY a.id HAVING count(s.id) <> 1) x)"
            ).fetchone()
            distinct_ids = conn.execute("SELECT count(DISTINCT external_id) FROM articles").fetchone()[0]
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        tmp.cleanup()

    if args.warmup_s is not None:
        warmup_s = args.warmup_s
    else:
        reached = next((x["t"] for x in samples if x["done"] >= args.warmup_items), float("inf"))
        warmup_s = min(max(15.0, 0.1 * duration_s, reached), 0.5 * duration_s)
    mem_first, mem_last, kept = quarters(samples, "rss_mb", warmup_s)
    lag_first, lag_last, _ = quarters(samples, "lag", warmup_s)
    growth = (mem_last - mem_first) / mem_first if mem_first else None
    memory_ok = growth is not None and growth < MEMORY_GROWTH_LIMIT and kept >= 4
    lag_ok = lag_last is not None and lag_last <= 2 * lag_first + 2 * rate and drained
    unfinished = sent - stored - rejected
    lost = unfinished if drained else None  # not drained in time: still queued, or lost; cannot tell which
    loss_ok = lost == 0 and score_rows == stored and not_one == 0 and distinct_ids == stored and exit_code == 0
    result |= {
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "samples": samples,
        "memory": {
            "first_quarter_median_mb": mem_first,
            "last_quarter_median_mb": mem_last,
            "growth": growth,
            "limit": MEMORY_GROWTH_LIMIT,
            "samples_compared": kept,
            "ok": memory_ok,
        },
        "lag": {
            "max": max((s["lag"] for s in samples), default=None),
            "first_quarter_median": lag_first,
            "last_quarter_median": lag_last,
            "at_producer_stop": lag_at_stop,
            "drained": drained,
            "drain_s": round(drain_s, 1),
            "final": max(0, sent - stored - rejected),
            "ok": lag_ok,
        },
        "loss": {
            "sent": sent,
            "stored": stored,
            "rejected": rejected,
            "duplicates": 0,  # every input is unique: an item not stored is lost, not a duplicate
            "lost": lost,
            "unfinished": unfinished,
            "extra_article_rows": stored - distinct_ids,
            "score_rows": score_rows,
            "articles_without_exactly_one_score": not_one,
            "worker_exit_code": exit_code,
            "ok": loss_ok,
        },
    }
    result["ok"] = memory_ok and lag_ok and loss_ok
    growth_text = f"{growth:+.1%}" if growth is not None else "n/a"
    print(
        f"\nmemory  first-quarter median {mem_first} MiB, last-quarter {mem_last} MiB: growth {growth_text}"
        f" (limit {MEMORY_GROWTH_LIMIT:.0%}) {'ok' if memory_ok else 'FAILED'}\n"
        f"lag     max {result['lag']['max']}, first-quarter median {lag_first}, last-quarter {lag_last}, "
        f"at stop {lag_at_stop}, {'drained in' if drained else 'not drained after'} {drain_s:.1f} s "
        f"{'ok' if lag_ok else 'FAILED'}\n"
        f"loss    sent {sent}, stored {stored}, rejected {rejected}, "
        f"{f'lost {lost}' if drained else f'not drained: {unfinished} unfinished'}, score rows {score_rows}, "
        f"articles without exactly one score {not_one}, worker exit {exit_code} {'ok' if loss_ok else 'FAILED'}",
        flush=True,
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
