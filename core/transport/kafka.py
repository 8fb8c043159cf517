"""The Kafka transport (kafka-python): acks=all, keyed messages, manual offset commits after storage."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from core.settings import Settings
from core.transport.base import CommitFailedError, Record, TransportError

log = logging.getLogger(__name__)


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
                # A broker may hold a fetch this long when nothing is waiting (tansu holds it for the whole wait):
                # a short wait keeps publish-to-poll latency low, and idle fetches cost little
                # (docs/performance.md, 'Measurements behind code choices').
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
