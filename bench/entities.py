"""Ticker-linking quality on the hand-labelled spans (tests/scoring/fixtures/ticker_spans.jsonl): precision and
recall of linked mentions per source, per split and for the UK/US files; prints a table, writes JSON.

A gold mention counts when it names a listed company with a known ticker and is not the source of a rating (those
must not be linked). A linked span is right when it overlaps such a gold mention with the same ticker; a span over a
mention the labeller could not resolve (`ticker` null) counts neither way.

    python -m bench.entities [OUT.json] [--split dev|test] [--errors]
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

from scoring.entities import find

SPANS = Path(__file__).resolve().parent.parent / "tests" / "scoring" / "fixtures" / "ticker_spans.jsonl"
UK_US_FILES = ("cnbc_guardian_2017_2020.csv", "reuters21578_1987.csv")


def read(path: Path = SPANS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _overlaps(a: dict | object, start: int, end: int) -> bool:
    s, e = (a["start"], a["end"]) if isinstance(a, dict) else (a.start, a.end)  # type: ignore[attr-defined]
    return s < end and start < e


def judge(row: dict) -> tuple[Counter[str], list[dict]]:
    """Counts (tp, fp, fn) for one headline and its mistakes."""
    gold = row["mentions"]
    positive = [m for m in gold if m.get("ticker") and m.get("listed", True) and m.get("role") != "source"]
    unresolved = [m for m in gold if not m.get("ticker") and m.get("listed", True)]
    at = date.fromisoformat(row["published_at"][:10]) if row.get("published_at") else None
    linked = [s for s in find(row["headline"], at=at) if not s.skipped]
    counts: Counter[str] = Counter()
    errors = []
    found = set()
    for s in linked:
        hit = [i for i, m in enumerate(positive) if _overlaps(m, s.start, s.end) and m["ticker"].upper() == s.ticker]
        if hit:
            counts["tp"] += 1
            found.update(hit)
        elif any(_overlaps(m, s.start, s.end) for m in unresolved):
            continue
        else:
            counts["fp"] += 1
            errors.append({"kind": "fp", "ticker": s.ticker, "text": s.text, "rule": s.rule})
    for i, m in enumerate(positive):
        if i not in found:
            counts["fn"] += 1
            errors.append({"kind": "fn", "ticker": m["ticker"], "text": m["text"], "role": m.get("role")})
    counts["rows"] += 1
    counts["gold"] += len(positive)
    return counts, errors


def evaluate(path: Path = SPANS, split: str | None = None) -> dict[str, dict]:
    """Micro precision/recall per source, per split, for the UK/US files and overall; `errors` lists mistakes."""
    counts: dict[str, Counter[str]] = {}
    errors: list[dict] = []
    for row in read(path):
        if split and row["split"] != split:
            continue
        c, errs = judge(row)
        keys = ["all", f"source:{row['source']}", f"split:{row['split']}"]
        if row["file"] in UK_US_FILES:
            keys.append("uk_us")
        for key in keys:
            counts.setdefault(key, Counter()).update(c)
        errors += [{"headline": row["headline"], "source": row["source"], "split": row["split"], **e} for e in errs]
    out: dict[str, dict] = {}
    for key, c in sorted(counts.items()):
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        out[key] = {
            "rows": c["rows"],
            "gold": c["gold"],
            "tp": c["tp"],
            "fp": c["fp"],
            "fn": c["fn"],
            "precision": round(p, 4),
            "recall": round(r, 4),
        }
    out["errors"] = errors  # type: ignore[assignment]
    return out


def main() -> None:
    import argparse
    import os

    parser = argparse.ArgumentParser(description="Ticker-linking quality on the hand-labelled spans.")
    parser.add_argument("out", nargs="?", default="bench_entities.json", help="where the JSON goes")
    parser.add_argument("--split", choices=("dev", "test"), help="one half only (tune on dev, report test)")
    parser.add_argument("--errors", action="store_true", help="print every mistake")
    args = parser.parse_args()
    os.environ.pop("FINSENT_ENTITIES_FILE", None)  # the shipped universe, not a desk's
    result = evaluate(split=args.split)
    print(f"{'set':28} {'rows':>5} {'gold':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'prec':>6} {'rec':>6}")
    for key, r in result.items():
        if key != "errors":
            print(f"{key:28} {r['rows']:5} {r['gold']:5} {r['tp']:4} {r['fp']:4} {r['fn']:4} "
                  f"{r['precision']:6.3f} {r['recall']:6.3f}")  # fmt: skip
    if args.errors:
        for e in result["errors"]:
            print("  ", json.dumps(e, ensure_ascii=False))
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
