"""`finsent export` from the bench database: rows/s and peak RSS at several sizes (flat RSS: the export streams).

    python bench/export.py [--articles 1000000] [--json FILE] [--url URL]

Seeds a throw-away PostgreSQL database with `bench/seed.py` (or reads an already seeded one with --url), then runs
the real command, each export in its own process, writing to a file: no rows (what the process costs before the
first row), about a tenth of the mentions (the last tenth of the period) and every mention, as CSV and as Parquet,
and every mention as JSON Lines. Peak RSS is the child's own (`os.wait4`'s resource usage: ru_maxrss), and rows/s
counts the whole command, start-up included. Not part of `make bench` (several minutes at 1,000,000 articles).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run_export(url: str, out: Path, *args: str) -> dict:
    """Run `finsent export` in a child process; rows written, seconds and the child's peak RSS in MB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    command = [sys.executable, "-m", "cli", "export", "--database-url", url, "--out", str(out), *args]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    stderr = child.stderr.read().decode()
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"finsent export {' '.join(args)} failed: {stderr.strip()}")
    found = re.search(r"(\d+) rows written", stderr)
    rows = int(found.group(1)) if found else 0
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_mb": usage.ru_maxrss / 1024,
            "bytes": out.stat().st_size}  # fmt: skip


def measure(url: str) -> list[dict]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as c:
        first, last = c.execute(sa.text("SELECT min(published_at), max(published_at) FROM articles")).one()
        mentions = c.execute(sa.text("SELECT count(*) FROM mentions")).scalar()
    engine.dispose()
    tenth = (last + timedelta(microseconds=1) - (last - first) / 10).isoformat()
    cases = [
        ("csv", "no rows", ("--since", "2100-01-01")),
        ("csv", "last tenth", ("--since", tenth)),
        ("csv", "all", ()),
        ("jsonl", "all", ("--format", "jsonl")),
        ("parquet", "last tenth", ("--format", "parquet", "--since", tenth)),
        ("parquet", "all", ("--format", "parquet")),
    ]
    print(f"{mentions:,} mentions stored; exporting", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for fmt, size, args in cases:
            result = {"format": fmt, "size": size, **run_export(url, Path(folder) / f"out.{fmt}", *args)}
            results.append(result)
            rate, rss = result["rows_per_s"], result["peak_rss_mb"]
            print(f"  {fmt:<8} {size:<11} {result['rows']:>9,} rows {result['seconds']:7.1f} s "
                  f"{rate:>9,.0f} rows/s  peak RSS {rss:5.0f} MB", flush=True)  # fmt: skip
    return results


def main() -> None:
    import psycopg

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--url", help="an already seeded database (nothing seeded, nothing dropped)")
    parser.add_argument(
        "--postgres", default=os.environ.get("FINSENT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
    )
    args = parser.parse_args()
    name = None
    url = args.url
    seeded = None
    if url is None:
        name = f"finsent_export_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{args.postgres}/{name}"
    try:
        if name is not None:
            # In a child of its own: a process spawned by this one starts with this one's peak RSS as its own
            # (ru_maxrss survives exec), so this process stays small and the exports' figures are theirs.
            print(f"seeding {args.articles:,} articles into PostgreSQL", flush=True)
            done = subprocess.run([sys.executable, str(REPO / "bench" / "seed.py"), url, "--articles",
                                   str(args.articles)], capture_output=True, text=True, check=True)  # fmt: skip
            seeded = ast.literal_eval(done.stdout.strip().splitlines()[-1])
            print(f"  seeded in {seeded['seconds']:.0f} s: {seeded['mentions']:,} mentions", flush=True)
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"this process's peak RSS, a floor under each export's: {floor:.0f} MB", flush=True)
        results = measure(url)
    finally:
        if name is not None:
            with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        measured = datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")
        args.json.write_text(json.dumps({"measured_at": measured, "host": f"{os.cpu_count()} cores",
                                         "articles": args.articles if seeded else None, "seeded": seeded,
                                         "floor_rss_mb": floor, "exports": results}, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
