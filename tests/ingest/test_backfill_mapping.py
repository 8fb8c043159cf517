"""`finsent backfill` on files in other layouts, driven as a user drives it (issue 22, item 2): columns detected or
named with --map, the mapping printed at start, rejects summed up by reason, and a file whose every row was rejected
left undone so that the run with the right mapping stores it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def finsent(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=300, env=env, cwd=REPO,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def backfill(tmp_path, tiny_checkpoint):
    """`finsent backfill ...` into one SQLite file of this test, scored by the tiny checkpoint (the mechanics only)."""
    db = tmp_path / "bf.db"

    def run(*args: str) -> subprocess.CompletedProcess:
        out = finsent("backfill", *args, "--checkpoint", str(tiny_checkpoint), "--database-url", f"sqlite:///{db}")
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        return out

    run.db = db
    return run


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def errors(out: subprocess.CompletedProcess) -> list[str]:
    """stderr's lines, less the warning that the tiny checkpoint is not the version the readers show."""
    return [line for line in out.stderr.splitlines() if line.strip() and not line.startswith("warning: scoring with")]


def test_common_column_names_are_detected_and_printed(tmp_path, backfill):
    """Before: `Date,Title,Symbol` was 'no title column', rejected 1, and a re-run said 'already backfilled'."""
    path = tmp_path / "quotes.csv"
    path.write_text(
        "Date,Title,Symbol,Link\n"
        "2020-03-02,Apple shares jump after record iPhone sales,AAPL,https://news.example/1\n"
        "2020-03-03,Boeing shares fall on 737 MAX delay,BA,https://news.example/2\n"
        "2020-03-04 14:30,Tesla beats delivery estimates,TSLA,https://news.example/3\n",
        encoding="utf-8",
    )
    out = backfill(str(path))
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0]
    assert first == (
        "mapping for quotes.csv: title=Title, published_at=Date, url=Link, tickers=Symbol; "
        "no column for body, external_id, source, time_precision"
    )
    assert "rows read 3, outside the dates 0, stored 3, duplicates 0, rejected 0" in out.stdout
    assert "rejected by reason" not in out.stdout
    stored = rows(backfill.db, "SELECT title, published_at, url FROM articles ORDER BY published_at")
    assert [(t, w[:16], u) for t, w, u in stored] == [
        ("Apple shares jump after record iPhone sales", "2020-03-02 00:00", "https://news.example/1"),
        ("Boeing shares fall on 737 MAX delay", "2020-03-03 00:00", "https://news.example/2"),
        ("Tesla beats delivery estimates", "2020-03-04 14:30", "https://news.example/3"),
    ]
    assert {"AAPL", "BA", "TSLA"} <= {t for (t,) in rows(backfill.db, "SELECT ticker FROM mentions")}
    again = backfill(str(path))
    assert again.returncode == 0 and "already backfilled" in again.stdout


def test_map_names_a_column_detection_does_not_know(tmp_path, backfill):
    """A title column of another name: the whole file is refused, exit 1, not marked done; --map title=... stores it."""
    path = tmp_path / "wire.jsonl"
    path.write_text(
        '{"News": "Nokia shares plunge after profit warning", "When": "2020-05-01T09:30:00+03:00", "Code": "NOK"}\n'
        '{"News": "Ericsson wins 5G contract", "When": "2020-05-02T10:00:00Z", "Code": "ERIC"}\n',
        encoding="utf-8",
    )
    refused = backfill(str(path))
    assert refused.returncode == 1
    assert refused.stdout.splitlines()[0] == (
        "mapping for wire.jsonl: no column for title, body, published_at, url, external_id, tickers, source, "
        "time_precision"
    )
    assert "title: missing or empty  (e.g. line 1 of wire.jsonl)" in refused.stdout
    assert f"{path}: every row was rejected; not marked done" in refused.stdout
    assert errors(refused) == ["error: every row was rejected (2); the first: line 1: title: missing or empty"]
    assert rows(backfill.db, "SELECT count(*) FROM backfill_progress WHERE finished_at IS NOT NULL") == [(0,)]

    out = backfill(str(path), "--map", "title=News", "--map", "published_at=When", "--map", "tickers=Code")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        "mapping for wire.jsonl: title=News (--map), published_at=When (--map), tickers=Code (--map); "
        "no column for body, url, external_id, source, time_precision"
    )
    assert "stored 2, duplicates 0, rejected 0" in out.stdout and "already backfilled" not in out.stdout
    assert rows(backfill.db, "SELECT title, published_at FROM articles ORDER BY published_at") == [
        ("Nokia shares plunge after profit warning", "2020-05-01 06:30:00.000000"),
        ("Ericsson wins 5G contract", "2020-05-02 10:00:00.000000"),
    ]


