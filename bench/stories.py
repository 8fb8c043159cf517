"""Story detection quality: joins in the bundled sample with its original times, and the judged same-story pairs.

1. The bundled sample (ingest/samples/news_sample.csv) through the pipeline's own steps in time order: read,
   decode, normalise, exact duplicates dropped, tickers linked (with the ones the source gave), story signature,
   `Deduplicator.check` at the ORIGINAL publication time. Every item joined to an earlier story is one row of
   `--pairs-out` (its headline and the story's first headline), to read by hand.
2. tests/scoring/fixtures/story_pairs.jsonl (hand-judged pairs, story_pairs_guide.md): for each pair, a fresh
   Deduplicator gets `a` then `b` at their own times, each with the tickers the linker gives it (and, for the
   sample, the ticker its row carries); "joined" means b lands in a's story. Precision is the share of joined
   pairs judged `same`, recall the share of `same` pairs joined; borderline pairs are left out. Thresholds are
   tuned on `dev` only; `test` is for reporting.
3. Cost: microseconds per item for the signature and the check, on the sample.

Usage: python bench/stories.py [--json OUT.json] [--pairs-out joined.jsonl] [--threshold T]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # before bench/, whose scoring.py would hide the package

from core.messages import decode  # noqa: E402
from ingest.sources.files import read_file  # noqa: E402
from scoring.dedup import Deduplicator  # noqa: E402
from scoring.entities import link  # noqa: E402
from scoring.normalize import normalize  # noqa: E402
from scoring.pipeline import Pipeline  # noqa: E402

SAMPLE = REPO / "ingest" / "samples" / "news_sample.csv"
PAIRS = REPO / "tests" / "scoring" / "fixtures" / "story_pairs.jsonl"


_DEFAULTS = Pipeline.__init__.__kwdefaults__
THRESHOLD = {"value": _DEFAULTS["threshold"]}  # the pipeline's, unless --threshold says otherwise


def _deduplicator() -> Deduplicator:
    """A deduplicator with the pipeline's settings (window, threshold)."""
    return Deduplicator(_DEFAULTS["dedup_window"], THRESHOLD["value"])


def sample_joins(path: Path = SAMPLE) -> tuple[dict[str, float], list[dict[str, str]]]:
    """Items of the sample joined to an earlier story, with their original times; and the counts and cost."""
    now = datetime.now(UTC)
    items = []
    for record in read_file(path):
        if record.value is None:
            continue
        message = decode(record.value)
        item = normalize(title=message.title, body=message.body, published_at=message.published_at,
                         url=message.url, source=message.source, now=now)  # fmt: skip
        items.append((item, message.tickers))
    items.sort(key=lambda pair: pair[0].published_at)  # stable: file order among equal times
    dedup = _deduplicator()
    first: dict[int, object] = {}
    joined: list[dict[str, str]] = []
    exact = 0
    spent = 0.0
    for i, (item, given) in enumerate(items):
        if dedup.exact_duplicate(item.source, item.title, item.url, item.published_at) is not None:
            exact += 1  # admitted never: the pipeline drops it before stories
            continue
        tickers = [m.ticker for m in link(item.title, item.body, given, at=item.published_at)]
        started = time.perf_counter()
        signature = dedup.signature(item.title)
        result = dedup.check(i, item.title, item.published_at, item.source, item.url, tickers=tickers,
                             signature=signature)  # fmt: skip
        spent += time.perf_counter() - started
        first[i] = item
        if not result.is_first_of_story:
            head = first[result.story_id]
            joined.append({
                "item": item.title, "item_source": item.source, "item_published_at": item.published_at.isoformat(),
                "story_first": head.title, "first_source": head.source,
                "first_published_at": head.published_at.isoformat(),
                "item_lead": item.body[:300], "first_lead": head.body[:300],
            })  # fmt: skip
    checked = len(items) - exact
    counts = {"items": len(items), "exact_duplicates": exact, "checked": checked, "joined": len(joined),
              "us_per_item": 1e6 * spent / max(1, checked)}  # fmt: skip
    return counts, joined


def _sample_tickers(path: Path = SAMPLE) -> dict[str, list[str]]:
    """The ticker each sample row carries, by its id (what the source gives the pipeline)."""
    out: dict[str, list[str]] = {}
    for record in read_file(path):
        if record.value is not None:
            message = decode(record.value)
            if message.external_id:
                out[message.external_id] = list(message.tickers)
    return out


