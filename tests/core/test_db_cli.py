"""`finsent db upgrade` against real SQLite files: no mocks."""

from __future__ import annotations

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
