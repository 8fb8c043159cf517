"""`finsent export` driven as an analyst drives it, on a SQLite database filled by `finsent backfill` (the live scoring
path) and rescored by a second model version; and `export_frame`, the same rows as a DataFrame."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.export import COLUMNS

REPO = Path(__file__).resolve().parent.parent
HEADLINES = [  # published_at, headline, tickers (the file's column, `;` between two)
    ("2020-03-02T14:00:00Z", "Apple and Microsoft shares rally after strong cloud and services results", "AAPL;MSFT"),
    ("2020-03-03T10:00:00Z", "-5% in a day: Apple shares slide after iPhone supply warning", "AAPL"),
    ("2020-03-04T09:00:00Z", "Tesla recalls 100,000 cars over brake fault", "TSLA"),
    ("2020-03-05T16:30:00Z", "Microsoft raises dividend and announces $40bn buyback", "MSFT"),
    ("2020-05-01T12:00:00Z", "Apple beats estimates as wearables sales jump", "AAPL"),
]


def finsent(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, timeout=300,
                          env={**base, **(env or {})}, cwd=REPO)  # fmt: skip


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_checkpoint) -> dict:
    """A database with the headlines backfilled by the shipped model, then all rescored by a tiny second version."""
    folder = tmp_path_factory.mktemp("export")
    news = folder / "news.csv"
    with open(news, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["published_at", "headline", "ticker", "source", "source_id"])
        for i, (when, headline, tickers) in enumerate(HEADLINES):
            writer.writerow([when, headline, tickers, "Wire", f"w-{i}"])
    url = f"sqlite:///{folder / 'finsent.db'}"
    backfill = finsent("backfill", str(news), "--database-url", url)
    assert backfill.returncode == 0 and b"stored 5" in backfill.stdout, backfill.stderr
    rescore = finsent("rescore", "--model", str(tiny_checkpoint), "--database-url", url)
    assert rescore.returncode == 0, rescore.stderr
    engine = sa.create_engine(url)
    with engine.connect() as c:
        versions = [v for (v,) in c.execute(sa.text("SELECT DISTINCT model_version FROM scores ORDER BY 1"))]
        mentions = c.execute(sa.text("SELECT count(*) FROM mentions")).scalar()
    engine.dispose()
    shipped = (REPO / "model" / "weights" / "DEFAULT").read_text().strip()
    assert shipped in versions and len(versions) == 2
    return {"url": url, "folder": folder, "shipped": shipped, "other": next(v for v in versions if v != shipped),
            "mentions": mentions}  # fmt: skip


def read_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_csv_has_one_row_per_article_and_ticker_of_the_active_version_only(scored):
    out = finsent("export", "--database-url", scored["url"])
    assert out.returncode == 0, out.stderr
    rows = read_csv(out.stdout)
    assert list(rows[0]) == COLUMNS
    assert len(rows) == scored["mentions"]  # every mention once, though every article has two versions' scores
    assert len({(r["article_id"], r["ticker"]) for r in rows}) == len(rows)
    assert {r["model_version"] for r in rows} == {scored["shipped"]}
    both = [r for r in rows if r["headline"].startswith("Apple and Microsoft")]
    assert {r["ticker"] for r in both} >= {"AAPL", "MSFT"} and len({r["article_id"] for r in both}) == 1
    first = both[0]
    assert first["published_at"] == "2020-03-02T14:00:00+00:00" and first["source"] == "Wire"
    assert first["label"] in ("negative", "neutral", "positive") and float(first["relevance"]) > 0
    probabilities = [float(first[k]) for k in ("p_negative", "p_neutral", "p_positive")]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)
    assert float(first["score"]) == pytest.approx(probabilities[2] - probabilities[0], abs=1e-6)
    assert first["is_first_of_story"] == "True" and first["story_id"] == first["article_id"]
    assert first["similar_before"] == "0"
    words = first["top_words"].split("; ")
    assert words and all(w.rsplit(":", 1)[0] in first["headline"] for w in words)
    assert [r["published_at"] for r in rows] == sorted(r["published_at"] for r in rows)


def test_csv_cells_cannot_run_as_spreadsheet_formulas(scored):
    rows = read_csv(finsent("export", "--ticker", "AAPL", "--database-url", scored["url"]).stdout)
    slide = next(r for r in rows if "iPhone" in r["headline"])
    assert slide["headline"].startswith("'-5% in a day")


def test_the_active_version_is_the_one_read(scored):
    env = {"FINSENT_MODEL_VERSION": scored["other"]}
    out = finsent("export", "--format", "jsonl", "--database-url", scored["url"], env=env)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert len(records) == scored["mentions"] and {r["model_version"] for r in records} == {scored["other"]}


def test_tickers_any_case_and_dates_select_rows_jsonl(scored):
    out = finsent("export", "-t", "aapl,Msft", "--since", "2020-03-01", "--until", "2020-04-01",
                  "--format", "jsonl", "--database-url", scored["url"])  # fmt: skip
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert {r["ticker"] for r in records} == {"AAPL", "MSFT"}
    assert all("2020-03-01" <= r["published_at"] < "2020-04-01" for r in records)
    assert not any("wearables" in r["headline"] for r in records)  # May: outside the range
    assert len([r for r in records if r["headline"].startswith("Apple and Microsoft")]) == 2
    first = records[0]
    assert all(set(w) == {"word", "weight"} for w in first["top_words"]) and first["top_words"]
    assert isinstance(first["is_first_of_story"], bool) and isinstance(first["p_positive"], float)


def test_out_file_and_parquet(scored):
    pq = pytest.importorskip("pyarrow.parquet")
    target = scored["folder"] / "aapl.parquet"
    out = finsent("export", "-t", "AAPL", "-f", "parquet", "-o", str(target), "--database-url", scored["url"])
    assert out.returncode == 0, out.stderr
    table = pq.read_table(target)
    assert table.column_names == COLUMNS and table.num_rows >= 3
    assert set(table.column("ticker").to_pylist()) == {"AAPL"}
    assert f"{table.num_rows} rows written to {target}".encode() in out.stderr
    assert not list(scored["folder"].glob(".*.partial"))  # written through a temporary file, renamed


def test_no_rows_is_an_answer_unknown_ticker_and_bad_dates_are_errors(scored):
    empty = finsent("export", "-t", "aapl", "--since", "2021-01-01", "--database-url", scored["url"])
    assert empty.returncode == 0
    assert empty.stdout.decode().splitlines() == [",".join(COLUMNS)]
    assert b"no rows match ticker AAPL, published 2021-01-01 00:00 .. now UTC" in empty.stderr

    unknown = finsent("export", "-t", "AAPL", "-t", "zzzz", "--database-url", scored["url"])
    assert unknown.returncode == 1 and unknown.stdout == b""
    assert unknown.stderr.decode().strip() == "error: no mention of ZZZZ is stored at any time: check the ticker"

    for args, message in [
        (("--since", "last week"), "--since: 'last week' is not an ISO date"),
        (("--since", "2020-05-01", "--until", "2020-03-01"), "is not before --until"),
        (("--format", "xlsx"), "--format 'xlsx': not one of csv, jsonl, parquet"),
    ]:
        bad = finsent("export", *args, "--database-url", scored["url"])
        lines = bad.stderr.decode().strip().splitlines()
        assert bad.returncode == 1 and len(lines) == 1 and message in lines[0], (args, lines)


def test_parquet_without_pyarrow_is_one_clear_line(monkeypatch):
    from core.export import ExportError, check_format

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ExportError, match="--format parquet needs pyarrow, which is not installed"):
        check_format("parquet")
    check_format("csv")


def test_export_frame_is_the_same_query(scored, monkeypatch):
    from cli.export import export_frame
    from core.export import ExportError

    monkeypatch.delenv("FINSENT_MODEL_VERSION", raising=False)
    frame = export_frame(["aapl", "MSFT"], "2020-03-01", "2020-04-01", database_url=scored["url"])
    cli = read_csv(finsent("export", "-t", "AAPL", "-t", "MSFT", "--since", "2020-03-01", "--until", "2020-04-01",
                           "--database-url", scored["url"]).stdout)  # fmt: skip
    assert list(frame.columns) == COLUMNS and len(frame) == len(cli)
    assert list(zip(frame.article_id, frame.ticker, strict=True)) == [(int(r["article_id"]), r["ticker"]) for r in cli]
    assert str(frame.published_at.dt.tz) == "UTC"
    assert set(frame.model_version) == {scored["shipped"]}
    other = export_frame("aapl", database_url=scored["url"], version=scored["other"])
    assert set(other.model_version) == {scored["other"]} and set(other.ticker) == {"AAPL"}
    with pytest.raises(ExportError, match="ZZZZ"):
        export_frame(["zzzz"], database_url=scored["url"])
