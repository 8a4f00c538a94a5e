"""Produce with each client and codec; read back with each client; compare everything.

For each producer (kafka-python, confluent-kafka) x codec (none, gzip, snappy, lz4, zstd), one
topic gets N records with keys, headers, explicit create timestamps, a null value, a null key and
an empty value. Each consumer (kafka-python assign + seek_to_beginning, confluent-kafka assign at
OFFSET_BEGINNING) must read back exactly those records, in order, at offsets 0..N-1; the stored
batches must carry the producer's codec (the broker passes compression through).
"""
from __future__ import annotations

import time

import pytest

from harness import wire
from harness.clients import CONSUMERS, Rec, ck_producer, create_topic, kp_producer, unique_topic

N = 40
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PRODUCERS = ["kafka-python", "confluent-kafka"]


def expected_records(base_ts: int) -> list[Rec]:
    recs = []
    for i in range(N):
        key = None if i % 7 == 3 else f"key-{i % 5}".encode()
        if i == 5:
            value = None  # a tombstone (it has a key)
        elif i == 6:
            value = b""
        else:
            value = (f"value-{i}-".encode() + bytes(range(256)) * (i % 3) + b"z" * (i * 17))
        headers = (("index", str(i).encode()), ("empty", b""), ("utf8-\u00e9", "\u2603".encode()))
        if i % 4 == 1:
            headers = ()
        elif i % 4 == 2:
            headers += (("index", b"repeated key"),)
        recs.append(Rec(i, key, value, headers, base_ts + i * 37, "create"))
    return recs


def produce_kafka_python(bootstrap: str, topic: str, codec: str, recs: list[Rec]) -> list[int]:
    producer = kp_producer(bootstrap, compression_type=None if codec == "none" else codec,
                           linger_ms=20, acks="all")
    try:
        futures = [producer.send(topic, value=r.value, key=r.key, headers=list(r.headers),
                                 partition=0, timestamp_ms=r.timestamp) for r in recs]
        producer.flush(timeout=30)
        return [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close(timeout=10)


def produce_confluent(bootstrap: str, topic: str, codec: str, recs: list[Rec]) -> list[int]:
    producer = ck_producer(bootstrap, **{"compression.type": codec, "linger.ms": 20, "acks": "all"})
    offsets: dict[int, int] = {}
    errors = []

    def delivered(err, msg, i):
        if err is not None:
            errors.append((i, err))
        else:
            offsets[i] = msg.offset()

    for i, r in enumerate(recs):
        producer.produce(topic, value=r.value, key=r.key, partition=0, timestamp=r.timestamp,
                         headers=list(r.headers) or None,
                         on_delivery=lambda err, msg, i=i: delivered(err, msg, i))
    remaining = producer.flush(30)
    assert remaining == 0 and not errors, f"undelivered: {remaining}, errors: {errors}"
    return [offsets[i] for i in range(len(recs))]


PRODUCE = {"kafka-python": produce_kafka_python, "confluent-kafka": produce_confluent}
_produced: dict[tuple[str, str, str], tuple[str, list[Rec]]] = {}


def produced_topic(broker, producer: str, codec: str) -> tuple[str, list[Rec]]:
    """Produce once per (broker, producer, codec); both consumer tests read the same topic."""
    key = (broker.bootstrap, producer, codec)
    if key not in _produced:
        topic = unique_topic(f"pc-{producer}-{codec}")
        create_topic(broker.bootstrap, topic, partitions=1)
        recs = expected_records(base_ts=int(time.time() * 1000) - 3_600_000)
        acked = PRODUCE[producer](broker.bootstrap, topic, codec, recs)
        assert acked == list(range(N)), f"acknowledged offsets {acked}"
        _produced[key] = (topic, recs)
    return _produced[key]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("consumer", list(CONSUMERS))
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer", PRODUCERS)
def test_roundtrip(broker, producer, codec, consumer):
    topic, recs = produced_topic(broker, producer, codec)
    got = CONSUMERS[consumer](broker.bootstrap, topic, expected=N)
    assert [r.offset for r in got] == list(range(N))
    for want, have in zip(recs, got):
        assert have == want


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer", PRODUCERS)
def test_stored_batches_keep_producer_codec(broker, producer, codec):
    topic, recs = produced_topic(broker, producer, codec)
    batches = wire.all_batch_headers(broker.bootstrap, topic)
    assert batches, "no batches fetched"
    # The broker passes codecs through. A producer may send a small batch uncompressed
    # when compressing would not shrink it (librdkafka does), so 'none' may appear too.
    assert codec in {b.compression for b in batches}
    assert {b.compression for b in batches} <= {codec, "none"}
    assert sum(b.record_count for b in batches) == N
    assert batches[0].base_offset == 0
    for prev, nxt in zip(batches, batches[1:]):
        assert nxt.base_offset == prev.base_offset + prev.last_offset_delta + 1
    # Neither producer is transactional.
    assert all(b.attributes & 0x10 == 0 for b in batches), "transactional bit set"
    assert [b.base_timestamp for b in batches][0] == recs[0].timestamp
