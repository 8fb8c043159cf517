"""finsent: the command line and the composition root. Stages are imported lazily inside each command so
that `finsent --help` is instant and a command loads only what it uses."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights ship in packages and in the repo; never reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"

app = typer.Typer(name="finsent", help="Financial-news sentiment monitor.", no_args_is_help=True, add_completion=False)
model_app = typer.Typer(help="Train, inspect, evaluate and explain the sentiment model.", no_args_is_help=True)
app.add_typer(model_app, name="model")
db_app = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")

CheckpointOpt = Annotated[
    Path | None, typer.Option("--checkpoint", help="Checkpoint directory (default: model/weights/DEFAULT).")
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus /metrics on this port (0: off; default FINSENT_METRICS_PORT; bound to "
        "FINSENT_METRICS_HOST, 127.0.0.1 unless set).",
    ),
]
_LOGGING: dict[str, str | None] = {}  # --log-format / --log-level of this invocation (see main)


@app.callback()
def main(
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="text | json (default: FINSENT_LOG_FORMAT, else text).")
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", help="DEBUG | INFO | WARNING | ERROR (default: FINSENT_LOG_LEVEL, else per command)"
        ),
    ] = None,
) -> None:
    """Financial-news sentiment monitor."""
    if log_format is not None and log_format not in ("text", "json"):
        fail(f"--log-format: {log_format!r} is not text or json")
    if log_level is not None and log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(f"--log-level: {log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    _LOGGING.clear()
    _LOGGING.update(format=log_format, level=log_level.upper() if log_level else None)


def fail(message: str) -> None:
    """One clear line on stderr and a non-zero exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _scorer(checkpoint: Path | None, device: str = "cpu", precision: str = "auto"):
    from model.scorer import CheckpointError, Scorer

    try:
        return Scorer(checkpoint, device=device, precision=precision)
    except (CheckpointError, ValueError) as exc:
        fail(str(exc))


