"""`finsent doctor`: look at everything a deployment needs and say, one line each, what is wrong and how to fix it.

Each check returns a `Check` (ok, warn, fail or skip) and never raises. The checks of the stages (the model
checkpoint, the sources and monitor configs) take the stage's own loader as an argument, so `core` imports no
stage: the CLI hands them in. Details never carry a secret: URLs are shown with the password masked and every
line goes through the log redaction (`core.logs.redact`) before it is printed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from core.logs import redact
from core.settings import Settings, redact_url, unknown_variables

STATUSES = ("ok", "warn", "fail", "skip")
T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, what was seen, and what to do about it."""

    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error; its own text is the useful one
    text = str(orig if orig is not None else exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


# ---------------------------------------------------------------------------------------------------- database


def check_settings() -> tuple[Settings, Check]:
    """The FINSENT_ settings and how they read; bad variables are reported and the other checks run with those
    variables at their defaults."""
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        what = f"FINSENT_{str(err['loc'][0]).upper()}: {err['msg']}"
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        try:
            settings = Settings(**{name: Settings.model_fields[name].default for name in bad})
        except (ValidationError, KeyError):
            settings = Settings.model_construct()
        return settings, Check("settings", "fail", what, "fix that variable (see docs/operations.md, Settings)")
    unknown = unknown_variables()
    if unknown:  # a misspelt variable leaves its default in force: say so before anything else is read wrongly
        return settings, Check("settings", "fail", "; ".join(unknown), "rename or remove it (docs/operations.md)")
    backend = settings.database_url.split(":", 1)[0]
    return settings, Check("settings", "ok", f"transport {settings.transport}, database {backend}")


def check_database(url: str, *, timeout_s: float = 5.0) -> list[Check]:
    """The database answers a query, and its schema is at the newest Alembic migration."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    from core.db import DatabaseURLError, make_engine, normalize_url

    safe = redact_url(url)
    no_migrations = Check("migrations", "skip", "the database could not be reached")
    try:
        normalized = normalize_url(url)
        parsed = make_url(normalized)
    except (DatabaseURLError, ArgumentError, ValueError) as exc:
        return [
            Check(
                "database",
                "fail",
                f"{safe}: {_first_line(exc)}",
                "set FINSENT_DATABASE_URL to sqlite:///PATH or postgresql://USER:PASSWORD@HOST:5432/DB",
            ),
            no_migrations,
        ]
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:") and not Path(parsed.database).is_file():
        # Connecting would create an empty file: report instead of leaving one behind.
        return [
            Check(
                "database",
                "fail",
                f"{safe}: no such database file",
                "run `finsent db upgrade` to create and migrate it, or fix FINSENT_DATABASE_URL",
            ),
            no_migrations,
        ]
    if backend == "postgresql":
        engine = create_engine(normalized, poolclass=NullPool, connect_args={"connect_timeout": max(1, int(timeout_s))})
    else:
        engine = make_engine(normalized)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            version = ".".join(str(p) for p in (connection.dialect.server_version_info or ()))
            database = Check("database", "ok", f"{safe} answers ({backend} {version})")
            migrations = _check_migrations(connection)
    except SQLAlchemyError as exc:
        fix = (
            "is the server running and reachable, and are the user, password and database name right? "
            "(FINSENT_DATABASE_URL)"
            if backend == "postgresql"
            else "is the file a finsent SQLite database, readable and writable? (FINSENT_DATABASE_URL)"
        )
        return [Check("database", "fail", f"{safe}: {_first_line(exc)}", fix), no_migrations]
    finally:
        engine.dispose()
    return [database, migrations]


def _check_migrations(connection) -> Check:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from core.db import ALEMBIC_DIR, UnknownRevisionError, check_known

    script = ScriptDirectory(str(ALEMBIC_DIR))
    heads = script.get_heads()
    head = heads[0] if len(heads) == 1 else ", ".join(heads)
    current = MigrationContext.configure(connection).get_current_revision()
    upgrade = "run `finsent db upgrade` (safe on every start; it is also what the workers run first)"
    if current is None:
        return Check("migrations", "fail", f"no schema: no migration applied (head is {head})", upgrade)
    if current in heads:
        return Check("migrations", "ok", f"at head {current}")
    try:  # the same words every other command stops with (core.db.upgrade)
        check_known(current)
    except UnknownRevisionError as exc:
        return Check("migrations", "fail", exc.detail, exc.FIX)
    behind = [rev.revision for rev in script.iterate_revisions(head, current)][:-1]
    return Check("migrations", "fail", f"at {current}, {len(behind)} migration(s) behind head {head}", upgrade)


# ------------------------------------------------------------------------------------------------------ broker


def check_broker(settings: Settings, *, timeout_s: float = 5.0) -> Check:
    """With FINSENT_TRANSPORT=kafka: the bootstrap servers answer, and news.raw has enough partitions."""
    from core.transport import KafkaTransport, TransportError

    if settings.transport != "kafka":
        return Check("broker", "skip", "FINSENT_TRANSPORT=memory: every stage runs in one process, no broker")
    topics = [settings.topic_raw, settings.topic_dlq]
    client_log = logging.getLogger("kafka")
    level = client_log.level
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        client_log.setLevel(logging.CRITICAL)  # each failed connection attempt is an ERROR line; the check says it once
    try:
        counts = KafkaTransport.from_settings(settings).describe_topics(topics, timeout_s=timeout_s)
    except TransportError as exc:
        return Check(
            "broker",
            "fail",
            _first_line(exc),
            "is Kafka running and FINSENT_KAFKA_BOOTSTRAP right (host:port, comma-separated)? With TLS/SASL, check "
            "FINSENT_KAFKA_SECURITY_PROTOCOL and the FINSENT_KAFKA_SASL_* settings",
        )
    finally:
        client_log.setLevel(level)
    missing = [t for t, n in counts.items() if n is None]
    described = ", ".join(f"{t} ({n} partitions)" for t, n in counts.items() if n is not None)
    if missing:
        seen = f"; {described}" if described else ""
        return Check(
            "broker",
            "warn",
            f"{settings.kafka_bootstrap} answers; topic(s) {', '.join(missing)} missing{seen}",
            f"`finsent score` and `finsent ingest` create them on start, with FINSENT_TOPIC_PARTITIONS="
            f"{settings.topic_partitions} partitions",
        )
    raw = counts[settings.topic_raw] or 0
    return Check(
        "broker",
        "ok",
        f"{settings.kafka_bootstrap} answers; {described}: up to {raw} workers of group "
        f"{settings.consumer_group!r} share {settings.topic_raw}",
    )


# ------------------------------------------------------------------------------------------- stages' artefacts


def check_checkpoint(
    path: Path | None,
    *,
    default: Callable[[], Path],
    load: Callable[[Path], tuple[Any, dict]],
    files: Sequence[str],
) -> Check:
    """The checkpoint directory exists, has its files, and the network loads from it."""
    try:
        path = Path(path) if path is not None else default()
    except Exception as exc:
        return Check("checkpoint", "fail", _first_line(exc), "restore model/weights/DEFAULT or pass --checkpoint DIR")
    if not path.is_dir():
        return Check(
            "checkpoint",
            "fail",
            f"{path}: no such checkpoint directory",
            "pass --checkpoint DIR of a trained model (model/weights/<version>), or `finsent model train`",
        )
    missing = [name for name in files if not (path / name).is_file()]
    if missing:
        return Check(
            "checkpoint",
            "fail",
            f"{path}: missing {', '.join(missing)}",
            "copy the whole checkpoint directory (or retrain with `finsent model train`)",
        )
    try:
        _net, config = load(path)
    except Exception as exc:
        return Check(
            "checkpoint",
            "fail",
            f"{path}: does not load: {_first_line(exc)}",
            "the files are damaged or from another finsent version: restore or retrain",
        )
    return Check("checkpoint", "ok", f"{config.get('version', path.name)} loads from {path}")


def check_config(
    name: str, path: Path | None, *, load: Callable[[Path], T], describe: Callable[[T], str], option: str
) -> tuple[Check, T | None]:
    """A TOML config (sources, monitor) parses; skipped when no file was given. Returns the check and the config."""
    if path is None:
        return Check(name, "skip", f"no {option} given"), None
    try:
        loaded = load(path)
    except Exception as exc:
        return Check(name, "fail", _first_line(exc), f"fix the key named above in {path}"), None
    return Check(name, "ok", f"{path}: {describe(loaded)}"), loaded


def check_environment(name: str, needed: dict[str, str]) -> Check:
    """Environment variables the configuration names (secrets, tokens) are set; values are never shown."""
    if not needed:
        return Check(name, "skip", "no secret named by the configuration")
    unset = [f"{var} ({why})" for var, why in needed.items() if not os.environ.get(var)]
    if unset:
        return Check(name, "fail", "not set: " + "; ".join(unset), "set them in the environment (never in a file)")
    return Check(name, "ok", "set: " + ", ".join(needed))


# ---------------------------------------------------------------------------------------------------- output


def failed(checks: Iterable[Check]) -> bool:
    """True when any check failed (doctor exits 1)."""
    return any(c.status == "fail" for c in checks)


def as_text(checks: Iterable[Check]) -> str:
    """One line per check, `OK   name  detail`, with `-> fix` under a failure or warning."""
    lines = []
    for c in checks:
        lines.append(redact(f"{c.status.upper():<5}{c.name:<12} {c.detail}"))
        if c.fix and c.status in ("fail", "warn"):
            lines.append(redact(f"{'':<17} -> {c.fix}"))
    return "\n".join(lines)


def as_json(checks: list[Check]) -> dict:
    """{"ok": bool, "checks": [{name, status, detail, fix}]} with secrets redacted."""
    return {
        "ok": not failed(checks),
        "checks": [{k: redact(v) for k, v in asdict(c).items()} for c in checks],
    }
