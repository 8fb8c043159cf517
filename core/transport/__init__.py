"""How messages travel between stages: the `Transport` protocol (`base`), an in-process (`memory`) and a Kafka
(`kafka`) implementation, and `make_transport`, which picks one from the settings (delivery semantics: `base`)."""

from __future__ import annotations

from core.settings import Settings
from core.transport.base import CommitFailedError, Record, Transport, TransportError
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
]


def make_transport(settings: Settings, *, broker: MemoryBroker | None = None) -> Transport:
    """The transport named by `settings.transport`; in-process transports meet through a shared `broker`."""
    if settings.transport == "kafka":
        return KafkaTransport.from_settings(settings)
    return MemoryTransport(broker or MemoryBroker(default_partitions=settings.topic_partitions))
