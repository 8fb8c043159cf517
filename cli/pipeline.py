"""The news path as separate processes: `finsent ingest` (sources → news.raw), `finsent score` (news.raw →
database), and the batch jobs over history, `finsent backfill` and `finsent rescore`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import wiring
from cli.wiring import CheckpointOpt, DatabaseOpt, DateOpt, MetricsPortOpt, fail

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlalchemy.orm import Session, sessionmaker

    from core.settings import Settings
    from core.transport import Transport


def score_command(
    database_url: DatabaseOpt = None,
    checkpoint: CheckpointOpt = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    idle_exit: Annotated[float | None, typer.Option(help="Exit after this many idle seconds (default: never).")] = None,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Run a scoring worker: consume news.raw from Kafka (FINSENT_KAFKA_BOOTSTRAP) in the consumer group."""
    settings = wiring.settings(database_url)
    wiring.setup_logging(settings, "INFO")
    if settings.transport != "kafka":
        fail("`finsent score` consumes from Kafka: set FINSENT_TRANSPORT=kafka (embedded mode is `finsent run`)")
    from core.metrics import shared
    from scoring.build import build_processor, build_worker
    from scoring.metrics import WorkerMetrics

    engine, session_factory = wiring.database(settings)
    transport = wiring.kafka(settings)
    checks: dict = {}  # /readyz: filled once the worker exists
    server = wiring.metrics_server(settings, metrics_port, checks)
    processor = build_processor(session_factory=session_factory,
                                scorer=wiring.pipeline_scorer(settings, checkpoint, device))  # fmt: skip
    worker = build_worker(settings=settings, transport=transport, processor=processor,
                          metrics=shared(WorkerMetrics) if server is not None else None)  # fmt: skip
    checks.update(wiring.readiness(engine, worker))
    try:
        stats = worker.run(wiring.stop_on_sigterm(), idle_exit_s=idle_exit)
    finally:
        wiring.stop_metrics(server)
    typer.echo(
        f"received {stats.received}, stored {stats.stored}, duplicates {stats.duplicates}, rejected {stats.rejected}"
    )


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
    columns: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="FIELD=COLUMN",
            help="Read FIELD from COLUMN (repeatable). Fields: title, body, published_at, tickers, url, external_id, "
            "source, ticker_separator. Fields not mapped are found by common column names (Date, Title, Symbol, ...).",
        ),
    ] = None,
    database_url: DatabaseOpt = None,
    checkpoint: CheckpointOpt = None,
    device: str = "auto",
) -> None:
    """Score historical files through the live path; resumable, and re-running a file adds nothing.

    Example: finsent backfill ../shared/data/news_stream/benzinga_analyst_ratings_sample.csv --since 2020-01-01

    Example: finsent backfill prices_news.csv --map title=Headline --map published_at=Date
    """
    for path in paths:
        if not path.is_file():
            fail(f"{path}: no such file")
    from core.transport import TransportError
    from ingest.backfill import Backfill
    from ingest.sources.files import FieldMapping, MappingError, SourceFileError, resolve_mapping

    given: dict[str, str] = {}
    for pair in columns or []:
        field, eq, column = pair.partition("=")
        field = field.strip()
        if not eq or not field:
            fail(f"--map {pair!r}: expected FIELD=COLUMN, e.g. --map title=Headline")
        if field in given:
            fail(f"--map {pair}: {field} is mapped twice ({field}={given[field]} before)")
        given[field] = column if field == "ticker_separator" else column.strip()
        try:
            FieldMapping.from_columns({field: given[field]})  # the names of a sources file's [source.mapping]
        except MappingError as exc:
            fail(f"--map {pair}: {exc}")
    try:
        mappings = {path: resolve_mapping(path, given) for path in paths}
    except MappingError as exc:
        fail(f"--map {exc}")
    except SourceFileError as exc:  # a file of an unknown type, before anything is stored
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename}: {exc.strerror}")
    start, end = wiring.when(since, "since"), wiring.when(until, "until")
    if start is not None and end is not None and start >= end:
        fail(f"--since {since} is not before --until {until}: no row could be backfilled")
    for path, resolved in mappings.items():
        typer.echo(wiring.printable(f"mapping for {path.name}: {resolved.describe()}"))
    settings = wiring.settings(database_url)
    _, session_factory = wiring.database(settings)
    # The progress bar is for a person at a terminal; in a pipe or a log it would be noise around the summary.
    common = dict(session_factory=session_factory, since=start, until=end, source=source, batch_size=batch_size,
                  mappings={p: m.mapping for p, m in mappings.items()}, progress=sys.stderr.isatty())  # fmt: skip
    if via_kafka:
        transport = wiring.kafka(settings)
        try:
            report = Backfill(transport=transport, topic=settings.topic_raw, **common).run(paths)
        except (TransportError, SourceFileError) as exc:
            fail(str(exc))
        finally:
            transport.close()
    else:
        from scoring.build import build_processor

        processor = build_processor(session_factory=session_factory,
                                    scorer=wiring.pipeline_scorer(settings, checkpoint, device))  # fmt: skip
        try:
            report = Backfill(processor=processor, **common).run(paths)
        except SourceFileError as exc:  # a file of an unknown type; the files before it are stored
            fail(str(exc))
    for path in report.already_done:
        typer.echo(f"{wiring.printable(path)}: already backfilled with these filters; nothing added")
    typer.echo(
        f"rows read {report.rows}, outside the dates {report.skipped_rows}, "
        + (f"published {report.sent}" if via_kafka else f"stored {report.stored}, duplicates {report.duplicates}")
        + f", rejected {report.rejected}"
    )
    if report.reasons:
        typer.echo("rejected by reason (the rows are kept in the rejects table):")
        for reason in report.top_reasons(3):
            typer.echo(wiring.printable(f"  {reason.count:>6}  {reason.example[:200]}  (e.g. {reason.where})"))
        if (more := len(report.reasons) - 3) > 0:
            rows = report.rejected - sum(r.count for r in report.top_reasons(3))
            typer.echo(f"  {rows:>6}  for {more} other reason{'s' * (more > 1)}")
    for path in report.refused:
        typer.echo(wiring.printable(f"{path}: every row was rejected; not marked done: fix the mapping (--map "
                                    f"FIELD=COLUMN) or the file and run again"))  # fmt: skip
    for path in report.changed:
        typer.echo(
            f"error: {wiring.printable(path)}: the file changed while it was read; not marked done: run again", err=True
        )
    if report.all_rejected:
        fail(f"every row was rejected ({report.rejected}); the first: {report.first_reject}")
    if report.changed:
        raise typer.Exit(1)


