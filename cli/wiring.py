"""What every command builds (settings, logging, database, transport, scorer, /metrics) and how a command fails:
one clear line on stderr and exit 1. Stages are imported inside the functions so `finsent --help` stays instant."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from http.server import HTTPServer

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from core.settings import Settings
    from core.transport import KafkaTransport
    from model.scorer import Scorer

CheckpointOpt = Annotated[
    Path | None, typer.Option("--checkpoint", help="Checkpoint directory (default: model/weights/DEFAULT).")
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus /metrics on this port (0: off; default FINSENT_METRICS_PORT; bound to "
        "FINSENT_METRICS_HOST, 127.0.0.1 unless set).",
    ),
]
DatabaseOpt = Annotated[
    str | None, typer.Option(help="Database URL (default: FINSENT_DATABASE_URL, else sqlite:///finsent.db).")
]
DateOpt = Annotated[str | None, typer.Option(help="ISO date or time, UTC unless an offset is given.")]

LOGGING: dict[str, str | None] = {}  # --log-format / --log-level of this invocation (set by the root callback)


def printable(text: str) -> str:
    """The text safe for a terminal: control characters (escape sequences included) shown as `\\x1b`, not obeyed."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def fail(message: str) -> NoReturn:
    """One clear line on stderr and a non-zero exit; what the user passed in the message is shown escaped."""
    typer.echo(f"error: {printable(message)}", err=True)
    raise typer.Exit(code=1)


