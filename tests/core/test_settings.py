"""Settings: defaults that need nothing installed, FINSENT_* overrides, no secret in repr."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings, redact_url


def test_defaults_need_nothing_installed(monkeypatch):
    for name in ("DATABASE_URL", "TRANSPORT", "KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(f"FINSENT_{name}", raising=False)
    s = Settings()
    assert (s.database_url, s.transport, s.kafka_bootstrap) == ("sqlite:///finsent.db", "memory", "127.0.0.1:9092")
    assert (s.topic_raw, s.topic_dlq) == ("news.raw", "news.dlq")


def test_environment_overrides_and_validation(monkeypatch):
    monkeypatch.setenv("FINSENT_TRANSPORT", "kafka")
    monkeypatch.setenv("FINSENT_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("FINSENT_BATCH_MAX_SIZE", "64")
    s = Settings()
    assert (s.transport, s.kafka_bootstrap, s.batch_max_size) == ("kafka", "kafka:9092", 64)
    monkeypatch.setenv("FINSENT_TRANSPORT", "carrier-pigeon")
    with pytest.raises(ValidationError, match="transport"):
        Settings()


@pytest.mark.parametrize("delay", ["inf", "nan", "1e9", "-1"])
def test_a_batch_delay_that_would_stop_the_worker_is_refused(monkeypatch, delay):
    """D6 of issue 17: `inf` killed the scoring thread (the run exited 0, "stored 0"), `1e9` hung it."""
    monkeypatch.setenv("FINSENT_BATCH_MAX_DELAY_S", delay)
    with pytest.raises(ValidationError, match="batch_max_delay_s"):
        Settings()


def test_secrets_never_reach_repr(monkeypatch):
    monkeypatch.setenv("FINSENT_DATABASE_URL", "postgresql://finsent:s3cret@db:5432/finsent")
    monkeypatch.setenv("FINSENT_KAFKA_SASL_PASSWORD", "k4fka-pw")
    s = Settings()
    for text in (repr(s), str(s)):
        assert "s3cret" not in text and "k4fka-pw" not in text
    assert "postgresql://finsent:***@db:5432/finsent" in repr(s)
    assert s.database_url.endswith(":s3cret@db:5432/finsent")  # the value itself is intact for the engine
    assert redact_url("not a url") == "<unparseable url>"


def test_a_misspelt_variable_is_named_with_the_closest_setting():
    from core.settings import unknown_variables

    environ = {
        "FINSENT_DATABSE_URL": "postgresql://db/x",  # the typo the issue saw fall back to sqlite:///finsent.db
        "FINSENT_METRIC_PORT": "9100",
        "FINSENT_SOMETHING_ELSE": "1",
        "FINSENT_DATABASE_URL": "sqlite:///x.db",  # known
        "finsent_log_format": "json",  # known: the settings read names in any case
        "FINSENT_DASHBOARD_PASSWORD": "pw",  # read by the dashboard
        "FINSENT_WEBHOOK_SECRET": "s",  # a secret a monitor config names
        "FINSENT_TEST_POSTGRES": "postgresql://x",  # the test suite's
        "PATH": "/bin",
    }
    assert unknown_variables(environ) == [
        "FINSENT_DATABSE_URL is not a finsent setting (did you mean FINSENT_DATABASE_URL?)",
        "FINSENT_METRIC_PORT is not a finsent setting (did you mean FINSENT_METRICS_PORT?)",
        "FINSENT_SOMETHING_ELSE is not a finsent setting (docs/operations.md lists the settings)",
    ]


def test_every_variable_the_code_reads_is_known():
    """The list of known variables stays honest: a FINSENT_ name that the product's code reads (outside tests,
    benchmarks and tools) is a setting or in OTHER_VARIABLES, or a secret's name, which is not checked."""
    import re
    from pathlib import Path

    from core.settings import unknown_variables

    repo = Path(__file__).resolve().parents[2]
    names = set()
    for folder in ("core", "model", "ingest", "scoring", "monitor", "dashboard", "cli"):
        for path in (repo / folder).rglob("*.py"):
            names |= set(re.findall(r"\bFINSENT_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
    names -= {"FINSENT_KAFKA_SASL"}  # a prefix in a comment, not a variable
    assert "FINSENT_DASHBOARD_PASSWORD_HASH" in names and "FINSENT_DATABASE_URL" in names
    assert unknown_variables(dict.fromkeys(names, "x")) == []
