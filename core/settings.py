"""Settings for every stage, read from the environment (prefix FINSENT_). Defaults need nothing installed."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to log."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not a URL SQLAlchemy can parse (or a port that is not a number): say nothing about it rather than risk
        # printing a secret.
        return "<unparseable url>"


class Settings(BaseSettings):
    """Where the data lives and how messages travel; `FINSENT_<FIELD>` overrides each field."""

    # hide_input_in_errors: a secret set in the wrong variable must not be echoed by the validation error.
    model_config = SettingsConfigDict(env_prefix="FINSENT_", extra="ignore", hide_input_in_errors=True)

    # Storage. PostgreSQL: postgresql://user:password@host:5432/db (driven by psycopg 3).
    database_url: str = "sqlite:///finsent.db"
    sqlite_busy_timeout_ms: int = Field(5000, ge=0)

    # Transport: `memory` runs every stage in one process; `kafka` talks to a broker.
    transport: Literal["memory", "kafka"] = "memory"
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_client_id: str = "finsent"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None

    topic_raw: str = "news.raw"
    topic_dlq: str = "news.dlq"
    topic_partitions: int = Field(3, ge=1)
    consumer_group: str = "finsent-model"

    # Dynamic batching: a worker takes what is waiting, up to batch_max_size records; a part-full batch waits for
    # more until its oldest record has been queued batch_max_delay_s (Triton's max queue delay).
    batch_max_size: int = Field(256, ge=1)
    batch_max_delay_s: float = Field(0.02, ge=0, le=60)  # a bound: inf killed the scoring thread, 1e9 hung it

    # The one model version every reader shows (dashboard, alert rules and replay, feeds, exports), and the
    # checkpoint the scoring workers load when given none: a folder name in model/weights (at most 64 characters,
    # as scores.model_version). None: the shipped default, model/weights/DEFAULT. docs/model.md, "Rolling out".
    model_version: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)

    # The desk's own companies (CSV or TOML: ticker, name, aliases, isin, status, market, blocked, guarded, note), on
    # top of the shipped universe; docs/entities.md. Declared here with the others; the linker reads the variable
    # itself (once per text, cheaper than building Settings), and `finsent` checks the file at start-up.
    entities_file: str | None = None

    # Operations. metrics_port 0 = no /metrics endpoint; the host stays loopback unless told (0.0.0.0 in a container).
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None  # None: each command's own default

    @field_validator("model_version", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        """FINSENT_MODEL_VERSION= (empty, as an .env file leaves it) means the default, not a version named ""."""
        return None if isinstance(value, str) and not value.strip() else value

    def secret_values(self) -> list[str]:
        """The secret values these settings hold (database password, SASL password), for log redaction."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        out = []
        try:
            password = make_url(self.database_url).password
        except (ArgumentError, ValueError):
            password = None
        if password:
            out.append(str(password))
        if self.kafka_sasl_password is not None:
            out.append(self.kafka_sasl_password.get_secret_value())
        return out

    def __repr_args__(self):
        # Never let a password reach a log line through repr(settings) or an exception message.
        for name, value in super().__repr_args__():
            yield name, (redact_url(value) if name == "database_url" else value)


# FINSENT_ variables read outside `Settings`, each by the module that uses it (dashboard/auth.py, dashboard/cache.py).
OTHER_VARIABLES = frozenset(
    {
        "FINSENT_DASHBOARD_PASSWORD",
        "FINSENT_DASHBOARD_PASSWORD_HASH",
        "FINSENT_DASHBOARD_ALLOW_OPEN",
        "FINSENT_DASHBOARD_REFRESH_S",
        "FINSENT_FEED_URL",
    }
)
# Not settings, and not checked: a secret that a monitor config names (`secret_env = "FINSENT_WEBHOOK_SECRET"`; the
# monitor checks its receivers' secrets), and the switches of the test suite, the benchmarks and tools/audit.py.
_UNCHECKED = re.compile(r"FINSENT_(\w*_(SECRET|TOKEN|KEY|PASSWORD)|(TEST|BENCH|AUDIT)_\w*)")


def known_variables() -> frozenset[str]:
    """Every FINSENT_ variable finsent reads."""
    return frozenset(f"FINSENT_{name.upper()}" for name in Settings.model_fields) | OTHER_VARIABLES


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One message per FINSENT_ variable that finsent does not read, naming the closest known one: a variable such as a
    misspelt FINSENT_DATABASE_URL would otherwise leave the default (sqlite:///finsent.db) in force without a word."""
    environ = os.environ if environ is None else environ
    known = known_variables()
    out = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("FINSENT_") or upper in known or _UNCHECKED.fullmatch(upper):
            continue
        # Compared without the prefix they all share, which would make every name look close.
        close = difflib.get_close_matches(upper[8:], [k[8:] for k in known], n=1, cutoff=0.6)
        hint = f"did you mean FINSENT_{close[0]}?" if close else "docs/operations.md lists the settings"
        out.append(f"{name} is not a finsent setting ({hint})")
    return out
