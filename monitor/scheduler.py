"""The monitor's APScheduler jobs: evaluate rules (after folding new articles into the buckets) and deliver
notifications. Jobs are plain functions taking `now`, registered with explicit ids, coalesced, one at a time;
`finsent monitor` runs them on their own and `finsent run --monitor` beside the pipeline."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts import EvaluationReport, run_evaluation
from monitor.notify import DeliveryReport, Receiver, deliver_pending
from monitor.rules import MonitorConfig, RuleConfigError

log = logging.getLogger(__name__)


def receivers_of(config: MonitorConfig) -> dict[str, Receiver]:
    """The configured receivers, validated; RuleConfigError names the receiver and the field."""
    out = {}
    for i, raw in enumerate(config.receivers):
        try:
            receiver = Receiver.model_validate(raw)
        except ValueError as exc:
            raise RuleConfigError(f"receiver #{i + 1} ({raw.get('name')!r}): {exc}") from None
        out[receiver.name] = receiver
    return out


def evaluation_job(
    *, session_factory: sessionmaker[Session], config: MonitorConfig, now: datetime | None = None
) -> EvaluationReport:
    """One evaluation; logs every alert state change."""
    report = run_evaluation(session_factory=session_factory, config=config, now=now or datetime.now(UTC))
    for event, rule, subject in report.changes:
        log.info("alert %s: %s %s", event, rule, subject)
    return report


def delivery_job(
    *,
    session_factory: sessionmaker[Session],
    receivers: dict[str, Receiver],
    now: datetime | None = None,
    transport: Any = None,
) -> DeliveryReport:
    """Send what the outbox holds that is due."""
    return deliver_pending(
        session_factory=session_factory, receivers=receivers, now=now or datetime.now(UTC), transport=transport
    )


def schedule_monitor(
    scheduler: Any,
    *,
    session_factory: sessionmaker[Session],
    config: MonitorConfig,
    evaluate_every_s: float = 30,
    deliver_every_s: float = 5,
    transport: Any = None,
) -> list[Any]:
    """Register the evaluation and delivery jobs (ids `monitor:evaluate`, `monitor:deliver`)."""
    receivers = receivers_of(config)
    common = {"trigger": "interval", "coalesce": True, "max_instances": 1, "replace_existing": True}
    return [
        scheduler.add_job(
            evaluation_job,
            id="monitor:evaluate",
            seconds=evaluate_every_s,
            kwargs={"session_factory": session_factory, "config": config},
            **common,
        ),
        scheduler.add_job(
            delivery_job,
            id="monitor:deliver",
            seconds=deliver_every_s,
            kwargs={"session_factory": session_factory, "receivers": receivers, "transport": transport},
            **common,
        ),
    ]
