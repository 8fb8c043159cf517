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
