"""Sources declared in TOML: the shipped example, path resolution, and one clear line for every mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.messages import decode
from ingest.config import (
    ConfigError,
    FileSourceConfig,
    KafkaSourceConfig,
    RssSourceConfig,
    load_sources,
)
from ingest.sources.files import FieldMapping, read_file

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "sources.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_example_points_at_the_bundled_data(shared_data):
    sources = load_sources(EXAMPLE)
    assert [(s.name, s.kind) for s in sources] == [
        ("reuters-1987", "file"),
        ("cnbc-guardian", "file"),
        ("benzinga-ratings", "file"),
    ]
    assert all(isinstance(s, FileSourceConfig) and s.path.is_file() for s in sources)
    assert sources[0].path == (shared_data / "news_stream" / "reuters21578_1987.csv").resolve()
    assert sources[0].field_mapping() == FieldMapping()
    benzinga = sources[2]
    assert benzinga.field_mapping() == FieldMapping(title="headline", tickers="ticker")
    first = next(read_file(benzinga.path, source=benzinga.name, mapping=benzinga.field_mapping()))
    assert decode(first.value).title == "Going Against the Herd"


def test_commented_out_examples_are_valid_when_uncommented(tmp_path):
    setting = r"\[\[source\]\]$|(?:name|kind|url|interval_s|timeout_s|max_backoff_s|description) = "
    text = re.sub(rf"^# (?=({setting}))", "", EXAMPLE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    sources = load_sources(write(tmp_path, text))
    feed, wire = sources[-2:]
    assert isinstance(feed, RssSourceConfig) and isinstance(wire, KafkaSourceConfig)
    assert (feed.name, feed.url, feed.interval_s, feed.timeout_s, feed.max_backoff_s) == (
        "example-feed",
        "https://example.com/markets/feed.xml",
        300,
        10,
        3600,
    )
    assert wire.name == "partner-wire" and wire.description.startswith("Partner newswire")


def test_paths_resolve_against_the_config_folder_and_rss_defaults(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "sources.toml"
    path.write_text(
        """
[[source]]
name = "local"
kind = "file"
path = "data/news.jsonl"
[source.mapping]
title = "subject"
ticker_separator = "|"

[[source]]
name = "abs"
kind = "file"
path = "/srv/news.csv"

[[source]]
name = "wire"
kind = "rss"
url = "http://127.0.0.1:8000/feed"
""",
        encoding="utf-8",
    )
    local, absolute, wire = load_sources(path)
    assert local.path == tmp_path / "conf" / "data" / "news.jsonl"
    assert local.field_mapping() == FieldMapping(title="subject", ticker_separator="|")
    assert absolute.path == Path("/srv/news.csv")
    assert (wire.interval_s, wire.timeout_s, wire.max_backoff_s) == (300, 10, 3600)
    poller = wire.poller()
    assert (poller.name, poller.url, poller.interval_s, poller.timeout_s) == ("wire", wire.url, 300, 10)
    poller.close()


def test_empty_file_declares_no_sources(tmp_path):
    assert load_sources(write(tmp_path, "# nothing yet\n")) == []


RSS = '[[source]]\nname = "feed"\nkind = "rss"\nurl = "https://x.example/feed"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[source]]\nname = "a"\nkind = "ftp"\n', "source #1 ('a'): kind: 'ftp' is not one of file, rss, kafka"),
        ('[[source]]\nname = "a"\n', "source #1 ('a'): kind: missing (one of file, rss, kafka)"),
        ('[[source]]\nname = "feed"\nkind = "rss"\n', "source #1 ('feed'): url: missing (required for kind 'rss')"),
        (RSS + '[[source]]\nname = "f"\nkind = "file"\n', "source #2 ('f'): path: missing (required for kind 'file')"),
        (RSS + RSS, "source #2 ('feed'): name: duplicate of source #1"),
        (RSS + "interval_s = 0\n", "source #1 ('feed'): interval_s: Input should be greater than 0 (got 0)"),
        (RSS + "interval_s = -5\n", "source #1 ('feed'): interval_s: Input should be greater than 0 (got -5)"),
        (RSS + "timeout_s = 0\n", "source #1 ('feed'): timeout_s: Input should be greater than 0 (got 0)"),
        (RSS + "intervall_s = 60\n", "source #1 ('feed'): intervall_s: unknown key for kind 'rss'"),
        (
            '[[source]]\nname = "feed"\nkind = "rss"\nurl = "file:///etc/passwd"\n',
            "source #1 ('feed'): url: 'file:///etc/passwd' is not an http(s) URL (got 'file:///etc/passwd')",
        ),
        ('[[source]]\nname = "w"\nkind = "kafka"\nurl = "x"\n', "source #1 ('w'): url: unknown key for kind 'kafka'"),
        ('[[source]]\nkind = "kafka"\n', "source #1: name: missing (required for kind 'kafka')"),
        (
            '[[source]]\nname = "  "\nkind = "kafka"\n',
            "source #1 ('  '): name: String should have at least 1 character",
        ),
        (
            '[[source]]\nname = "f"\nkind = "file"\npath = "x.csv"\n[source.mapping]\nheadline = "title"\n',
            "source #1 ('f'): mapping: unknown field 'headline' (known: title, body, published_at, url, external_id,",
        ),
        ('[[sources]]\nname = "a"\n', "unknown top-level key 'sources' (sources are [[source]] tables)"),
        ('[source]\nname = "a"\n', "`source` must be an array of tables, written [[source]]"),
        ('[[source]]\nname = "a\n', "TOML syntax error: "),
    ],
    ids=[
        "unknown-kind",
        "no-kind",
        "rss-without-url",
        "file-without-path",
        "duplicate-name",
        "zero-interval",
        "negative-interval",
        "zero-timeout",
        "typo-key",
        "non-http-url",
        "key-of-other-kind",
        "no-name",
        "blank-name",
        "unknown-mapping-field",
        "top-level-typo",
        "table-not-array",
        "toml-syntax",
    ],
)
def test_mistakes_are_one_clear_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {message}"), text
    assert "\n" not in text
    assert isinstance(info.value, ValueError)


def test_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read: No such file or directory"):
        load_sources(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'# caf\xe9\n[[source]]\nname = "a"\nkind = "kafka"\n')
    with pytest.raises(ConfigError, match=r"latin1\.toml: not UTF-8 \(byte 5\)"):
        load_sources(bad)