@model_app.command("train")
def model_train(
    data_dir: Annotated[Path, typer.Option(help="Folder with the labelled development data.")] = SHARED_DATA,
    out_dir: Annotated[Path | None, typer.Option(help="Where to write <version>/ (default: model/weights).")] = None,
    epochs: int = 5,
    lr: float = 1e-4,
    batch_size: int = 32,
    seed: int = 13,
    max_length: int = 128,
    phrasebank_repeat: int = 2,
    class_weighting: str = "sqrt",
    label_smoothing: float = 0.0,
    mlm_epochs: Annotated[float, typer.Option(help="Domain-adaptive MLM epochs on news_stream first.")] = 0.0,
    head_lr: float = 1e-3,
    align_rollout: Annotated[
        float, typer.Option(help="Weight of the loss aligning pooling weights with attention rollout (0: off).")
    ] = 0.0,
    init_from: Annotated[Path | None, typer.Option(help="Continue from this checkpoint instead of a new head.")] = None,
    device: str = "auto",
    max_train: Annotated[int, typer.Option(help="Cap the training set (smoke runs); 0 = all.")] = 0,
    faithfulness_n: int = 300,
    evaluate_paths: Annotated[bool, typer.Option(help="Evaluate CPU paths and faithfulness into the card.")] = True,
    set_default: Annotated[bool, typer.Option(help="Point model/weights/DEFAULT at the new checkpoint.")] = True,
) -> None:
    """Train the model on ../shared/data and write a checkpoint with its model card."""
    from model.train import WEIGHTS_DIR, TrainConfig, train

    if not data_dir.is_dir():
        fail(f"{data_dir}: no such data folder")
    cfg = TrainConfig(
        data_dir=str(data_dir),
        out_dir=str(out_dir or WEIGHTS_DIR),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        max_length=max_length,
        phrasebank_repeat=phrasebank_repeat,
        class_weighting=class_weighting,
        label_smoothing=label_smoothing,
        mlm_epochs=mlm_epochs,
        head_lr=head_lr,
        align_rollout=align_rollout,
        init_from=str(init_from) if init_from else None,
        device=device,
        max_train=max_train,
        faithfulness_n=faithfulness_n,
        evaluate_paths=evaluate_paths,
    )
    path = train(cfg, log=typer.echo, command="finsent " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    if set_default:
        (Path(cfg.out_dir) / "DEFAULT").write_text(path.name + "\n")
        typer.echo(f"DEFAULT -> {path.name}")


@model_app.command("info")
def model_info(checkpoint: CheckpointOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Version, architecture, inference paths and headline metrics of a checkpoint."""
    from model.scorer import CheckpointError, default_checkpoint

    try:
        path = checkpoint or default_checkpoint()
    except CheckpointError as exc:
        fail(str(exc))
    card_path = Path(path) / "card.json"
    if not card_path.is_file():
        fail(f"{path}: no card.json")
    card = json.loads(card_path.read_text())
    if as_json:
        typer.echo(json.dumps(card, indent=2))
        return
    typer.echo(f"version      {card['version']}")
    typer.echo(f"path         {path}")
    typer.echo(f"encoder      {card['architecture']['encoder']}")
    typer.echo(f"parameters   {card['architecture']['parameters']:,}")
    if "inference" in card:
        typer.echo(
            f"cpu default  {card['inference']['cpu_default']}   cuda default  {card['inference']['cuda_default']}"
        )
    typer.echo(f"temperature  {card['calibration']['temperature']:.3f}")
    for precision, metrics in card.get("metrics", {}).get("test", {}).items():
        typer.echo(f"\ntest metrics ({precision})")
        for name, m in metrics.items():
            typer.echo(f"  {name:<22} n={m['n']:<5} accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")


def mark_words(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with each [start, end) span wrapped in [[ ]]."""
    out, pos = [], 0
    for s, e in sorted(spans):
        out += [text[pos:s], "[[", text[s:e], "]]"]
        pos = e
    out.append(text[pos:])
    return "".join(out)


@model_app.command("explain")
def model_explain(
    texts: Annotated[list[str] | None, typer.Argument(help="Text(s) to classify and explain.")] = None,
    file: Annotated[Path | None, typer.Option(help="A file with one text per line.")] = None,
    method: Annotated[str, typer.Option(help="pooling | rollout | ig")] = "pooling",
    top_k: int = 5,
    checkpoint: CheckpointOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text.")] = False,
) -> None:
    """Label, probabilities, and the text with its most-attended words marked [[like this]]."""
    from model.explain import METHODS, Explainer
    from model.scorer import CheckpointError, ScoreInputError

    if method not in METHODS:
        fail(f"unknown method {method!r} (choose from {', '.join(METHODS)})")
    items = list(texts or [])
    if file is not None:
        if not file.is_file():
            fail(f"{file}: no such file")
        items += [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not items:
        fail("nothing to explain: give a TEXT argument or --file")
    try:
        explainer = Explainer(checkpoint)
    except CheckpointError as exc:
        fail(str(exc))
    for text in items:
        try:
            explanation = explainer.explain(text, method=method, top_k=top_k)
        except ScoreInputError as exc:
            fail(str(exc))
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "text": text,
                        "label": explanation.label,
                        "probabilities": explanation.probabilities,
                        "method": method,
                        "model_version": explainer.version,
                        "attributions": [a.__dict__ for a in explanation.attributions],
                    }
                )
            )
            continue
        probs = "  ".join(f"{k} {v:.3f}" for k, v in explanation.probabilities.items())
        typer.echo(f"\n{mark_words(text, [(a.start, a.end) for a in explanation.attributions])}")
        typer.echo(f"  label {explanation.label}   {probs}   ({method})")
        for a in explanation.attributions:
            typer.echo(f"  {a.rank}. {a.word!r:<24} {a.weight:.4f}  [{a.start}:{a.end}]")


