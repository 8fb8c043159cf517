"""Per-company sentiment on the hand-judged fixture (tests/model/fixtures/entity_sentiment.jsonl, issue 20).

For every company of every headline naming two or more companies: the targeted result (model/target.py) against the
baseline that applies the headline's label to every company. Per-company macro-F1 and accuracy, on all such headlines
and on those whose companies have different labels (the issue's acceptance set), per split. The other companies the
targeted pass knows of are the linker's, as in the pipeline (`--gold-others`: the fixture's own).

    python -m bench.entity_sentiment [--split dev|test] [--gold-others] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.model import linked_spans
from model.network import LABELS
from model.target import TargetScorer, macro_f1

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "model" / "fixtures" / "entity_sentiment.jsonl"


def read(path: Path = FIXTURE) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if not r.get("skip") and len(r["companies"]) >= 2]


def evaluate(scorer: TargetScorer, rows: list[dict], gold_others: bool = False) -> dict:
    headline = scorer.scorer.score([r["headline"] for r in rows], top_k=0)
    out: dict[str, dict] = {}
    for r, h in zip(rows, headline, strict=True):
        differ = len({c["label"] for c in r["companies"]}) > 1
        spans = [(c["mentions"][0]["start"], c["mentions"][0]["end"]) for c in r["companies"]]
        for k, c in enumerate(r["companies"]):
            others = [s for j, s in enumerate(spans) if j != k] if gold_others else None
            t = scorer.score(r["headline"], spans[k], others=others, top_k=0)
            for subset in ("all", "differ") if differ else ("all",):
                for key in (subset, f"{subset}:{r['split']}", f"{subset}:{r['source']}"):
                    bucket = out.setdefault(key, {"gold": [], "targeted": [], "headline": [], "texts": set(),
                                                  "pass": 0})  # fmt: skip
                    bucket["gold"].append(LABELS.index(c["label"]))
                    bucket["targeted"].append(LABELS.index(t.label))
                    bucket["headline"].append(LABELS.index(h.label))
                    bucket["texts"].add(r["headline"])
                    bucket["pass"] += int(t.targeted)
    table = {}
    for key, b in sorted(out.items()):
        n = len(b["gold"])
        table[key] = {
            "texts": len(b["texts"]), "companies": n, "targeted_pass": b["pass"],
            "targeted_macro_f1": round(macro_f1(b["gold"], b["targeted"]), 4),
            "headline_macro_f1": round(macro_f1(b["gold"], b["headline"]), 4),
            "targeted_accuracy": round(sum(g == p for g, p in zip(b["gold"], b["targeted"], strict=True)) / n, 4),
            "headline_accuracy": round(sum(g == p for g, p in zip(b["gold"], b["headline"], strict=True)) / n, 4),
        }  # fmt: skip
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["dev", "test"])
    ap.add_argument("--gold-others", action="store_true")
    ap.add_argument("--checkpoint")
    ap.add_argument("--json", dest="out")
    args = ap.parse_args(argv)
    rows = [r for r in read() if args.split in (None, r["split"])]
    table = evaluate(TargetScorer(args.checkpoint, linker=linked_spans), rows, gold_others=args.gold_others)
    print(f"{'set':<26}{'texts':>6}{'cos':>6}{'pass':>6}{'F1 tgt':>8}{'F1 head':>8}{'acc tgt':>8}{'acc head':>9}")
    for key, m in table.items():
        counts = f"{key:<26}{m['texts']:>6}{m['companies']:>6}{m['targeted_pass']:>6}"
        f1 = f"{m['targeted_macro_f1']:>8.3f}{m['headline_macro_f1']:>8.3f}"
        print(f"{counts}{f1}{m['targeted_accuracy']:>8.3f}{m['headline_accuracy']:>9.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
