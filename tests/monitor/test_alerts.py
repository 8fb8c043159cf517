"""Rule semantics and the alert lifecycle on synthetic time series stored in a real, migrated database."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core.db import make_session_factory
from core.schema import Alert, AlertEvent, AlertEvidence, Article, Attribution, Mention, Notification, Score, Source
from monitor.alerts import (
    AlertFilter,
    ack,
    add_silence,
    events_after,
    expire_silence,
    find_alerts,
    fingerprint,
    last_event_id,
    replay_history,
    run_evaluation,
)
from monitor.rules import (
    MonitorConfig,
    RuleConfigError,
    describe_config,
    load_config,
    load_monitor_config,
    required_secrets,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
VERSION = "test-model"
_ids = itertools.count(1)


@pytest.fixture
def factory(migrated_engine):
    return make_session_factory(migrated_engine)


def add_story(factory, *, ticker, when, label="negative", confidence=0.95, score=None, source="wire", title=None):
    """One scored article about `ticker` at `when` (its own story), with two attributed words."""
    n = next(_ids)
    p_neg = confidence if label == "negative" else (1 - confidence) / 2
    p_pos = confidence if label == "positive" else (1 - confidence) / 2
    with factory() as s, s.begin():
        src = s.scalar(select(Source).where(Source.name == source)) or Source(name=source, kind="stream")
        s.add(src)
        s.flush()
        article = Article(
            source_id=src.id, title=title or f"{ticker} story {n}", published_at=when, ingested_at=when,
            content_hash=f"h{n}",
        )  # fmt: skip
        s.add(article)
        s.flush()
        article.story_id = article.id
        s.add(Mention(article_id=article.id, ticker=ticker, published_at=when, relevance=1.0, in_headline=True))
        sc = Score(
            article_id=article.id, model_version=VERSION, label=label, p_negative=p_neg, p_neutral=1 - p_neg - p_pos,
            p_positive=p_pos, score=p_pos - p_neg if score is None else score, confidence=confidence, scored_at=when,
        )  # fmt: skip
        s.add(sc)
        s.flush()
        s.add(Attribution(score_id=sc.id, method="pooling", rank=1, word="plunge", weight=0.4, start=0, end=6))
        return article.id


def config(**overrides) -> MonitorConfig:
    rules = overrides.pop("rules", None) or [
        {
            "name": "neg-burst",
            "type": "negative_burst",
            "window": "1d",
            "min_stories": 3,
            "min_confidence": 0.8,
            "for": "10m",
            "severity": "warning",
            "annotations": {"summary": "{ticker}: {value} negative stories in {window}"},
        }
    ]
    data = {
        "rule": rules,
        "receiver": [{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/x"}],
        "route_receivers": ["hook"],
        "repeat_interval": "1h",
        **overrides,
    }
    return MonitorConfig.model_validate(data)


def notifications(factory) -> list[tuple[str, dict]]:
    with factory() as s:
        return [(n.kind, json.loads(n.payload)) for n in s.scalars(select(Notification).order_by(Notification.id))]


def alerts(factory) -> list[Alert]:
    with factory() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def test_fires_only_after_for_then_resolves_and_keeps_history(factory):
    cfg = config()
    for i in range(3):
        add_story(factory, ticker="AAPL", when=T0 - timedelta(minutes=30 - i))
    add_story(factory, ticker="MSFT", when=T0 - timedelta(minutes=5), label="positive")

    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0)
    (a,) = alerts(factory)
    assert (a.status, a.ticker, a.rule, a.value) == ("pending", "AAPL", "neg-burst", 3)
    assert json.loads(a.annotations)["summary"] == "AAPL: 3 negative stories in 1d"
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=9))
    assert alerts(factory)[0].status == "pending" and notifications(factory) == []

    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=10))
    assert alerts(factory)[0].status == "firing"
    ((kind, body),) = notifications(factory)
    assert kind == "firing" and body["status"] == "firing" and body["groupLabels"] == {"ticker": "AAPL"}
    item = body["alerts"][0]
    assert item["labels"] == {"alertname": "neg-burst", "severity": "warning", "ticker": "AAPL"}
    assert item["fingerprint"] == fingerprint(item["labels"]) and len(item["evidence"]) == 3
    assert item["evidence"][0]["words"] == [["plunge", 0.4]]

    # Still firing inside repeat_interval: nothing new. A restarted monitor re-evaluating: nothing new either.
    for minutes in (20, 20, 30):
        run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=minutes))
    assert len(notifications(factory)) == 1

    # A day later the stories have left the window: resolved, and a resolved notification.
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(days=1))
    a = alerts(factory)[0]
    assert a.status == "resolved" and a.ends_at == T0 + timedelta(days=1)
    assert [k for k, _ in notifications(factory)] == ["firing", "resolved"]
    assert notifications(factory)[1][1]["alerts"][0]["endsAt"].startswith("2026-11-25")
    with factory() as s:
        events = list(s.scalars(select(AlertEvent.event).order_by(AlertEvent.id)))
    assert events == ["pending", "firing", "resolved"]

    # The condition again: a new episode with the same fingerprint; the old one stays in history.
    for i in range(3):
        add_story(factory, ticker="AAPL", when=T0 + timedelta(days=2, minutes=i))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(days=2, minutes=5))
    assert [x.status for x in alerts(factory)] == ["resolved", "pending"]
    assert alerts(factory)[0].fingerprint == alerts(factory)[1].fingerprint


def test_pending_that_clears_is_closed_without_notification(factory):
    cfg = config()
    for i in range(3):
        add_story(factory, ticker="AAPL", when=T0 - timedelta(hours=23, minutes=58 - i))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0)
    # The stories left the window.
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=5))
    assert alerts(factory)[0].status == "resolved" and notifications(factory) == []


def test_keep_firing_for_holds_an_alert_whose_news_comes_and_goes(factory):
    """A watchlist alert on scattered stories: without keep_firing_for it fires and resolves once per story (a flap);
    with it, one episode that resolves once the stories stop for that long."""
    rule = {"name": "watch", "type": "watchlist", "window": "1h", "tickers": ["AAPL"], "min_negative": 0.9}
    stories = [T0, T0 + timedelta(minutes=90), T0 + timedelta(minutes=200)]  # each leaves the 1h window before the next
    checks = [T0 + timedelta(minutes=m) for m in range(0, 7 * 60, 10)]

    def episodes(keep: str) -> tuple[list[str], list[tuple[str, str]]]:
        cfg = config(rules=[rule | {"keep_firing_for": keep}], send_resolved=True)
        with factory() as s, s.begin():
            s.execute(Alert.__table__.delete())
            s.execute(Notification.__table__.delete())
        for at in checks:
            run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=at)
        with factory() as s:
            lifecycle = select(AlertEvent.event).where(AlertEvent.event != "reminder").order_by(AlertEvent.id)
            events = list(s.scalars(lifecycle))
        return events, [(a.status, a.ends_at.isoformat() if a.ends_at else "") for a in alerts(factory)]

    for when in stories:
        add_story(factory, ticker="AAPL", when=when)
    flapping, alerts_without = episodes("0s")
    assert [status for status, _ in alerts_without] == ["resolved"] * 3  # fired and resolved three times
    held, alerts_with = episodes("2h")
    assert len(alerts_with) == 1
    assert held == ["pending", "firing", "cleared", "holding", "cleared", "holding", "cleared", "resolved"]
    # It resolves at the first check 2h after the condition last stopped holding (the last story left the window at
    # the 270-minute check), not at each gap.
    assert alerts_with == [("resolved", (T0 + timedelta(minutes=270 + 120)).isoformat())]
    assert [kind for kind, _ in notifications(factory) if kind != "reminder"] == ["firing", "resolved"]

    # A rule dropped from the config while its alert is cleared: the alert resolves at the next evaluation.
    with factory() as s, s.begin():
        s.execute(Alert.__table__.delete())
    cfg = config(rules=[rule | {"keep_firing_for": "2h"}])
    for minutes in (210, 270):  # fires on the last story, then clears
        run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=minutes))
    assert [(a.status, a.cleared_at is not None) for a in alerts(factory)] == [("firing", True)]
    other = config(rules=[rule | {"name": "watch-2", "tickers": ["MSFT"]}])
    run_evaluation(session_factory=factory, config=other, version=VERSION, now=T0 + timedelta(minutes=280))
    assert [(a.status, a.cleared_at) for a in alerts(factory)] == [("resolved", None)]


def test_reminders_every_repeat_interval_until_acknowledged(factory):
    cfg = config(rules=[{"name": "neg-burst", "type": "negative_burst", "window": "1d", "min_stories": 2}])
    for i in range(2):
        add_story(factory, ticker="TSLA", when=T0 - timedelta(minutes=i + 1))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0)  # for = 0: fires at once
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=59))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=60))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=61))
    assert [k for k, _ in notifications(factory)] == ["firing", "reminder"]
    with factory() as s, s.begin():
        ack(s, alerts(factory)[0].id, by="ana", now=T0 + timedelta(minutes=70), comment="looking")
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(hours=3))
    assert [k for k, _ in notifications(factory)] == ["firing", "reminder"]  # acknowledged: no more reminders
    assert alerts(factory)[0].acked_by == "ana"


def test_silence_suppresses_and_expiry_lets_it_through(factory):
    cfg = config(rules=[{"name": "neg-burst", "type": "negative_burst", "window": "1d", "min_stories": 2}])
    with factory() as s, s.begin():
        silence = add_silence(
            s, matchers=["ticker=NOK", "alertname=~neg.*"], author="ana", comment="known", now=T0, duration="2h"
        )
        silence_id = silence.id
    for i in range(2):
        add_story(factory, ticker="NOK", when=T0 - timedelta(minutes=i + 1))
        add_story(factory, ticker="AAPL", when=T0 - timedelta(minutes=i + 1))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=1))
    sent = notifications(factory)
    assert [b["groupLabels"]["ticker"] for _, b in sent] == ["AAPL"]  # NOK silenced, AAPL not
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(AlertEvent).where(AlertEvent.event == "silenced")) == 1
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=30))
    assert len(notifications(factory)) == 1  # still silenced, nothing repeated
    with factory() as s, s.begin():
        expire_silence(s, silence_id, now=T0 + timedelta(minutes=40))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=41))
    assert [b["groupLabels"]["ticker"] for _, b in notifications(factory)] == ["AAPL", "NOK"]


def test_alerts_are_grouped_by_ticker(factory):
    cfg = config(
        rules=[
            {"name": "burst", "type": "negative_burst", "window": "1d", "min_stories": 2},
            {"name": "watch", "type": "watchlist", "window": "1d", "tickers": ["AAPL"], "min_negative": 0.9},
        ]
    )
    for i in range(2):
        add_story(factory, ticker="AAPL", when=T0 - timedelta(minutes=i + 1))
        add_story(factory, ticker="MSFT", when=T0 - timedelta(minutes=i + 1))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0)
    sent = notifications(factory)
    by_ticker = {b["groupLabels"]["ticker"]: sorted(a["labels"]["alertname"] for a in b["alerts"]) for _, b in sent}
    assert by_ticker == {"AAPL": ["burst", "watch"], "MSFT": ["burst"]}  # one notification per ticker group


def test_sentiment_shift_and_volume_spike_against_the_baseline(factory):
    cfg = config(
        rules=[
            {"name": "shift", "type": "sentiment_shift", "window": "1d", "z": 2, "min_stories": 3,
             "min_baseline_buckets": 5},
            {"name": "spike", "type": "volume_spike", "window": "1d", "z": 3, "min_stories": 5},
        ]
    )  # fmt: skip
    for day in range(2, 30):  # a calm month: one or two mildly positive stories a day
        for k in range(1 + day % 2):
            add_story(factory, ticker="ACME", when=T0 - timedelta(days=day, hours=k), label="positive",
                      confidence=0.6 + 0.01 * (day % 5), score=0.1 + 0.02 * (day % 5))  # fmt: skip
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0)
    assert alerts(factory) == []  # nothing unusual yet
    for i in range(6):
        add_story(factory, ticker="ACME", when=T0 - timedelta(hours=i), label="negative", score=-0.9)
    report = run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=1))
    fired = {a.rule: a for a in alerts(factory)}
    assert set(fired) == {"shift", "spike"} and report.fired == 2
    assert fired["shift"].value < -2 and fired["spike"].value >= 3


def test_source_silent(factory):
    cfg = config(rules=[{"name": "quiet", "type": "source_silent", "k": 5, "history": 20}])
    for i in range(10):
        add_story(factory, ticker="X", when=T0 - timedelta(minutes=10 * (10 - i)), source="feed-a")
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=30))
    assert alerts(factory) == []  # 30 minutes quiet, usual gap 10: not yet 5x
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(minutes=51))
    (a,) = alerts(factory)
    assert json.loads(a.labels)["source"] == "feed-a" and a.status == "firing"


def test_replay_records_history_without_notifying(factory):
    cfg = config(rules=[{"name": "burst", "type": "negative_burst", "window": "1d", "min_stories": 2}])
    for i in range(2):
        add_story(factory, ticker="AAPL", when=T0 - timedelta(minutes=i + 1))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0, replay=True)
    (a,) = alerts(factory)
    assert a.replayed and a.status == "firing" and notifications(factory) == []
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(AlertEvidence)) == 2
    # A live evaluation: its own episode, notified.
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0)
    assert [x.replayed for x in alerts(factory)] == [True, False] and len(notifications(factory)) == 1


def test_replay_history_evaluates_every_step_and_sums_what_it_recorded(factory):
    cfg = config(rules=[{"name": "burst", "type": "negative_burst", "window": "1d", "min_stories": 2}])
    for i in range(2):
        add_story(factory, ticker="AAPL", when=T0 - timedelta(minutes=i + 1))
    add_story(factory, ticker="MSFT", when=T0 + timedelta(hours=3))  # one story: a miss, one short of min_stories
    # Hourly from two hours before the stories to a day after them: fires at T0, resolves when they leave the window.
    period = {"since": T0 - timedelta(hours=2), "until": T0 + timedelta(hours=25), "step": timedelta(hours=1)}
    report = replay_history(session_factory=factory, config=cfg, version=VERSION, **period)
    assert (report.fired, report.resolved, report.evaluations, report.replaced) == (1, 1, 28, 0)
    assert report.per_rule == {"burst": {"pending": 1, "firing": 1, "resolved": 1}}
    (miss,) = report.closest["burst"]
    assert (miss.ticker, miss.value, miss.threshold, miss.short) == ("MSFT", 1, 2, 1)
    assert report.summary() == [f"burst: fired 1, resolved 1; closest misses: MSFT 1 vs 2 at {miss.at:%Y-%m-%dT%H:%M}"]
    # The same period again replaces what the first replay recorded: one alert, not two.
    again = replay_history(session_factory=factory, config=cfg, version=VERSION, **period)
    assert (again.fired, again.resolved, again.replaced) == (1, 1, 1)
    (a,) = alerts(factory)
    assert a.replayed and (a.starts_at, a.ends_at) == (T0, T0 + timedelta(days=1)) and notifications(factory) == []
    with factory() as s:
        assert find_alerts(session=s, filters=AlertFilter()) == []  # replayed history is asked for, not shown
        assert [x.id for x in find_alerts(session=s, filters=AlertFilter(replayed=True))] == [a.id]
        assert [
            x.id
            for x in find_alerts(
                session=s, filters=AlertFilter(statuses=("resolved",), tickers=("AAPL",), replayed=True)
            )
        ] == [a.id]
    with pytest.raises(ValueError, match="step must be positive"):
        replay_history(session_factory=factory, config=cfg, since=T0, until=T0, step=timedelta(0), version=VERSION)


def test_events_after_follows_the_lifecycle_in_order(factory):
    """What `finsent alerts tail` prints: every event past the last one seen, oldest first, with its alert."""
    with factory() as s:
        assert last_event_id(s) == 0 and events_after(s, after_id=0) == []
    cfg = config(rules=[{"name": "burst", "type": "negative_burst", "window": "1d", "min_stories": 2}])
    for i in range(2):
        add_story(factory, ticker="AAPL", when=T0 - timedelta(minutes=i + 1))
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0)  # for = 0: pending and firing at once
    with factory() as s:
        rows = events_after(s, after_id=0)
        last = last_event_id(s)
    assert [(e.event, a.rule, a.ticker) for e, a in rows] == [("pending", "burst", "AAPL"), ("firing", "burst", "AAPL")]
    assert rows[-1][0].id == last
    run_evaluation(session_factory=factory, config=cfg, version=VERSION, now=T0 + timedelta(days=1))
    with factory() as s:
        assert [(e.event, a.status) for e, a in events_after(s, after_id=last)] == [("resolved", "resolved")]


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[[rule]]\nname = "x"\ntype = "moon_phase"\n', "rule #1 ('x'): type: unknown rule type 'moon_phase'"),
        ('[[rule]]\nname = "x"\ntype = "negative_burst"\nmin_confidence = 1.5\n', "rule #1 ('x'): min_confidence:"),
        ('[[rule]]\nname = "x"\ntype = "negative_burst"\nmin_storys = 3\n', "rule #1 ('x'): min_storys: Extra"),
        ('[[rule]]\nname = "x"\ntype = "negative_burst"\nwindow = "soon"\n', "window: 'soon' is not a duration"),
        ('route_receivers = ["nobody"]\n', "route_receivers: no [[receiver]] named 'nobody'"),
        ("[[rule]\n", "TOML syntax error"),
        ('colour = "red"\n', "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, toml, message):
    path = tmp_path / "monitor.toml"
    path.write_text(toml)
    with pytest.raises(RuleConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_monitor_config_registers_its_secrets_and_names_the_ones_it_needs(tmp_path, monkeypatch):
    """The Slack URL and the HMAC secrets that are set are redacted from logs from then on; every `secret_env` is
    listed, set or not, for `finsent doctor` to check."""
    from core.logs import redact

    slack = f"https://hooks.slack.com/services/T0/B0/{uuid.uuid4().hex}"
    secret = f"hmac-{uuid.uuid4().hex}"
    monkeypatch.setenv("FINSENT_TEST_DESK_SECRET", secret)
    monkeypatch.delenv("FINSENT_TEST_UNSET_SECRET", raising=False)
    path = tmp_path / "monitor.toml"
    path.write_text(
        '[[receiver]]\nname = "desk"\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\n'
        'secret_env = "FINSENT_TEST_DESK_SECRET"\n'
        f'[[receiver]]\nname = "chat"\nkind = "slack"\nurl = "{slack}"\n'
        '[[receiver]]\nname = "other"\nkind = "webhook"\nurl = "http://127.0.0.1:9/y"\n'
        'secret_env = "FINSENT_TEST_UNSET_SECRET"\n'
        '[[receiver]]\nname = "ops"\nkind = "log"\n'
    )
    cfg = load_monitor_config(path)
    assert [r["name"] for r in cfg.receivers] == ["desk", "chat", "other", "ops"]
    assert describe_config(cfg) == "0 rule(s), 4 receiver(s)"
    assert redact(f"posting to {slack} signed with {secret}") == "posting to *** signed with ***"
    assert required_secrets(cfg) == {
        "FINSENT_TEST_DESK_SECRET": "HMAC secret of receiver 'desk'",
        "FINSENT_TEST_UNSET_SECRET": "HMAC secret of receiver 'other'",
    }
    assert required_secrets(config()) == {}


@pytest.mark.parametrize(
    "receiver, message",
    [
        ('name = "hook"\nkind = "webhook"\n', "receiver #1 ('hook'): url: url is required for a webhook receiver"),
        ('name = "hook"\nkind = "pager"\n', "receiver #1 ('hook'): kind: Input should be"),
        ('name = "hook"\nkind = "log"\nretries = 3\n', "receiver #1 ('hook'): retries: Extra inputs"),
        ('name = "hook"\nkind = "webhook"\nurl = "http://h/x"\nsecret_env = "s3cr3t value!"\n',
         "receiver #1 ('hook'): secret_env: secret_env must be the NAME of an environment variable"),
    ],
)  # fmt: skip
def test_a_bad_receiver_is_one_line_naming_file_receiver_and_field(tmp_path, receiver, message):
    path = tmp_path / "monitor.toml"
    path.write_text("[[receiver]]\n" + receiver)
    with pytest.raises(RuleConfigError) as err:
        load_monitor_config(path)
    text = str(err.value)
    assert text.startswith(f"{path}: {message}") and "\n" not in text and "s3cr3t" not in text


def test_example_config_loads():
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[2] / "monitor.example.toml")
    assert {r.type for r in cfg.rules} == {
        "negative_burst", "sentiment_shift", "volume_spike", "watchlist", "source_silent",
    }  # fmt: skip


def test_buckets_fold_every_key_of_a_period_with_the_per_key_rules(factory):
    """Each bucket update_buckets stores equals `aggregate` over that key's own rows (stories counted once, the most
    confident article speaking for its story), for the market and every ticker, an article's second ticker included."""
    from core.schema import WindowBucket
    from monitor.windows import MARKET, _rows, aggregate, update_buckets

    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for i, (ticker, label) in enumerate([("AAPL", "negative"), ("AAPL", "positive"), ("MSFT", "negative"),
                                         ("NOK", "neutral"), ("MSFT", "positive"), ("AAPL", "negative")]):  # fmt: skip
        add_story(factory, ticker=ticker, when=t0 + timedelta(minutes=7 * i), label=label, confidence=0.6 + i / 20)
    late = add_story(factory, ticker="MSFT", when=t0 + timedelta(hours=2), label="negative")
    with factory() as s, s.begin():  # a second ticker on one article, and a near-duplicate joining its story
        s.add(Mention(article_id=late, ticker="AAPL", published_at=t0 + timedelta(hours=2), relevance=0.5,
                      in_headline=False))  # fmt: skip
    dup = add_story(factory, ticker="MSFT", when=t0 + timedelta(hours=2, minutes=3), label="positive", confidence=0.7)
    with factory() as s, s.begin():
        s.get(Article, dup).story_id = late
    with factory() as s, s.begin():
        assert update_buckets(s, windows=[3600, 86400], version=VERSION) == 4 + 3 + 4  # keys in 9h, 11h, the day
    with factory() as s:
        buckets = s.scalars(select(WindowBucket)).all()
        assert {(b.key, b.window_s) for b in buckets} >= {(MARKET, 3600), ("NOK", 3600), ("AAPL", 86400)}
        for b in buckets:
            start = b.bucket_start.replace(tzinfo=UTC) if b.bucket_start.tzinfo is None else b.bucket_start
            end = start + timedelta(seconds=b.window_s)
            rows = _rows(s, key=b.key, start=start, end=end, version=VERSION)
            want = aggregate(rows, key=b.key, window_s=b.window_s, start=start, end=end)
            assert (b.items, b.stories, b.share_negative, b.share_positive) == (
                want.items,
                want.stories,
                want.share_negative,
                want.share_positive,
            ), b.key
            assert b.mean_score == pytest.approx(want.mean_score)
        by_key = {(b.key, b.window_s, b.bucket_start.hour): b for b in buckets}
        assert (by_key[("MSFT", 3600, 11)].items, by_key[("MSFT", 3600, 11)].stories) == (2, 1)  # one story
