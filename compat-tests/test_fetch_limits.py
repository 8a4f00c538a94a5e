"""Fetch size limits smaller than a batch (KIP-74) on either broker: a fetch always returns at
least the first batch of the first partition that has data, however small `max_bytes` and the
partition's limit, so a consumer with a 1-byte limit still reads everything, one batch at a
time, on every partition.
"""
from __future__ import annotations

import time

import pytest

from harness.clients import create_topic, kp_producer, unique_topic

PARTITIONS = 2
BATCHES = 5


@pytest.mark.timeout(120)
def test_kafka_python_consumer_with_one_byte_limits_reads_every_batch(module_broker):
    from kafka import KafkaConsumer, TopicPartition

    topic = unique_topic("kip74")
    create_topic(module_broker.bootstrap, topic, partitions=PARTITIONS)
    producer = kp_producer(module_broker.bootstrap, linger_ms=0)
    sent = set()
    try:
        for b in range(BATCHES):
            for p in range(PARTITIONS):
                value = f"p{p}-b{b}-".encode() + b"x" * 200
                producer.send(topic, value=value, partition=p).get(timeout=30)
                sent.add((p, value))
    finally:
        producer.close(5)

    consumer = KafkaConsumer(bootstrap_servers=module_broker.bootstrap, group_id=None,
                             enable_auto_commit=False, fetch_max_bytes=1,
                             max_partition_fetch_bytes=1, request_timeout_ms=15000)
    got = set()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 60
        while got != sent and time.monotonic() < deadline:
            for tp, msgs in consumer.poll(timeout_ms=500).items():
                got.update((tp.partition, m.value) for m in msgs)
    finally:
        consumer.close()
    assert got == sent, f"missing {len(sent - got)} of {len(sent)} records"