def settings(database_url: str | None = None, **overrides: object) -> Settings:
    """FINSENT_ settings with this command's options on top; a bad variable is one line naming it."""
    from pydantic import ValidationError

    from core.settings import Settings, unknown_variables

    unknown = unknown_variables()
    if unknown:  # a misspelt FINSENT_DATABASE_URL would otherwise run on the default database without a word
        fail("; ".join(unknown))
    try:
        loaded = Settings()
    except ValidationError as exc:
        fail(f"bad FINSENT_ setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    updates = {k: v for k, v in {"database_url": database_url, **overrides}.items() if v is not None}
    return loaded.model_copy(update=updates)


def setup_logging(settings: Settings, default_level: str = "INFO") -> None:
    """Configure logging (text or JSON on stderr) with every secret we know of redacted from it."""
    from core.logs import setup_logging as setup

    # Secrets handed in through the environment under a telling name (the feed token, webhook secrets, passwords).
    named = [v for k, v in os.environ.items() if re.fullmatch(r"FINSENT_\w*(PASSWORD|SECRET|TOKEN)", k.upper())]
    setup(
        LOGGING.get("level") or settings.log_level or default_level,
        LOGGING.get("format") or settings.log_format,
        secrets=[*settings.secret_values(), *named],
    )


def database(settings: Settings, revision: str | None = "head") -> tuple[Engine, sessionmaker[Session]]:
    """(engine, session factory) for the settings' database, migrated to `revision` first (None: as it is)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import DatabaseURLError, SchemaError, make_engine, make_session_factory, upgrade
    from core.settings import redact_url

    try:
        if revision is not None:
            upgrade(settings.database_url, revision)
        engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    except (DatabaseURLError, SchemaError, SQLAlchemyError) as exc:  # a newer finsent's schema among them
        fail(f"{redact_url(settings.database_url)}: {str(exc).splitlines()[0]}")
    return engine, make_session_factory(engine)


def session_factory(database_url: str | None) -> sessionmaker[Session]:
    """The session factory of the migrated database named by the option or FINSENT_DATABASE_URL."""
    return database(settings(database_url))[1]


def kafka(settings: Settings) -> KafkaTransport:
    """A Kafka transport with news.raw and news.dlq created; one clear line when the broker cannot be reached."""
    from core.transport import KafkaTransport, TransportError

    transport = KafkaTransport.from_settings(settings)
    try:
        transport.ensure_topics([settings.topic_raw, settings.topic_dlq], partitions=settings.topic_partitions)
    except TransportError as exc:
        fail(str(exc))
    return transport


def scorer(checkpoint: Path | None, device: str = "cpu", precision: str = "auto") -> Scorer:
    """The model, or one line saying why the checkpoint cannot be used."""
    from model.checkpoints import CheckpointError
    from model.scorer import Scorer

    try:
        return Scorer(checkpoint, device=device, precision=precision)
    except (CheckpointError, ValueError) as exc:
        fail(str(exc))


def model_version(settings: Settings, session_factory: sessionmaker[Session]) -> str:
    """The model version every reader shows (FINSENT_MODEL_VERSION, else the shipped default), or one line saying
    why it cannot be: no checkpoint of it here and no score by it in the database."""
    from core.versions import VersionError, check_version
    from model.checkpoints import CheckpointError, active_version, version_checkpoint

    try:
        version = active_version(settings.model_version)
    except CheckpointError as exc:  # no FINSENT_MODEL_VERSION and no model/weights/DEFAULT
        fail(str(exc))
    with session_factory() as session:
        try:
            check_version(session, version, has_checkpoint=version_checkpoint(version) is not None)
        except VersionError as exc:
            fail(str(exc))
    return version


def pipeline_scorer(settings: Settings, checkpoint: Path | None, device: str = "auto") -> Scorer:
    """The scoring workers' model: --checkpoint, else the checkpoint of FINSENT_MODEL_VERSION (model/weights/<it>),
    else the shipped default; a warning on stderr when it is not the version the readers show."""
    from model.checkpoints import CheckpointError, active_version, version_checkpoint

    if checkpoint is None and settings.model_version is not None:
        checkpoint = version_checkpoint(settings.model_version)
        if checkpoint is None:
            fail(
                f"FINSENT_MODEL_VERSION={settings.model_version}: no checkpoint model/weights/{settings.model_version}"
                " here for the scoring workers: put it there, or pass --checkpoint"
            )
    loaded = scorer(checkpoint, device)
    try:
        shown = active_version(settings.model_version)
    except CheckpointError:
        shown = None
    if shown is not None and loaded.version != shown:
        typer.echo(
            f"warning: scoring with {loaded.version}, but the readers show {shown} (FINSENT_MODEL_VERSION): these "
            f"scores are shown once FINSENT_MODEL_VERSION={loaded.version}",
            err=True,
        )
    return loaded


def metrics_server(
    settings: Settings, port: int | None, checks: dict[str, Callable[[], str | None]] | None = None
) -> HTTPServer | None:
    """Start the Prometheus /metrics endpoint, with /healthz and /readyz (`checks`: a dict the caller may fill once
    the parts it checks exist), when a port is set (option, else FINSENT_METRICS_PORT); else None."""
    port = settings.metrics_port if port is None else port
    if not port:
        return None
    import logging

    from core.metrics import serve_metrics

    try:
        server = serve_metrics(port, settings.metrics_host, checks=checks if checks is not None else {})
    except OSError as exc:
        fail(f"--metrics-port {port}: cannot listen on {settings.metrics_host}: {exc.strerror or exc}")
    # A log line, not a bare print: in a JSON log every line must be a JSON object.
    logging.getLogger("cli.metrics").info(
        "metrics on http://%s:%d/metrics (/healthz, /readyz)", settings.metrics_host, server.server_address[1]
    )
    return server


def readiness(engine: Engine, worker: object | None = None) -> dict[str, Callable[[], str | None]]:
    """The /readyz checks of a process: its database answers, and its scoring worker (if any) is polling and not
    retrying a failure (the broker or the database away)."""
    from core.db import database_problem

    checks: dict[str, Callable[[], str | None]] = {"database": lambda: database_problem(engine)}
    if worker is not None:
        checks["worker"] = worker.problem  # type: ignore[attr-defined]
    return checks


def stop_metrics(server: HTTPServer | None) -> None:
    """Shut the /metrics endpoint down, if one was started."""
    if server is not None:
        server.shutdown()
        server.server_close()


def stop_on_sigterm() -> threading.Event:
    """An event set by SIGTERM (Ctrl-C arrives as KeyboardInterrupt)."""
    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def when(value: str | None, name: str) -> datetime | None:
    """An ISO date or time option, UTC unless it carries an offset."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name}: {value!r} is not an ISO date or time (e.g. 2020-01-31 or 2020-01-31T09:30:00Z)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)
