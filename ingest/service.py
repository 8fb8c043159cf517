"""The ingest stage at run time: source output onto `news.raw`, bad rows to rejects + `news.dlq`, health recorded.

Feeds are polled by APScheduler jobs (`ingest.scheduler`); file sources are read once. Either way, a record that
became a message is published keyed by `source:position`; one that did not is kept with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.orm import Session, sessionmaker

from core.rejects import Rejection, dlq_value, record_rejects
from core.transport import Transport
from ingest.config import FileSourceConfig, RssSourceConfig, SourceConfig
from ingest.scheduler import poll_feed, schedule_feeds
from ingest.sources.files import read_file
from ingest.sources.health import record_health
from ingest.sources.record import RawRecord
from ingest.sources.rss import PollResult

log = logging.getLogger(__name__)


class IngestService:
    """Publishes records of every source kind through one transport."""

    def __init__(
        self,
        *,
        transport: Transport,
        session_factory: sessionmaker[Session],
        topic: str = "news.raw",
        dlq_topic: str = "news.dlq",
    ) -> None:
        self.transport = transport
        self.session_factory = session_factory
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.published = 0
        self.rejected = 0

    def publish(self, records: Iterable[RawRecord], *, kind: str, health_name: str | None = None) -> tuple[int, int]:
        """Publish good records, keep bad ones; returns (published, rejected). Health is recorded when named."""
        rejections, published = [], 0
        for record in records:
            if record.error is not None:
                rejections.append(
                    Rejection(
                        stage="read",
                        reason=record.error,
                        payload=record.raw,
                        origin=record.position,
                        source=record.source,
                    )  # fmt: skip
                )
                continue
            self.transport.publish(self.topic, f"{record.source}:{record.position}".encode(), record.value)
            published += 1
        for r in rejections:
            self.transport.publish(self.dlq_topic, None, dlq_value(r))
        self.transport.flush(timeout_s=30)  # the broker has them before health says so
        with self.session_factory() as session, session.begin():
            new = record_rejects(session=session, rejections=rejections)
            if health_name is not None:
                # items=0: items_seen counts stored articles, which the scoring path adds when it stores them.
                record_health(session, name=health_name, kind=kind, ok=True, error=None, items=0, now=datetime.now(UTC))
        self.published += published
        self.rejected += new
        return published, new

    def handle_poll(self, result: PollResult) -> None:
        """What a feed job does with a poll: publish its entries, or record the failure in the source's health."""
        if result.status == "error":
            log.warning("feed %s: %s (next poll %s)", result.source, result.error, result.next_poll_at.isoformat())
            with self.session_factory() as session, session.begin():
                record_health(
                    session,
                    name=result.source,
                    kind="rss",
                    ok=False,
                    error=result.error,
                    items=0,
                    now=datetime.now(UTC),
                )
            return
        self.publish(result.records, kind="rss", health_name=result.source)


def publish_file_sources(configs: Sequence[SourceConfig], *, service: IngestService) -> Iterator[tuple[str, int, int]]:
    """Publish each file source once, yielding (source, published, rejected) as each file is done."""
    for cfg in configs:
        if isinstance(cfg, FileSourceConfig):
            records = read_file(cfg.path, source=cfg.name, mapping=cfg.field_mapping())
            published, rejected = service.publish(records, kind="file", health_name=cfg.name)
            yield cfg.name, published, rejected


def start_feeds(configs: Sequence[SourceConfig], *, service: IngestService, scheduler: BaseScheduler) -> list[str]:
    """Poll every feed once now, then register the feeds' jobs on `scheduler`; returns the feeds' names."""
    pollers = [cfg.poller() for cfg in configs if isinstance(cfg, RssSourceConfig)]
    for poller in pollers:  # a first poll now, so what the feeds hold is in before anything waits on it
        poll_feed(poller, service.handle_poll)
    schedule_feeds(scheduler, pollers, service.handle_poll)
    return [p.name for p in pollers]
