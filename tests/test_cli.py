"""The real `finsent` command on real files in a temp dir (sqlite-utils style: no mocks)."""

import csv
import json
import re
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


# Issue 17's defects that the CLI itself answers; the error cases (one `error:` line, exit 1) are in the hostile CLI
# corpus, tests/hostile/cli_cases.py.


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
    # shown escaped, offsets unchanged (the word marks [[ ]] may sit between, as the model's top words fall)
    assert "\\x01\\x1b[" in out.stdout.replace("[[", "").replace("]]", "") and "label " in out.stdout


def test_version_is_the_installed_package_version():
    from importlib.metadata import version

    out = finsent("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"finsent {version('finsent')}\n"


TYPE_TAG = re.compile(r"<(bool|str|int|float|Path|datetime|list\[[^\]]*\])[^>]*>")


def test_help_shows_no_type_tags_on_any_command():
    from typer.main import get_command
    from typer.testing import CliRunner

    from cli import app

    def paths(command, path=()):
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from paths(sub, (*path, name))

    every = list(paths(get_command(app)))
    assert len(every) > 20
    for path in every:
        out = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert out.exit_code == 0, (path, out.output)
        assert not TYPE_TAG.search(out.output), (path, TYPE_TAG.search(out.output).group())
    # a flag shows no value; an option taking one shows click's word for it
    out = CliRunner().invoke(app, ["alerts", "list", "--help"], env={"COLUMNS": "200"}).output
    json_line = next(line for line in out.splitlines() if "--json" in line)
    assert not re.search(r"--json\s+[A-Z<]", json_line), json_line
    assert re.search(r"--limit +INTEGER", out) and re.search(r"--ticker +TEXT", out), out

    real = finsent("--help")  # the installed command, as a user types it
    assert real.returncode == 0 and "<bool>" not in real.stdout and "--version" in real.stdout


def test_a_misspelt_setting_stops_a_command_and_doctor_names_the_closest(tmp_path):
    """FINSENT_DATABSE_URL used to leave sqlite:///finsent.db in force without a word."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env["FINSENT_DATABSE_URL"] = f"sqlite:///{tmp_path / 'meant.db'}"
    for args in (["alerts", "list"], ["prune", "--older-than", "400d", "--dry-run"]):
        out = subprocess.run([FINSENT, *args], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.strip() == (
            "error: FINSENT_DATABSE_URL is not a finsent setting (did you mean FINSENT_DATABASE_URL?)"
        )
    assert not (tmp_path / "finsent.db").exists()  # nothing was written to the default database
    doctor = subprocess.run([FINSENT, "doctor"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert doctor.returncode == 1
    assert "FINSENT_DATABSE_URL is not a finsent setting (did you mean FINSENT_DATABASE_URL?)" in doctor.stdout


def test_prune_says_what_it_removes_and_refuses_a_bad_age(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    dry = finsent("prune", "--older-than", "400d", "--dry-run", "--database-url", url)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("older than ") and lines[0].endswith(": would remove")
    assert [line.split()[0] for line in lines[1:]] == ["articles", "mentions", "scores", "attributions",
                                                        "mention_scores", "mention_attributions", "alerts",
                                                        "alert_events", "alert_evidence", "notifications", "rejects",
                                                        "window_buckets"]  # fmt: skip
    bad = finsent("prune", "--older-than", "12h", "--database-url", url)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --older-than '12h': expected a number of days")


# Issue 20: one company's sentiment in a text (`--target`, `--span`) and entity-level evaluation (`--target-col`).


def test_explain_target_scores_one_company_of_several():
    text = "Pfizer wins as Moderna slumps"
    out = finsent("model", "explain", text, "--target", "moderna", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["target"] == {"text": "Moderna", "start": 15, "end": 22} and result["targeted"] is True
    assert result["label"] in ("negative", "neutral", "positive") and result["method"] == "pooling"
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    for a in result["attributions"]:
        assert text[a["start"] : a["end"]] == a["word"]
    same = json.loads(finsent("model", "explain", text, "--span", "15:22", "--json").stdout)
    assert same["probabilities"] == result["probabilities"]
    human = finsent("model", "explain", text, "--target", "Pfizer")
    assert human.returncode == 0 and "target 'Pfizer' [0:6]" in human.stdout and "(targeted)" in human.stdout


def test_explain_target_in_a_one_company_text_is_the_headline_result():
    text = "Shares of Nokia plunged after a profit warning"
    whole = json.loads(finsent("model", "explain", text, "--json").stdout)
    one = json.loads(finsent("model", "explain", text, "--target", "Nokia", "--json").stdout)
    assert one["targeted"] is False
    assert (one["label"], one["probabilities"]) == (whole["label"], whole["probabilities"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "Tesla"], "the target 'Tesla' does not occur in the text"),
        (["--target", ""], "the target is empty"),
        (["--span", "3:99"], "the span 3:99 is outside the text"),
        (["--span", "three"], "write START:END"),
        (["--target", "Pfizer", "--span", "0:6"], "not both"),
    ],
)
def test_explain_bad_target_is_one_clear_line(args, message):
    out = finsent("model", "explain", "Pfizer wins as Moderna slumps", *args)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert out.stderr.startswith("error: ") and message in out.stderr


def test_evaluate_entity_level_file(tmp_path):
    path = tmp_path / "entities.csv"
    rows = [
        ("Pfizer wins as Moderna slumps", "Pfizer", "positive"),
        ("Pfizer wins as Moderna slumps", "Moderna", "negative"),
        ("Shares of Nokia plunged after a profit warning", "Nokia", "negative"),
    ]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "entity", "label"])
        w.writerows(rows)
    out = finsent("model", "evaluate", str(path), "--target-col", "entity", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {"n", "n_texts", "accuracy", "macro_f1", "per_class", "confusion", "ece"} <= set(result)
    assert (result["n"], result["n_texts"]) == (3, 2)
    text = finsent("model", "evaluate", str(path), "--target-col", "entity")
    assert text.returncode == 0 and "texts      2" in text.stdout and "macro-F1" in text.stdout

    path.write_text("text,entity,label\nPfizer wins,Moderna,positive\n")
    bad = finsent("model", "evaluate", str(path), "--target-col", "entity")
    assert bad.returncode == 1 and "line 2: the target 'Moderna' does not occur in the text" in bad.stderr
    missing = finsent("model", "evaluate", str(path), "--target-col", "company")
    assert missing.returncode == 1 and "no column 'company'" in missing.stderr


def test_explain_target_past_what_the_model_reads_is_one_clear_line():
    text = "Apple rises " + "and more " * 150 + "while Nokia falls"
    out = finsent("model", "explain", text, "--target", "Nokia")
    assert out.returncode == 1 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "lies past the 128 word-pieces the model reads" in out.stderr
