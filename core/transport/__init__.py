"""How messages travel between stages: one small `Transport` protocol (`base`), an in-process (`memory`) and a
Kafka (`kafka`) implementation, picked by `make_transport` from the settings.

Both carry exactly the same bytes, so a serialisation bug shows up without Kafka too. Delivery is at least
once: a consumer's `commit()` records what it has polled so far, and workers call it only after their database
transaction has committed; whatever was polled but not committed is delivered again after a restart or a
rebalance.
"""

from __future__ import annotations

from core.settings import Settings
from core.transport.base import CommitFailedError, Record, Transport, TransportError, partition_for
from core.transport.kafka import KafkaTransport
from core.transport.memory import MemoryBroker, MemoryTransport

__all__ = [
    "CommitFailedError",
    "KafkaTransport",
    "MemoryBroker",
    "MemoryTransport",
    "Record",
    "Transport",
    "TransportError",
    "make_transport",
    "partition_for",
]


def make_transport(settings: Settings, *, broker: MemoryBroker | None = None) -> Transport:
    """The transport named by `settings.transport`; in-process transports meet through a shared `broker`."""
    if settings.transport == "kafka":
        return KafkaTransport.from_settings(settings)
    return MemoryTransport(broker or MemoryBroker(default_partitions=settings.topic_partitions))
