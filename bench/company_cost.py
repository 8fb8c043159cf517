"""What sentiment per company costs the worker (issue 20): the bundled sample (ingest/samples/news_sample.csv, read
as `finsent backfill` reads it) through `BatchProcessor.process` into a fresh SQLite database, batches of 256, with
the per-company pass and without it, alternating; prints the pass's time against admit + score and the items that
needed it.

    python -m bench.company_cost [--runs 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "ingest" / "samples" / "news_sample.csv"


def one_run(scorer, values: list[bytes], targeted: bool, batch: int) -> dict:
    from core.db import make_engine, make_session_factory, upgrade
    from core.messages import Envelope
    from scoring.build import build_processor

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'cost.db'}"
        upgrade(url)
        engine = make_engine(url)
        processor = build_processor(session_factory=make_session_factory(engine), scorer=scorer)
        if not targeted:
            processor.targets = None
        seconds: Counter = Counter()
        stored = companies = 0
        envelopes = [Envelope(value=v, origin=f"cost:0:{i}") for i, v in enumerate(values)]
        for i in range(0, len(envelopes), batch):
            report = processor.process(envelopes[i : i + batch])
            seconds.update(report.seconds)
            stored += report.stored
            companies += report.companies_scored
        engine.dispose()
    return {"stored": stored, "companies": companies, "seconds": dict(seconds)}


def main(argv: list[str] | None = None) -> int:
    from ingest.sources.files import read_file
    from model.scorer import Scorer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--json", dest="out")
    args = ap.parse_args(argv)
    values = [r.value for r in read_file(SAMPLE) if r.value is not None]
    scorer = Scorer(device="cpu")
    one_run(scorer, values[:256], True, args.batch)  # warm-up
    runs = {"with": [], "without": []}
    for _ in range(args.runs):
        runs["without"].append(one_run(scorer, values, False, args.batch))
        runs["with"].append(one_run(scorer, values, True, args.batch))
    w = runs["with"]
    extra = [r["seconds"]["target"] / (r["seconds"]["admit"] + r["seconds"]["score"]) for r in w]
    result = {
        "items": w[0]["stored"],
        "companies_scored": w[0]["companies"],
        "target_share_of_admit_plus_score": [round(x, 4) for x in extra],
        "median_target_share": round(statistics.median(extra), 4),
        "seconds_with": [r["seconds"] for r in w],
        "seconds_without": [r["seconds"] for r in runs["without"]],
    }
    print(f"{result['items']} items, {result['companies_scored']} companies given their own sentiment; "
          f"the per-company pass costs {result['median_target_share']:.1%} of admit + score "
          f"(runs: {', '.join(f'{x:.1%}' for x in extra)})")  # fmt: skip
    for name, rs in runs.items():
        totals = [sum(r["seconds"].values()) for r in rs]
        print(f"  {name:<8} worker seconds per run: {', '.join(f'{t:.1f}' for t in totals)}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
