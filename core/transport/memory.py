"""The in-process transport: partitioned logs and consumer groups in memory, for the embedded mode and the tests.

It carries exactly the bytes Kafka would, with the same group semantics (eager rebalancing, commits refused after
a rebalance), so a serialisation or offset bug shows up without a broker too.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.transport.base import CommitFailedError, Record, TransportError, partition_for


@dataclass
class _Group:
    members: list[int] = field(default_factory=list)  # member ids, in join order
    topics: dict[int, tuple[str, ...]] = field(default_factory=dict)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset to read
    generation: int = 0


class MemoryBroker:
    """The in-process stand-in for a Kafka cluster: partitioned logs and consumer groups, guarded by one lock."""

    def __init__(self, default_partitions: int = 3) -> None:
        self.default_partitions = default_partitions
        self._logs: dict[str, list[list[tuple[bytes | None, bytes, int]]]] = {}
        self._groups: dict[str, _Group] = {}
        self._round_robin = itertools.count()
        self._member_ids = itertools.count(1)
        self.changed = threading.Condition()

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create `topic` unless it exists (its partition count never changes afterwards, as in Kafka)."""
        with self.changed:
            self._logs.setdefault(topic, [[] for _ in range(partitions or self.default_partitions)])

    def append(self, topic: str, key: bytes | None, value: bytes) -> tuple[int, int]:
        """Append one message; returns its (partition, offset)."""
        with self.changed:
            log_ = self._logs.setdefault(topic, [[] for _ in range(self.default_partitions)])
            partition = partition_for(key, len(log_), self._round_robin)
            log_[partition].append((key, value, time.time_ns() // 1_000_000))
            self.changed.notify_all()
            return partition, len(log_[partition]) - 1

    def read(self, topic: str, partition: int, offset: int, limit: int) -> list[Record]:
        """Up to `limit` records of one partition from `offset` on (call with the lock held)."""
        entries = self._logs[topic][partition][offset : offset + limit]
        return [Record(topic, partition, offset + i, k, v, ts) for i, (k, v, ts) in enumerate(entries)]

    def highwater(self, topic: str, partition: int) -> int:
        """The offset the next message of this partition will get."""
        with self.changed:
            return len(self._logs[topic][partition])

    # Groups: eager rebalancing, like Kafka's range assignor; every join or leave starts a new generation.

    def join(self, group: str, topics: Sequence[str]) -> int:
        """Add a member to `group`; returns its member id."""
        for topic in topics:
            self.create_topic(topic)
        with self.changed:
            g = self._groups.setdefault(group, _Group())
            member = next(self._member_ids)
            g.members.append(member)
            g.topics[member] = tuple(topics)
            g.generation += 1
            self.changed.notify_all()
            return member

    def leave(self, group: str, member: int) -> None:
        """Remove a member; its partitions go to the others at their committed offsets."""
        with self.changed:
            g = self._groups[group]
            if member in g.members:
                g.members.remove(member)
                g.topics.pop(member, None)
                g.generation += 1
                self.changed.notify_all()

    def assignment(self, group: str, member: int) -> tuple[int, dict[tuple[str, int], int]]:
        """(generation, {partition owned by `member`: the group's committed offset}) (call with the lock held)."""
        g = self._groups[group]
        owned: dict[tuple[str, int], int] = {}
        for topic in g.topics.get(member, ()):
            readers = [m for m in g.members if topic in g.topics[m]]
            for partition in range(len(self._logs[topic])):
                if readers[partition % len(readers)] == member:
                    owned[(topic, partition)] = g.committed.get((topic, partition), 0)
        return g.generation, owned

    def drained(self, group: str, topic: str) -> bool:
        """True when `group` has committed every message of `topic` (what `finsent run --exit-when-done` waits for)."""
        with self.changed:
            g = self._groups.get(group)
            return g is not None and all(
                g.committed.get((topic, p), 0) >= len(entries) for p, entries in enumerate(self._logs.get(topic, []))
            )

    def commit(self, group: str, member: int, generation: int, positions: dict[tuple[str, int], int]) -> None:
        """Store `positions` for the group, unless a rebalance happened since the member's poll."""
        with self.changed:
            g = self._groups[group]
            if g.generation != generation:
                raise CommitFailedError(f"group {group!r} rebalanced since the poll; the records will be redelivered")
            g.committed.update(positions)


class MemoryTransport:
    """Transport inside one process; transports sharing a MemoryBroker see each other's messages and groups."""

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self.broker = broker or MemoryBroker()
        self._group: str | None = None
        self._member: int | None = None
        self._generation = -1
        self._owned: set[tuple[str, int]] = set()
        self._positions: dict[tuple[str, int], int] = {}

    def ensure_topics(self, topics: Sequence[str], *, partitions: int) -> None:
        """Create the topics that do not exist yet."""
        for topic in topics:
            self.broker.create_topic(topic, partitions)

    def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Append to the topic right away (bytes are copied, as a network would)."""
        self.broker.append(topic, None if key is None else bytes(key), bytes(value))

    def flush(self, timeout_s: float | None = None) -> None:
        """Nothing to wait for: publish stored the message already."""

    def subscribe(self, topics: Sequence[str], group: str) -> None:
        """Join `group`; a transport consumes for one group at a time."""
        if self._member is not None:
            raise TransportError("already subscribed; close this transport and make a new one")
        self._group = group
        self._member = self.broker.join(group, topics)

    def _sync_assignment(self) -> None:
        # Called with the lock held. After a rebalance every owned partition restarts at the committed offset,
        # as in Kafka's eager protocol: records polled but not committed go to whoever owns the partition now.
        generation, owned = self.broker.assignment(self._group, self._member)
        if generation != self._generation:
            self._generation, self._owned, self._positions = generation, set(owned), owned

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Records from the owned partitions, partition by partition, each partition in offset order."""
        if self._member is None:
            raise TransportError("poll() before subscribe()")
        deadline = time.monotonic() + timeout_s
        with self.broker.changed:
            while True:
                self._sync_assignment()
                out: list[Record] = []
                for tp in sorted(self._owned):
                    if len(out) >= max_records:
                        break
                    records = self.broker.read(*tp, self._positions[tp], max_records - len(out))
                    if records:
                        self._positions[tp] = records[-1].offset + 1
                        out += records
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self.broker.changed.wait(remaining)

    def commit(self) -> None:
        """Commit the positions of everything polled so far."""
        if self._member is None:
            raise TransportError("commit() before subscribe()")
        self.broker.commit(self._group, self._member, self._generation, dict(self._positions))

    def assignment(self) -> set[tuple[str, int]]:
        """The partitions this consumer owns now."""
        if self._member is None:
            return set()
        with self.broker.changed:
            self._sync_assignment()
            return set(self._owned)

    def lag(self) -> dict[tuple[str, int], int]:
        """Per owned partition: messages appended after this consumer's position."""
        if self._member is None:
            return {}
        with self.broker.changed:
            self._sync_assignment()
            return {tp: self.broker.highwater(*tp) - self._positions[tp] for tp in sorted(self._owned)}  # RLock

    def close(self) -> None:
        """Leave the group without committing."""
        if self._member is not None:
            self.broker.leave(self._group, self._member)
            self._member = None
