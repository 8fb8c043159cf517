"""Dashboard page times with 1,000,000 articles in PostgreSQL (target: every page under 1.5 s).

    python bench/dashboard.py [--articles 1000000] [--repeats 3] [--json FILE] [--no-analyze]

Seeds a throw-away PostgreSQL database with `bench/seed.py` (COPY), then renders every page with Streamlit's
AppTest (the whole script run: queries, charts, widgets), with Streamlit's data cache cleared before every run
so each run pays for its queries: the first run of a page (cold) and the median of `repeats` more.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

PAGES = ["live", "ticker", "alerts", "explain", "model", "search"]


def render_times(url: str, repeats: int) -> dict[str, dict[str, float]]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    titles = {"live": "Live news", "ticker": "Ticker", "alerts": "Alerts", "explain": "Explain",
              "model": "Model card", "search": "Search"}  # fmt: skip
    os.environ["FINSENT_DATABASE_URL"] = url
    out = {}
    for page in PAGES:
        at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
        at.run()
        at.switch_page(f"views/{page}.py")
        st.cache_data.clear()  # cold: every query really runs
        start = time.perf_counter()
        at.run()
        cold = time.perf_counter() - start
        if at.exception:
            raise RuntimeError(f"page {page}: {at.exception}")
        shown = [t.value for t in at.title]
        if titles[page] not in shown:
            raise RuntimeError(f"page {page} did not render its title (saw {shown})")
        runs = []
        for _ in range(repeats):
            st.cache_data.clear()
            start = time.perf_counter()
            at.run()
            runs.append(time.perf_counter() - start)
        out[page] = {"cold_s": cold, "median_s": statistics.median(runs)}
        print(f"  {page:<8} cold {cold:6.2f} s   median of {repeats} {out[page]['median_s']:6.2f} s", flush=True)
    return out


def main() -> None:
    import psycopg
    from seed import seed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--postgres", default=os.environ.get("FINSENT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
    )
    parser.add_argument(
        "--no-analyze", action="store_true", help="skip ANALYZE after seeding: the planner without statistics"
    )
    args = parser.parse_args()
    name = f"finsent_dash_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.postgres}/{name}"
    try:
        print(f"seeding {args.articles:,} articles into PostgreSQL", flush=True)
        counts = seed(url, args.articles, analyze=not args.no_analyze)
        times = render_times(url, args.repeats)
    finally:
        with psycopg.connect(f"{args.postgres}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    slowest = max(times, key=lambda p: times[p]["median_s"])
    print(f"slowest page: {slowest} {times[slowest]['median_s']:.2f} s (target < 1.5 s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"seed": counts, "pages": times}, indent=2))


if __name__ == "__main__":
    main()
