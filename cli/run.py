"""`finsent run`: every stage in one process on the in-process transport, the laptop mode `make run` uses.

Composes the stages: a replay or the configured sources (ingest) publish to news.raw, a scoring worker thread
consumes it, the monitor's jobs run on a background scheduler, the dashboard as a child process.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import wiring
from cli.alerts import monitor_config
from cli.operations import dashboard_command_line
from cli.pipeline import launch_sources
from cli.wiring import CheckpointOpt, DatabaseOpt, DateOpt, MetricsPortOpt, fail

if TYPE_CHECKING:
    from collections.abc import Callable

    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlalchemy.orm import Session, sessionmaker

    from core.settings import Settings
    from core.transport import MemoryTransport
    from ingest.replay import ReplayClock
    from monitor.rules import MonitorConfig
    from scoring.worker import ScoringWorker


def run_command(
    replay: Annotated[Path | None, typer.Option(help="Play this news file as a live stream.")] = None,
    speed: Annotated[float, typer.Option(help="Replay speed in times real time: original gaps divided by this.")] = 1.0,
    max_gap: Annotated[float, typer.Option(help="Longest pause between two replayed items, seconds.")] = 1.0,
    shift: Annotated[
        bool, typer.Option(help="Move the replay so its last item is published now, gaps kept (original time kept).")
    ] = True,
    since: DateOpt = None,
    until: DateOpt = None,
    limit: Annotated[int | None, typer.Option(help="Replay at most this many items.")] = None,
    exit_when_done: Annotated[bool, typer.Option(help="Exit once the replay is scored and stored.")] = False,
    sources: Annotated[Path | None, typer.Option(help="Sources TOML (see sources.example.toml).")] = None,
    monitor: Annotated[Path | None, typer.Option(help="Monitor TOML: evaluate alert rules alongside.")] = None,
    evaluate_every: Annotated[float, typer.Option(help="Seconds between rule evaluations (with --monitor).")] = 10,
    dashboard: Annotated[bool, typer.Option(help="Start the dashboard beside the pipeline (port 8501).")] = False,
    database_url: DatabaseOpt = None,
    checkpoint: CheckpointOpt = None,
    device: str = "auto",
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Everything in one process (memory transport + the configured database): replay, scoring, storage.

    A replay plays the items published in [--since, --until) at --speed times real time; while it plays, the alert
    rules are evaluated at the stream's time (the newest item replayed), afterwards at the wall clock.

    Example: finsent run --replay ingest/samples/news_sample.csv --since 2020-05-04 --until 2020-05-09 --speed 300
    --monitor monitor.example.toml
    """
    if replay is not None and not replay.is_file():
        fail(f"{replay}: no such file")
    start, end = wiring.when(since, "since"), wiring.when(until, "until")
    if start is not None and end is not None and start >= end:
        fail(f"--since {since} is not before --until {until}: nothing to replay")
    monitor_cfg = monitor_config(monitor, delivering=True) if monitor else None
    settings = wiring.settings(database_url, transport="memory")
    wiring.setup_logging(settings, "WARNING")
    engine, session_factory = wiring.database(settings)
    checks: dict = {}  # /readyz: filled once the worker exists
    server = wiring.metrics_server(settings, metrics_port, checks)
    from core.metrics import shared
    from core.transport import MemoryBroker, MemoryTransport
    from scoring.build import build_processor, build_worker
    from scoring.metrics import WorkerMetrics

    broker = MemoryBroker(default_partitions=settings.topic_partitions)
    producer = MemoryTransport(broker)
    producer.ensure_topics([settings.topic_raw, settings.topic_dlq], partitions=settings.topic_partitions)
    processor = build_processor(session_factory=session_factory,
                                scorer=wiring.pipeline_scorer(settings, checkpoint, device))  # fmt: skip
    version = wiring.model_version(settings, session_factory)  # what the monitor and the dashboard show
    worker = build_worker(settings=settings, transport=MemoryTransport(broker), processor=processor,
                          metrics=shared(WorkerMetrics) if server is not None else None)  # fmt: skip
    checks.update(wiring.readiness(engine, worker))
    stop = wiring.stop_on_sigterm()
    viewer = _start_dashboard(settings) if dashboard else None
    scoring = threading.Thread(target=worker.run, args=(stop,), name="scoring-worker", daemon=True)
    scoring.start()
    started = time.monotonic()
    scheduler = launch_sources(sources, settings, producer, session_factory) if sources else None
    replaying, replayed, clock = None, None, None
    interrupted = False
    try:
        if replay is not None:
            replaying, replayed, clock = _start_replay(replay, settings=settings, producer=producer,
                                                       session_factory=session_factory, stop=stop, speed=speed,
                                                       max_gap=max_gap, shift=shift, since=start, until=end,
                                                       limit=limit)  # fmt: skip
            clock.started.wait()  # the stream's first time is known: the monitor starts there, not at the wall clock
        if monitor_cfg is not None:
            scheduler = _start_monitor(monitor_cfg, scheduler=scheduler, session_factory=session_factory,
                                       version=version, evaluate_every=evaluate_every, metrics=server is not None,
                                       stop=stop, clock=clock)  # fmt: skip
        drained = (lambda: broker.drained(settings.consumer_group, settings.topic_raw)) if exit_when_done else None
        _wait(worker, scoring, replaying, stop=stop, started=started, drained=drained)
        interrupted = stop.is_set()  # SIGTERM
    except KeyboardInterrupt:
        interrupted = True
        typer.echo("stopping")
    finally:
        stop.set()  # also ends a delivery in flight (a hanging webhook): its attempt is retried by the next monitor
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if replaying is not None:
            replaying.join(timeout=10)
        scoring.join(timeout=30)
        if viewer is not None:
            viewer.terminate()
            viewer.wait(timeout=10)
        wiring.stop_metrics(server)
    typer.echo(_status(worker, started))
    if monitor_cfg is not None:  # a last look, so what the stored news says is in the alerts before exiting
        from monitor.scheduler import last_look

        # Interrupted: no delivery, which could hang up to a receiver's timeout_s; the outbox keeps the rows.
        open_alerts = last_look(session_factory=session_factory, config=monitor_cfg, now=wiring.now(),
                                version=version, deliver=not interrupted)  # fmt: skip
        typer.echo(f"alerts open: {open_alerts} (finsent alerts list shows them with their evidence)")
    stats = worker.stats
    if replayed is not None and exit_when_done and not interrupted and stats.stored + stats.duplicates == 0:
        if replayed.errors or stats.rejected:  # everything it was given was refused: the run achieved nothing
            first = f"; the first: {replayed.first_error}" if replayed.first_error else ""
            fail(
                f"nothing stored: {replayed.errors} unreadable rows and {stats.rejected} rejected items in {replay} "
                f"(the rejects table keeps each with its reason){first}"
            )


