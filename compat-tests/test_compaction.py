"""Log compaction seen by a real consumer, on Fjord and on Apache Kafka alike.

Ten versions of 1,000 keys plus tombstones for the first 100 keys, written across many
rolled segments (segment.ms=100) with kafka-python; the broker is killed with -9 while
its cleaner is due and restarted; then a consumer reading from offset 0 sees exactly the
latest value of every live key, at the offset it was written at, and no tombstone once
delete.retention.ms has passed; the partition ends up near one version's size, not ten.
"""
from __future__ import annotations

import random
import time

import pytest

from harness.clients import create_topic, kp_consume, kp_producer, unique_topic

KEYS = 1000
VERSIONS = 10
DELETED = 100


def log_bytes(broker, topic: str) -> int:
    return sum(f.stat().st_size for f in (broker.data_dir / f"{topic}-0").glob("*.log"))


@pytest.mark.timeout(240)
def test_compaction_keeps_latest_value_per_key(broker_factory):
    broker = broker_factory({"log.cleaner.backoff.ms": "500"})
    broker.start()
    topic = unique_topic("compact")
    create_topic(broker.bootstrap, topic, 1, {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "1000",
        "min.compaction.lag.ms": "0",
    })
    producer = kp_producer(broker.bootstrap, acks="all", linger_ms=20)
    latest: dict[bytes, int] = {}
    try:
        for version in range(VERSIONS):
            futures = [(f"k{k}".encode(), producer.send(topic, key=f"k{k}".encode(),
                                                        value=f"v{version}".encode(), partition=0))
                       for k in range(KEYS)]
            producer.flush(timeout=30)
            for key, f in futures:
                latest[key] = f.get(timeout=30).offset
            if version == 0:
                one_version = log_bytes(broker, topic)
            time.sleep(0.15)
        for k in range(DELETED):
            producer.send(topic, key=f"k{k}".encode(), value=None, partition=0)
        producer.flush(timeout=30)
        time.sleep(0.15)
        tail = producer.send(topic, key=b"tail", value=b"end", partition=0).get(timeout=30).offset
    finally:
        producer.close(timeout=10)

    # kill -9 while the cleaner is due, restart: nothing may be lost either way.
    time.sleep(random.uniform(0.2, 1.5))
    broker.kill9()
    broker.start()

    live = sorted(
        [(off, key, b"v%d" % (VERSIONS - 1)) for key, off in latest.items()
         if int(key[1:]) >= DELETED] + [(tail, b"tail", b"end")])
    # First every superseded value goes (tombstones may still be there) ...
    got = wait_for(broker, topic, lambda got: [g for g in got if g[2] is not None] == live)
    assert [g for g in got if g[2] is not None] == live, f"{len(got)} records, expected {len(live)}"
    # Uncompacted, the ten versions would take about ten times one version's bytes.
    assert log_bytes(broker, topic) < 3 * one_version, "cleaning should shrink the partition"

    # ... then, past delete.retention.ms, a later round (triggered by new writes) drops
    # the tombstones too.
    time.sleep(1.5)
    producer = kp_producer(broker.bootstrap, acks="all", linger_ms=20)
    try:
        extra = [(f"x{i}".encode(), producer.send(topic, key=f"x{i}".encode(), value=b"x", partition=0))
                 for i in range(300)]
        producer.flush(timeout=30)
        extra = [(f.get(timeout=30).offset, key, b"x") for key, f in extra]
        time.sleep(0.15)
        last = producer.send(topic, key=b"last", value=b"end", partition=0).get(timeout=30).offset
    finally:
        producer.close(timeout=10)
    expected = sorted(live + extra + [(last, b"last", b"end")])
    got = wait_for(broker, topic, lambda got: got == expected)
    assert got == expected, (f"{len(got)} records, {sum(1 for g in got if g[2] is None)} tombstones; "
                             f"expected {len(expected)}")


def wait_for(broker, topic, done, timeout_s: float = 120.0):
    """Reads the partition from offset 0 until `done(records)` or the deadline."""
    deadline = time.monotonic() + timeout_s
    got = []
    while time.monotonic() < deadline:
        recs = kp_consume(broker.bootstrap, topic, expected=10 ** 6, timeout_s=3)
        got = [(r.offset, r.key, r.value) for r in recs]
        if done(got):
            break
        time.sleep(1)
    return got
