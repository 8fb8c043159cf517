"""One contract for every Transport, run against MemoryTransport and KafkaTransport on a real broker (tansu)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict

import pytest

from core.settings import Settings
from core.transport import (
    CommitFailedError,
    KafkaTransport,
    MemoryBroker,
    MemoryTransport,
    Record,
    Transport,
    TransportError,
    make_transport,
)

PARTITIONS = 4
DEADLINE_S = 30  # generous: a Kafka group join takes seconds; a passing run never waits this long


@pytest.fixture(params=[pytest.param("memory"), pytest.param("kafka", marks=pytest.mark.kafka)])
def new_transport(request):
    """A factory of transports that all talk to one broker (a MemoryBroker, or the tansu session broker)."""
    if request.param == "memory":
        broker = MemoryBroker(default_partitions=PARTITIONS)

        def build() -> Transport:
            return MemoryTransport(broker)
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")

        def build() -> Transport:
            return KafkaTransport(bootstrap)

    created: list[Transport] = []

    def new() -> Transport:
        created.append(build())
        return created[-1]

    yield new
    for transport in created:
        transport.close()


@pytest.fixture
def topic(new_transport) -> str:
    name = f"news.raw.{uuid.uuid4().hex[:8]}"
    admin = new_transport()
    admin.ensure_topics([name], partitions=PARTITIONS)
    admin.ensure_topics([name], partitions=PARTITIONS)  # idempotent
    return name


def publish_all(transport: Transport, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    for key, value in items:
        transport.publish(topic, key, value)
    transport.flush(timeout_s=10)


def drain(transport: Transport, n: int, *, batch: int = 100) -> list[Record]:
    """Poll until n records came (fail after DEADLINE_S), then check that nothing more is waiting."""
    out: list[Record] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(out) < n:
        assert time.monotonic() < deadline, f"got {len(out)} of {n} records in {DEADLINE_S} s"
        out += transport.poll(max_records=min(batch, n - len(out)), timeout_s=0.5)
    assert transport.poll(max_records=100, timeout_s=0.5) == [], "more records than expected"
    return out


def consumer(new_transport, topic: str, group: str) -> Transport:
    transport = new_transport()
    transport.subscribe([topic], group)
    return transport


def items(n: int, keys: int = 5) -> list[tuple[bytes, bytes]]:
    return [(f"key-{i % keys}".encode(), f"value-{i}".encode()) for i in range(n)]


def test_same_bytes_and_keys(new_transport, topic):
    sent = [
        (b"k", b'{"title": "caf\xc3\xa9"}'),
        (b"\x00\xff binary key", b"\x00\xff\xfe not UTF-8 at all"),
        (None, b"no key"),
        (b"k", b""),
        (b"k", bytearray(b"a bytearray goes out as bytes")),
    ]
    publish_all(new_transport(), topic, sent)
    got = drain(consumer(new_transport, topic, "g"), len(sent))
    assert Counter((r.key, r.value) for r in got) == Counter((k, bytes(v)) for k, v in sent)
    assert all(isinstance(r.value, bytes) and r.topic == topic for r in got)


def test_order_per_key(new_transport, topic):
    sent = items(60, keys=6)
    publish_all(new_transport(), topic, sent)
    got = drain(consumer(new_transport, topic, "g"), len(sent), batch=7)
    by_key, partitions = defaultdict(list), defaultdict(set)
    for r in got:
        by_key[r.key].append(r.value)
        partitions[r.key].add(r.partition)
    for key, values in by_key.items():
        assert values == [v for k, v in sent if k == key]
        assert len(partitions[key]) == 1, f"{key!r} landed in partitions {partitions[key]}"
    for p in {r.partition for r in got}:
        offsets = [r.offset for r in got if r.partition == p]
        assert offsets == sorted(offsets) == list(range(offsets[0], offsets[0] + len(offsets)))


def test_uncommitted_records_are_redelivered(new_transport, topic):
    sent = items(20)
    publish_all(new_transport(), topic, sent)
    first = consumer(new_transport, topic, "workers")
    assert len(drain(first, 20)) == 20
    first.close()  # a crash before the database commit: nothing was committed

    again = drain(consumer(new_transport, topic, "workers"), 20)
    assert Counter((r.key, r.value) for r in again) == Counter(sent)


def test_commit_covers_what_was_polled_so_far(new_transport, topic):
    sent = items(40)
    publish_all(new_transport(), topic, sent)
    first = consumer(new_transport, topic, "workers")
    deadline = time.monotonic() + DEADLINE_S
    stored: list[Record] = []
    while not stored:
        assert time.monotonic() < deadline
        stored = first.poll(max_records=15, timeout_s=0.5)
    assert len(stored) <= 15
    first.commit()  # the worker's transaction for these records committed
    unstored = drain(first, 40 - len(stored))
    first.close()  # crash before storing the second batch

    second = consumer(new_transport, topic, "workers")
    redelivered = drain(second, len(unstored))
    assert {(r.partition, r.offset) for r in redelivered} == {(r.partition, r.offset) for r in unstored}
    second.commit()
    second.close()

    # Everything is committed now: a third member sees only what is published afterwards.
    publish_all(new_transport(), topic, [(b"key-0", b"late")])
    assert [r.value for r in drain(consumer(new_transport, topic, "workers"), 1)] == [b"late"]

    # Another group has its own offsets and reads from the earliest.
    assert len(drain(consumer(new_transport, topic, "dashboard"), 41)) == 41


def test_two_consumers_split_the_partitions(new_transport, topic):
    members = [consumer(new_transport, topic, "workers") for _ in range(2)]
    got: list[list[Record]] = [[], []]
    owned: list[set] = [set(), set()]
    stop = threading.Event()

    def run(i: int) -> None:
        # Each worker polls in its own thread, as two worker processes would; the group join happens in poll().
        while not stop.is_set():
            records = members[i].poll(max_records=50, timeout_s=0.2)
            got[i] += records
            owned[i] = members[i].assignment()
            if records:
                members[i].commit()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not (owned[0] and owned[1] and len(owned[0] | owned[1]) == PARTITIONS):
            assert time.monotonic() < deadline, f"group never settled: {owned}"
            time.sleep(0.1)
        assert not owned[0] & owned[1]

        sent = items(200, keys=50)
        publish_all(new_transport(), topic, sent)
        while len(got[0]) + len(got[1]) < len(sent):
            assert time.monotonic() < deadline + DEADLINE_S, f"got {len(got[0])} + {len(got[1])} of {len(sent)}"
            time.sleep(0.1)
        time.sleep(0.5)  # anything delivered twice would arrive now
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)

    assert got[0] and got[1], "one consumer got nothing"
    assert Counter((r.key, r.value) for r in got[0] + got[1]) == Counter(sent)  # every record exactly once
    for i in range(2):
        assert {(r.topic, r.partition) for r in got[i]} <= owned[i]


def test_lag_is_what_the_consumer_has_not_read(new_transport, topic):
    publish_all(new_transport(), topic, items(40, keys=8))
    reader = consumer(new_transport, topic, "lag")
    before = reader.lag()
    assert before == {} or sum(before.values()) == 40  # Kafka owns no partition before the first poll
    deadline = time.monotonic() + DEADLINE_S
    read: list[Record] = []
    while not read:  # the group join (and, on Kafka, the first fetch that tells the highwater) happens here
        assert time.monotonic() < deadline
        read = reader.poll(max_records=10, timeout_s=0.5)
    while True:  # Kafka knows a partition's highwater once a fetch answered for it; from then on lag is exact
        lag = reader.lag()
        assert set(lag) <= {(topic, p) for p in range(PARTITIONS)} and all(n >= 0 for n in lag.values())
        if len(lag) == PARTITIONS and sum(lag.values()) + len(read) == 40:
            break
        assert time.monotonic() < deadline, f"lag {lag} after reading {len(read)} of 40"
        read += reader.poll(max_records=1, timeout_s=0.2)
    assert 0 < sum(lag.values()) < 40
    read += drain(reader, 40 - len(read))
    assert reader.lag() == {(topic, p): 0 for p in range(PARTITIONS)}
    assert new_transport().lag() == {}  # not subscribed: owns nothing


# ------------------------------------------------------------------------------- memory-only and factory


def test_memory_commit_after_a_rebalance_fails_and_redelivers():
    broker = MemoryBroker(default_partitions=2)
    publish_all(MemoryTransport(broker), "t", items(10))
    first = MemoryTransport(broker)
    first.subscribe(["t"], "g")
    assert len(first.poll(max_records=100, timeout_s=0)) == 10
    second = MemoryTransport(broker)
    second.subscribe(["t"], "g")  # a rebalance: first's partitions are split before it committed
    with pytest.raises(CommitFailedError):
        first.commit()
    records = first.poll(100, 0) + second.poll(100, 0)
    assert sorted(r.value for r in records) == sorted(v for _, v in items(10))


def test_memory_is_thread_safe():
    broker = MemoryBroker(default_partitions=3)
    reader = MemoryTransport(broker)
    reader.subscribe(["t"], "g")

    def produce(n: int) -> None:
        writer = MemoryTransport(broker)
        for i in range(500):
            writer.publish("t", f"{n}-{i % 7}".encode(), f"{n}-{i}".encode())

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 2000 and time.monotonic() < deadline:
        got += reader.poll(max_records=64, timeout_s=0.2)
    for t in threads:
        t.join()
    assert len(got) == 2000 and len({r.value for r in got}) == 2000


def test_misuse_is_reported():
    transport = MemoryTransport()
    with pytest.raises(TransportError, match="before subscribe"):
        transport.poll(1, 0)
    transport.subscribe(["t"], "g")
    with pytest.raises(TransportError, match="already subscribed"):
        transport.subscribe(["t"], "g")


def test_factory_picks_from_settings(monkeypatch):
    monkeypatch.setenv("FINSENT_TRANSPORT", "kafka")
    monkeypatch.setenv("FINSENT_KAFKA_BOOTSTRAP", "broker-1:9092,broker-2:9092")
    transport = make_transport(Settings())
    assert isinstance(transport, KafkaTransport) and transport.bootstrap == "broker-1:9092,broker-2:9092"
    monkeypatch.setenv("FINSENT_TRANSPORT", "memory")
    broker = MemoryBroker()
    assert make_transport(Settings(), broker=broker).broker is broker
    assert isinstance(make_transport(Settings()), Transport)