@model_app.command("evaluate")
def model_evaluate(
    file: Annotated[Path, typer.Argument(help="CSV with a text column and a negative/neutral/positive label.")],
    text_col: str = "text",
    label_col: str = "label",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    checkpoint: CheckpointOpt = None,
    precision: Annotated[str, typer.Option(help="auto | fp32 | int8 | bf16")] = "auto",
    device: str = "cpu",
    batch_size: int = 64,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix on a labelled CSV."""
    from model.evaluate import EvaluationInputError, evaluate_texts, format_report, read_labelled_csv
    from model.scorer import ScoreInputError

    try:
        texts, labels = read_labelled_csv(file, text_col, label_col)
    except EvaluationInputError as exc:
        fail(str(exc))
    scorer = _scorer(checkpoint, device, precision)
    try:
        metrics = evaluate_texts(scorer, texts, labels, batch_size=batch_size)
    except ScoreInputError as exc:
        fail(f"{file}: {exc} (row numbers count from the first data row as item 0)")
    if as_json:
        keys = ("n", "accuracy", "macro_f1", "per_class", "confusion", "ece")
        typer.echo(
            json.dumps({k: metrics[k] for k in keys} | {"model_version": scorer.version, "precision": scorer.precision})
        )
    else:
        typer.echo(f"model {scorer.version} ({scorer.device.type} {scorer.precision})\n{format_report(metrics)}")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url: Annotated[
        str | None, typer.Option(help="Database URL (default: FINSENT_DATABASE_URL, else sqlite:///finsent.db).")
    ] = None,
) -> None:
    """Create or migrate the database schema (alembic upgrade head); safe to run on every start."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import DatabaseURLError, current_revision, make_engine, upgrade
    from core.settings import Settings, redact_url

    url = database_url or Settings().database_url
    try:
        upgrade(url, revision)
        engine = make_engine(url)
        try:
            now_at = current_revision(engine)
        finally:
            engine.dispose()
    except (DatabaseURLError, SQLAlchemyError) as exc:
        fail(f"{redact_url(url)}: {str(exc).splitlines()[0]}")
    typer.echo(f"{redact_url(url)} at revision {now_at}")


# ------------------------------------------------------------------------------------------- the pipeline


DatabaseOpt = Annotated[
    str | None, typer.Option(help="Database URL (default: FINSENT_DATABASE_URL, else sqlite:///finsent.db).")
]
DateOpt = Annotated[str | None, typer.Option(help="ISO date or time, UTC unless an offset is given.")]


def _settings(database_url: str | None = None, **overrides):
    from pydantic import ValidationError

    from core.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        fail(f"bad FINSENT_ setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    updates = {k: v for k, v in {"database_url": database_url, **overrides}.items() if v is not None}
    return settings.model_copy(update=updates)


def _logging(settings, default_level: str = "INFO") -> None:
    """Configure logging (text or JSON on stderr) with every secret we know of redacted from it."""
    import re

    from core.logs import setup_logging

    # Secrets handed in through the environment under a telling name (the feed token, webhook secrets, passwords).
    named = [v for k, v in os.environ.items() if re.fullmatch(r"FINSENT_\w*(PASSWORD|SECRET|TOKEN)", k.upper())]
    setup_logging(
        _LOGGING.get("level") or settings.log_level or default_level,
        _LOGGING.get("format") or settings.log_format,
        secrets=[*settings.secret_values(), *named],
    )


def _metrics_server(settings, port: int | None):
    """Start the Prometheus /metrics endpoint when a port is set (option, else FINSENT_METRICS_PORT); else None."""
    port = settings.metrics_port if port is None else port
    if not port:
        return None
    from core.metrics import serve_metrics

    try:
        server = serve_metrics(port, settings.metrics_host)
    except OSError as exc:
        fail(f"--metrics-port {port}: cannot listen on {settings.metrics_host}: {exc.strerror or exc}")
    typer.echo(f"metrics on http://{settings.metrics_host}:{server.server_address[1]}/metrics", err=True)
    return server


def _stop_metrics(server) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


def _database(settings, migrate: bool = True):
    """(engine, session factory) for the settings' database, migrated to head first."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import DatabaseURLError, make_engine, make_session_factory, upgrade
    from core.settings import redact_url

    try:
        if migrate:
            upgrade(settings.database_url)
        engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    except (DatabaseURLError, SQLAlchemyError) as exc:
        fail(f"{redact_url(settings.database_url)}: {str(exc).splitlines()[0]}")
    return engine, make_session_factory(engine)


def _when(value: str | None, name: str):
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name}: {value!r} is not an ISO date or time (e.g. 2020-01-31 or 2020-01-31T09:30:00Z)")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _processor(session_factory, checkpoint: Path | None, device: str):
    from ingest.pipeline import Pipeline
    from model.worker import BatchProcessor, freeze_startup_objects

    processor = BatchProcessor(session_factory=session_factory, scorer=_scorer(checkpoint, device), pipeline=Pipeline())
    freeze_startup_objects()
    return processor


def _worker(settings, transport, processor, *, metrics: bool = False):
    """A scoring worker; with `metrics`, every batch is recorded in the process's Prometheus metrics."""
    from model.worker import ScoringWorker

    on_batch = None
    if metrics:
        from core.metrics import BatchClock, WorkerMetrics, batch_hook, shared

        processor = BatchClock(processor)  # notes when each batch starts, so on_batch can time all of it
        on_batch = batch_hook(shared(WorkerMetrics), clock=processor, transport=transport)
    return ScoringWorker(
        on_batch=on_batch,
        transport=transport,
        processor=processor,
        topic=settings.topic_raw,
        dlq_topic=settings.topic_dlq,
        group=settings.consumer_group,
        max_batch=settings.batch_max_size,
        max_delay_s=settings.batch_max_delay_s,
    )


def _stop_on_signals():
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def _kafka(settings):
    """A Kafka transport with news.raw and news.dlq created; one clear line when the broker cannot be reached."""
    from core.transport import KafkaTransport, TransportError

    transport = KafkaTransport.from_settings(settings)
    try:
        transport.ensure_topics([settings.topic_raw, settings.topic_dlq], partitions=settings.topic_partitions)
    except TransportError as exc:
        fail(str(exc))
    return transport


@app.command("score")
def score_command(
    database_url: DatabaseOpt = None,
    checkpoint: CheckpointOpt = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    idle_exit: Annotated[float | None, typer.Option(help="Exit after this many idle seconds (default: never).")] = None,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Run a scoring worker: consume news.raw from Kafka (FINSENT_KAFKA_BOOTSTRAP) in the consumer group."""
    settings = _settings(database_url)
    _logging(settings, "INFO")
    if settings.transport != "kafka":
        fail("`finsent score` consumes from Kafka: set FINSENT_TRANSPORT=kafka (embedded mode is `finsent run`)")
    _, session_factory = _database(settings)
    transport = _kafka(settings)
    metrics = _metrics_server(settings, metrics_port)
    worker = _worker(settings, transport, _processor(session_factory, checkpoint, device), metrics=metrics is not None)
    try:
        stats = worker.run(_stop_on_signals(), idle_exit_s=idle_exit)
    finally:
        _stop_metrics(metrics)
    typer.echo(
        f"received {stats.received}, stored {stats.stored}, duplicates {stats.duplicates}, rejected {stats.rejected}"
    )


@app.command("backfill")
def backfill_command(
    paths: Annotated[list[Path], typer.Argument(help="CSV / JSONL files (news_stream columns by default).")],
    since: DateOpt = None,
    until: DateOpt = None,
    source: Annotated[
        str | None, typer.Option(help="Source name for rows without one (default: the file name).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    via_kafka: Annotated[
        bool, typer.Option(help="Publish to news.raw for the workers instead of scoring here.")
    ] = False,
    database_url: DatabaseOpt = None,
    checkpoint: CheckpointOpt = None,
    device: str = "auto",
) -> None:
    """Score historical files through the live path; resumable, and re-running a file adds nothing."""
    from ingest.backfill import Backfill

    for path in paths:
        if not path.is_file():
            fail(f"{path}: no such file")
    settings = _settings(database_url)
    _, session_factory = _database(settings)
    common = dict(session_factory=session_factory, since=_when(since, "since"), until=_when(until, "until"),
                  source=source, batch_size=batch_size)  # fmt: skip
    if via_kafka:
        from core.transport import TransportError

        transport = _kafka(settings)
        try:
            run = Backfill(publish=lambda k, v: transport.publish(settings.topic_raw, k, v), flush=transport.flush,
                           **common)  # fmt: skip
            report = run.run(paths)
        except TransportError as exc:
            fail(str(exc))
        finally:
            transport.close()
    else:
        report = Backfill(process=_processor(session_factory, checkpoint, device).process, **common).run(paths)
    for path in report.already_done:
        typer.echo(f"{path}: already backfilled with these filters; nothing added")
    typer.echo(
        f"rows read {report.rows}, outside the dates {report.skipped_rows}, "
        + (f"published {report.sent}" if via_kafka else f"stored {report.stored}, duplicates {report.duplicates}")
        + f", rejected {report.rejected}"
    )


@app.command("rescore")
def rescore_command(
    model: Annotated[str, typer.Option("--model", help="Model version (a folder in model/weights) or a path.")],
    since: DateOpt = None,
    until: DateOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    database_url: DatabaseOpt = None,
    device: str = "auto",
) -> None:
    """Score stored articles with another model version; existing scores of other versions are kept."""
    from ingest.pipeline import scoring_text
    from model.scorer import WEIGHTS_DIR
    from model.worker import rescore

    path = Path(model) if Path(model).is_dir() else WEIGHTS_DIR / model
    if not path.is_dir():
        fail(f"model {model!r}: no such checkpoint (looked in {WEIGHTS_DIR})")
    settings = _settings(database_url)
    _, session_factory = _database(settings)
    scorer = _scorer(path, device)
    done = rescore(session_factory=session_factory, scorer=scorer, since=_when(since, "since"),
                   until=_when(until, "until"), batch_size=batch_size, text_of=scoring_text)  # fmt: skip
    typer.echo(f"scored {done} articles with {scorer.version}")


@app.command("run")
def run_command(
    replay: Annotated[Path | None, typer.Option(help="Play this news file as a live stream.")] = None,
    speed: Annotated[float, typer.Option(help="Replay speed: original gaps divided by this.")] = 1.0,
    max_gap: Annotated[float, typer.Option(help="Longest pause between two replayed items, seconds.")] = 1.0,
    shift: Annotated[bool, typer.Option(help="Re-time replayed items to now (the original time is kept).")] = True,
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
    """Everything in one process (memory transport + the configured database): replay, scoring, storage."""
    import threading
    import time

    from core.transport import MemoryBroker, MemoryTransport
    from ingest.replay import replay as replay_file

    if replay is not None and not replay.is_file():
        fail(f"{replay}: no such file")
    monitor_cfg = _monitor_config(monitor) if monitor else None
    settings = _settings(database_url, transport="memory")
    _logging(settings, "WARNING")
    _, session_factory = _database(settings)
    metrics = _metrics_server(settings, metrics_port)
    broker = MemoryBroker(default_partitions=settings.topic_partitions)
    producer = MemoryTransport(broker)
    producer.ensure_topics([settings.topic_raw, settings.topic_dlq], partitions=settings.topic_partitions)
    worker = _worker(
        settings, MemoryTransport(broker), _processor(session_factory, checkpoint, device), metrics=metrics is not None
    )
    stop = _stop_on_signals()
    viewer = None
    if dashboard:
        import subprocess

        env = {**os.environ, "FINSENT_DATABASE_URL": settings.database_url}
        viewer = subprocess.Popen(dashboard_command_line(host="127.0.0.1", port=8501), env=env)
        typer.echo("dashboard on http://127.0.0.1:8501 (Ctrl-C stops everything)")
    thread = threading.Thread(target=worker.run, args=(stop,), name="scoring-worker", daemon=True)
    thread.start()
    started = time.monotonic()
    scheduler = _start_sources(sources, settings, producer, session_factory) if sources else None
    if monitor_cfg is not None:
        from apscheduler.schedulers.background import BackgroundScheduler

        from monitor.scheduler import schedule_monitor

        if scheduler is None:
            scheduler = BackgroundScheduler(timezone="UTC")
            scheduler.start()
        from core.metrics import MonitorMetrics, shared

        schedule_monitor(scheduler, session_factory=session_factory, config=monitor_cfg,
                         evaluate_every_s=evaluate_every, deliver_every_s=2,
                         metrics=shared(MonitorMetrics) if metrics is not None else None)  # fmt: skip

    def status() -> str:
        s = worker.stats
        rate = s.stored / max(1e-9, time.monotonic() - started)
        return (f"received {s.received}, stored {s.stored} ({rate:.0f}/s), duplicates {s.duplicates}, "
                f"rejected {s.rejected}")  # fmt: skip

    def drained() -> bool:
        return all(
            broker.committed(settings.consumer_group, settings.topic_raw, p) >= broker.highwater(settings.topic_raw, p)
            for p in range(broker.partitions(settings.topic_raw))
        )

    replaying = None
    try:
        if replay is not None:
            from ingest.service import IngestService

            # Unreadable rows take the sources' path: the rejects table and news.dlq.
            rejects = IngestService(transport=producer, session_factory=session_factory, topic=settings.topic_raw,
                                    dlq_topic=settings.topic_dlq)  # fmt: skip
            typer.echo(f"replaying {replay} at {speed:g}x into {settings.database_url.split('://')[0]}")

            def play() -> None:
                done = replay_file(
                    replay,
                    publish=lambda k, v: producer.publish(settings.topic_raw, k, v),
                    reject=lambda record: rejects.publish([record], kind="file"),
                    speed=speed, max_gap_s=max_gap, shift=shift, limit=limit, stop=stop,
                )  # fmt: skip
                typer.echo(f"replay finished: {done.published} published, {done.errors} unreadable rows")

            replaying = threading.Thread(target=play, name="replay", daemon=True)
            replaying.start()
        last = time.monotonic()
        while not stop.is_set() and thread.is_alive():
            if exit_when_done and (replaying is None or not replaying.is_alive()) and drained():
                break
            if time.monotonic() - last >= 5:
                typer.echo(status())
                last = time.monotonic()
            stop.wait(0.2)
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        stop.set()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        if replaying is not None:
            replaying.join(timeout=10)
        thread.join(timeout=30)
        if viewer is not None:
            viewer.terminate()
            viewer.wait(timeout=10)
        _stop_metrics(metrics)
    typer.echo(status())
    if monitor_cfg is not None:  # a last look, so what the stored news says is in the alerts before exiting
        from monitor.scheduler import delivery_job, evaluation_job, receivers_of

        evaluation_job(session_factory=session_factory, config=monitor_cfg)
        delivery_job(session_factory=session_factory, receivers=receivers_of(monitor_cfg))
        from monitor.alerts import list_alerts

        with session_factory() as session:
            current = [a for a in list_alerts(session, limit=1000) if a.status in ("pending", "firing")]
        typer.echo(f"alerts open: {len(current)} (finsent alerts list shows them with their evidence)")


def _start_sources(path: Path, settings, transport, session_factory):
    """Publish file sources once and start polling feeds; returns the running scheduler."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from ingest.config import ConfigError, FileSourceConfig, RssSourceConfig, load_sources
    from ingest.scheduler import poll_feed, schedule_feeds
    from ingest.service import IngestService
    from ingest.sources.files import read_file

    try:
        configs = load_sources(path)
    except ConfigError as exc:
        fail(str(exc))
    service = IngestService(
        transport=transport, session_factory=session_factory, topic=settings.topic_raw, dlq_topic=settings.topic_dlq
    )
    for cfg in configs:
        if isinstance(cfg, FileSourceConfig):
            published, rejected = service.publish(
                read_file(cfg.path, source=cfg.name, mapping=cfg.field_mapping()), kind="file", health_name=cfg.name
            )
            typer.echo(f"source {cfg.name}: {published} items published, {rejected} rejected")
    pollers = [cfg.poller() for cfg in configs if isinstance(cfg, RssSourceConfig)]
    for poller in pollers:  # a first poll now, so what the feeds hold is in before anything waits on it
        poll_feed(poller, service.handle_poll)
    scheduler = BackgroundScheduler(timezone="UTC")
    schedule_feeds(scheduler, pollers, service.handle_poll)
    scheduler.start()
    if pollers:
        typer.echo(f"polling {len(pollers)} feed(s): " + ", ".join(p.name for p in pollers))
    return scheduler


@app.command("ingest")
def ingest_command(
    sources: Annotated[Path, typer.Option(help="Sources TOML (see sources.example.toml).")],
    database_url: DatabaseOpt = None,
) -> None:
    """Run the sources on their own, publishing to Kafka's news.raw for `finsent score` workers."""
    settings = _settings(database_url)
    _logging(settings, "INFO")
    if settings.transport != "kafka":
        fail("`finsent ingest` publishes to Kafka: set FINSENT_TRANSPORT=kafka (embedded mode is `finsent run`)")
    _, session_factory = _database(settings)
    transport = _kafka(settings)
    stop = _stop_on_signals()
    scheduler = _start_sources(sources, settings, transport, session_factory)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.shutdown(wait=False)
        transport.close()


# ---------------------------------------------------------------------------------------------- the monitor

alerts_app = typer.Typer(help="Alerts: list, acknowledge, silence, follow, replay over history.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")
feed_app = typer.Typer(help="The alert feed server (Atom and JSON).", no_args_is_help=True)
app.add_typer(feed_app, name="feed")
ConfigOpt = Annotated[Path, typer.Option("--config", help="Monitor TOML (see monitor.example.toml).")]


def _monitor_config(path: Path):
    """The validated monitor config, or one clear line naming the file and key."""
    from core.logs import register_secrets
    from monitor.rules import RuleConfigError, load_config
    from monitor.scheduler import receivers_of

    try:
        config = load_config(path)
        receivers = receivers_of(config)
    except RuleConfigError as exc:
        fail(str(exc))
    for receiver in receivers.values():  # a Slack webhook URL is itself a credential; HMAC secrets come from env
        register_secrets(receiver.url if receiver.kind == "slack" else None,
                         os.environ.get(receiver.secret_env) if receiver.secret_env else None)  # fmt: skip
    return config


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


@app.command("monitor")
def monitor_command(
    config: ConfigOpt,
    evaluate_every: Annotated[float, typer.Option(help="Seconds between rule evaluations.")] = 30,
    deliver_every: Annotated[float, typer.Option(help="Seconds between outbox deliveries.")] = 5,
    once: Annotated[bool, typer.Option(help="Evaluate and deliver once, then exit.")] = False,
    database_url: DatabaseOpt = None,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Evaluate the alert rules on a schedule and deliver notifications (webhooks, Slack, Kafka, log)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    from core.metrics import MonitorMetrics, shared
    from monitor.scheduler import delivery_job, evaluation_job, receivers_of, schedule_monitor

    cfg = _monitor_config(config)
    settings = _settings(database_url)
    _logging(settings, "INFO")
    _, session_factory = _database(settings)
    transport = _alerts_transport(settings, cfg)
    if once:
        report = evaluation_job(session_factory=session_factory, config=cfg)
        sent = delivery_job(session_factory=session_factory, receivers=receivers_of(cfg), transport=transport)
        typer.echo(
            f"findings {report.findings}, fired {report.fired}, resolved {report.resolved}, "
            f"notifications queued {report.notifications}, sent {sent.sent}, failed {sent.failed}"
        )
        return
    metrics = _metrics_server(settings, metrics_port)
    scheduler = BlockingScheduler(timezone="UTC")
    schedule_monitor(scheduler, session_factory=session_factory, config=cfg, evaluate_every_s=evaluate_every,
                     deliver_every_s=deliver_every, transport=transport,
                     metrics=shared(MonitorMetrics) if metrics is not None else None)  # fmt: skip
    import signal

    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_metrics(metrics)


def _alerts_transport(settings, cfg):
    """A Kafka transport when a receiver of kind kafka is configured (the `alerts` topic), else None."""
    if not any(r.get("kind") == "kafka" for r in cfg.receivers):
        return None
    from core.transport import KafkaTransport

    return KafkaTransport.from_settings(settings)


@alerts_app.command("list")
def alerts_list(
    status: Annotated[str | None, typer.Option(help="pending | firing | resolved")] = None,
    ticker: str | None = None,
    limit: int = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Alerts, newest first, with their evidence (with --json: the objects of the /alerts.json feed)."""
    from monitor.feed import AlertFilter, load_alerts

    if status not in (None, "pending", "firing", "resolved"):
        fail(f"--status: {status!r} is not pending, firing or resolved")
    _, session_factory = _database(_settings(database_url))
    filters = AlertFilter(tickers=(ticker,) if ticker else (), statuses=(status,) if status else (), limit=limit,
                          replayed=True)  # fmt: skip
    with session_factory() as session:
        out = load_alerts(session=session, filters=filters)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    for a in out:
        typer.echo(_alert_line(a))
        for e in a["evidence"][:3]:
            words = ", ".join(w for w, _ in e["words"][:3])
            typer.echo(f"      {e['published_at'][:16]}  {e['title'][:90]}  [{words}]")


def _alert_line(a: dict) -> str:
    subject = a["ticker"] or a["labels"].get("source", "")
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

    _, session_factory = _database(_settings(database_url))
    try:
        with session_factory() as session, session.begin():
            ack(session, alert_id, by=by, now=_now(), comment=comment)
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
    """Silence notifications of alerts matching every matcher, for a while."""
    from monitor.alerts import add_silence

    _, session_factory = _database(_settings(database_url))
    try:
        with session_factory() as session, session.begin():
            silence = add_silence(session, matchers=match, author=author, comment=comment, now=_now(),
                                  duration=duration)  # fmt: skip
            typer.echo(f"silence {silence.id} until {silence.ends_at.isoformat(timespec='minutes')}")
    except ValueError as exc:
        fail(str(exc))


@alerts_app.command("expire")
def alerts_expire(silence_id: int, database_url: DatabaseOpt = None) -> None:
    """End a silence now."""
    from monitor.alerts import expire_silence

    _, session_factory = _database(_settings(database_url))
    try:
        with session_factory() as session, session.begin():
            expire_silence(session, silence_id, now=_now())
    except LookupError as exc:
        fail(str(exc))
    typer.echo(f"silence {silence_id} expired")


@alerts_app.command("silences")
def alerts_silences(database_url: DatabaseOpt = None) -> None:
    """Active silences."""
    from monitor.alerts import active_silences

    _, session_factory = _database(_settings(database_url))
    with session_factory() as session:
        for s in active_silences(session, _now()):
            matchers = ", ".join(f"{m['name']}{m['op']}{m['value']}" for m in json.loads(s.matchers))
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

    from sqlalchemy import func, select

    from core.schema import Alert, AlertEvent

    _, session_factory = _database(_settings(database_url))
    with session_factory() as session:
        last = (session.scalar(select(func.max(AlertEvent.id))) or 0) - history
    try:
        while True:
            with session_factory() as session:
                rows = session.execute(
                    select(AlertEvent, Alert).join(Alert, Alert.id == AlertEvent.alert_id)
                    .where(AlertEvent.id > last).order_by(AlertEvent.id)
                ).all()  # fmt: skip
            for event, alert in rows:
                summary = json.loads(alert.annotations).get("summary", "")
                subject = alert.ticker or json.loads(alert.labels).get("source", "")
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
    """Evaluate the rules over stored history and record what would have fired (notifying nobody)."""
    from datetime import timedelta

    from monitor.alerts import run_evaluation
    from monitor.windows import parse_duration

    cfg = _monitor_config(config)
    start, end = _when(since, "since"), _when(until, "until")
    try:
        delta = timedelta(seconds=parse_duration(step))
    except ValueError as exc:
        fail(f"--step: {exc}")
    _, session_factory = _database(_settings(database_url))
    now, fired, resolved = start, 0, 0
    while now <= end:
        report = run_evaluation(session_factory=session_factory, config=cfg, now=now, replay=True)
        fired, resolved = fired + report.fired, resolved + report.resolved
        now += delta
    typer.echo(f"replayed {start.date()} .. {end.date()} every {step}: {fired} alerts fired, {resolved} resolved")


@feed_app.command("serve")
def feed_serve(
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 unless told otherwise).")] = "127.0.0.1",
    port: int = 8080,
    token_env: Annotated[
        str | None, typer.Option(help="Name of an environment variable holding a bearer token to require.")
    ] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Serve /alerts.atom, /alerts.json, /healthz and /metrics (Prometheus; token rule as the feeds)."""
    from core.logs import register_secrets
    from monitor.feed import make_server

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            fail(f"--token-env: environment variable {token_env} is not set")
        register_secrets(token)
    settings = _settings(database_url)
    _logging(settings, "INFO")
    _, session_factory = _database(settings)
    server = make_server(session_factory=session_factory, host=host, port=port, token=token)
    typer.echo(f"alert feeds on http://{host}:{server.server_address[1]}/alerts.atom and /alerts.json")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ---------------------------------------------------------------------------------------------- the dashboard

DASHBOARD = Path(__file__).resolve().parent / "dashboard" / "app.py"


def dashboard_command_line(*, host: str, port: int) -> list[str]:
    """How to start the Streamlit dashboard as its own process."""
    return [
        sys.executable, "-m", "streamlit", "run", str(DASHBOARD),
        "--server.headless", "true", "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


@app.command("dashboard")
def dashboard_command(
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1 unless told otherwise).")] = "127.0.0.1",
    port: int = 8501,
    database_url: DatabaseOpt = None,
) -> None:
    """Start the analyst dashboard (Streamlit); it reads the database only."""
    settings = _settings(database_url)
    _database(settings)  # migrated before anyone looks
    env = {**os.environ, "FINSENT_DATABASE_URL": settings.database_url}
    typer.echo(f"dashboard on http://{host}:{port}", err=True)
    command = dashboard_command_line(host=host, port=port)
    # exec, not a child: signals (Ctrl-C, SIGTERM from a supervisor or a test) reach Streamlit itself.
    os.execve(command[0], command, env)


# ---------------------------------------------------------------------------------------------- operations


@app.command("doctor")
def doctor_command(
    sources: Annotated[Path | None, typer.Option(help="Also check this sources TOML.")] = None,
    monitor: Annotated[Path | None, typer.Option(help="Also check this monitor TOML.")] = None,
    checkpoint: CheckpointOpt = None,
    database_url: DatabaseOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the database and the broker.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: {ok, checks: [...]}.")] = False,
) -> None:
    """Check the database, migrations, broker, model checkpoint and configs; say what is wrong and how to fix it."""
    from pydantic import ValidationError

    from core import doctor
    from core.logs import register_secrets
    from core.settings import Settings

    checks: list = []
    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        what = f"FINSENT_{str(err['loc'][0]).upper()}: {err['msg']}"
        checks.append(doctor.Check("settings", "fail", what, "fix that variable (see the README's settings tables)"))
        bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        try:  # the other checks still run: the bad settings at their defaults, the rest as given
            settings = Settings(**{name: Settings.model_fields[name].default for name in bad})
        except (ValidationError, KeyError):
            settings = Settings.model_construct()
    else:
        backend = settings.database_url.split(":", 1)[0]
        checks.append(doctor.Check("settings", "ok", f"transport {settings.transport}, database {backend}"))
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    _logging(settings, "WARNING")

    checks += doctor.check_database(settings.database_url, timeout_s=timeout)
    checks.append(doctor.check_broker(settings, timeout_s=timeout))

    def load_checkpoint(path: Path):
        from model.scorer import load_network

        return load_network(path)

    def default_checkpoint() -> Path:
        from model.scorer import default_checkpoint

        return default_checkpoint()

    checks.append(doctor.check_checkpoint(checkpoint, default=default_checkpoint, load=load_checkpoint))

    def load_sources(path: Path):
        from ingest.config import load_sources

        return load_sources(path)

    def describe_sources(configs) -> str:
        from collections import Counter

        kinds = Counter(type(c).__name__.removesuffix("SourceConfig").lower() for c in configs)
        return f"{len(configs)} source(s): " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))

    checks.append(doctor.check_config("sources", sources, load=load_sources, describe=describe_sources,
                                      option="--sources"))  # fmt: skip
    needed: dict[str, str] = {}

    def load_monitor(path: Path):
        from monitor.rules import load_config
        from monitor.scheduler import receivers_of

        config = load_config(path)
        for receiver in receivers_of(config).values():
            if receiver.secret_env:
                needed[receiver.secret_env] = f"HMAC secret of receiver {receiver.name!r}"
            if receiver.kind == "slack":
                register_secrets(receiver.url)
        return config

    def describe_monitor(config) -> str:
        return f"{len(config.rules)} rule(s), {len(config.receivers)} receiver(s)"

    checks.append(doctor.check_config("monitor", monitor, load=load_monitor, describe=describe_monitor,
                                      option="--monitor"))  # fmt: skip
    if monitor is not None:
        checks.append(doctor.check_environment("secrets", needed))
    if as_json:
        typer.echo(json.dumps(doctor.as_json(checks), indent=2))
    else:
        typer.echo(doctor.as_text(checks))
    if doctor.failed(checks):
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
