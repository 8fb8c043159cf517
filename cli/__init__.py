"""finsent's command line, the composition root: one module per command group, each command parsing its options,
building settings, database and transport (`cli.wiring`), calling one stage function and turning its errors into
one line. Stages are imported inside each command, so `finsent --help` is instant and a command loads only what
it uses."""

from cli import alerts, export, model, operations, pipeline, retention, run, tickers
from cli.app import app

app.add_typer(model.model_app, name="model")
app.add_typer(operations.db_app, name="db")
app.command("score")(pipeline.score_command)
app.command("backfill")(pipeline.backfill_command)
app.command("rescore")(pipeline.rescore_command)
app.command("run")(run.run_command)
app.command("ingest")(pipeline.ingest_command)
app.add_typer(alerts.alerts_app, name="alerts")
app.add_typer(alerts.feed_app, name="feed")
app.command("monitor")(alerts.monitor_command)
app.command("dashboard")(operations.dashboard_command)
app.command("doctor")(operations.doctor_command)
app.command("tickers")(tickers.tickers_command)
app.command("export")(export.export_command)
app.command("prune")(retention.prune_command)

__all__ = ["app"]