def rescore_command(
    model: Annotated[str, typer.Option("--model", help="Model version (a folder in model/weights) or a path.")],
    since: DateOpt = None,
    until: DateOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    database_url: DatabaseOpt = None,
    device: str = "auto",
) -> None:
    """Score stored articles with another model version; existing scores of other versions are kept.

    Readers show one version (FINSENT_MODEL_VERSION): compare first (`finsent model compare --candidate VERSION`),
    then set FINSENT_MODEL_VERSION=VERSION to show the new scores (docs/model.md, "Rolling out a model version").
    """
    from model.checkpoints import WEIGHTS_DIR, CheckpointError, active_version
    from scoring.rescore import fill_companies, rescore

    path = Path(model) if Path(model).is_dir() else WEIGHTS_DIR / model
    if not path.is_dir():
        fail(f"model {model!r}: no such checkpoint (looked in {WEIGHTS_DIR})")
    settings = wiring.settings(database_url)
    _, session_factory = wiring.database(settings)
    scorer = wiring.scorer(path, device)
    done = rescore(session_factory=session_factory, scorer=scorer, since=wiring.when(since, "since"),
                   until=wiring.when(until, "until"), batch_size=batch_size)  # fmt: skip
    typer.echo(f"scored {done} articles with {scorer.version}")
    companies = fill_companies(session_factory=session_factory, scorer=scorer, since=wiring.when(since, "since"),
                               until=wiring.when(until, "until"), batch_size=batch_size)  # fmt: skip
    if companies:
        typer.echo(f"gave {companies} companies their own sentiment (headlines naming two or more companies)")
    if done or companies:
        from monitor.windows import forget_buckets

        with session_factory() as session, session.begin():
            if forget_buckets(session, scorer.version):  # the monitor's history of this version has new scores
                typer.echo(f"the monitor's buckets of {scorer.version} are folded again at its next evaluation")
    try:
        shown = active_version(settings.model_version)
    except CheckpointError:
        shown = None
    if shown is not None and scorer.version != shown:
        typer.echo(f"the readers show {shown}: compare with `finsent model compare --candidate {scorer.version}`, "
                   f"then set FINSENT_MODEL_VERSION={scorer.version} to show these scores")  # fmt: skip


def ingest_command(
    sources: Annotated[Path, typer.Option(help="Sources TOML (see sources.example.toml).")],
    database_url: DatabaseOpt = None,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Run the sources on their own, publishing to Kafka's news.raw for `finsent score` workers."""
    settings = wiring.settings(database_url)
    wiring.setup_logging(settings, "INFO")
    if settings.transport != "kafka":
        fail("`finsent ingest` publishes to Kafka: set FINSENT_TRANSPORT=kafka (embedded mode is `finsent run`)")
    engine, session_factory = wiring.database(settings)
    transport = wiring.kafka(settings)
    server = wiring.metrics_server(settings, metrics_port, wiring.readiness(engine))
    stop = wiring.stop_on_sigterm()
    scheduler = launch_sources(sources, settings, transport, session_factory)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.shutdown(wait=False)
        transport.close()
        wiring.stop_metrics(server)


def launch_sources(
    path: Path, settings: Settings, transport: Transport, session_factory: sessionmaker[Session]
) -> BackgroundScheduler:
    """Start the sources of a TOML file on a background scheduler (file sources published once); returns it."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from ingest.config import ConfigError, load_sources
    from ingest.service import IngestService, publish_file_sources, start_feeds
    from ingest.sources.files import SourceFileError

    try:
        configs = load_sources(path)
    except ConfigError as exc:
        fail(str(exc))
    service = IngestService(transport=transport, session_factory=session_factory, topic=settings.topic_raw,
                            dlq_topic=settings.topic_dlq)  # fmt: skip
    try:
        for name, published, rejected in publish_file_sources(configs, service=service):
            typer.echo(f"source {name}: {published} items published, {rejected} rejected")
    except SourceFileError as exc:
        fail(f"{path}: {exc}")
    except OSError as exc:  # a file source's path that is missing or unreadable
        fail(f"{path}: {exc.filename}: {exc.strerror}")
    scheduler = BackgroundScheduler(timezone="UTC")
    feeds = start_feeds(configs, service=service, scheduler=scheduler)
    scheduler.start()
    if feeds:
        typer.echo(f"polling {len(feeds)} feed(s): " + ", ".join(feeds))
    return scheduler
