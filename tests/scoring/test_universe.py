"""The company universe: the desk's own file (CSV and TOML) on top of the shipped one, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from scoring import entities
from scoring.universe import DATA, EntitiesFileError, load_universe, read_companies

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def desk(monkeypatch, tmp_path):
    """Point FINSENT_ENTITIES_FILE at a file written by the test."""

    def use(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        monkeypatch.setenv("FINSENT_ENTITIES_FILE", str(path))
        return path

    return use


def test_the_shipped_file_reads_cleanly_and_is_large():
    companies = read_companies(DATA, origin="curated")
    assert len(companies) >= 300
    assert {c.status for c in companies} == {"listed", "former"}


def test_a_desk_csv_adds_its_own_names_and_unknown_tickers(desk):
    desk("desk.csv", "ticker,name,aliases,blocked\nZZPRIV,Acme Widgets Ltd,Acme;AcmeCo,\nTSCO.L,Tesco PLC,Big T,\n")
    assert {m.ticker for m in entities.link("Acme wins contract")} == {"ZZPRIV"}  # unknown anywhere else: the desk's
    assert {m.ticker for m in entities.link("Big T sales slip")} == {"TSCO.L"}
    assert {m.ticker for m in entities.link("Tesco sales slip")} == {"TSCO.L"}  # the shipped names stay


def test_a_desk_file_gives_former_tickers_and_listing_dates(desk):
    desk("desk.toml", '[[company]]\nticker = "ZZNEW"\nname = "Zednew Robotics Inc"\nformer_tickers = ["ZZOLD"]\n'
                      'listed_from = 2022-03-01\n\n[[company]]\nticker = "ZZGONE"\nname = "Zedgone Mining plc"\n'
                      'listed_until = "2015-06-30"\n')  # fmt: skip
    assert {m.ticker for m in entities.link("Options active in Zednew Robotics (ZZOLD)")} == {"ZZNEW"}
    assert entities.link("Zednew Robotics files to go public", at=date(2021, 11, 2)) == []
    assert {m.ticker for m in entities.link("Zedgone Mining hits new high", at=date(2014, 1, 2))} == {"ZZGONE"}
    assert entities.link("Zedgone Mining assets sold", at=date(2016, 1, 2)) == []


def test_a_desk_toml_is_read_too_and_can_block_a_name(desk):
    desk("desk.toml", '[[company]]\nticker = "KGF.L"\nname = "Kingfisher plc"\naliases = ["B&Q owner"]\n'
                      'blocked = ["Kingfisher"]\n')  # fmt: skip
    assert {m.ticker for m in entities.link("B&Q owner profits slide")} == {"KGF.L"}
    assert entities.link("Kingfisher profits slide") == []


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.csv", "ticker,name\nAAPL,Apple\n,Nameless\n", "bad.csv, line 3: field 'ticker' is empty"),
        ("bad.csv", "ticker,name\nAAPL,Apple\nNOT A TICKER!,Bad\n", "bad.csv, line 3: field 'ticker'"),
        ("bad.csv", "ticker,name,colour\nAAPL,Apple,red\n", "bad.csv, line 1: unknown column 'colour'"),
        ("bad.csv", "ticker,aliases\nAAPL,Apple\n", "bad.csv, line 1: no 'name' column"),
        ("bad.csv", "ticker,name,isin\nAAPL,Apple,US12\n", "bad.csv, line 2: field 'isin'"),
        ("bad.csv", "ticker,name,status\nAAPL,Apple,gone\n", "bad.csv, line 2: field 'status'"),
        ("bad.csv", "ticker,name\nAAPL,Apple,extra\n", "bad.csv, line 2: more fields"),
        (
            "bad.toml",
            '[[company]]\nticker = "AAPL"\n\n[[company]]\nname = "x"\n',
            "bad.toml, line 1 (company 1): field 'name' is empty",
        ),
        ("bad.toml", "[[company]\n", "bad.toml, line 1"),
        ("bad.toml", "company = [1, 2]\n", "bad.toml, line 1 (company 1): expected a table of fields, not int"),
        (
            "bad.toml",
            '[[ company ]]\nticker = "A"\nname = "x"\n\n[[company]]\nticker = "B"\nname = ""\n',
            "bad.toml, line 5 (company 2): field 'name' is empty",
        ),
        (
            "bad.toml",
            '[[company]]\nticker = "A"\nname = ["x"]\n',
            "bad.toml, line 1 (company 1): field 'name' must be text",
        ),
        ("bad.csv", "ticker,name,ticker\nZZZ,Zed,YYY\n", "bad.csv, line 1: column 'ticker' appears twice"),
        ("bad.csv", 'ticker,name\nAAA,Apple\n"BBB,B\n', "bad.csv, line 3: unexpected end of data"),
        ("bad.toml", '[[company]]\nticker = "AAPL"\nname = "Apple"\naliases = 3\n', "bad.toml, line 1 (company 1)"),
        ("bad.csv", "ticker,name,listed_from\nAAPL,Apple,1980-13-12\n", "bad.csv, line 2: field 'listed_from'"),
        (
            "bad.csv",
            "ticker,name,listed_from,listed_until\nAAPL,Apple,2020-01-01,2019-01-01\n",
            "bad.csv, line 2: field 'listed_until' is before",
        ),
        ("bad.csv", "ticker,name,former_tickers\nAAPL,Apple,AAPL\n", "bad.csv, line 2: field 'former_tickers'"),
        ("bad.csv", "ticker,name,former_tickers\nAAPL,Apple,NOT ONE\n", "bad.csv, line 2: field 'former_tickers'"),
    ],
)
def test_a_malformed_file_names_file_line_and_field(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EntitiesFileError) as e:
        read_companies(path)
    assert message.split(": ", 1)[0] in str(e.value) and message.split(": ", 1)[-1] in str(e.value), str(e.value)


def test_a_malformed_desk_file_stops_a_command_at_start_up(tmp_path):
    bad = tmp_path / "desk.csv"
    bad.write_text("ticker,name\nAAPL,Apple\n,Nameless\n", encoding="utf-8")
    env = {"FINSENT_ENTITIES_FILE": str(bad), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "cli", "tickers", "Apple"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip() == f"error: {bad}, line 3: field 'ticker' is empty"


def test_tickers_command_prints_spans_and_json(tmp_path):
    lines = tmp_path / "h.txt"
    lines.write_text("Tesco cut to hold at Barclays\n\nUPDATE 1-Shell wins LNG deal\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "cli", "tickers", "Pfizer wins as Moderna slumps", "--file",
                          str(lines), "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["text"] for r in records] == [
        "Pfizer wins as Moderna slumps",
        "Tesco cut to hold at Barclays",
        "UPDATE 1-Shell wins LNG deal",
    ]
    first = records[0]["mentions"]
    assert [(m["ticker"], m["start"], m["end"], m["rule"]) for m in first] == [
        ("PFE", 0, 6, "name"),
        ("MRNA", 15, 22, "name"),
    ]
    assert set(first[0]) >= {"ticker", "name", "start", "end", "relevance", "rule"}
    assert [m["ticker"] for m in records[1]["mentions"]] == ["TSCO.L"]
    assert records[1]["skipped"][0]["ticker"] == "BARC.L"
    assert [m["ticker"] for m in records[2]["mentions"]] == ["SHEL.L"]
    text = subprocess.run([sys.executable, "-m", "cli", "tickers", "Tesco cut to hold at Barclays"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "TSCO.L" in text.stdout and "not linked: BARC.L" in text.stdout


def test_tickers_command_reads_the_publication_date(tmp_path):
    run = subprocess.run([sys.executable, "-m", "cli", "tickers", "Aldi partners Deliveroo", "--at", "2020-05-19",
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert record["mentions"] == []
    assert [(s["ticker"], s["why"]) for s in record["skipped"]] == [
        ("ROO.L", "not listed on 2020-05-19: ROO.L lists from 2021-03-31")
    ]
    bad = subprocess.run([sys.executable, "-m", "cli", "tickers", "Deliveroo", "--at", "May 2020"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.strip() == (
        "error: --at: 'May 2020' is not an ISO date or time (e.g. 2020-01-31 or 2020-01-31T09:30:00Z)"
    )


def test_tickers_command_without_text_fails(tmp_path):
    run = subprocess.run([sys.executable, "-m", "cli", "tickers"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert run.returncode == 1 and run.stderr.startswith("error: no text given")


def test_universe_is_built_once_per_desk_file(desk):
    assert load_universe(None) is load_universe(None)
    first = desk("one.csv", "ticker,name\nZZONE,Zedone Widgets plc\n")
    assert {m.ticker for m in entities.link("Zedone Widgets profits rise")} == {"ZZONE"}
    desk("two.csv", "ticker,name\nZZTWO,Zedtwo Widgets plc\n")
    assert entities.link("Zedone Widgets profits rise") == []  # another file, another universe
    assert load_universe(str(first)) is load_universe(str(first))
