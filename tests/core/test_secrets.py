"""Secrets come from the environment and never reach output: error lines, validation errors, reprs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings, redact_url
from core.transport import KafkaTransport

FINSENT = str(Path(sys.executable).parent / "finsent")
PASSWORD = "pg-s3cret-pw"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://finsent:{PASSWORD}@127.0.0.1:1/finsent",  # nothing listens: connection refused
        f"postgresql://finsent:{PASSWORD}@127.0.0.1:notaport/finsent",  # was a traceback (ValueError from the URL)
        f"mysql://finsent:{PASSWORD}@127.0.0.1/finsent",  # unsupported backend
        f"{PASSWORD}",  # not a URL at all
    ],
)
def test_a_bad_database_url_is_one_error_line_without_the_password(url):
    done = subprocess.run([FINSENT, "db", "upgrade", "--database-url", url], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1 and output.startswith("error: ") and len(output.strip().splitlines()) == 1, output
    assert PASSWORD not in output and "Traceback" not in output


def test_redact_url_masks_or_says_nothing():
    assert redact_url(f"postgresql://u:{PASSWORD}@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url(f"postgresql://u:{PASSWORD}@h:notaport/db") == "<unparseable url>"


def test_a_validation_error_does_not_echo_its_input(monkeypatch):
    monkeypatch.setenv("FINSENT_TRANSPORT", PASSWORD)  # a secret pasted into the wrong variable
    with pytest.raises(ValidationError) as err:
        Settings()
    assert "transport" in str(err.value) and PASSWORD not in str(err.value)


def test_settings_and_transport_reprs_hold_no_secret(monkeypatch):
    monkeypatch.setenv("FINSENT_DATABASE_URL", f"postgresql://finsent:{PASSWORD}@db:5432/finsent")
    monkeypatch.setenv("FINSENT_KAFKA_SASL_PASSWORD", "k4fka-s3cret")
    monkeypatch.setenv("FINSENT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    settings = Settings()
    transport = KafkaTransport.from_settings(settings)
    for text in (repr(settings), str(settings), repr(transport), str(transport)):
        assert PASSWORD not in text and "k4fka-s3cret" not in text
    assert settings.kafka_sasl_password.get_secret_value() == "k4fka-s3cret"  # the value itself is kept for use