def pair_joined(pair: dict, given: dict[str, list[str]]) -> tuple[bool, bool]:
    """Would b join a's story, a being the story's first article and both fed in time order? And is b an exact
    duplicate of a (same headline from the same source in the window: the pipeline drops it before stories)?"""
    dedup = _deduplicator()
    results = []
    for side in ("a", "b"):
        x = pair[side]
        when = datetime.fromisoformat(x["published_at"].replace("Z", "+00:00"))
        tickers = [m.ticker for m in link(x["headline"], x["lead"], given.get(x["id"], []), at=when)]
        results.append(dedup.check(side, x["headline"], when, x["source"], tickers=tickers))
    return results[1].story_id == "a", results[1].is_exact_duplicate


def judged_pairs(path: Path = PAIRS) -> dict[str, dict[str, float]]:
    """Precision and recall per dataset and split (and per split over all datasets), borderline left out."""
    counts: dict[str, Counter[str]] = {}
    given = _sample_tickers()
    with path.open(encoding="utf-8") as fh:
        pairs = [json.loads(line) for line in fh if line.strip()]
    for pair in pairs:
        judgment = pair.get("judgment")
        if judgment not in ("same", "different"):
            continue
        joined, exact = pair_joined(pair, given)
        for key in (f"{pair['dataset']}/{pair['split']}", f"all/{pair['split']}"):
            c = counts.setdefault(key, Counter())
            c[f"{judgment}_{'joined' if joined else 'apart'}"] += 1
            c[f"{judgment}_exact"] += exact
    out = {}
    for key, c in sorted(counts.items()):
        tp, fp, fn = c["same_joined"], c["different_joined"], c["same_apart"]
        out[key] = {"same": tp + fn, "different": fp + c["different_apart"], "joined": tp + fp,
                    "different_joined_as_exact": c["different_exact"],
                    "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
                    "false_join_share": fp / (tp + fp) if tp + fp else 0.0}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("bench_stories.json"))
    parser.add_argument("--pairs-out", type=Path, help="write the sample's joined items (JSON Lines)")
    parser.add_argument("--fixture", type=Path, default=PAIRS)
    parser.add_argument("--threshold", type=float, help="headline similarity (default: the pipeline's)")
    args = parser.parse_args()
    THRESHOLD["value"] = args.threshold or THRESHOLD["value"]
    d = _deduplicator()
    hours = d.recent_window.total_seconds() / 3600
    print(f"headline similarity: Jaccard >= {d.threshold} in the window, or weighted Jaccard >= {d.recent_threshold} "
          f"within {hours:g} h of the story's first article, or a live blog holding {d.live_containment} of an "
          f"article within those hours, or a company's results for one period or one broker's note on it within "
          f"those hours, or the same companies and opening word within "
          f"{d.burst_window.total_seconds() / 60:g} min")  # fmt: skip

    counts, joined = sample_joins()
    print(f"sample with original times: {counts['items']} items, {counts['exact_duplicates']} exact duplicates, "
          f"{counts['joined']} joined to an earlier story; {counts['us_per_item']:.0f} us per item "
          "(signature + check)")  # fmt: skip
    if args.pairs_out:
        args.pairs_out.parent.mkdir(parents=True, exist_ok=True)
        args.pairs_out.write_text("".join(json.dumps(j, ensure_ascii=False) + "\n" for j in joined), encoding="utf-8")
    result: dict[str, object] = {"sample": counts}
    if args.fixture.is_file():
        pairs = judged_pairs(args.fixture)
        print("judged pairs (borderline left out); fp exact: false joins that are the exact-title rule")
        print(f"{'dataset/split':22} {'same':>5} {'diff':>5} {'joined':>6} {'prec':>6} {'recall':>6} {'false%':>6} "
              f"{'fp exact':>8}")  # fmt: skip
        for key, r in pairs.items():
            exact = r["different_joined_as_exact"]
            print(f"{key:22} {r['same']:5} {r['different']:5} {r['joined']:6} {r['precision']:6.3f} "
                  f"{r['recall']:6.3f} {100 * r['false_join_share']:6.1f} {exact:8}")  # fmt: skip
        result["pairs"] = pairs
    else:
        print(f"{args.fixture}: not there; judged pairs skipped")
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
