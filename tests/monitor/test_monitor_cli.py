"""The monitor commands as an operator runs them: bad config stops start-up; alerts list, ack, silence, replay."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.monitor.test_alerts import VERSION, add_story

REPO = Path(__file__).resolve().parents[2]
PINNED = {"FINSENT_MODEL_VERSION": VERSION}  # the stories of add_story are scored by VERSION, not the shipped model


def finsent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=120, env=base | (env or {}), cwd=REPO)  # fmt: skip


@pytest.fixture
def db(tmp_path):
    from core.db import make_engine, make_session_factory, upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield url, make_session_factory(engine)
    engine.dispose()


def test_bad_config_stops_start_up_naming_file_and_key(tmp_path, db):
    url, _ = db
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nname = "x"\ntype = "negative_burst"\nmin_confidence = "high"\n')
    out = finsent("monitor", "--config", str(bad), "--once", "--database-url", url)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith(f"error: {bad}: rule #1 ('x'): min_confidence:")
    receiver = tmp_path / "receiver.toml"
    receiver.write_text('[[receiver]]\nname = "hook"\nkind = "webhook"\n')
    out = finsent("monitor", "--config", str(receiver), "--once", "--database-url", url)
    assert out.returncode == 1 and "receiver #1 ('hook')" in out.stderr and "url" in out.stderr
    # Issue 17, D12: a secret written into the file (not named by secret_env) is one line naming file and key,
    # and its value is never echoed.
    receiver.write_text('[[receiver]]\nname = "hook"\nkind = "webhook"\nurl = "https://example.com/h"\n'
                        'secret = "s3cr3t-in-the-file"\n')  # fmt: skip
    out = finsent("monitor", "--config", str(receiver), "--once", "--database-url", url)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "s3cr3t-in-the-file" not in out.stderr
    assert out.stderr.startswith(f"error: {receiver}: receiver #1 ('hook'): secret:")


def test_list_ack_silence_and_replay(tmp_path, db):
    url, factory = db
    now = datetime.now(UTC)
    for i in range(3):
        add_story(factory, ticker="AAPL", when=now - timedelta(minutes=5 + i), title=f"Apple shares plunge {i}")
    config = tmp_path / "monitor.toml"
    config.write_text(
        'route_receivers = ["log"]\n[[receiver]]\nname = "log"\nkind = "log"\n'
        '[[rule]]\nname = "burst"\ntype = "negative_burst"\nwindow = "1h"\nmin_stories = 3\n'
        'annotations.summary = "{ticker}: {value} negative stories"\n'
    )
    out = finsent("monitor", "--config", str(config), "--once", "--database-url", url, env=PINNED)
    assert out.returncode == 0, out.stderr
    assert "fired 1" in out.stdout and "sent 1" in out.stdout
    listed = json.loads(finsent("alerts", "list", "--json", "--database-url", url).stdout)
    assert [(a["rule"], a["status"], a["ticker"]) for a in listed] == [("burst", "firing", "AAPL")]
    assert listed[0]["annotations"]["summary"] == "AAPL: 3 negative stories" and len(listed[0]["evidence"]) == 3
    text = finsent("alerts", "list", "--database-url", url).stdout
    assert "burst" in text and "Apple shares plunge" in text and "plunge" in text

    assert finsent("alerts", "ack", str(listed[0]["id"]), "--by", "ana", "--database-url", url).returncode == 0
    assert json.loads(finsent("alerts", "list", "--json", "--database-url", url).stdout)[0]["acked_by"] == "ana"
    silenced = finsent("alerts", "silence", "--match", "ticker=AAPL", "--author", "ana", "--comment", "earnings",
                       "--duration", "1h", "--database-url", url)  # fmt: skip
    assert silenced.returncode == 0 and silenced.stdout.startswith("silence 1 until")
    assert "ticker=AAPL" in finsent("alerts", "silences", "--database-url", url).stdout
    bad = finsent("alerts", "silence", "--match", "ticker", "--author", "a", "--comment", "c", "--database-url", url)
    assert bad.returncode == 1 and "expected NAME=VALUE" in bad.stderr
    assert finsent("alerts", "expire", "1", "--database-url", url).returncode == 0
    assert finsent("alerts", "silences", "--database-url", url).stdout == ""

    since, until = (now - timedelta(hours=1)).isoformat(), now.isoformat()
    replay = finsent("alerts", "replay", "--config", str(config), "--since", since, "--until", until,
                     "--step", "15m", "--database-url", url, env=PINNED)  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert "1 alerts fired" in replay.stdout
    assert re.search(r"^  \S+: fired 1, resolved 0", replay.stdout, re.MULTILINE)  # the per-rule summary
    history = json.loads(finsent("alerts", "list", "--json", "--database-url", url).stdout)
    assert sorted(a["replayed"] for a in history) == [False, True]
    again = finsent("alerts", "replay", "--config", str(config), "--since", since, "--until", until,
                    "--step", "15m", "--database-url", url, env=PINNED)  # fmt: skip
    assert "(replacing 1 alerts of an earlier replay of this period)" in again.stdout
    history = json.loads(finsent("alerts", "list", "--json", "--database-url", url).stdout)
    assert sorted(a["replayed"] for a in history) == [False, True]  # the same period twice: still one replayed


def test_tail_prints_alert_events(tmp_path, db):
    url, factory = db
    now = datetime.now(UTC)
    for i in range(3):
        add_story(factory, ticker="MSFT", when=now - timedelta(minutes=1 + i))
    config = tmp_path / "monitor.toml"
    config.write_text('[[rule]]\nname = "burst"\ntype = "negative_burst"\nwindow = "1h"\nmin_stories = 3\n')
    assert finsent("monitor", "--config", str(config), "--once", "--database-url", url, env=PINNED).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENT_")}
    tail = subprocess.Popen([sys.executable, "-m", "cli", "alerts", "tail", "--interval", "0.5",
                             "--database-url", url], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)  # fmt: skip
    try:
        first = tail.stdout.readline()
        second = tail.stdout.readline()
    finally:
        tail.terminate()
        tail.wait(timeout=10)
    assert " pending " in first and "burst MSFT" in first
    assert " firing " in second and "burst MSFT" in second


def test_replaying_the_bundled_sample_raises_a_real_alert_with_evidence(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    # The demo's days (Makefile `run`): AAOI and ACAD miss their estimates and trade lower.
    out = finsent("run", "--replay", str(REPO / "ingest" / "samples" / "news_sample.csv"), "--speed", "1e9",
                  "--since", "2020-05-04", "--until", "2020-05-09", "--exit-when-done",
                  "--monitor", str(REPO / "monitor.example.toml"), "--database-url", url)  # fmt: skip
    assert out.returncode == 0, out.stderr
    alerts = json.loads(finsent("alerts", "list", "--status", "firing", "--json", "--database-url", url).stdout)
    burst = [a for a in alerts if a["rule"] == "negative-burst"]
    assert burst, [a["rule"] for a in alerts]
    evidence = burst[0]["evidence"]
    assert len(evidence) >= 3 and all(e["words"] and e["score"] < 0 for e in evidence)
    assert "ALERT firing" in out.stderr  # the log receiver of the example config
    listed = json.loads(finsent("alerts", "list", "--json", "--limit", "1000", "--database-url", url).stdout)
    still_open = sum(a["status"] in ("pending", "firing") for a in listed)
    assert still_open >= len(burst) and f"alerts open: {still_open} " in out.stdout  # the run's last look


def test_alert_filters_ignore_case_and_an_empty_result_says_so(tmp_path, db):
    url, factory = db
    assert finsent("alerts", "list", "--database-url", url).stdout == "no alerts yet\n"
    now = datetime.now(UTC)
    for i in range(3):
        add_story(factory, ticker="BARC.L", when=now - timedelta(minutes=5 + i), title=f"Barclays shares plunge {i}")
    config = tmp_path / "monitor.toml"
    config.write_text('[[rule]]\nname = "burst"\ntype = "negative_burst"\nwindow = "1h"\nmin_stories = 3\n')
    assert finsent("monitor", "--config", str(config), "--once", "--database-url", url, env=PINNED).returncode == 0

    for args in (["--ticker", "barc.l"], ["--ticker", "BARC.L"], ["--ticker", "Barc.L", "--status", "FIRING"]):
        out = finsent("alerts", "list", *args, "--database-url", url)
        assert out.returncode == 0, out.stderr
        assert "burst" in out.stdout and "BARC.L" in out.stdout, (args, out.stdout)
        listed = json.loads(finsent("alerts", "list", *args, "--json", "--database-url", url).stdout)
        assert [a["ticker"] for a in listed] == ["BARC.L"], args

    out = finsent("alerts", "list", "--ticker", "barc", "--database-url", url)
    assert out.returncode == 0 and out.stdout == "no alerts match --ticker BARC\n", out.stdout
    out = finsent("alerts", "list", "--ticker", "barc.l", "--status", "resolved", "--database-url", url)
    assert out.stdout == "no alerts match --ticker BARC.L --status resolved\n", out.stdout
    assert json.loads(finsent("alerts", "list", "--ticker", "barc", "--json", "--database-url", url).stdout) == []


def test_the_monitor_refuses_to_start_when_a_receivers_secret_is_not_set(tmp_path, db):
    """A webhook receiver with secret_env names a variable that is not set: the monitor used to start and send
    unsigned (only `finsent doctor` said so); now it stops at start-up, naming the variable."""
    url, _ = db
    config = tmp_path / "monitor.toml"
    config.write_text('[[receiver]]\nname = "desk"\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\n'
                      'secret_env = "FINSENT_TEST_UNSET_SECRET"\n')  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "FINSENT_TEST_UNSET_SECRET"}
    out = subprocess.run([sys.executable, "-m", "cli", "monitor", "--config", str(config), "--once",
                          "--database-url", url], capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("error: ") and "secret_env names variables that are not set" in out.stderr
    assert "FINSENT_TEST_UNSET_SECRET" in out.stderr
