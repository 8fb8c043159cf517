"""File sources on real files: the bundled news_stream CSVs, and hostile CSV / JSON Lines written to tmp_path."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.messages import MAX_MESSAGE_BYTES, decode
from ingest.sources import RawRecord
from ingest.sources.files import FieldMapping, SourceFileError, count_rows, read_file

HEADER = "published_at,headline,body,ticker,source,url,time_precision,source_id,topics\n"


def head_rows(src, dst, n: int = 50) -> None:
    """The header and the first n data rows of a CSV, rewritten with csv so quoted fields stay whole."""
    with open(src, newline="", encoding="utf-8") as fin, open(dst, "w", newline="", encoding="utf-8") as fout:
        reader, writer = csv.reader(fin), csv.writer(fout, lineterminator="\n")
        for i, row in enumerate(reader):
            if i > n:
                break
            writer.writerow(row)


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def messages(records):
    return [decode(r.value) for r in records]


# ------------------------------------------------------------------------------------------- the bundled data


def test_reuters_first_50_rows(shared_data, tmp_path):
    path = tmp_path / "reuters21578_1987.csv"
    head_rows(shared_data / "news_stream" / "reuters21578_1987.csv", path)
    records = list(read_file(path, source="reuters-1987"))
    assert count_rows(path) == 50
    assert [r.error for r in records] == [None] * 50
    assert [r.position for r in records[:2]] == ["reuters21578_1987.csv:2", "reuters21578_1987.csv:3"]
    assert records[-1].position == "reuters21578_1987.csv:51"
    assert {r.source for r in records} == {"reuters-1987"}
    first, second = messages(records[:2])
    assert first.title == "BAHIA COCOA REVIEW"
    assert first.body.startswith("Showers continued throughout the week in the Bahia cocoa zone")
    assert first.source == "Reuters"  # the row's source column wins over the configured name
    assert first.external_id == "reuters21578-1"
    assert first.published_at == datetime(1987, 2, 26, 15, 1, 1, tzinfo=UTC)
    assert first.tickers == []
    assert first.url is None
    assert first.time_precision == "second"
    assert first.extras == {"topics": "cocoa", "places": "el-salvador;usa;uruguay"}
    assert second.title == "STANDARD OIL <SRD> TO FORM FINANCIAL UNIT"  # symbols kept: normalising is downstream
    assert second.tickers == ["SRD"]
    by_id = {m.external_id: m for m in messages(records)}
    assert by_id["reuters21578-25"].tickers == ["AXP", "MER"]
    assert records[1].raw.startswith(b"1987-02-26T15:02:20Z,STANDARD OIL <SRD> TO FORM FINANCIAL UNIT,")


def test_cnbc_guardian_first_50_rows(shared_data, tmp_path):
    path = tmp_path / "cnbc_guardian_2017_2020.csv"
    head_rows(shared_data / "news_stream" / "cnbc_guardian_2017_2020.csv", path)
    records = list(read_file(path))
    assert count_rows(path) == 50 and len(records) == 50 and all(r.ok for r in records)
    assert {r.source for r in records} == {"cnbc_guardian_2017_2020"}  # no name given: the file stem
    first = decode(records[0].value)
    assert first.title == "Alabama unions see Doug Jones's win as a victory for organized labor"
    assert first.source == "The Guardian"
    assert first.published_at == datetime(2017, 12, 17, tzinfo=UTC)
    assert first.external_id is None and first.body == "" and first.tickers == []
    assert first.time_precision == "day"  # a day-precision time is not a midnight event: windows under a day skip it
    assert first.extras == {}


def test_benzinga_first_50_rows(shared_data, tmp_path):
    path = tmp_path / "benzinga.csv"
    head_rows(shared_data / "news_stream" / "benzinga_analyst_ratings_sample.csv", path)
    records = list(read_file(path, source="benzinga"))
    assert count_rows(path) == 50 and len(records) == 50 and all(r.ok for r in records)
    msgs = messages(records)
    assert (msgs[0].title, msgs[0].external_id, msgs[0].tickers) == ("Going Against the Herd", "arp-1834", ["A"])
    assert msgs[0].published_at == datetime(2009, 4, 29, 12, 48, tzinfo=UTC)
    assert msgs[3].tickers == ["ACAD"]
    assert all(m.source == "Benzinga" for m in msgs)


def test_start_resumes_with_file_line_numbers(shared_data, tmp_path):
    path = tmp_path / "reuters.csv"
    head_rows(shared_data / "news_stream" / "reuters21578_1987.csv", path, n=10)
    records = list(read_file(path, start=7))
    assert [r.position for r in records] == ["reuters.csv:9", "reuters.csv:10", "reuters.csv:11"]
    assert decode(records[0].value).external_id == "reuters21578-8"
    assert list(read_file(path, start=10)) == []


# ------------------------------------------------------------------------------------------------ hostile CSV


def test_csv_invalid_utf8_row_is_an_error_and_later_rows_keep_their_lines(tmp_path):
    path = write(
        tmp_path / "news.csv",
        HEADER.encode()
        + b"2024-01-02T10:00:00Z,Good one,,AAPL,Wire,,,id-1,\n"
        + b"2024-01-02T11:00:00Z,Bad \xff\xfe bytes,,,Wire,,,id-2,\n"
        + b'2024-01-02T12:00:00Z,"Multi\nline headline",body,,Wire,,,id-3,\n'
        + b"2024-01-02T13:00:00Z,After,,,Wire,,,id-4,\n",
    )
    records = list(read_file(path))
    assert [r.position for r in records] == ["news.csv:2", "news.csv:3", "news.csv:4", "news.csv:6"]
    assert [r.ok for r in records] == [True, False, True, True]
    assert records[1].error == "line 3: invalid UTF-8 at byte 25: invalid start byte"
    assert records[1].raw == b"2024-01-02T11:00:00Z,Bad \xff\xfe bytes,,,Wire,,,id-2,\n"
    assert decode(records[2].value).title == "Multi\nline headline"
    assert records[2].raw.count(b"\n") == 2
    assert decode(records[3].value).external_id == "id-4"
    assert count_rows(path) == 4


def test_csv_field_errors_name_the_line_and_field(tmp_path):
    path = write(
        tmp_path / "news.csv",
        (
            HEADER
            + "not a date,Title A,,,,,,a,\n"
            + "2024-01-01T00:00:00Z,,body without a title,,,,,b,\n"
            + "2024-01-01T00:00:00Z,Too,many,fields,x,y,z,c,d,e,f\n"
            + "2024-01-01T00:00:00Z,Short row\n"
        ).encode(),
    )
    records = list(read_file(path, source="wire"))
    assert records[0].error.startswith("line 2: published_at: cannot read 'not a date' as a date")
    assert records[1].error == "line 3: title: missing or empty"
    assert records[2].error == "line 4: 11 fields but the header has 9 (unquoted comma?)"
    short = decode(records[3].value)  # missing trailing columns are just absent
    assert (short.title, short.source, short.body) == ("Short row", "wire", "")


def test_csv_tickers_filtered_and_title_column_accepted(tmp_path):
    path = write(
        tmp_path / "alt.csv",
        b"title,ticker,published_at\n"
        b'BP and Standard Oil,"BP;SRD;NOT A TICKER;WAYTOOLONGTICKERSYMBOL;;BRK.B",1987-03-01\n',
    )
    (message,) = messages(read_file(path))
    assert message.title == "BP and Standard Oil"
    assert message.tickers == ["BP", "SRD", "BRK.B"]
    assert message.source == "alt"
    assert message.published_at == datetime(1987, 3, 1, tzinfo=UTC)


def test_csv_custom_mapping_and_bom(tmp_path):
    path = write(
        tmp_path / "custom.csv",
        (
            "\ufeffwhen,subject,text,syms,link,guid\n"
            "2024-05-01T09:30:00+02:00,Nokia up,<p>Body</p>,NOK|ERIC,http://x/1,g1\n"
        ).encode(),
    )
    mapping = FieldMapping(
        title="subject", body="text", published_at="when", tickers="syms", url="link", external_id="guid",
        ticker_separator="|",
    )  # fmt: skip
    (message,) = messages(read_file(path, source="custom-wire", mapping=mapping))
    assert message.title == "Nokia up" and message.body == "<p>Body</p>"
    assert message.tickers == ["NOK", "ERIC"] and message.url == "http://x/1" and message.external_id == "g1"
    assert message.published_at == datetime(2024, 5, 1, 7, 30, tzinfo=UTC)
    assert message.source == "custom-wire"


def test_csv_ten_megabyte_body_is_cut_to_the_message_limit(tmp_path):
    body = "<p>" + "x" * (10 * 1024 * 1024) + "</p>"
    path = write(tmp_path / "big.csv", (HEADER + f"2024-01-01T00:00:00Z,Huge,{body},,,,,big-1,\n").encode())
    (record,) = read_file(path)
    assert record.ok and len(record.value) <= MAX_MESSAGE_BYTES
    message = decode(record.value)
    assert message.title == "Huge" and message.body.startswith("<p>xxx")
    assert message.extras["body_truncated_at_source"] == len(body)
    assert len(record.raw) > 10 * 1024 * 1024


def test_csv_structural_damage_is_an_error_and_the_next_row_reads(tmp_path):
    rows = [
        b"2024-01-01,Carriage \r return,,,,,,,\n",
        b"2024-01-01,Field over the limit," + b"z" * (33 * 1024 * 1024) + b",,,,,,\n",
        b"2024-01-01,NUL \x00 kept for normalise to drop,,,,,,,\n",
        b"2024-01-01,Last row without a newline",
    ]
    path = write(tmp_path / "damaged.csv", HEADER.encode() + b"".join(rows))
    records = list(read_file(path))
    assert [r.error for r in records[:2]] == [
        r"line 2: malformed CSV: a carriage return (\r) inside an unquoted field",
        "line 3: malformed CSV: field larger than field limit (33554432)",
    ]
    assert records[0].raw == rows[0]
    assert [decode(r.value).title for r in records[2:]] == [
        "NUL \x00 kept for normalise to drop",
        "Last row without a newline",
    ]
    assert [r.position for r in records] == ["damaged.csv:2", "damaged.csv:3", "damaged.csv:4", "damaged.csv:5"]
    assert count_rows(path) == 4


def test_csv_header_with_invalid_utf8_is_one_error(tmp_path):
    path = write(tmp_path / "bad.csv", b"published_at,head\xffline\n2024-01-01,x\n2024-01-02,y\n")
    (record,) = read_file(path)
    assert record.error == "line 1: invalid UTF-8 at byte 17: invalid start byte in the header"


def test_unknown_extension_is_refused(tmp_path):
    path = write(tmp_path / "news.xml", b"<rss/>")
    with pytest.raises(SourceFileError, match="unknown file type '.xml'"):
        list(read_file(path))


# ---------------------------------------------------------------------------------------------- JSON Lines


GOOD = {
    "title": "Apple beats",
    "body": "<b>Q3</b>",
    "tickers": ["AAPL", "bad ticker"],
    "id": 7,
    "published_at": "2024-06-03T10:00:00-04:00",
    "url": "https://n.example/a",
    "external_id": 42,
    "sentiment_hint": "up",
}


def test_jsonl_good_and_bad_lines(tmp_path):
    lines = [
        json.dumps(GOOD).encode(),
        b'{"title": "broken", ',
        b"",
        b'{"title": "caf\xe9 bytes"}',
        b'["not", "an", "object"]',
        b'{"title": "nan", "score": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"headline": "From headline key", "source": "Feed X", "ticker": "MSFT;GOOG"}).encode(),
        json.dumps({"title": 12345}).encode(),
        json.dumps({"title": "Dated", "published_at": "last tuesday-ish"}).encode(),
        json.dumps({"title": "Wrong body", "body": {"html": "x"}}).encode(),
        json.dumps({"title": "x" * 2000}).encode(),
    ]
    path = write(tmp_path / "feed.jsonl", b"\n".join(lines) + b"\n")
    records = list(read_file(path, source="jl"))
    assert len(records) == 11 == count_rows(path)
    assert [r.position.split(":")[1] for r in records] == ["1", "2", "4", "5", "6", "7", "8", "9", "10", "11", "12"]
    good = decode(records[0].value)
    assert good.title == "Apple beats" and good.body == "<b>Q3</b>" and good.tickers == ["AAPL"]
    assert good.external_id == "42" and good.url == "https://n.example/a"
    assert good.published_at == datetime(2024, 6, 3, 14, 0, tzinfo=UTC)
    assert good.source == "jl" and good.extras == {"id": 7, "sentiment_hint": "up"}
    errors = [r.error for r in records]
    assert errors[1].startswith("line 2: malformed JSON at column 21: Expecting property name")
    assert errors[2] == "line 4: invalid UTF-8 at byte 14: invalid continuation byte"
    assert errors[3] == "line 5: expected a JSON object, got list"
    assert errors[4] == "line 6: malformed JSON: ValueError: NaN is not valid JSON"
    assert errors[5].startswith("line 7: malformed JSON")
    second = decode(records[6].value)
    assert (second.title, second.source, second.tickers) == ("From headline key", "Feed X", ["MSFT", "GOOG"])
    assert errors[7] == "line 9: title: expected a string, got int"
    assert errors[8].startswith("line 10: published_at: cannot read 'last tuesday-ish' as a date")
    assert errors[9] == "line 11: body: expected a string, got dict"
    assert errors[10] == "line 12: title: String should have at most 1000 characters (got str)"
    assert records[1].raw == b'{"title": "broken", \n'
    assert all(isinstance(r, RawRecord) and (r.value is None) != (r.error is None) for r in records)


def test_jsonl_far_dates_and_script_pass_through_unchanged(tmp_path):
    rows = [
        {"title": "Victorian panic", "published_at": "1850-05-01T12:00:00Z"},
        {"title": "From the future", "published_at": "2999-12-31T23:59:59+01:00"},
        {"title": "<script>alert(1)</script>Shares <b>jump</b>", "body": "<div onclick='x()'>hi<script>evil()"},
        {"title": "Naive time", "published_at": "2024-01-01 09:00"},
        {"title": "RFC 2822", "published_at": "Tue, 10 Jun 2003 04:00:00 GMT"},
        {"title": "No time"},
    ]
    path = write(tmp_path / "far.ndjson", "\n".join(json.dumps(r) for r in rows).encode())
    msgs = messages(read_file(path))
    assert msgs[0].published_at == datetime(1850, 5, 1, 12, tzinfo=UTC)
    assert msgs[1].published_at == datetime(2999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=1)))
    assert msgs[2].title == "<script>alert(1)</script>Shares <b>jump</b>"
    assert msgs[2].body == "<div onclick='x()'>hi<script>evil()"
    assert msgs[3].published_at == datetime(2024, 1, 1, 9, tzinfo=UTC)
    assert msgs[4].published_at == datetime(2003, 6, 10, 4, tzinfo=UTC)
    assert msgs[5].published_at is None  # filled downstream, flagged, not here


def test_jsonl_ten_megabyte_body_and_start(tmp_path):
    rows = [{"title": f"n{i}"} for i in range(3)] + [{"title": "big", "body": "é" * (5 * 1024 * 1024)}]
    path = write(tmp_path / "big.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode())
    records = list(read_file(path, start=2))
    assert [r.position for r in records] == ["big.jsonl:3", "big.jsonl:4"]
    big = decode(records[1].value)
    assert len(records[1].value) <= MAX_MESSAGE_BYTES
    assert big.body == "é" * len(big.body) and big.extras == {"body_truncated_at_source": 5 * 1024 * 1024}


def test_jsonl_body_of_escapes_is_cut_to_fit_and_oversized_extras_are_an_error(tmp_path):
    rows = [
        {"title": "controls", "body": "\x01" * (2 * 1024 * 1024)},  # 2 MB of text, 12 MB as JSON escapes
        {"title": "fat extras", "blob": "y" * (2 * 1024 * 1024)},
    ]
    path = write(tmp_path / "esc.jsonl", "\n".join(json.dumps(r) for r in rows).encode())
    first, second = read_file(path)
    assert len(first.value) <= MAX_MESSAGE_BYTES
    assert 0 < len(decode(first.value).body) < 2 * 1024 * 1024
    assert re.fullmatch(
        r"line 2: message: 2,097,\d{3} bytes, over the 1,048,576-byte limit \(not the body\)", second.error
    )


def test_raw_record_needs_exactly_one_of_value_and_error():
    with pytest.raises(ValueError, match="exactly one"):
        RawRecord("s", "p", b"{}", "also an error", b"")
    with pytest.raises(ValueError, match="exactly one"):
        RawRecord("s", "p", None, None, b"")


# ------------------------------------------------------------------------------- issue 17: D3, D13, D14


def test_zones_in_files_are_converted_or_refused_never_dropped(tmp_path):
    path = write(
        tmp_path / "zones.csv",
        (
            b"published_at,headline\n"
            b"2024-05-01 09:30 EST,Eastern\n"
            b"2024-05-01 09:30 UTC+3,Three ahead\n"
            b"2024-05-01 09:30 IST,Ambiguous\n"
            b"2024-05-01 09:30 XYZ,Unknown\n"
            b"12:00,No date\n"
            b"May 2024,No day\n"
            b"-1,A number\n"
        ),
    )
    records = list(read_file(path, source="wire"))
    assert [decode(r.value).published_at for r in records[:2]] == [
        datetime(2024, 5, 1, 14, 30, tzinfo=UTC),
        datetime(2024, 5, 1, 6, 30, tzinfo=UTC),
    ]
    reasons = [r.error for r in records[2:]]
    assert reasons == [
        "line 4: published_at: '2024-05-01 09:30 IST': the time zone 'IST' is ambiguous "
        "(India (+05:30), Ireland (+01:00) or Israel (+02:00)): write an offset",
        "line 5: published_at: '2024-05-01 09:30 XYZ': unknown time zone 'XYZ': write an offset such as +02:00",
        "line 6: published_at: '12:00' has no year and no month and no day: a date needs year, month and day",
        "line 7: published_at: 'May 2024' has no day: a date needs year, month and day",
        "line 8: published_at: '-1' is a bare number, not a date (write ISO 8601, or a JSON number for Unix time)",
    ]


def test_a_duplicate_column_is_one_error_for_the_file(tmp_path):
    path = write(tmp_path / "dup.csv", b"headline,published_at,headline\nA,2024-01-01,B\nC,2024-01-02,D\n")
    records = list(read_file(path, source="wire"))
    assert [r.error for r in records] == ["line 1: the column 'headline' appears twice in the header"]
    assert count_rows(path) == 2  # what a backfill's progress bar counts; the one error stands for the file


def test_a_missing_title_column_is_one_error_naming_the_columns(tmp_path):
    path = write(tmp_path / "other.csv", b"Date,Title,Symbol\n2024-01-01,Apple up,AAPL\n2024-01-02,Meta down,META\n")
    records = list(read_file(path, source="wire"))
    assert len(records) == 1
    assert records[0].error == (
        "line 1: no title column: expected 'headline' or 'title' (columns: Date, Title, Symbol); "
        "map yours in a sources file"
    )
    mapped = list(read_file(path, source="wire", mapping=FieldMapping(title="Title", published_at="Date")))
    assert [decode(r.value).title for r in mapped] == ["Apple up", "Meta down"]


def test_an_unterminated_quote_is_a_reject_not_a_swallowed_row(tmp_path):
    path = write(
        tmp_path / "quotes.csv",
        b'headline,published_at\n"Unterminated headline,2024-01-01\nNext,2024-01-02\nThird "quoted" one,2024-01-03\n'
        b"Fourth,2024-01-04\n",
    )
    records = list(read_file(path, source="wire"))
    assert records[0].error.startswith("line 2: malformed CSV: text after a closing quote")
    assert "lines 2-4 were read as this one row" in records[0].error
    assert records[0].raw.count(b"\n") == 3  # the swallowed rows are kept with the reject, not lost
    assert decode(records[1].value).title == "Fourth"
    to_the_end = write(tmp_path / "end.csv", b'headline,published_at\nFirst,2024-01-01\n"Open quote,2024-01-02\nLast\n')
    records = list(read_file(to_the_end, source="wire"))
    assert decode(records[0].value).title == "First"
    assert records[1].error.startswith("line 3: malformed CSV: a quote opened here is never closed")
    assert count_rows(to_the_end) == len(records)


def test_jsonl_rows_follow_the_message_rules(tmp_path):
    path = write(
        tmp_path / "rows.jsonl",
        b'{"title": "Unix time", "published_at": 1714555800}\n'
        b'{"title": "Extras not an object", "extras": [1, 2]}\n'
        b'{"title": "Version two", "v": 2}\n'
        b'{"title": "Version one", "v": 1, "extras": {"a": 1}, "desk": "EMEA"}\n',
    )
    records = list(read_file(path, source="wire"))
    assert decode(records[0].value).published_at == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    assert records[1].error == "line 2: extras: Input should be a valid dictionary (got list)"
    assert records[2].error == "line 3: v: Input should be 1 (got int)"
    assert decode(records[3].value).extras == {"a": 1, "desk": "EMEA"}
    for record in records:  # the same bytes as a news.raw message give the same outcome
        row = json.loads(record.raw) | {"source": "wire"}
        try:
            message = decode(json.dumps(row).encode())
        except ValueError as exc:
            assert record.error is not None and str(exc) in record.error
        else:
            assert record.ok and decode(record.value).published_at == message.published_at
