"""Feed polling on APScheduler 3: one interval job per feed. The job is a plain function, so tests call it directly."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler

from ingest.sources.rss import FeedPoller, PollResult

Handler = Callable[[PollResult], None]  # publishes the records and records health; supplied by the caller


def poll_feed(poller: FeedPoller, handle: Handler, now: datetime | None = None) -> PollResult | None:
    """Poll the feed if it is due (its backoff has passed) and hand the result to `handle`; None when not due."""
    now = now or datetime.now(UTC)
    if not poller.due(now):
        return None  # backing off after failures: the job fires every interval, the poller decides
    result = poller.poll(now)
    handle(result)
    return result


def schedule_feeds(scheduler: BaseScheduler, pollers: Iterable[FeedPoller], handle: Handler) -> list[Job]:
    """Register one job per feed (`feed:<name>`, coalesced, one at a time); the first poll runs at once."""
    jobs = []
    for poller in pollers:
        jobs.append(
            scheduler.add_job(
                poll_feed,
                trigger="interval",
                seconds=poller.interval_s,
                args=[poller, handle],
                id=f"feed:{poller.name}",
                name=f"poll feed {poller.name}",
                coalesce=True,
                max_instances=1,
                replace_existing=True,
                next_run_time=datetime.now(UTC),
            )
        )
    return jobs
