"""The monitor's APScheduler jobs: evaluate rules (after folding new articles into the buckets) and deliver
notifications. Jobs are plain functions taking `now`, registered with explicit ids, coalesced, one at a time;
`finsent monitor` runs them on their own and `finsent run --monitor` beside the pipeline."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.schema import Alert, Notification
from core.transport import Transport
from monitor.alerts import OPEN, EvaluationReport, run_evaluation
from monitor.metrics import MonitorMetrics
from monitor.notify import DeliveryReport, Receiver, deliver_pending
from monitor.rules import MonitorConfig, receivers_of

log = logging.getLogger(__name__)


class Clock(Protocol):
    """What time the monitor evaluates at (`finsent run --replay`: the replayed stream's time)."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


def state_counts(session: Session) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(alerts by status without replayed history, undelivered outbox rows by receiver, those that failed)."""
    alerts = dict(
        session.execute(
            select(Alert.status, func.count()).where(Alert.replayed.is_(False)).group_by(Alert.status)
        ).all()
    )
    unsent = Notification.sent_at.is_(None)
    pending = dict(
        session.execute(select(Notification.receiver, func.count()).where(unsent).group_by(Notification.receiver)).all()
    )
    failing = dict(
        session.execute(
            select(Notification.receiver, func.count())
            .where(unsent, Notification.last_error.is_not(None))
            .group_by(Notification.receiver)
        ).all()
    )
    return alerts, pending, failing


def _refresh(metrics: MonitorMetrics, session_factory: sessionmaker[Session]) -> None:
    try:
        with session_factory() as session:
            metrics.set_state(*state_counts(session))
    except Exception:  # metrics must never stop evaluation or delivery
        log.warning("could not refresh the alert and outbox gauges", exc_info=True)


def evaluation_job(
    *,
    session_factory: sessionmaker[Session],
    config: MonitorConfig,
    version: str,
    now: datetime | None = None,
    metrics: MonitorMetrics | None = None,
) -> EvaluationReport:
    """One evaluation on `version`'s scores; logs every alert state change (and records it in `metrics`, if given)."""
    started = time.perf_counter()
    report = run_evaluation(session_factory=session_factory, config=config, now=now or datetime.now(UTC),
                            version=version)  # fmt: skip
    for event, rule, subject in report.changes:
        log.info("alert %s: %s %s", event, rule, subject)
    if metrics is not None:
        metrics.record_evaluation(report, time.perf_counter() - started)
        _refresh(metrics, session_factory)
    return report


def evaluation_by_clock(*, clock: Clock, **kwargs) -> EvaluationReport:
    """`evaluation_job` at `clock.now()`."""
    return evaluation_job(now=clock.now(), **kwargs)


def delivery_job(
    *,
    session_factory: sessionmaker[Session],
    receivers: dict[str, Receiver],
    now: datetime | None = None,
    transport: Transport | None = None,
    metrics: MonitorMetrics | None = None,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send what the outbox holds that is due (and record it in `metrics`, if given); `stop` cuts it short."""
    report = deliver_pending(
        session_factory=session_factory,
        receivers=receivers,
        now=now or datetime.now(UTC),
        transport=transport,
        stop=stop,
    )
    if metrics is not None:
        metrics.record_delivery(report)
        _refresh(metrics, session_factory)
    return report


def last_look(
    *,
    session_factory: sessionmaker[Session],
    config: MonitorConfig,
    now: datetime,
    version: str,
    deliver: bool = True,
) -> int:
    """One evaluation and (unless `deliver` is false) one delivery at `now`, then how many alerts are open: what a
    run says before it exits. An interrupted run skips the delivery: its outbox rows wait for the next monitor."""
    evaluation_job(session_factory=session_factory, config=config, now=now, version=version)
    if deliver:
        delivery_job(session_factory=session_factory, receivers=receivers_of(config), now=now)
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Alert).where(Alert.status.in_(OPEN))) or 0


def schedule_monitor(
    scheduler: BaseScheduler,
    *,
    session_factory: sessionmaker[Session],
    config: MonitorConfig,
    version: str,
    evaluate_every_s: float = 30,
    deliver_every_s: float = 5,
    transport: Transport | None = None,
    metrics: MonitorMetrics | None = None,
    stop: threading.Event | None = None,
    clock: Clock | None = None,
) -> list[Job]:
    """Register the evaluation (on `version`'s scores) and delivery jobs (ids `monitor:evaluate`, `monitor:deliver`);
    `metrics` is optional. Rules are evaluated at `clock.now()` if a clock is given (a replay's stream time), else at
    the wall clock; deliveries always run on the wall clock.

    Set `stop` on shutdown: a delivery in flight then ends within a fraction of a second (the scheduler's threads
    are joined when the process exits, so a delivery left running would hold the exit)."""
    receivers = receivers_of(config)
    common = {"trigger": "interval", "coalesce": True, "max_instances": 1, "replace_existing": True}
    return [
        scheduler.add_job(
            evaluation_job if clock is None else evaluation_by_clock,
            id="monitor:evaluate",
            seconds=evaluate_every_s,
            kwargs={"session_factory": session_factory, "config": config, "version": version, "metrics": metrics}
            | ({} if clock is None else {"clock": clock}),
            **common,
        ),
        scheduler.add_job(
            delivery_job,
            id="monitor:deliver",
            seconds=deliver_every_s,
            kwargs={
                "session_factory": session_factory,
                "receivers": receivers,
                "transport": transport,
                "metrics": metrics,
                "stop": stop,
            },
            **common,
        ),
    ]
