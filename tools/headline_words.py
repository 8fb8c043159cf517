"""Regenerate scoring/data/headline_words.csv: in how many news headlines each headline word occurs.

Story detection weighs the words two headlines share by how rare they are (inverse document frequency): "Nissan",
"Ghosn" and "misconduct" say which story a headline tells; "shares", "business", "live" and "happened" say little.
The counts come from every headline in ../shared/data/news_stream (Reuters 1987, Benzinga 2009-2020, CNBC and the
Guardian 2017-2020): unlabelled text, so no judgment of any fixture is read. Words are `scoring.dedup.headline_words`
(casefolded, common function words left out); a word in fewer than 2 headlines is left out of the file and weighs
like one never seen.

A maintenance step, not a build step (the CSV is committed):

    python tools/headline_words.py [NEWS_STREAM_DIR]
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scoring.dedup import HEADLINE_WORDS, headline_words  # noqa: E402

MIN_HEADLINES = 2


def main(folder: Path) -> None:
    counts: Counter[str] = Counter()
    headlines = 0
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                headlines += 1
                counts.update(headline_words(row["headline"]))
    with HEADLINE_WORDS.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["word", "headlines"])
        writer.writerow(["", headlines])  # the total: the row with no word
        for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            if n >= MIN_HEADLINES:
                writer.writerow([word, n])
    kept = sum(1 for n in counts.values() if n >= MIN_HEADLINES)
    print(f"{headlines} headlines, {len(counts)} words, {kept} in at least {MIN_HEADLINES} -> {HEADLINE_WORDS}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "news_stream")
