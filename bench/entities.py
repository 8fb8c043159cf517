"""Ticker-linking quality on the hand-labelled headlines: micro precision/recall per file and overall; writes JSON."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

from scoring.entities import link

GOLD = Path(__file__).resolve().parent.parent / "tests" / "scoring" / "fixtures" / "ticker_gold.csv"


def evaluate(path: Path = GOLD) -> dict[str, dict[str, float]]:
    """Micro precision/recall of link(headline) against the gold ticker sets, per file and for all rows."""
    counts: dict[str, Counter[str]] = {}
    errors: list[dict[str, object]] = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            gold = {t for t in row["gold_tickers"].split(";") if t}
            got = {m.ticker for m in link(row["headline"])}
            for key in (row["file"], "all"):
                c = counts.setdefault(key, Counter())
                c["tp"] += len(gold & got)
                c["fp"] += len(got - gold)
                c["fn"] += len(gold - got)
                c["rows"] += 1
            if gold != got:
                errors.append({"headline": row["headline"], "gold": sorted(gold), "got": sorted(got)})
    out: dict[str, dict[str, float]] = {}
    for key, c in counts.items():
        p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        out[key] = {"rows": c["rows"], "tp": c["tp"], "fp": c["fp"], "fn": c["fn"], "precision": p, "recall": r}
    out["all"]["errors"] = errors  # type: ignore[assignment]
    return out


def main() -> None:
    result = evaluate()
    print(f"{'file':40} {'rows':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'prec':>6} {'rec':>6}")
    for key, r in result.items():
        print(f"{key:40} {r['rows']:5} {r['tp']:4} {r['fp']:4} {r['fn']:4} {r['precision']:6.3f} {r['recall']:6.3f}")
    for e in result["all"]["errors"]:  # type: ignore[union-attr]
        print("  mismatch:", e)
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench_entities.json")
    target.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
