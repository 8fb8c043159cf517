"""The monitor's commands: `finsent monitor` (rules on a schedule, deliveries), `finsent alerts ...` (list,
acknowledge, silence, follow, replay over history) and `finsent feed serve` (the Atom and JSON feeds)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import wiring
from cli.wiring import DatabaseOpt, MetricsPortOpt, fail

if TYPE_CHECKING:
    from core.settings import Settings
    from core.transport import KafkaTransport
    from monitor.rules import MonitorConfig

alerts_app = typer.Typer(help="Alerts: list, acknowledge, silence, follow, replay over history.", no_args_is_help=True)
feed_app = typer.Typer(help="The alert feed server (Atom and JSON).", no_args_is_help=True)
ConfigOpt = Annotated[Path, typer.Option("--config", help="Monitor TOML (see monitor.example.toml).")]


def monitor_config(path: Path, *, delivering: bool = False) -> MonitorConfig:
    """The validated monitor config (its secrets registered for redaction), or one line naming the file and key.
    For a process that delivers notifications (`delivering`), also one line when a receiver's secret_env names a
    variable that is not set: a webhook would otherwise go out unsigned, or not at all."""
    from monitor.rules import RuleConfigError, load_monitor_config, required_secrets

    try:
        config = load_monitor_config(path)
    except RuleConfigError as exc:
        fail(str(exc))
    unset = [name for name in required_secrets(config) if not os.environ.get(name)] if delivering else []
    if unset:
        fail(f"{path}: the receivers' secret_env names variables that are not set: {', '.join(unset)} "
             "(set them in the environment, never in a file)")  # fmt: skip
    return config


def _alerts_transport(settings: Settings, config: MonitorConfig) -> KafkaTransport | None:
    """A Kafka transport when a receiver of kind kafka is configured (the `alerts` topic), else None."""
    if not any(r.get("kind") == "kafka" for r in config.receivers):
        return None
    from core.transport import KafkaTransport

    return KafkaTransport.from_settings(settings)


def monitor_command(
    config: ConfigOpt,
    evaluate_every: Annotated[float, typer.Option(help="Seconds between rule evaluations.")] = 30,
    deliver_every: Annotated[float, typer.Option(help="Seconds between outbox deliveries.")] = 5,
    once: Annotated[bool, typer.Option(help="Evaluate and deliver once, then exit.")] = False,
    database_url: DatabaseOpt = None,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Evaluate the alert rules on a schedule and deliver notifications (webhooks, Slack, Kafka, log).

    Example: finsent monitor --config monitor.example.toml --once
    """
    import signal
    import threading

    from apscheduler.schedulers.blocking import BlockingScheduler

    from core.metrics import shared
    from monitor.metrics import MonitorMetrics
    from monitor.rules import receivers_of
    from monitor.scheduler import delivery_job, evaluation_job, schedule_monitor

    cfg = monitor_config(config, delivering=True)
    settings = wiring.settings(database_url)
    wiring.setup_logging(settings, "INFO")
    engine, session_factory = wiring.database(settings)
    version = wiring.model_version(settings, session_factory)
    transport = _alerts_transport(settings, cfg)
    if once:
        report = evaluation_job(session_factory=session_factory, config=cfg, version=version)
        sent = delivery_job(session_factory=session_factory, receivers=receivers_of(cfg), transport=transport)
        typer.echo(
            f"findings {report.findings}, fired {report.fired}, resolved {report.resolved}, "
            f"notifications queued {report.notifications}, sent {sent.sent}, failed {sent.failed}"
        )
        return
    server = wiring.metrics_server(settings, metrics_port, wiring.readiness(engine))
    scheduler = BlockingScheduler(timezone="UTC")
    stop = threading.Event()  # ends a delivery in flight; the process exit would otherwise wait for it
    schedule_monitor(scheduler, session_factory=session_factory, config=cfg, version=version,
                     evaluate_every_s=evaluate_every, deliver_every_s=deliver_every, transport=transport, stop=stop,
                     metrics=shared(MonitorMetrics) if server is not None else None)  # fmt: skip

    def terminate(*_: object) -> None:
        stop.set()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, terminate)
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if scheduler.running:  # Ctrl-C: no new jobs either
            scheduler.shutdown(wait=False)
        wiring.stop_metrics(server)


