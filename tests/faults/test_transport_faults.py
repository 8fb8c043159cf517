"""The Kafka transport when the broker dies under it: closing still closes everything and fails with a
TransportError (the error the worker's retry loop handles), never with a raw kafka-python exception."""

from __future__ import annotations

import uuid

import pytest

from core.transport import KafkaTransport, TransportError

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_close_with_the_broker_gone_and_messages_pending(s3_broker):
    topic = f"close.{uuid.uuid4().hex[:8]}"
    transport = KafkaTransport(s3_broker.bootstrap)
    transport.ensure_topics([topic], partitions=1)
    transport.publish(topic, b"k", b"stored")
    transport.flush(timeout_s=10)
    transport.subscribe([topic], f"g-{uuid.uuid4().hex[:6]}")
    s3_broker.kill()
    transport.publish(topic, b"k", b"pending")  # a dead-letter message in flight when the broker went away

    with pytest.raises(TransportError, match="not stored|flushing|closing"):
        transport.close()  # was: kafka-python's KafkaTimeoutError from KafkaProducer.close(), consumer left open
    assert transport.assignment() == set()
    transport.close()  # closed for good: a second close has nothing left to do
