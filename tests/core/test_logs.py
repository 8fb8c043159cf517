"""core.logs: text and JSON log lines on stderr, and registered secrets never reaching them."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest

from core import logs

PASSWORD = "hunter2@db/Passw0rd"  # characters a URL must encode
ENCODED = quote(PASSWORD, safe="")  # hunter2%40db%2FPassw0rd, as it appears inside a URL


@pytest.fixture
def logging_to(capsys):
    """setup_logging(...) for the test; returns a function giving what was written to stderr since."""
    root = logging.getLogger()
    level = root.level

    def read() -> str:
        return capsys.readouterr().err

    yield read
    for handler in list(root.handlers):
        if getattr(handler, "_finsent", False):
            root.removeHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_the_fields(logging_to):
    logs.setup_logging("INFO", "json")
    logging.getLogger("finsent.test").info("stored %d items", 3, extra={"batch": 7})
    logging.getLogger("finsent.test").debug("not at INFO")
    lines = [json.loads(line) for line in logging_to().splitlines()]
    assert len(lines) == 1
    assert lines[0]["message"] == "stored 3 items" and lines[0]["level"] == "INFO"
    assert lines[0]["logger"] == "finsent.test" and lines[0]["batch"] == 7 and "time" in lines[0]


def test_text_lines_and_setup_replaces_its_own_handler(logging_to):
    logs.setup_logging("WARNING", "text")
    logs.setup_logging("WARNING", "text")  # again: still one line per record, not two
    logging.getLogger("finsent.test").warning("worker %s stopped", "w1")
    out = logging_to().splitlines()
    assert len(out) == 1 and out[0].endswith("WARNING finsent.test: worker w1 stopped")
    with pytest.raises(ValueError, match="log format"):
        logs.setup_logging("INFO", "xml")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_redacted_everywhere_in_a_record(logging_to, fmt):
    logs.setup_logging("INFO", fmt, secrets=[PASSWORD, "tok"])  # "tok" is too short to mask without mangling logs
    log = logging.getLogger("finsent.test")
    log.info("connecting to postgresql://finsent:%s@db:5432/finsent", PASSWORD)
    log.warning(f"url-encoded too: postgresql://u:{ENCODED}@db/x")
    log.info("extra field", extra={"dsn": f"postgresql://u:{PASSWORD}@db/x"})
    try:
        raise RuntimeError(f"driver said: bad password {PASSWORD}")
    except RuntimeError:
        log.exception("connection failed")
    out = logging_to()
    assert PASSWORD not in out and ENCODED not in out
    assert out.count("***") == (4 if fmt == "json" else 3)  # text lines do not show extra fields
    assert "RuntimeError: driver said: bad password ***" in (out if fmt == "text" else out.replace("\\n", "\n"))
    assert "tok" not in out or "token" in out  # short values are left alone
    if fmt == "json":
        assert all(json.loads(line) for line in out.splitlines() if line.startswith("{"))


def test_redact_prefers_the_longest_secret():
    logs.register_secrets("abcd-secret", "abcd-secret-longer")
    assert logs.redact("x abcd-secret-longer y abcd-secret z") == "x *** y *** z"


def test_json_times_are_utc_milliseconds_and_other_libraries_speak_only_when_it_matters(logging_to):
    import re

    logs.setup_logging("INFO", "json")
    logging.getLogger("kafka.conn").info("connecting to 127.0.0.1:9092")  # the chatter of a worker's start-up
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("kafka.conn").warning("broker unreachable")
    logging.getLogger("kafka.coordinator.base").info("Successfully joined group g")  # an event, not chatter
    logging.getLogger("scoring.worker").info("batch of %d", 3, extra={"stored": 3})
    lines = [json.loads(line) for line in logging_to().splitlines()]
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("kafka.conn", "broker unreachable"),
        ("kafka.coordinator.base", "Successfully joined group g"),
        ("scoring.worker", "batch of 3"),
    ]
    assert lines[2]["stored"] == 3
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", x["time"]) for x in lines)
    logs.setup_logging("DEBUG", "json")  # asked for: everything
    logging.getLogger("kafka.conn").info("connecting to 127.0.0.1:9092")
    assert [json.loads(line)["logger"] for line in logging_to().splitlines()] == ["kafka.conn"]
