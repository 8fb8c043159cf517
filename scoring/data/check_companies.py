"""Validate scoring/data/companies.csv (or a desk's own file with the same columns).

Usage: python scoring/data/check_companies.py [path/to/companies.csv]

Checks: the header (a desk file may leave out all columns but ticker and name); no empty ticker or name; the
ticker pattern; status is `listed` or `former`; no ticker twice; every row reads with the loader (listing dates,
former tickers' form); no former ticker is a row's ticker or claimed twice; every blocked alias is one of the row's
names; an ISIN, when given, has the right form and check digit; no name (an alias, or a form the loader derives from
`name`, compared case-insensitively) is claimed by two rows unless all rows but one block it. Prints counts by market
and status.
Exit status 1 when anything fails.
"""

from __future__ import annotations

import csv
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
# The loader's columns, statuses, ISIN form and name handling (the formal name and its short forms count as aliases
# too: "Man Group plc" also answers to "Man"); scoring.universe needs nothing beyond the standard library to import.
from scoring.universe import COLUMNS, ISIN, STATUSES, EntitiesFileError, clean, formal_aliases, read_companies  # noqa: E402

HEADER = list(COLUMNS)
# Stricter than the loader's 16 characters (a desk's own symbols): the curated file's tickers are exchange symbols.
TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,11}$")
MARKET = re.compile(r"^[A-Z]{2}$")


def isin_ok(isin: str) -> bool:
    if not ISIN.fullmatch(isin):
        return False
    digits = "".join(str(int(c, 36)) for c in isin[:-1])
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # rightmost digit of the payload is doubled
            d *= 2
        total += d // 10 + d % 10
    return (10 - total % 10) % 10 == int(isin[-1])


def split(field: str) -> list[str]:
    return [p.strip() for p in field.split(";") if p.strip()]


def main(path: Path) -> int:
    errors: list[str] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, None) or []]
        unknown = [h for h in header if h not in HEADER]
        if not header or unknown or len(set(header)) != len(header) or not {"ticker", "name"} <= set(header):
            print(f"bad header: {header!r}; expected {HEADER!r} (only ticker and name are required, in any order)")
            return 1
        rows = []
        for lineno, raw in enumerate(reader, start=2):
            if not any(v.strip() for v in raw):
                continue
            if len(raw) != len(header):
                errors.append(f"line {lineno}: {len(raw)} fields, expected {len(header)}")
                continue
            values = dict(zip(header, (v.strip() for v in raw), strict=True))
            rows.append((lineno, {k: values.get(k, "") for k in HEADER}))

    try:  # the loader's own per-row checks (listing dates, former tickers, ...): its first error, as start-up says it
        read_companies(path, origin="curated")
    except EntitiesFileError as e:
        errors.append(str(e))
    seen_tickers: dict[str, int] = {}
    owners: dict[str, list[tuple[int, str, bool]]] = defaultdict(list)
    for lineno, r in rows:
        t = r["ticker"]
        if not t or not r["name"]:
            errors.append(f"line {lineno}: empty ticker or name")
            continue
        if not TICKER.match(t):
            errors.append(f"line {lineno}: ticker {t!r} does not match {TICKER.pattern}")
        if t in seen_tickers:
            errors.append(f"line {lineno}: ticker {t} already on line {seen_tickers[t]}")
        seen_tickers.setdefault(t, lineno)
        if (r["status"] or "listed") not in STATUSES:
            errors.append(f"line {lineno}: status {r['status']!r} not in {sorted(STATUSES)}")
        if r["market"] and not MARKET.match(r["market"]):
            errors.append(f"line {lineno}: market {r['market']!r} is not a two-letter code")
        if r["isin"] and not isin_ok(r["isin"]):
            errors.append(f"line {lineno}: ISIN {r['isin']!r} is malformed or fails its check digit")
        aliases = [clean(a) for a in split(r["aliases"])]
        derived, _ = formal_aliases(r["name"])
        blocked = [clean(b) for b in split(r["blocked"])]
        for b in blocked:
            if b not in aliases and b not in derived:
                errors.append(f"line {lineno}: blocked {b!r} is not one of the row's aliases")
        for g in (clean(g) for g in split(r["guarded"])):
            if g not in aliases:
                errors.append(f"line {lineno}: guarded {g!r} is not one of the row's aliases")
        blocked_cf = {b.casefold() for b in blocked}
        for a in dict.fromkeys(a.casefold() for a in [*aliases, *sorted(derived)]):
            owners[a].append((lineno, t, a in blocked_cf))

    claimed: dict[str, int] = {}
    for lineno, r in rows:  # a former ticker that a row trades under now, or that two rows claim, names two companies
        for symbol in split(r["former_tickers"]):
            if symbol in seen_tickers:
                errors.append(f"line {lineno}: former ticker {symbol} is the ticker of line {seen_tickers[symbol]}")
            if symbol in claimed:
                errors.append(f"line {lineno}: former ticker {symbol} is also claimed on line {claimed[symbol]}")
            claimed.setdefault(symbol, lineno)

    shared_blocked = []
    for alias, rows_with in owners.items():
        if len(rows_with) < 2:
            continue
        if all(b for _, _, b in rows_with):
            shared_blocked.append((alias, [t for _, t, _ in rows_with]))
            continue
        if sum(not b for _, _, b in rows_with) == 1:  # the others block it: it names the one row that keeps it
            continue
        where = ", ".join(f"{t} (line {n}{', blocked' if b else ''})" for n, t, b in rows_with)
        errors.append(f"alias {alias!r} is claimed by {where}: block it in all rows but one")

    by_market = Counter(r["market"] or "--" for _, r in rows)
    by_status = Counter(r["status"] or "listed" for _, r in rows)
    by_both = Counter((r["market"] or "--", r["status"] or "listed") for _, r in rows)
    n_aliases = sum(len(split(r["aliases"])) for _, r in rows)
    n_isin = sum(bool(r["isin"]) for _, r in rows)
    n_blocked = sum(bool(r["blocked"]) for _, r in rows)
    print(f"{path}: {len(rows)} rows, {n_aliases} aliases, {n_isin} with ISIN, {n_blocked} with blocked aliases")
    print("status: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
    print("market  listed  former  total")
    for m, n in sorted(by_market.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{m:<6} {by_both[(m, 'listed')]:>7} {by_both[(m, 'former')]:>7} {n:>6}")
    for alias, tickers in sorted(shared_blocked):
        print(f"blocked in several rows (ambiguous alone): {alias!r}: {', '.join(tickers)}")
    for e in errors:
        print("ERROR", e)
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 0 if not errors else 1


if __name__ == "__main__":
    default = Path(__file__).with_name("companies.csv")
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else default))
