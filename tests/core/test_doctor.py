"""`finsent doctor` on real databases, a closed broker port, real and broken checkpoints and configs."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from core.db import upgrade
from tests.support.broker import free_port

REPO = Path(__file__).resolve().parent.parent.parent
PASSWORD = "Doctor-Pw-7f3a9c"
SASL_PASSWORD = "Sasl-Pw-0b1e55"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No FINSENT_ setting of the developer's shell leaks in; the log handler doctor installs is removed after."""
    for name in list(os.environ):
        if name.startswith("FINSENT_"):
            monkeypatch.delenv(name)
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_finsent", False):
            root.removeHandler(handler)


def doctor(*args: str, **env: str) -> tuple[int, str, dict[str, dict]]:
    """Run `finsent doctor --json ARGS` in-process; (exit code, the JSON text, {check name: check})."""
    result = CliRunner().invoke(app, ["doctor", "--json", "--timeout", "2", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    body = json.loads(result.stdout)
    assert body["ok"] is (result.exit_code == 0)
    return result.exit_code, result.stdout, {c["name"]: c for c in body["checks"]}


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_a_healthy_sqlite_deployment_passes(tmp_path):
    url = sqlite_url(tmp_path / "ok.db")
    upgrade(url)
    code, _, checks = doctor(FINSENT_DATABASE_URL=url)
    assert code == 0
    assert {name: c["status"] for name, c in checks.items()} == {
        "settings": "ok",
        "database": "ok",
        "migrations": "ok",
        "broker": "skip",
        "checkpoint": "ok",
        "sources": "skip",
        "monitor": "skip",
    }
    assert checks["migrations"]["detail"].startswith("at head ")
    assert "loads from" in checks["checkpoint"]["detail"]

    text = CliRunner().invoke(
        app,
        ["doctor", "--sources", str(REPO / "sources.example.toml"), "--monitor", str(REPO / "monitor.example.toml")],
        env={"FINSENT_DATABASE_URL": url},
    )
    assert text.exit_code == 0, text.stdout
    lines = text.stdout.splitlines()
    assert len(lines) == 8 and all(re.match(r"(OK|SKIP) +\w+ ", line) for line in lines), lines
    assert any(re.match(r"OK +sources +.*3 source\(s\)", line) for line in lines)
    assert any(re.match(r"OK +monitor +.*5 rule\(s\)", line) for line in lines)


def test_migrations_behind_and_no_schema_are_reported_with_the_fix(tmp_path):
    url = sqlite_url(tmp_path / "old.db")
    upgrade(url, "0001")
    code, _, checks = doctor(FINSENT_DATABASE_URL=url)
    assert code == 1
    assert checks["database"]["status"] == "ok"
    assert checks["migrations"]["status"] == "fail"
    assert re.match(r"at 0001, \d+ migration\(s\) behind head \w+", checks["migrations"]["detail"])
    assert "finsent db upgrade" in checks["migrations"]["fix"]

    empty = tmp_path / "empty.db"
    import sqlite3

    sqlite3.connect(empty).close()  # a database file with no schema at all
    code, _, checks = doctor(FINSENT_DATABASE_URL=sqlite_url(empty))
    assert code == 1 and checks["migrations"]["detail"].startswith("no schema")

    missing = tmp_path / "missing.db"
    code, _, checks = doctor(FINSENT_DATABASE_URL=sqlite_url(missing))
    assert code == 1 and checks["database"]["detail"].endswith("no such database file")
    assert checks["migrations"]["status"] == "skip"
    assert not missing.exists()  # looking did not create it


def test_an_unreachable_broker_is_reported(tmp_path):
    url = sqlite_url(tmp_path / "ok.db")
    upgrade(url)
    port = free_port()  # bound and released: nothing listens there
    code, _, checks = doctor(
        FINSENT_DATABASE_URL=url, FINSENT_TRANSPORT="kafka", FINSENT_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}"
    )
    assert code == 1
    assert checks["broker"]["status"] == "fail"
    assert f"127.0.0.1:{port}" in checks["broker"]["detail"]
    assert "FINSENT_KAFKA_BOOTSTRAP" in checks["broker"]["fix"]
    assert checks["database"]["status"] == checks["migrations"]["status"] == "ok"  # the other checks still ran


@pytest.mark.kafka
def test_a_reachable_broker_reports_its_topics(tmp_path, kafka_bootstrap):
    url = sqlite_url(tmp_path / "ok.db")
    upgrade(url)
    env = dict(FINSENT_DATABASE_URL=url, FINSENT_TRANSPORT="kafka", FINSENT_KAFKA_BOOTSTRAP=kafka_bootstrap)
    code, _, checks = doctor(**env, FINSENT_TOPIC_RAW="doctor.raw.absent")
    assert code == 0 and checks["broker"]["status"] == "warn"
    assert "doctor.raw.absent" in checks["broker"]["detail"]

    from core.transport import KafkaTransport

    admin = KafkaTransport(kafka_bootstrap)
    admin.ensure_topics(["doctor.raw", "doctor.dlq"], partitions=4)
    code, _, checks = doctor(**env, FINSENT_TOPIC_RAW="doctor.raw", FINSENT_TOPIC_DLQ="doctor.dlq")
    assert code == 0 and checks["broker"]["status"] == "ok"
    assert "doctor.raw (4 partitions)" in checks["broker"]["detail"]


def test_a_missing_or_broken_checkpoint_is_reported(tmp_path, checkpoint):
    url = sqlite_url(tmp_path / "ok.db")
    upgrade(url)
    code, _, checks = doctor("--checkpoint", str(tmp_path / "no-such-weights"), FINSENT_DATABASE_URL=url)
    assert code == 1 and checks["checkpoint"]["status"] == "fail"
    assert "no such checkpoint directory" in checks["checkpoint"]["detail"]

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((checkpoint / "config.json").read_text())
    code, _, checks = doctor("--checkpoint", str(partial), FINSENT_DATABASE_URL=url)
    assert code == 1 and "missing model.safetensors, tokenizer.json, card.json" in checks["checkpoint"]["detail"]

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "card.json"):
        (broken / name).write_bytes((checkpoint / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    code, _, checks = doctor("--checkpoint", str(broken), FINSENT_DATABASE_URL=url)
    assert code == 1 and "does not load" in checks["checkpoint"]["detail"]


def test_bad_configs_settings_and_unset_secrets_are_reported(tmp_path):
    url = sqlite_url(tmp_path / "ok.db")
    upgrade(url)
    sources = tmp_path / "sources.toml"
    sources.write_text('[[source]]\nname = "wire"\nkind = "rss"\nurl = "ftp://example.com/feed"\n')
    monitor = tmp_path / "monitor.toml"
    monitor.write_text(
        'route_receivers = ["desk"]\n[[receiver]]\nname = "desk"\nkind = "webhook"\n'
        'url = "http://127.0.0.1:9/alerts"\nsecret_env = "DOCTOR_TEST_WEBHOOK_SECRET"\n'
    )
    code, _, checks = doctor(
        "--sources", str(sources), "--monitor", str(monitor), FINSENT_DATABASE_URL=url, FINSENT_BATCH_MAX_SIZE="zero"
    )
    assert code == 1
    assert checks["settings"]["status"] == "fail" and "FINSENT_BATCH_MAX_SIZE" in checks["settings"]["detail"]
    assert checks["database"]["status"] == "ok"  # the other settings were still used
    assert checks["sources"]["status"] == "fail" and "url" in checks["sources"]["detail"]
    assert checks["monitor"]["status"] == "ok"
    assert checks["secrets"]["status"] == "fail"
    assert "DOCTOR_TEST_WEBHOOK_SECRET" in checks["secrets"]["detail"] and "desk" in checks["secrets"]["detail"]

    code, out, checks = doctor(
        "--monitor", str(monitor), FINSENT_DATABASE_URL=url, DOCTOR_TEST_WEBHOOK_SECRET="webhook-secret-value-42"
    )
    assert code == 0 and checks["secrets"]["status"] == "ok"
    assert "webhook-secret-value-42" not in out


def test_passwords_never_reach_the_output_or_the_logs(tmp_path):
    """A real process, JSON logs at DEBUG, a PostgreSQL URL with a password, a SASL password, a closed broker."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    env |= {
        "FINSENT_DATABASE_URL": f"postgresql://finsent:{PASSWORD}@127.0.0.1:{free_port()}/finsent",
        "FINSENT_TRANSPORT": "kafka",
        "FINSENT_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "FINSENT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "FINSENT_KAFKA_SASL_MECHANISM": "PLAIN",
        "FINSENT_KAFKA_SASL_USERNAME": "finsent",
        "FINSENT_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "FINSENT_LOG_FORMAT": "json",
        "FINSENT_LOG_LEVEL": "DEBUG",
    }
    for extra in ([], ["--json"]):
        out = subprocess.run(
            [sys.executable, "-m", "cli", "doctor", "--timeout", "2", *extra],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=tmp_path,
        )
        assert out.returncode == 1, out.stderr
        assert "postgresql://finsent:***@127.0.0.1" in out.stdout  # the URL is shown, its password masked
        for secret in (PASSWORD, SASL_PASSWORD):
            assert secret not in out.stdout and secret not in out.stderr
        logged = [json.loads(line) for line in out.stderr.splitlines() if line.strip()]  # one JSON object a line
        # kafka-python logs its whole configuration, SASL password included, at DEBUG: the filter masked it.
        assert any(r["logger"].startswith("kafka") and "***" in r["message"] for r in logged), out.stderr[-2000:]
