"""The scoring worker's retry contract for a lost database: every error that `BatchProcessor.process` lets through as
transient (a dropped or closed connection) is retried with the batch redelivered, never a crash of the worker."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from core.transport import MemoryBroker, MemoryTransport
from scoring.processor import BatchReport
from scoring.worker import ScoringWorker


class FlakyProcessor:
    """Stands in for BatchProcessor: raises the given errors first, then stores whatever comes."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = list(errors)
        self.stored: list[bytes] = []

    def process(self, envelopes, now=None, retries: int = 2) -> BatchReport:
        if self.errors:
            raise self.errors.pop(0)
        self.stored += [e.value for e in envelopes]
        return BatchReport(received=len(envelopes), stored=len(envelopes))


LOST = [
    OperationalError("INSERT ...", {}, Exception("terminating connection due to administrator command")),
    InterfaceError("SELECT ...", {}, Exception("the connection is closed")),
    DisconnectionError("connection invalidated"),
]


@pytest.mark.parametrize("error", LOST, ids=lambda e: type(e).__name__)
def test_a_lost_database_is_retried_not_fatal(error, caplog):
    broker = MemoryBroker()
    producer = MemoryTransport(broker)
    for i in range(3):
        producer.publish("news.raw", b"k", f"item-{i}".encode())
    processor = FlakyProcessor([error])
    worker = ScoringWorker(transport=MemoryTransport(broker), processor=processor, backoff_s=0.01)

    stats = worker.run(idle_exit_s=1.0)  # was: InterfaceError and DisconnectionError escaped run() and killed it

    assert processor.stored == [b"item-0", b"item-1", b"item-2"]  # the failed batch came again, once stored
    assert stats.errors == 1 and stats.stored == 3
    assert "retrying in" in caplog.text