@alerts_app.command("list")
def alerts_list(
    status: Annotated[str | None, typer.Option(help="pending | firing | resolved")] = None,
    ticker: str | None = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Alerts, newest first, with their evidence (with --json: the objects of the /alerts.json feed); --ticker and
    --status ignore case, as the feed's filters do."""
    from monitor.alerts import STATES, AlertFilter
    from monitor.feed import load_alerts

    ticker = ticker.strip().upper() if ticker else None  # tickers are stored upper-case: barc.l is BARC.L
    status = status.strip().lower() if status else None
    if status is not None and status not in STATES:
        fail(f"--status: {status!r} is not pending, firing or resolved")
    session_factory = wiring.session_factory(database_url)
    filters = AlertFilter(tickers=(ticker,) if ticker else (), statuses=(status,) if status else (), limit=limit,
                          replayed=True)  # fmt: skip
    with session_factory() as session:
        out = load_alerts(session=session, filters=filters)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    if not out:  # say so: an empty screen reads as a broken command
        given = " ".join(f"--{name} {value}" for name, value in (("ticker", ticker), ("status", status)) if value)
        typer.echo(f"no alerts match {given}" if given else "no alerts yet")
        return
    for a in out:
        typer.echo(_alert_line(a))
        for e in a["evidence"][:3]:
            words = ", ".join(w for w, _ in e["words"][:3])
            typer.echo(f"      {e['published_at'][:16]}  {e['title'][:90]}  [{words}]")


def _alert_line(a: dict) -> str:
    from monitor.alerts import subject_of

    subject = subject_of(a["ticker"], a["labels"])
    when = (a["starts_at"] or a["active_at"])[:16]
    flags = (" acked by " + a["acked_by"] if a["acked_by"] else "") + (" (replayed)" if a["replayed"] else "")
    summary = a["annotations"].get("summary", "")
    return f"#{a['id']:<5} {a['status']:<8} {a['severity']:<8} {a['rule']:<20} {subject:<8} {when}  {summary}{flags}"


@alerts_app.command("ack")
def alerts_ack(
    alert_id: int,
    by: Annotated[str, typer.Option("--by", help="Who acknowledges.")],
    comment: str = "",
    database_url: DatabaseOpt = None,
) -> None:
    """Acknowledge an alert: no more reminders for it."""
    from monitor.alerts import ack

    session_factory = wiring.session_factory(database_url)
    try:
        with session_factory() as session, session.begin():
            ack(session, alert_id, by=by, now=wiring.now(), comment=comment)
    except LookupError as exc:
        fail(str(exc))
    typer.echo(f"alert {alert_id} acknowledged by {by}")


@alerts_app.command("silence")
def alerts_silence(
    match: Annotated[list[str], typer.Option("--match", help="NAME=VALUE, NAME!=VALUE, NAME=~RE, NAME!~RE")],
    author: Annotated[str, typer.Option(help="Who silences.")],
    comment: Annotated[str, typer.Option(help="Why.")],
    duration: Annotated[str, typer.Option(help="How long, e.g. 2h.")] = "2h",
    database_url: DatabaseOpt = None,
) -> None:
    """Silence notifications of alerts matching every matcher, for a while.

    Example: finsent alerts silence --match ticker=NOK --author ana --comment "known story" --duration 4h
    """
    from monitor.alerts import add_silence

    session_factory = wiring.session_factory(database_url)
    try:
        with session_factory() as session, session.begin():
            silence = add_silence(session, matchers=match, author=author, comment=comment, now=wiring.now(),
                                  duration=duration)  # fmt: skip
            typer.echo(f"silence {silence.id} until {silence.ends_at.isoformat(timespec='minutes')}")
    except ValueError as exc:
        fail(str(exc))


@alerts_app.command("expire")
def alerts_expire(silence_id: int, database_url: DatabaseOpt = None) -> None:
    """End a silence now."""
    from monitor.alerts import expire_silence

    session_factory = wiring.session_factory(database_url)
    try:
        with session_factory() as session, session.begin():
            expire_silence(session, silence_id, now=wiring.now())
    except LookupError as exc:
        fail(str(exc))
    typer.echo(f"silence {silence_id} expired")


@alerts_app.command("silences")
def alerts_silences(database_url: DatabaseOpt = None) -> None:
    """Active silences."""
    from monitor.alerts import active_silences, matchers_text

    session_factory = wiring.session_factory(database_url)
    with session_factory() as session:
        for s in active_silences(session, wiring.now()):
            matchers = matchers_text(json.loads(s.matchers))
            typer.echo(
                f"#{s.id} until {s.ends_at.isoformat(timespec='minutes')} by {s.author}: {matchers} ({s.comment})"
            )


@alerts_app.command("tail")
def alerts_tail(
    interval: Annotated[float, typer.Option(help="Seconds between looks at the database.")] = 2.0,
    history: Annotated[int, typer.Option(help="Show this many past events first.")] = 10,
    database_url: DatabaseOpt = None,
) -> None:
    """Print alert events as they happen (pending, firing, resolved, reminders, acks, silenced)."""
    import time

    from monitor.alerts import events_after, last_event_id, subject_of

    session_factory = wiring.session_factory(database_url)
    with session_factory() as session:
        last = last_event_id(session) - history
    try:
        while True:
            with session_factory() as session:
                rows = events_after(session, after_id=last)
            for event, alert in rows:
                summary = json.loads(alert.annotations).get("summary", "")
                subject = subject_of(alert.ticker, json.loads(alert.labels))
                typer.echo(f"{event.at.isoformat(timespec='seconds')} {event.event:<9} {alert.severity:<8} "
                           f"{alert.rule} {subject}  {summary}")  # fmt: skip
                last = event.id
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


@alerts_app.command("replay")
def alerts_replay(
    config: ConfigOpt,
    since: Annotated[str, typer.Option(help="ISO date or time.")],
    until: Annotated[str, typer.Option(help="ISO date or time.")],
    step: Annotated[str, typer.Option(help="Evaluate every this long, e.g. 15m.")] = "1h",
    database_url: DatabaseOpt = None,
) -> None:
    """Evaluate the rules over stored history and record what would have fired (notifying nobody), on the scores of
    the model version the readers show (FINSENT_MODEL_VERSION).

    Example: finsent alerts replay --config monitor.example.toml --since 2020-03-01 --until 2020-04-01 --step 1h
    """
    from monitor.alerts import replay_history
    from monitor.windows import parse_duration

    cfg = monitor_config(config)
    start, end = wiring.when(since, "since"), wiring.when(until, "until")
    try:
        delta = timedelta(seconds=parse_duration(step))
    except ValueError as exc:
        fail(f"--step: {exc}")
    settings = wiring.settings(database_url)
    _, session_factory = wiring.database(settings)
    version = wiring.model_version(settings, session_factory)
    try:
        report = replay_history(session_factory=session_factory, config=cfg, since=start, until=end, step=delta,
                                version=version)  # fmt: skip
    except ValueError as exc:  # a step of zero
        fail(f"--step: {exc}")
    typer.echo(
        f"replayed {start.date()} .. {end.date()} every {step} on {version}: {report.fired} alerts fired, "
        f"{report.resolved} resolved"
        + (f" (replacing {report.replaced} alerts of an earlier replay of this period)" if report.replaced else "")
    )
    for line in report.summary():  # per rule: what fired, and how close the rest came to their thresholds
        typer.echo(f"  {line}")
    if report.note:  # nothing of the range was scored by this version: the zero above says nothing of the news
        typer.echo(f"note: {report.note}")


@feed_app.command("serve")
def feed_serve(
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 unless told otherwise).")] = "127.0.0.1",
    port: int = 8080,
    token_env: Annotated[
        str | None, typer.Option(help="Name of an environment variable holding a bearer token to require.")
    ] = None,
    max_connections: Annotated[
        int, typer.Option(min=1, max=10_000, help="Connections served at once (a thread each); more get 503.")
    ] = 64,
    request_timeout: Annotated[
        float, typer.Option(min=0.1, max=3600, help="Seconds for a request's line and headers in total, else 408.")
    ] = 30.0,
    database_url: DatabaseOpt = None,
) -> None:
    """Serve /alerts.atom, /alerts.json, /healthz and /metrics (Prometheus; token rule as the feeds)."""
    from core.addresses import is_loopback, placeholder_problem
    from core.logs import register_secrets
    from monitor.feed import MIN_TOKEN_CHARS, make_server, serve

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            fail(f"--token-env: environment variable {token_env} is not set")
        if len(token) < MIN_TOKEN_CHARS:
            fail(f"--token-env: the token in {token_env} has {len(token)} characters; use at least {MIN_TOKEN_CHARS}")
        problem = None if is_loopback(host) else placeholder_problem(token_env, token)
        if problem:
            fail(f"--host {host!r}: {problem}")
        register_secrets(token)
    elif not is_loopback(host):  # alerts and their evidence go to every network the host reaches
        fail(f"--host {host!r} is beyond this machine: serving alerts there needs a bearer token (--token-env NAME)")
    settings = wiring.settings(database_url)
    wiring.setup_logging(settings, "INFO")
    _, session_factory = wiring.database(settings)
    server = make_server(session_factory=session_factory, host=host, port=port, token=token,
                         max_connections=max_connections, request_timeout_s=request_timeout)  # fmt: skip
    typer.echo(f"alert feeds on http://{host}:{server.server_address[1]}/alerts.atom and /alerts.json")
    serve(server)
