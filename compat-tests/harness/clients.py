"""Thin helpers over the real clients (kafka-python 3.0.12, confluent-kafka 2.16.1).

Records read back are normalised to `Rec(offset, key, value, headers, timestamp, timestamp_type)`
so the two clients' results compare directly. timestamp_type is 'create' or 'append'.
"""
from __future__ import annotations

import time
import uuid
from typing import NamedTuple

from . import wire

ADMIN_TIMEOUT_MS = 15000


class Rec(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int
    timestamp_type: str


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None,
                 timeout_s: float = 30.0, replication_factor: int = 1) -> None:
    """CreateTopics through kafka-python's admin client, then wait until every partition has a
    leader (bootstrap: one host:port, the raw Metadata probe talks to it)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS,
                             client_id="fjord-compat-admin")
    try:
        resp = admin.create_topics([NewTopic(name, partitions, replication_factor, topic_configs=configs or {})],
                                   timeout_ms=ADMIN_TIMEOUT_MS)
    finally:
        admin.close()
    errors = [(t["name"], t["error_code"], t.get("error_message")) for t in _topics_of(resp)]
    assert errors and all(e[1] == 0 for e in errors), f"CreateTopics {name}: {errors}"
    wait_for_leaders(bootstrap, name, partitions, timeout_s)


def _topics_of(resp) -> list[dict]:
    if isinstance(resp, dict):
        return resp["topics"]
    # Older response objects: (name, error_code, error_message) tuples.
    return [{"name": t[0], "error_code": t[1], "error_message": t[2] if len(t) > 2 else None}
            for t in resp.topic_errors]


def wait_for_leaders(bootstrap: str, topic: str, partitions: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        with wire.RawConnection(bootstrap) as conn:
            md = wire.metadata_v1(conn, [topic])
        last = md.topics
        for err, name, parts in md.topics:
            if name == topic and err == 0 and len(parts) == partitions and all(
                    p_err == 0 and leader >= 0 for p_err, _, leader in parts):
                return
        time.sleep(0.1)
    raise AssertionError(f"topic {topic} has no leader for all {partitions} partitions after "
                         f"{timeout_s}s: {last}")


# --------------------------------------------------------------------------- kafka-python

def kp_producer(bootstrap: str, **config):
    from kafka import KafkaProducer
    base = dict(bootstrap_servers=bootstrap, request_timeout_ms=15000, max_block_ms=15000,
                client_id="fjord-compat-kp-producer")
    base.update(config)
    return KafkaProducer(**base)


def kp_consume(bootstrap: str, topic: str, expected: int, partition: int = 0,
               timeout_s: float = 30.0) -> list[Rec]:
    """assign + seek_to_beginning; read until `expected` records or the deadline."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             request_timeout_ms=15000, client_id="fjord-compat-kp-consumer")
    out: list[Rec] = []
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            for msgs in consumer.poll(timeout_ms=500).values():
                for m in msgs:
                    out.append(Rec(m.offset, m.key, m.value,
                                   tuple((k, v) for k, v in (m.headers or [])),
                                   m.timestamp, "create" if m.timestamp_type == 0 else "append"))
    finally:
        consumer.close()
    return out


# --------------------------------------------------------------------------- confluent-kafka

def ck_producer(bootstrap: str, **config):
    from confluent_kafka import Producer
    base = {"bootstrap.servers": bootstrap, "client.id": "fjord-compat-ck-producer",
            "message.timeout.ms": 30000, "socket.timeout.ms": 10000}
    base.update(config)
    return Producer(base)


def ck_consume(bootstrap: str, topic: str, expected: int, partition: int = 0,
               timeout_s: float = 30.0) -> list[Rec]:
    """assign at OFFSET_BEGINNING; read until `expected` records or the deadline.

    confluent-kafka refuses to build a Consumer without group.id; nothing here subscribes or
    commits, so the group is never joined."""
    from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("fjord-compat-unused"),
                         "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "client.id": "fjord-compat-ck-consumer", "socket.timeout.ms": 10000})
    out: list[Rec] = []
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"confluent consumer error: {m.error()}")
            ts_type, ts = m.timestamp()
            out.append(Rec(m.offset(), m.key(), m.value(), tuple(m.headers() or ()), ts,
                           "create" if ts_type == TIMESTAMP_CREATE_TIME else "append"))
    finally:
        consumer.close()
    return out


CONSUMERS = {"kafka-python": kp_consume, "confluent-kafka": ck_consume}
