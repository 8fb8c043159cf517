"""The real `finsent` command on real files in a temp dir (sqlite-utils style: no mocks)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

FINSENT = str(Path(sys.executable).parent / "finsent")


def finsent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FINSENT, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sample_csv(tmp_path_factory, checkpoint) -> Path:
    """120 rows of the shipped PhraseBank AllAgree test split, with renamed columns."""
    with open(checkpoint / "splits" / "phrasebank_allagree_test.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:120]
    path = tmp_path_factory.mktemp("eval") / "sample.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["headline", "gold"])
        w.writerows([r["text"], r["label"]] for r in rows)
    return path


def test_evaluate_prints_metrics_and_json(sample_csv):
    out = finsent("model", "evaluate", str(sample_csv), "--text-col", "headline", "--label-col", "gold", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {"n", "accuracy", "macro_f1", "per_class", "confusion"} <= set(result)
    assert result["n"] == 120
    assert result["accuracy"] >= 0.9
    assert sum(map(sum, result["confusion"])) == 120
    assert set(result["per_class"]) == {"negative", "neutral", "positive"}

    text = finsent("model", "evaluate", str(sample_csv), "--text-col", "headline", "--label-col", "gold")
    assert text.returncode == 0, text.stderr
    assert "macro-F1" in text.stdout and "confusion" in text.stdout
    assert f"accuracy   {result['accuracy']:.4f}" in text.stdout


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "no such file"),
        ("text,label\nok,positive\n", ["--label-col", "sentiment"], "no column 'sentiment'"),
        ("text,label\nok,positive\nmeh,mixed\n", [], "unknown label 'mixed'"),
    ],
)
def test_evaluate_bad_input_is_one_clear_line(tmp_path, content, args, message):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_text(content)
    out = finsent("model", "evaluate", str(path), *args)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith("error: ") and message in out.stderr


def test_explain_marks_the_attended_words():
    text = "Shares of Nokia plunged after a profit warning"
    out = finsent("model", "explain", text, "--top-k", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("[[") == 2
    assert "label negative" in out.stdout
    js = finsent("model", "explain", text, "--method", "rollout", "--json")
    result = json.loads(js.stdout)
    assert result["method"] == "rollout"
    for a in result["attributions"]:
        assert text[a["start"] : a["end"]] == a["word"]


def test_explain_rejects_empty_text_and_unknown_method():
    out = finsent("model", "explain", "   ")
    assert out.returncode == 1 and "empty" in out.stderr
    out = finsent("model", "explain", "x", "--method", "lime")
    assert out.returncode == 1 and "unknown method 'lime'" in out.stderr


def test_info_shows_version_and_metrics(checkpoint):
    out = finsent("model", "info")
    assert out.returncode == 0, out.stderr
    assert checkpoint.name in out.stdout
    assert "phrasebank_50agree" in out.stdout


# Issue 17's defects that the CLI itself answers: each exits with one `error:` line (or a clean result), no traceback.


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def test_backfill_refuses_an_empty_date_range(tmp_path):
    """Issue 17, last row: `--since` after `--until` was accepted and the file marked done."""
    src = tmp_path / "news.csv"
    src.write_text("title,published_at\nApple beats estimates,2020-06-01T10:00:00Z\n", encoding="utf-8")
    db = tmp_path / "b.db"
    out = finsent(
        "backfill", str(src), "--since", "2021-01-01", "--until", "2020-01-01", "--database-url", f"sqlite:///{db}"
    )
    assert "is not before --until" in one_error_line(out) and not db.exists()


def test_a_bad_setting_is_one_line_for_db_upgrade(tmp_path):
    """Issue 17, D11: `FINSENT_BATCH_MAX_SIZE=abc finsent db upgrade` printed a traceback."""
    out = subprocess.run([FINSENT, "db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'x.db'}"],
                         capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "FINSENT_BATCH_MAX_SIZE": "abc"})  # fmt: skip
    assert "batch_max_size" in one_error_line(out)


def test_evaluate_reads_a_csv_with_a_byte_order_mark(sample_csv, tmp_path):
    """Issue 17, D15: a BOM made the first column `\\ufefftext`, so `model evaluate` said it had no such column."""
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + sample_csv.read_bytes())
    out = finsent("model", "evaluate", str(bom), "--text-col", "headline", "--label-col", "gold", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 120


def test_explain_never_sends_control_characters_to_the_terminal():
    """Issue 17, D17: an escape sequence in the text reached the terminal as is."""
    out = finsent("model", "explain", "Nokia\x01\x1b[31m plunges after profit warning")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x01" not in out.stdout
    assert "Nokia\\x01\\x1b[" in out.stdout and "label " in out.stdout  # shown escaped, offsets unchanged


def test_unreadable_inputs_are_one_line_each(tmp_path):
    """Issue 17, D11: `backfill notes.txt`, `run --sources` naming a missing file and `model explain --file` on a
    binary file printed tracebacks (26-74 lines)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("just some notes\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert "unknown file type '.txt'" in one_error_line(finsent("backfill", str(notes), "--database-url", db))
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[source]]\nname = "f"\nkind = "file"\npath = "{tmp_path / "missing.csv"}"\n')
    out = finsent("run", "--sources", str(sources), "--exit-when-done", "--database-url", db)
    assert "missing.csv: No such file or directory" in one_error_line(out)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    assert "not UTF-8 text" in one_error_line(finsent("model", "explain", "--file", str(binary)))
