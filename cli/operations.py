"""Operations: `finsent db upgrade` (the schema), `finsent doctor` (is everything a deployment needs in place?)
and `finsent dashboard` (the Streamlit app as its own process)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import wiring
from cli.wiring import CheckpointOpt, DatabaseOpt

db_app = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url: DatabaseOpt = None,
) -> None:
    """Create or migrate the database schema (alembic upgrade head); safe to run on every start."""
    from core.db import current_revision
    from core.settings import redact_url

    settings = wiring.settings(database_url)
    engine, _ = wiring.database(settings, revision=revision)
    try:
        now_at = current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(f"{redact_url(settings.database_url)} at revision {now_at}")


DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def dashboard_command_line(*, host: str, port: int) -> list[str]:
    """How to start the Streamlit dashboard as its own process."""
    return [
        sys.executable, "-m", "streamlit", "run", str(DASHBOARD),
        "--server.headless", "true", "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",  # no "Deploy" button or developer menu for analysts
    ]  # fmt: skip


def dashboard_command(
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 unless told otherwise).")] = "127.0.0.1",
    port: int = 8501,
    database_url: DatabaseOpt = None,
) -> None:
    """Start the analyst dashboard (Streamlit); it reads the database only."""
    from core.addresses import (
        ALLOW_OPEN_ENV,
        HASH_ENV,
        PASSWORD_ENV,
        dashboard_exposed_without_password,
        is_loopback,
        placeholder_problem,
    )

    if dashboard_exposed_without_password(host):
        # The page would refuse every visitor anyway (dashboard.auth.gate); saying so here saves a blind start.
        wiring.fail(
            f"--host {host!r} listens beyond this machine and no password is set: set {PASSWORD_ENV} (or "
            f"{HASH_ENV}), or {ALLOW_OPEN_ENV}=1 when a proxy in front of it authenticates"
        )
    problem = None if is_loopback(host) else placeholder_problem(PASSWORD_ENV, os.environ.get(PASSWORD_ENV))
    if problem:
        wiring.fail(f"--host {host!r}: {problem}")
    settings = wiring.settings(database_url)
    _, session_factory = wiring.database(settings)  # migrated before anyone looks
    wiring.model_version(settings, session_factory)  # an unknown FINSENT_MODEL_VERSION: one line here, not a page
    env = {**os.environ, "FINSENT_DATABASE_URL": settings.database_url}
    typer.echo(f"dashboard on http://{host}:{port}", err=True)
    command = dashboard_command_line(host=host, port=port)
    # exec, not a child: signals (Ctrl-C, SIGTERM from a supervisor or a test) reach Streamlit itself.
    os.execve(command[0], command, env)


def doctor_command(
    sources: Annotated[Path | None, typer.Option(help="Also check this sources TOML.")] = None,
    monitor: Annotated[Path | None, typer.Option(help="Also check this monitor TOML.")] = None,
    checkpoint: CheckpointOpt = None,
    database_url: DatabaseOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the database and the broker.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: {ok, checks: [...]}.")] = False,
) -> None:
    """Check the database, migrations, broker, model checkpoint and configs; say what is wrong and how to fix it."""
    from core import doctor
    from ingest.config import describe_sources, load_sources
    from model.checkpoints import CHECKPOINT_FILES, WEIGHTS_DIR, default_checkpoint
    from model.scorer import load_network
    from monitor.rules import describe_config, load_monitor_config, required_secrets

    settings, settings_check = doctor.check_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    wiring.setup_logging(settings, "WARNING")
    checks = [settings_check, *doctor.check_database(settings.database_url, timeout_s=timeout)]
    checks.append(doctor.check_broker(settings, timeout_s=timeout))
    # Without --checkpoint: the one the scoring workers load, FINSENT_MODEL_VERSION's, else the shipped default.
    version = settings.model_version
    workers = (lambda: WEIGHTS_DIR / version) if version else default_checkpoint
    checks.append(doctor.check_checkpoint(checkpoint, default=workers, load=load_network, files=CHECKPOINT_FILES))
    sources_check, _ = doctor.check_config("sources", sources, load=load_sources, describe=describe_sources,
                                           option="--sources")  # fmt: skip
    monitor_check, config = doctor.check_config("monitor", monitor, load=load_monitor_config,
                                                describe=describe_config, option="--monitor")  # fmt: skip
    checks += [sources_check, monitor_check]
    if monitor is not None:
        checks.append(doctor.check_environment("secrets", required_secrets(config) if config is not None else {}))
    typer.echo(json.dumps(doctor.as_json(checks), indent=2) if as_json else doctor.as_text(checks))
    if doctor.failed(checks):
        raise typer.Exit(code=1)
