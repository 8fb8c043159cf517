"""`finsent db upgrade` against real SQLite files: no mocks."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from cli import app


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    from core.db import ALEMBIC_DIR

    return ScriptDirectory(str(ALEMBIC_DIR)).get_current_head()


def test_db_upgrade_creates_and_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setenv("FINSENT_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    runner = CliRunner()
    head = head_revision()
    assert head is not None
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert result.output.endswith(f"at revision {head}\n")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'env.db'}")
    assert "articles" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_db_upgrade_option_beats_env_and_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FINSENT_DATABASE_URL", "sqlite:///should-not-be-used.db")
    result = CliRunner().invoke(app, ["db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'opt.db'}"])
    assert result.exit_code == 0 and (tmp_path / "opt.db").exists()

    result = CliRunner().invoke(app, ["db", "upgrade", "--database-url", "mysql://root:hunter2@db/x"])
    assert result.exit_code == 1
    assert "unsupported database 'mysql'" in result.output and "hunter2" not in result.output


def test_db_upgrade_to_an_unknown_revision_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["db", "upgrade", "nonsense", "--database-url", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "cannot migrate to 'nonsense'" in result.output, result.output


def finsent(*args: str, url: str) -> subprocess.CompletedProcess:
    """The real command in its own process (its stderr alone, as a shell sees it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")} | {"FINSENT_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, env=env, timeout=300)


def test_a_database_migrated_by_a_newer_finsent_stops_every_command_with_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    assert finsent("db", "upgrade", url=url).returncode == 0
    with sqlite3.connect(tmp_path / "newer.db") as conn:  # what a newer finsent's migration leaves behind
        conn.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    news = tmp_path / "news.csv"
    news.write_text("title,published_at\nBarclays beats forecasts,2020-03-02T09:00:00Z\n")
    config = Path(__file__).resolve().parents[2] / "monitor.example.toml"
    for args in (
        ["backfill", str(news)],
        ["alerts", "list"],
        ["alerts", "silences"],
        ["alerts", "replay", "--config", str(config), "--since", "2020-03-01", "--until", "2020-03-03"],
        ["monitor", "--config", str(config), "--once"],
        ["dashboard"],  # stops before Streamlit starts
        ["db", "upgrade"],
    ):
        out = finsent(*args, url=url)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stdout, (args, out.stdout)  # (backfill prints its column mapping first)
        assert out.stderr.count("\n") == 1, (args, out.stderr)
        assert out.stderr.startswith(f"error: {url}: the database is at revision 'ffffffffffff', which this finsent "
                                     "does not know"), (args, out.stderr)  # fmt: skip
        assert "a newer finsent migrated it; upgrade finsent" in out.stderr

    # doctor's report is one line a check on stdout: the migrations line says the same, and nothing goes to stderr
    out = finsent("doctor", url=url)
    assert out.returncode == 1 and out.stderr == "", out.stderr
    [line] = [line for line in out.stdout.splitlines() if line.startswith("FAIL")]
    assert re.match(r"FAIL migrations +the database is at revision 'ffffffffffff', .*a newer finsent migrated it$",
                    line), line  # fmt: skip
    assert "upgrade finsent" in out.stdout
    with sqlite3.connect(tmp_path / "newer.db") as conn:  # and nothing tried to migrate it
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("ffffffffffff",)]
