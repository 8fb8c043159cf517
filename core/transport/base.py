"""The `Transport` protocol every implementation keeps, the record it hands out and the errors it raises.

Both carry exactly the same bytes, so a serialisation bug shows up without Kafka too. Delivery is at least
once: a consumer's `commit()` records what it has polled so far, and workers call it only after their database
transaction has committed; whatever was polled but not committed is delivered again after a restart or a
rebalance.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message and where it came from (topic, partition, offset: what error logs must name)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None  # when the message was published (Kafka CreateTime), for end-to-end latency


class TransportError(RuntimeError):
    """The broker could not be reached, refused a request, or lost a message."""


class CommitFailedError(TransportError):
    """The group rebalanced since the poll; the uncommitted records will be delivered again (to some member)."""


@runtime_checkable
class Transport(Protocol):
    """Publish keyed bytes to topics; consume them in a group and commit what has been processed."""

    def ensure_topics(self, topics: Sequence[str], *, partitions: int) -> None:
        """Create the topics that do not exist yet, each with `partitions` partitions."""
        ...

    def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Queue one message; records with the same key go to the same partition, in order."""
        ...

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every published message is stored by the broker; raise TransportError if one was not."""
        ...

    def subscribe(self, topics: Sequence[str], group: str) -> None:
        """Join consumer group `group` reading `topics` (from the earliest offset when the group has none)."""
        ...

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to `max_records` records, waiting at most `timeout_s` for the first one; [] when none came."""
        ...

    def commit(self) -> None:
        """Commit the positions of everything polled so far (call it only after the results are stored)."""
        ...

    def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this consumer currently owns."""
        ...

    def lag(self) -> dict[tuple[str, int], int]:
        """Per owned (topic, partition): messages not yet read (highwater - position); unknown ones left out."""
        ...

    def close(self) -> None:
        """Flush published messages and leave the group without committing."""
        ...


def partition_for(key: bytes | None, partitions: int, counter: itertools.count) -> int:
    """The partition of a keyed message (stable across processes); round-robin for messages without a key."""
    if key is None:
        return next(counter) % partitions
    return zlib.crc32(key) % partitions