def test_every_row_rejected_says_why_by_reason_and_runs_again_once_mapped(tmp_path, backfill):
    """Before: 'rejected 5' and exit 0, the reasons only in the rejects table, and the file marked done."""
    path = tmp_path / "desk.csv"
    path.write_text(
        "Date,Headline,Symbol,Desk\n"
        "2020-01-02,Apple shares jump,AAPL,12:00\n"  # line 2
        "2020-01-03,Boeing shares fall,BA,May 2020\n"
        "2020-01-04,,TSLA,2020-01-04\n"  # no title: rejected whatever the mapping
        "2020-01-05,Nokia cuts outlook,NOK,1 May\n"
        "2020-01-06,Ericsson wins contract,ERIC,13:45\n",
        encoding="utf-8",
    )
    wrong = backfill(str(path), "--map", "published_at=Desk")
    assert wrong.returncode == 1
    lines = wrong.stdout.splitlines()
    assert lines[0] == (
        "mapping for desk.csv: title=Headline, published_at=Desk (--map), tickers=Symbol; "
        "no column for body, url, external_id, source, time_precision"
    )
    assert "rows read 5, outside the dates 0, stored 0, duplicates 0, rejected 5" in lines[1]
    assert lines[2].startswith("rejected by reason")
    assert [line.split()[0] for line in lines[3:7]] == ["2", "1", "1", "1"]
    assert "published_at: '12:00' has no year and no month and no day" in lines[3]  # 12:00 and 13:45, one reason
    assert lines[3].endswith("(e.g. line 2 of desk.csv)")
    assert "'May 2020' has no day" in lines[4] and lines[4].endswith("(e.g. line 3 of desk.csv)")
    assert "title: missing or empty" in lines[5] and lines[5].endswith("(e.g. line 4 of desk.csv)")
    assert lines[6].strip() == "1  for 1 other reason"
    assert errors(wrong) == [
        "error: every row was rejected (5); the first: line 2: published_at: '12:00' has no year and no month and "
        "no day: a date needs year, month and day"
    ]
    # Not marked done: the same run reads the file again (and says the same), it does not claim it is done.
    same = backfill(str(path), "--map", "published_at=Desk")
    assert same.returncode == 1 and "already backfilled" not in same.stdout and "rejected 5" in same.stdout
    assert rows(backfill.db, "SELECT count(*) FROM rejects") == [(5,)]  # kept once however often it is read

    right = backfill(str(path), "--map", "published_at=Date")
    assert right.returncode == 0, right.stderr
    assert "rows read 5, outside the dates 0, stored 4, duplicates 0, rejected 1" in right.stdout
    assert "title: missing or empty  (e.g. line 4 of desk.csv)" in right.stdout
    assert "not marked done" not in right.stdout
    assert len(rows(backfill.db, "SELECT id FROM articles")) == 4
    done = backfill(str(path), "--map", "published_at=Date")
    assert done.returncode == 0 and "already backfilled" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--map", "headline=Title"), "error: --map headline=Title: unknown field 'headline' (known: title, body,"),
        (("--map", "title=Headline"), "error: --map title=Headline: f.csv has no column 'Headline' (columns: Date,"),
        (("--map", "title"), "error: --map 'title': expected FIELD=COLUMN"),
        (("--map", "title="), "error: --map title=: title: empty column name"),
        (("--map", "title=Title", "--map", "title=Date"), "error: --map title=Date: title is mapped twice"),
    ],
)
def test_a_bad_map_is_one_error_line_before_anything_is_read(tmp_path, backfill, args, message):
    path = tmp_path / "f.csv"
    path.write_text("Date,Title,Symbol\n2020-01-02,Apple shares jump,AAPL\n", encoding="utf-8")
    out = backfill(str(path), *args)
    assert out.returncode == 1 and out.stdout == ""
    assert len(errors(out)) == 1 and errors(out)[0].startswith(message), out.stderr
    assert not backfill.db.exists()  # refused before the database was touched


def test_the_usual_layout_keeps_its_mapping_and_its_progress(tmp_path, backfill):
    """The news_stream columns are read as before: nothing in the mapping changes, so finished runs stay finished."""
    path = tmp_path / "usual.csv"
    path.write_text(
        "published_at,headline,body,ticker,source,url,time_precision,source_id,topics\n"
        "2020-01-02T10:00:00Z,Apple shares jump,,AAPL,Benzinga,,minute,b-1,\n",
        encoding="utf-8",
    )
    out = backfill(str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        "mapping for usual.csv: title=headline, body=body, published_at=published_at, url=url, "
        "external_id=source_id, tickers=ticker, source=source, time_precision=time_precision"
    )
    assert "stored 1" in out.stdout
    assert rows(backfill.db, "SELECT external_id FROM articles") == [("b-1",)]
