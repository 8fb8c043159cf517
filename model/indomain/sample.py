"""Draw the in-domain headline set of issue 18 from ../shared/data/news_stream (stdlib only, deterministic).

160 headlines at random from each of Reuters 1987, CNBC, the Guardian and Benzinga; empty headlines, repeats (after
case and whitespace normalising) and any text of the labelled training data are skipped; half of each source goes to
`val`, half to `test`. The labels are filled in by hand afterwards, following docs/labelling.md.

    python model/indomain/sample.py            # writes model/indomain/headlines.csv (refuses to overwrite)
    python model/indomain/sample.py --check    # re-draws and checks the file holds the same ids and texts
"""

from __future__ import annotations

import argparse
import ast
import csv
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATA = REPO.parent / "shared" / "data"
OUTPUT = HERE / "headlines.csv"
SEED = 18
PER_SOURCE = 160
COLUMNS = ["id", "source", "split", "text", "label", "confidence", "about_markets", "note"]
LABELS = ("negative", "neutral", "positive")

# (source name in the set, file in news_stream, value of its `source` column); the order fixes the draw.
SOURCES = (
    ("reuters", "reuters21578_1987.csv", "Reuters"),
    ("cnbc", "cnbc_guardian_2017_2020.csv", "CNBC"),
    ("guardian", "cnbc_guardian_2017_2020.csv", "The Guardian"),
    ("benzinga", "benzinga_analyst_ratings_sample.csv", "Benzinga"),
)
# The labelled folders of ../shared/data: every cell of every CSV in them counts as training text.
LABELLED = ("financial_phrasebank", "twitter_financial_news_sentiment", "fiqa_2018_task1")

URL = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Headline:
    """One drawn headline: `id` is the source and its 1-based data row in the file, stable across re-draws."""

    id: str
    source: str
    split: str
    text: str


def normalise(text: str) -> str:
    """The key two texts are compared on: URLs dropped (tweets carry them), case folded, whitespace collapsed."""
    return " ".join(URL.sub(" ", text).casefold().split())


def training_texts(data: Path = DATA) -> set[str]:
    """Normalised texts of the labelled data: every cell of every CSV, and each item of list-valued cells."""
    found: set[str] = set()
    for folder in LABELLED:
        paths = sorted((data / folder).glob("*.csv"))
        if not paths:
            raise FileNotFoundError(f"no CSV in {data / folder}")
        for path in paths:
            with path.open(encoding="utf-8", newline="") as handle:
                for row in csv.reader(handle):
                    for cell in row:
                        found.add(normalise(cell))
                        if cell.startswith("[") and cell.endswith("]"):  # FiQA's `snippets`: "['a', 'b']"
                            try:
                                items = ast.literal_eval(cell)
                            except (ValueError, SyntaxError):
                                continue
                            found.update(normalise(str(item)) for item in items)
    found.discard("")
    return found


def candidates(data: Path = DATA, exclude: set[str] | None = None) -> dict[str, list[tuple[str, str]]]:
    """(id, text) per source, in file order: the first copy of each normalised text, none of it training text."""
    exclude = training_texts(data) if exclude is None else exclude
    seen: set[str] = set()
    pools: dict[str, list[tuple[str, str]]] = {name: [] for name, _, _ in SOURCES}
    by_file: dict[str, list[tuple[str, str]]] = {}
    for filename in dict.fromkeys(file for _, file, _ in SOURCES):
        with (data / "news_stream" / filename).open(encoding="utf-8", newline="") as handle:
            by_file[filename] = [(row["source"], row["headline"]) for row in csv.DictReader(handle)]
    for filename, rows in by_file.items():
        outlets = {outlet: name for name, file, outlet in SOURCES if file == filename}
        for number, (outlet, headline) in enumerate(rows, start=1):
            text = " ".join(headline.split())
            key = normalise(text)
            if outlet not in outlets or not key or key in seen:
                continue
            seen.add(key)
            if key not in exclude:
                pools[outlets[outlet]].append((f"{outlets[outlet]}-{number}", text))
    return pools


def draw(data: Path = DATA, per_source: int = PER_SOURCE, seed: int = SEED) -> list[Headline]:
    """The set: `per_source` at random from each source, the first half of each draw `val`, the second `test`."""
    pools = candidates(data)
    drawn: list[Headline] = []
    for name, _, _ in SOURCES:
        pool = pools[name]
        if len(pool) < per_source:
            raise ValueError(f"{name}: {len(pool)} eligible headlines, {per_source} wanted")
        picked = random.Random(f"{seed}-{name}").sample(pool, per_source)
        for index, (row_id, text) in enumerate(picked):
            drawn.append(Headline(row_id, name, "val" if index < per_source // 2 else "test", text))
    return drawn


def write(rows: list[Headline], path: Path) -> None:
    """The CSV, with the label columns empty, ready for hand labelling."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({"id": row.id, "source": row.source, "split": row.split, "text": row.text})


def read(path: Path = OUTPUT) -> list[dict[str, str]]:
    """The labelled set as dicts, one per row."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="../shared/data")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="re-draw and compare with --out")
    parser.add_argument("--force", action="store_true", help="overwrite --out (its labels are lost)")
    args = parser.parse_args(argv)
    rows = draw(args.data)
    if args.check:
        stored = [(row["id"], row["source"], row["split"], row["text"]) for row in read(args.out)]
        fresh = [(row.id, row.source, row.split, row.text) for row in rows]
        if stored != fresh:
            print(f"error: {args.out} differs from a fresh draw", file=sys.stderr)
            return 1
        print(f"{args.out}: {len(rows)} rows, same as a fresh draw")
        return 0
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists and may hold labels; pass --force to overwrite it", file=sys.stderr)
        return 1
    write(rows, args.out)
    print(f"wrote {len(rows)} headlines to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
