"""Seed a database with N synthetic-but-realistic scored articles, fast (PostgreSQL COPY), for dashboard timing.

    python bench/seed.py postgresql://postgres@127.0.0.1:5432/finsent_bench --articles 1000000

Headlines are real news_stream headlines (cycled, each copy made unique), spread over two years, each with one or
two tickers from 500, a score of the shipped model version, and three attributed words with true offsets.
"""

from __future__ import annotations

import argparse
import csv
import io
import queue
import random
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.db import make_engine, normalize_url, upgrade  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "news_stream"
LABELS = ("negative", "neutral", "positive")


def headlines(limit: int = 40000) -> list[str]:
    out = []
    for name in ("benzinga_analyst_ratings_sample.csv", "cnbc_guardian_2017_2020.csv", "reuters21578_1987.csv"):
        with open(DATA / name, newline="", encoding="utf-8") as fh:
            out += [r["headline"].replace("\t", " ").replace("\n", " ") for r in csv.DictReader(fh) if r["headline"]]
    return out[:limit]


def model_version() -> str:
    return (REPO / "model" / "weights" / "DEFAULT").read_text().strip()


TABLES = (
    ("articles", "id, source_id, title, body, published_at, published_at_fallback, ingested_at, content_hash, "
     "story_id, is_first_of_story, similar_before"),
    ("mentions", "article_id, ticker, published_at, relevance, in_headline"),
    ("scores", "id, article_id, model_version, label, p_negative, p_neutral, p_positive, score, confidence, n_chunks, "
     "scored_at, latency_ms"),
    ("attributions", 'score_id, method, rank, word, weight, start, "end"'),
)  # fmt: skip


def _make_chunks(out, n, base, titles, tickers, source_ids, version, end, span, rng, seed_value, counts) -> None:
    """Put (articles so far, one COPY buffer per table of TABLES) on `out` for each 100,000 rows, then None (or the
    exception that stopped it)."""
    try:
        batch = 100_000
        for start in range(0, n, batch):
            rows = range(start, min(n, start + batch))
            arts, ments, scores, attrs = io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()
            for i in rows:
                aid = base + i + 1
                title = f"{titles[i % len(titles)]} ({i})"
                when = end - timedelta(seconds=span * rng.random())
                ts = when.isoformat()
                arts.write(f"{aid}\t{rng.choice(source_ids)}\t{title}\t\t{ts}\tf\t{ts}\th{aid}-{seed_value}\t"
                           f"{aid}\tt\t0\n")  # fmt: skip
                for t in rng.sample(tickers, 1 + (rng.random() < 0.3)):
                    ments.write(f"{aid}\t{t}\t{ts}\t{0.6 + 0.4 * rng.random():.3f}\tt\n")
                    counts["mentions"] += 1
                p = [rng.random() for _ in range(3)]
                total = sum(p)
                p = [x / total for x in p]
                label = LABELS[p.index(max(p))]
                scores.write(f"{aid}\t{aid}\t{version}\t{label}\t{p[0]:.4f}\t{p[1]:.4f}\t{p[2]:.4f}\t"
                             f"{p[2] - p[0]:.4f}\t{max(p):.4f}\t1\t{ts}\t\\N\n")  # fmt: skip
                words = title.split()[:3]
                pos = 0
                for rank, word in enumerate(words, 1):
                    s = title.index(word, pos)
                    pos = s + len(word)
                    attrs.write(f"{aid}\tpooling\t{rank}\t{word}\t{0.3 / rank:.3f}\t{s}\t{pos}\n")
                    counts["attributions"] += 1
            counts["articles"] += len(rows)
            counts["scores"] += len(rows)
            out.put((counts["articles"], (arts, ments, scores, attrs)))
        out.put(None)
    except BaseException as exc:  # noqa: BLE001 - handed to the copying thread, which raises it
        out.put(exc)


def seed(
    url: str, n: int, *, seed_value: int = 7, end: datetime | None = None, log=print, analyze: bool = True
) -> dict:
    """Insert n articles (with mentions, scores and attributions) into the migrated PostgreSQL database at url."""
    import psycopg

    upgrade(url)
    rng = random.Random(seed_value)
    titles = headlines()
    tickers = [f"T{i:03d}" for i in range(490)]
    tickers += ["AAPL", "MSFT", "AMZN", "NVDA", "TSLA", "JPM", "XOM", "A", "GE", "KO"]
    version = model_version()
    end = end or datetime.now(UTC)
    span = timedelta(days=730).total_seconds()
    conninfo = normalize_url(url).replace("postgresql+psycopg://", "postgresql://")
    started = time.perf_counter()
    with psycopg.connect(conninfo) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(id), 0) FROM articles")
            base = cur.fetchone()[0]
            sources = ["Benzinga", "CNBC", "Reuters", "The Guardian", "wire"]
            for name in sources:
                cur.execute(
                    "INSERT INTO sources (name, kind, created_at, items_seen) VALUES (%s, 'stream', now(), 0) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name,),
                )
            cur.execute("SELECT id, name FROM sources")
            source_ids = [i for i, name in cur.fetchall() if name in sources]
            counts = {"articles": 0, "mentions": 0, "scores": 0, "attributions": 0}
            chunks: queue.Queue = queue.Queue(maxsize=1)
            # Rows are made in Python while the server copies the chunk before, the slower of the two: they overlap
            # on the two cores instead of taking turns (docs/performance.md, 'Measurements behind code choices').
            maker = threading.Thread(
                target=_make_chunks,
                args=(chunks, n, base, titles, tickers, source_ids, version, end, span, rng, seed_value, counts),
                daemon=True,
            )
            maker.start()
            while (chunk := chunks.get()) is not None:
                if isinstance(chunk, BaseException):
                    raise chunk
                rows, buffers = chunk
                for (table, columns), buf in zip(TABLES, buffers, strict=True):
                    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        copy.write(buf.getvalue())
                conn.commit()
                log(f"  seeded {rows:,} articles ({time.perf_counter() - started:.0f} s)")
            maker.join()
            for table in ("articles", "scores"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            if analyze:  # without it the planner knows nothing of the rows (a server with autovacuum off)
                cur.execute("ANALYZE")
        conn.commit()
    counts["seconds"] = time.perf_counter() - started
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--articles", type=int, default=1_000_000)
    args = parser.parse_args()
    engine = make_engine(args.url)
    engine.dispose()
    print(seed(args.url, args.articles))


if __name__ == "__main__":
    main()
