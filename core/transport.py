"""How messages travel between stages: one small `Transport` protocol, an in-process and a Kafka implementation.

Both carry exactly the same bytes, so a serialisation bug shows up without Kafka too. Delivery is at least
once: a consumer's `commit()` records what it has polled so far, and workers call it only after their database
transaction has committed; whatever was polled but not committed is delivered again after a restart or a
rebalance.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from core.settings import Settings

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------------------------------- memory


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

    def partitions(self, topic: str) -> int:
        """How many partitions `topic` has (creating it with the default count if needed)."""
        self.create_topic(topic)
        return len(self._logs[topic])

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

    def committed(self, group: str, topic: str, partition: int) -> int:
        """The group's committed offset for a partition (0: start from the earliest)."""
        with self.changed:
            return self._groups[group].committed.get((topic, partition), 0)

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


# ---------------------------------------------------------------------------------------------------- kafka


class KafkaTransport:
    """Transport over a Kafka-protocol broker (kafka-python): acks=all, keyed messages, manual commits."""

    def __init__(self, bootstrap: str, *, client_id: str = "finsent", security: dict | None = None) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self._security = {k: v for k, v in (security or {}).items() if v is not None}
        self._producer = None
        self._consumer = None
        self._pending: list = []  # send futures not yet checked by flush()

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaTransport:
        """A transport configured from Settings (bootstrap servers, client id, TLS/SASL)."""
        password = settings.kafka_sasl_password
        security = {
            "security_protocol": settings.kafka_security_protocol,
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
        return cls(settings.kafka_bootstrap, client_id=settings.kafka_client_id, security=security)

    def _common(self) -> dict:
        return {"bootstrap_servers": self.bootstrap.split(","), "client_id": self.client_id, **self._security}

    def ensure_topics(self, topics: Sequence[str], *, partitions: int) -> None:
        """Create missing topics (brokers that auto-create would give them a single partition)."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError

        try:
            admin = KafkaAdminClient(**self._common())
        except KafkaError as exc:
            raise TransportError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        missing = list(topics)
        try:
            missing = [t for t in topics if t not in set(admin.list_topics())]
            for topic in missing:
                try:
                    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
                except TopicAlreadyExistsError:
                    pass  # another process won the race; that is fine
        except KafkaError as exc:
            raise TransportError(f"creating topics {missing} on {self.bootstrap}: {exc}") from exc
        finally:
            admin.close()

    def describe_topics(self, topics: Sequence[str], *, timeout_s: float = 5.0) -> dict[str, int | None]:
        """The partition count of each topic (None: it does not exist); TransportError when unreachable."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        timeout_ms = int(timeout_s * 1000)
        try:
            admin = KafkaAdminClient(**self._common(), request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise TransportError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        try:
            existing = set(admin.list_topics())
            wanted = [t for t in topics if t in existing]
            described = admin.describe_topics(wanted) if wanted else []
        except KafkaError as exc:
            raise TransportError(f"describing topics on {self.bootstrap}: {exc}") from exc
        finally:
            admin.close()
        counts: dict[str, int | None] = dict.fromkeys(topics)
        for entry in described:
            name = entry.get("name", entry.get("topic"))  # kafka-python 3 says "name", 2.x said "topic"
            if name in counts and not entry.get("error_code"):
                counts[name] = len(entry.get("partitions") or [])
        return counts

    def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Send asynchronously; flush() reports any message the broker did not store."""
        from kafka.errors import KafkaError

        if self._producer is None:
            from kafka import KafkaProducer

            try:
                # acks=all: a message counts as stored only once every in-sync replica has it.
                self._producer = KafkaProducer(**self._common(), acks="all", linger_ms=5)
            except KafkaError as exc:
                raise TransportError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc
        try:
            self._pending.append((topic, self._producer.send(topic, key=key, value=value)))
        except KafkaError as exc:
            raise TransportError(f"publishing to {topic}: {exc}") from exc

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until the broker acknowledged every message sent so far."""
        if self._producer is None:
            return
        from kafka.errors import KafkaError

        pending, self._pending = self._pending, []
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            raise TransportError(f"flushing to {self.bootstrap}: {exc}") from exc
        failed = [(topic, future.exception) for topic, future in pending if future.failed()]
        if failed:
            topic, error = failed[0]
            raise TransportError(f"{len(failed)} message(s) not stored, first on {topic}: {error}")

    def subscribe(self, topics: Sequence[str], group: str) -> None:
        """Join the consumer group; nothing is committed automatically."""
        from kafka import KafkaConsumer
        from kafka.errors import KafkaError

        if self._consumer is not None:
            raise TransportError("already subscribed; close this transport and make a new one")
        try:
            self._consumer = KafkaConsumer(
                *topics,
                **self._common(),
                group_id=group,
                enable_auto_commit=False,  # commit only after the database has the results
                auto_offset_reset="earliest",  # a new group reads the backlog rather than skipping it
                # Short sessions: a dead worker's partitions move on within seconds (and joins stay quick).
                session_timeout_ms=6000,
                heartbeat_interval_ms=1000,
                # A broker may hold a fetch this long when nothing is waiting (tansu does; measured: median
                # 154 ms from publish to poll at the default 500 ms, 6 ms at 50 ms). Idle fetches cost little.
                fetch_max_wait_ms=50,
            )
        except KafkaError as exc:
            raise TransportError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from exc

    def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        """Up to `max_records` records; the group join happens inside the first polls."""
        from kafka.errors import KafkaError

        if self._consumer is None:
            raise TransportError("poll() before subscribe()")
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise TransportError(f"polling from {self.bootstrap}: {exc}") from exc
        return [
            Record(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp if m.timestamp >= 0 else None)
            for tp, messages in sorted(batches.items())
            for m in messages
        ]

    def commit(self) -> None:
        """Commit the consumer's positions (everything polled so far)."""
        from kafka.errors import CommitFailedError as KafkaCommitFailed
        from kafka.errors import KafkaError

        if self._consumer is None:
            raise TransportError("commit() before subscribe()")
        try:
            self._consumer.commit()
        except KafkaCommitFailed as exc:
            raise CommitFailedError(f"group rebalanced since the poll; the records will be redelivered: {exc}") from exc
        except KafkaError as exc:
            raise TransportError(f"committing offsets to {self.bootstrap}: {exc}") from exc

    def assignment(self) -> set[tuple[str, int]]:
        """The partitions this consumer owns now."""
        if self._consumer is None:
            return set()
        return {(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def lag(self) -> dict[tuple[str, int], int]:
        """Per owned partition: highwater - position, from what the last fetches said (no extra request).

        The highwater comes from fetch responses (`consumer.highwater`), not `end_offsets`: a ListOffsets request
        costs a round trip, and some Kafka-protocol brokers (tansu) answer it wrongly. A partition not fetched
        yet has no highwater and is left out. Call it from the consuming thread: the consumer is not thread-safe.
        """
        if self._consumer is None:
            return {}
        out = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = self._consumer.position(tp, timeout_ms=1000)
            except Exception as exc:  # revoked meanwhile, or the coordinator is away: no number rather than a wrong one
                log.debug("no position for %s:%d: %s", tp.topic, tp.partition, exc)
                continue
            if position is not None:
                out[(tp.topic, tp.partition)] = max(0, highwater - position)
        return out

    def close(self) -> None:
        """Flush the producer and leave the group without committing.

        Both are closed even when the broker is gone; then a TransportError says what failed (messages that were
        not stored are given up: whoever published them has not committed the offsets of the work behind them).
        """
        from kafka.errors import KafkaError

        error: TransportError | None = None
        if self._producer is not None:
            try:
                self.flush(timeout_s=10)
            except TransportError as exc:
                error = exc
            producer, self._producer = self._producer, None
            try:
                if error is not None:
                    # kafka-python's close() flushes again and raises before stopping its I/O thread when messages
                    # are still pending: stop that thread without sending them first, so the close completes.
                    sender = getattr(producer, "_sender", None)
                    if sender is not None:
                        sender.force_close()
                        sender.join(5)
                producer.close(timeout=5)
            except KafkaError as exc:
                error = error or TransportError(f"closing the producer for {self.bootstrap}: {exc}")
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                consumer.close(autocommit=False)
            except KafkaError as exc:
                error = error or TransportError(f"closing the consumer for {self.bootstrap}: {exc}")
        if error is not None:
            raise error


def make_transport(settings: Settings, *, broker: MemoryBroker | None = None) -> Transport:
    """The transport named by `settings.transport`; in-process transports meet through a shared `broker`."""
    if settings.transport == "kafka":
        return KafkaTransport.from_settings(settings)
    return MemoryTransport(broker or MemoryBroker(default_partitions=settings.topic_partitions))
