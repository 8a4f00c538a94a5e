"""A 3-node Fjord cluster (node i on 127.0.0.i, every node a broker and a Raft voter) used
by real clients through one bootstrap address.

A 12-partition topic spreads its leaders over the three brokers; kafka-python and
confluent-kafka produce to every partition and read every partition back, each client
finding the leaders from Metadata; a consumer group (confluent-kafka, subscribe) reads the
whole topic with its coordinator on whichever broker leads the group's offsets partition.

Fjord-only: it starts its own Fjord cluster (harness.brokers.Cluster; test_replication.py runs
its scenario on a Kafka cluster too).
"""
from __future__ import annotations

import time

import pytest

from conftest import fjord_bin
from harness import wire
from harness.brokers import fjord_cluster
from harness.clients import (CONSUMERS, ck_producer, create_topic, kp_producer, unique_topic,
                             wait_for_leaders)

PARTITIONS = 12
PER_PARTITION = 5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = fjord_cluster(fjord_bin(), [tmp_path_factory.mktemp(f"fjord-cluster-{i}") for i in (1, 2, 3)])
    try:
        c.start()
        yield c.nodes
    finally:
        c.stop()


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    with wire.RawConnection(bootstrap) as conn:
        md = wire.metadata_v1(conn, [topic])
    for err, name, parts in md.topics:
        if name == topic:
            return {p: leader for _, p, leader in parts}
    raise AssertionError(f"{topic} not in metadata: {md.topics}")


def produce_kp(bootstrap: str, topic: str, tag: str) -> None:
    producer = kp_producer(bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, value=f"{tag}-{p}-{i}".encode(), partition=p)
                   for p in range(PARTITIONS) for i in range(PER_PARTITION)]
        producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=10)


def produce_ck(bootstrap: str, topic: str, tag: str) -> None:
    producer = ck_producer(bootstrap, **{"acks": "all", "linger.ms": 5})
    errors = []
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(topic, value=f"{tag}-{p}-{i}".encode(), partition=p,
                             on_delivery=lambda err, msg: err and errors.append(err))
    assert producer.flush(30) == 0, "confluent producer did not deliver everything"
    assert not errors, errors


@pytest.mark.fjord_only
def test_clients_use_every_partition_of_a_cluster_through_one_bootstrap(broker_kind, cluster):
    if broker_kind != "fjord":
        pytest.skip("needs a Fjord cluster")
    bootstrap = cluster[0].bootstrap
    topic = unique_topic("cluster")
    create_topic(bootstrap, topic, PARTITIONS)
    by_partition = leaders(bootstrap, topic)
    assert set(by_partition.values()) == {1, 2, 3}, by_partition

    produce_kp(bootstrap, topic, "kp")
    produce_ck(bootstrap, topic, "ck")
    expected = {p: [f"{tag}-{p}-{i}".encode() for tag in ("kp", "ck") for i in range(PER_PARTITION)]
                for p in range(PARTITIONS)}
    for name, consume in CONSUMERS.items():
        for p in range(PARTITIONS):
            got = consume(bootstrap, topic, 2 * PER_PARTITION, partition=p)
            assert [r.value for r in got] == expected[p], f"{name}, partition {p}"
            assert [r.offset for r in got] == list(range(2 * PER_PARTITION)), f"{name}, partition {p}"


@pytest.mark.fjord_only
def test_a_consumer_group_reads_a_topic_spread_over_the_cluster(broker_kind, cluster):
    if broker_kind != "fjord":
        pytest.skip("needs a Fjord cluster")
    from confluent_kafka import Consumer

    bootstrap = cluster[1].bootstrap
    topic = unique_topic("cluster-group")
    create_topic(bootstrap, topic, PARTITIONS)
    wait_for_leaders(bootstrap, topic, PARTITIONS)
    produce_ck(bootstrap, topic, "g")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("cluster-group"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 10000})
    seen = set()
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(seen) < PARTITIONS * PER_PARTITION and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None or m.error():
                continue
            seen.add(m.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert len(seen) == PARTITIONS * PER_PARTITION
