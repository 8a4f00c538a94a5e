"""Client quotas through real clients: Kafka's own `kafka-configs` (kafka.admin.ConfigCommand:
AlterClientQuotas and DescribeClientQuotas) sets and reads them, and a kafka-python producer
and consumer over their byte rates are throttled (the throttle_time_ms of their responses, as
kafka-python's `throttle-time-max` metric records it).

Each scenario uses its own client ids and removes its quotas afterwards, so the shared broker's
other clients are never throttled. Every scenario runs against Apache Kafka 4.1 as well.
"""
from __future__ import annotations

import time
import uuid

import pytest

from harness.clients import create_topic, kp_producer, unique_topic
from harness.java import run_java_main


def kafka_configs(bootstrap: str, *args: str, check: bool = True):
    proc = run_java_main("kafka.admin.ConfigCommand", ["--bootstrap-server", bootstrap, *args],
                         check=check)
    return proc if not check else proc.stdout


def quota_line(out: str) -> dict[str, float]:
    """The values of the one `Quota configs for ... are k=v, ...` line."""
    lines = [line for line in out.splitlines() if line.startswith("Quota configs for ")]
    assert len(lines) <= 1, out
    if not lines:
        return {}
    values = lines[0].split(" are ", 1)[1]
    return {k: float(v) for k, v in (kv.split("=", 1) for kv in values.split(", "))}


def throttle_max(metrics: dict) -> float:
    """kafka-python's `throttle-time-max` (the largest throttle_time_ms of any response)."""
    return max((group["throttle-time-max"] for group in metrics.values()
                if "throttle-time-max" in group), default=0.0)


def test_kafka_configs_sets_describes_and_removes_client_quotas(broker):
    bs = broker.bootstrap
    client = f"quota-{uuid.uuid4().hex[:8]}"
    clients = ["--entity-type", "clients", "--entity-name", client]
    out = kafka_configs(bs, *clients, "--alter",
                        "--add-config", "producer_byte_rate=1024,consumer_byte_rate=2048")
    assert f"Completed updating config for client {client}." in out
    # The default user's quota for this client id: an entity of two parts.
    both = ["--entity-type", "users", "--entity-default", *clients]
    out = kafka_configs(bs, *both, "--alter", "--add-config", "request_percentage=50")
    assert "Completed updating" in out

    try:
        out = kafka_configs(bs, *clients, "--describe")
        assert f"Quota configs for client-id '{client}' are " in out, out
        assert quota_line(out) == {"producer_byte_rate": 1024.0, "consumer_byte_rate": 2048.0}
        out = kafka_configs(bs, *both, "--describe")
        assert f"Quota configs for the default user-principal, client-id '{client}' are " in out, out
        assert quota_line(out) == {"request_percentage": 50.0}

        # A byte rate is a whole number: refused by the controller with its message.
        proc = kafka_configs(bs, *clients, "--alter", "--add-config", "producer_byte_rate=1.5",
                             check=False)
        assert proc.returncode != 0
        assert "producer_byte_rate cannot be a fractional value" in proc.stdout + proc.stderr

        kafka_configs(bs, *clients, "--alter", "--delete-config", "producer_byte_rate")
        assert quota_line(kafka_configs(bs, *clients, "--describe")) == {"consumer_byte_rate": 2048.0}
    finally:
        kafka_configs(bs, *clients, "--alter", "--delete-config", "consumer_byte_rate")
        kafka_configs(bs, *both, "--alter", "--delete-config", "request_percentage")
    assert quota_line(kafka_configs(bs, *clients, "--describe")) == {}
    assert quota_line(kafka_configs(bs, *both, "--describe")) == {}


def wait_for_quota(bootstrap: str, client: str, key: str, timeout_s: float = 30.0) -> None:
    """Quotas reach every broker through the metadata log: wait until this one reports it."""
    deadline = time.monotonic() + timeout_s
    while key not in quota_line(kafka_configs(bootstrap, "--entity-type", "clients",
                                              "--entity-name", client, "--describe")):
        assert time.monotonic() < deadline, f"{key} for {client} never described"
        time.sleep(0.5)


@pytest.mark.timeout(240)
def test_producer_and_consumer_over_their_byte_rates_are_throttled(broker):
    from kafka import KafkaConsumer, TopicPartition

    bs = broker.bootstrap
    topic = unique_topic("quota-throttle")
    create_topic(bs, topic)
    producer_id = f"quota-p-{uuid.uuid4().hex[:8]}"
    consumer_id = f"quota-c-{uuid.uuid4().hex[:8]}"
    # 2 KB/s: measured over the default window of ten seconds, about 20 KB go unthrottled.
    kafka_configs(bs, "--entity-type", "clients", "--entity-name", producer_id, "--alter",
                  "--add-config", "producer_byte_rate=2048")
    kafka_configs(bs, "--entity-type", "clients", "--entity-name", consumer_id, "--alter",
                  "--add-config", "consumer_byte_rate=2048")
    try:
        wait_for_quota(bs, producer_id, "producer_byte_rate")
        wait_for_quota(bs, consumer_id, "consumer_byte_rate")
        producer = kp_producer(bs, client_id=producer_id, linger_ms=0, acks=1)
        sent = 0
        try:
            # One 1 KB record per request until a response carries a throttle time.
            while throttle_max(producer.metrics()) <= 0 and sent < 100:
                producer.send(topic, b"x" * 1024).get(timeout=60)
                sent += 1
        finally:
            producer.close(timeout=60)
        assert 10 <= sent < 100, f"throttled after {sent} records"
        # As much again from a client without a quota, so that the consumer's first fetch
        # (capped at what its quota lets through in the window) cannot take it all.
        other = kp_producer(bs, linger_ms=0, acks=1)
        try:
            for _ in range(20):
                other.send(topic, b"y" * 1024).get(timeout=60)
        finally:
            other.close(timeout=60)
        sent += 20

        consumer = KafkaConsumer(bootstrap_servers=bs, client_id=consumer_id,
                                 enable_auto_commit=False, fetch_max_wait_ms=100,
                                 request_timeout_ms=60000)
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            got = 0
            deadline = time.monotonic() + 120
            while (got < sent or throttle_max(consumer.metrics()) <= 0) and time.monotonic() < deadline:
                got += sum(len(rs) for rs in consumer.poll(timeout_ms=500).values())
            assert got == sent, f"read {got} of {sent}"
            assert throttle_max(consumer.metrics()) > 0
        finally:
            consumer.close()
    finally:
        kafka_configs(bs, "--entity-type", "clients", "--entity-name", producer_id, "--alter",
                      "--delete-config", "producer_byte_rate")
        kafka_configs(bs, "--entity-type", "clients", "--entity-name", consumer_id, "--alter",
                      "--delete-config", "consumer_byte_rate")
