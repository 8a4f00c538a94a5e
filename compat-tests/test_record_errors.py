"""Per-record Produce errors (KIP-467) on either broker: a batch with some invalid records is
refused whole, with INVALID_RECORD or INVALID_TIMESTAMP, `record_errors` naming each bad
record's index in the batch with Kafka's message, and Kafka's partition `error_message`.

- A compacted topic and a batch whose records 1 and 3 have no key.
- A topic with `message.timestamp.before.max.ms` and `message.timestamp.after.max.ms` of one
  hour, and batches whose first record is stamped now: one with a record two hours old (the
  batch header cannot tell), one with a record two hours ahead.
- Nothing of a refused batch is written: the next valid batch gets offset 0.
- kafka-python sending three records in one batch, the middle one keyless: what each send
  reports is the same on both brokers.

Raw requests (Produce v8) carry exactly the batch the test builds, so the answers compare field
by field; only the time window in the timestamp messages depends on the broker's clock.
"""
from __future__ import annotations

import re
import time

import pytest

from harness import wire
from harness.clients import ck_producer, create_topic, unique_topic
from harness.wire import Record

HOUR_MS = 3_600_000
INVALID_RECORD = 87
INVALID_TIMESTAMP = 32


def keyless_message(topic: str) -> str:
    return f"Compacted topic cannot accept message without key in topic partition {topic}-0"


def produce(bootstrap: str, topic: str, records: list[Record], base_timestamp: int):
    """Produce v8 of one batch; a leader that has not taken up a new topic yet
    (NOT_LEADER_OR_FOLLOWER, Kafka right after CreateTopics) is asked again."""
    batch = wire.record_batch(records, base_timestamp=base_timestamp)
    deadline = time.monotonic() + 30
    while True:
        with wire.RawConnection(bootstrap) as conn:
            r = wire.produce_v8(conn, topic, 0, batch, acks=1)
        if r.error_code != 6 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def valid_batch_lands_at_zero(bootstrap: str, topic: str) -> None:
    r = produce(bootstrap, topic, [Record(b"ok", key=b"k")], int(time.time() * 1000))
    assert (r.error_code, r.base_offset) == (0, 0), r


@pytest.mark.timeout(120)
def test_keyless_records_on_a_compacted_topic(module_broker):
    topic = unique_topic("kip467-keys")
    create_topic(module_broker.bootstrap, topic, configs={"cleanup.policy": "compact"})
    records = [Record(b"a", key=b"k0"), Record(b"b"), Record(b"c", key=b"k2"), Record(b"d")]
    r = produce(module_broker.bootstrap, topic, records, int(time.time() * 1000))
    message = keyless_message(topic)
    assert r.error_code == INVALID_RECORD, r
    assert r.record_errors == [(1, message), (3, message)], r
    assert r.error_message == (
        "One or more records have been rejected due to 2 record errors in total, and only "
        f"showing the first three errors at most: [RecordError(batchIndex=1, message='{message}'), "
        f"RecordError(batchIndex=3, message='{message}')]"
    ), r
    assert (r.base_offset, r.log_start_offset) == (-1, 0), r
    valid_batch_lands_at_zero(module_broker.bootstrap, topic)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("offset_ms", [-2 * HOUR_MS, 2 * HOUR_MS], ids=["old", "ahead"])
def test_record_timestamps_out_of_range(module_broker, offset_ms):
    topic = unique_topic("kip467-time")
    create_topic(module_broker.bootstrap, topic, configs={
        "message.timestamp.before.max.ms": str(HOUR_MS),
        "message.timestamp.after.max.ms": str(HOUR_MS),
    })
    now = int(time.time() * 1000)
    records = [Record(b"a"), Record(b"b", timestamp_delta=offset_ms), Record(b"c")]
    r = produce(module_broker.bootstrap, topic, records, now)
    assert r.error_code == INVALID_TIMESTAMP, r
    assert r.error_message == "One or more records have been rejected due to invalid timestamp", r
    assert [i for i, _ in r.record_errors] == [1], r
    m = re.fullmatch(r"Timestamp (\d+) of message with offset 1 is out of range\. "
                     r"The timestamp should be within \[(\d+), (\d+)\]", r.record_errors[0][1] or "")
    assert m, r.record_errors
    low, high = int(m.group(2)), int(m.group(3))
    assert int(m.group(1)) == now + offset_ms
    assert high - low == 2 * HOUR_MS and abs(low + HOUR_MS - now) < 60_000, r.record_errors
    assert (r.base_offset, r.log_start_offset) == (-1, 0), r
    valid_batch_lands_at_zero(module_broker.bootstrap, topic)


@pytest.mark.timeout(120)
def test_kafka_python_send_of_a_batch_with_a_keyless_record(module_broker):
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    topic = unique_topic("kip467-kp")
    create_topic(module_broker.bootstrap, topic, configs={"cleanup.policy": "compact"})
    producer = KafkaProducer(bootstrap_servers=module_broker.bootstrap, linger_ms=500, retries=0,
                             batch_size=1 << 20)
    try:
        sends = [producer.send(topic, key=b"k0", value=b"a", partition=0),
                 producer.send(topic, value=b"b", partition=0),
                 producer.send(topic, key=b"k2", value=b"c", partition=0)]
        producer.flush(30)
        outcomes = []
        for f in sends:
            try:
                outcomes.append(("ok", f.get(timeout=30).offset))
            except KafkaError as e:
                outcomes.append((type(e).__name__, str(e)))
    finally:
        producer.close(5)
    # The keyless record fails with the broker's message for it; the others with the
    # client's own for records of a refused batch.
    others = ("KafkaError", "KafkaError: Failed to append record because it was part of a batch "
              "which had one more more invalid records")
    keyless = ("InvalidRecordError", "[Error 87] InvalidRecordError: " + keyless_message(topic))
    assert outcomes == [others, keyless, others], outcomes


@pytest.mark.timeout(120)
def test_confluent_kafka_send_of_a_batch_with_a_keyless_record(module_broker):
    topic = unique_topic("kip467-ck")
    create_topic(module_broker.bootstrap, topic, configs={"cleanup.policy": "compact"})
    producer = ck_producer(module_broker.bootstrap, **{"linger.ms": 500, "retries": 0,
                                                       "enable.idempotence": False})
    outcomes: dict[bytes, tuple[str, str]] = {}

    def report(err, msg):
        outcomes[msg.value()] = ("ok", "") if err is None else (err.name(), err.str())

    for key, value in [(b"k0", b"a"), (None, b"b"), (b"k2", b"c")]:
        producer.produce(topic, value=value, key=key, partition=0, on_delivery=report)
    assert producer.flush(30) == 0
    print(f"confluent-kafka outcomes: {outcomes}")
    # librdkafka fails the whole batch with the partition's error and message.
    refused = ("INVALID_RECORD", "Broker: Broker failed to validate record")
    assert outcomes == {b"a": refused, b"b": refused, b"c": refused}, outcomes