def _start_monitor(
    config: MonitorConfig,
    *,
    scheduler: BackgroundScheduler | None,
    session_factory: sessionmaker[Session],
    version: str,
    evaluate_every: float,
    metrics: bool,
    stop: threading.Event,
    clock: ReplayClock | None = None,
) -> BackgroundScheduler:
    """The monitor's jobs on the sources' scheduler, or on a new one, evaluating at `clock` (a replay's) if given;
    returns the scheduler."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from core.metrics import shared
    from monitor.metrics import MonitorMetrics
    from monitor.scheduler import schedule_monitor

    if scheduler is None:
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.start()
    schedule_monitor(scheduler, session_factory=session_factory, config=config, version=version,
                     evaluate_every_s=evaluate_every, deliver_every_s=2,
                     metrics=shared(MonitorMetrics) if metrics else None, stop=stop, clock=clock)  # fmt: skip
    return scheduler


def _wait(
    worker: ScoringWorker,
    scoring: threading.Thread,
    replaying: threading.Thread | None,
    *,
    stop: threading.Event,
    started: float,
    drained: Callable[[], bool] | None,
) -> None:
    """Print the worker's totals every 5 s until stopped, or, with `drained`, until the replay is in and stored."""
    last = time.monotonic()
    while not stop.is_set() and scoring.is_alive():
        replayed = replaying is None or not replaying.is_alive()
        if drained is not None and replayed and drained():
            return
        if time.monotonic() - last >= 5:
            typer.echo(_status(worker, started))
            last = time.monotonic()
        stop.wait(0.2)


def _status(worker: ScoringWorker, started: float) -> str:
    s = worker.stats
    rate = s.stored / max(1e-9, time.monotonic() - started)
    return f"received {s.received}, stored {s.stored} ({rate:.0f}/s), duplicates {s.duplicates}, rejected {s.rejected}"


def _start_dashboard(settings: Settings) -> subprocess.Popen:
    """The dashboard as a child process on the same database."""
    env = {**os.environ, "FINSENT_DATABASE_URL": settings.database_url}
    viewer = subprocess.Popen(dashboard_command_line(host="127.0.0.1", port=8501), env=env)
    typer.echo("dashboard on http://127.0.0.1:8501 (Ctrl-C stops everything)")
    return viewer


def _start_replay(
    path: Path,
    *,
    settings: Settings,
    producer: MemoryTransport,
    session_factory: sessionmaker[Session],
    stop: threading.Event,
    speed: float,
    max_gap: float,
    shift: bool,
    since: datetime | None,
    until: datetime | None,
    limit: int | None,
) -> tuple[threading.Thread, ReplayOutcome, ReplayClock]:
    """Replay a news file onto news.raw in a thread; unreadable rows take the sources' path (rejects, news.dlq).
    Returns the thread, what it did, and the stream's clock."""
    from ingest.replay import ReplayClock, replay
    from ingest.service import IngestService

    rejects = IngestService(transport=producer, session_factory=session_factory, topic=settings.topic_raw,
                            dlq_topic=settings.topic_dlq)  # fmt: skip
    window = "" if since is None and until is None else f" from {since or 'the start'} to {until or 'the end'}"
    typer.echo(f"replaying {path}{window} at {speed:g}x into {settings.database_url.split('://')[0]}")

    outcome = ReplayOutcome()
    clock = ReplayClock()

    def reject(record) -> None:
        outcome.first_error = outcome.first_error or record.error
        rejects.publish([record], kind="file")

    def play() -> None:
        try:
            done = replay(
                path,
                publish=lambda k, v: producer.publish(settings.topic_raw, k, v),
                reject=reject, speed=speed, max_gap_s=max_gap, shift=shift, since=since, until=until, limit=limit,
                stop=stop, stream=clock,
            )  # fmt: skip
        finally:
            clock.finish()  # also when the file could not be read: the monitor must not wait for a stream
        outcome.errors = done.errors
        typer.echo(f"replay finished: {done.published} published, {done.errors} unreadable rows")

    thread = threading.Thread(target=play, name="replay", daemon=True)
    thread.start()
    return thread, outcome, clock


@dataclass
class ReplayOutcome:
    """What the replay thread did, for the command's exit status."""

    errors: int = 0
    first_error: str | None = None
