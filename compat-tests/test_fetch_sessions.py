"""Fetch sessions (KIP-227) on either broker: a full fetch with epoch 0 opens a session; an
incremental fetch names only the partitions that changed (new records, a moved high
watermark); a wrong epoch, an unknown session id and a closed session get Kafka's errors; a
forgotten partition leaves the session. Then kafka-python, which uses sessions, consumes a
topic of many partitions through one.
"""
from __future__ import annotations

import time

import pytest

from harness import wire
from harness.clients import create_topic, kp_producer, unique_topic

FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71


def produce(bootstrap: str, topic: str, partition: int, value: bytes) -> None:
    p = kp_producer(bootstrap, linger_ms=0)
    try:
        p.send(topic, value=value, partition=partition).get(timeout=30)
    finally:
        p.close(5)


@pytest.mark.timeout(120)
def test_an_incremental_fetch_names_only_what_changed(module_broker):
    topic = unique_topic("sessions")
    create_topic(module_broker.bootstrap, topic, partitions=3)
    for p in range(3):
        produce(module_broker.bootstrap, topic, p, f"first-{p}".encode())
    parts = [(topic, p, 0) for p in range(3)]
    with wire.RawConnection(module_broker.bootstrap, timeout_s=20) as conn:
        full = wire.fetch_v11(conn, 0, 0, parts)
        assert full.error == 0 and full.session_id > 0, full
        assert sorted(full.partitions) == [(topic, p) for p in range(3)]
        assert all(hw == 1 and records for _, hw, records in full.partitions.values())
        sid = full.session_id

        # Nothing new since: after max_wait the answer names no partition.
        quiet = wire.fetch_v11(conn, sid, 1, [(topic, p, 1) for p in range(3)], max_wait_ms=200)
        assert (quiet.error, quiet.session_id, quiet.partitions) == (0, sid, {}), quiet

        produce(module_broker.bootstrap, topic, 1, b"second")
        changed = wire.fetch_v11(conn, sid, 2, [], max_wait_ms=5000)
        assert list(changed.partitions) == [(topic, 1)], changed
        err, hw, records = changed.partitions[(topic, 1)]
        assert (err, hw) == (0, 2) and b"second" in records

        # Wrong epoch, unknown session.
        assert wire.fetch_v11(conn, sid, 7, []).error == INVALID_FETCH_SESSION_EPOCH
        assert wire.fetch_v11(conn, sid + 1, 1, []).error == FETCH_SESSION_ID_NOT_FOUND

        # Forget partition 1; new records there are no longer named.
        forgot = wire.fetch_v11(conn, sid, 3, [(topic, 1, 2)], forget=[(topic, 1)],
                                max_wait_ms=200)
        assert forgot.error == 0 and (topic, 1) not in forgot.partitions, forgot
        produce(module_broker.bootstrap, topic, 1, b"third")
        produce(module_broker.bootstrap, topic, 2, b"second-2")
        later = wire.fetch_v11(conn, sid, 4, [], max_wait_ms=5000)
        assert list(later.partitions) == [(topic, 2)], later

        # Epoch -1 closes the session (and answers in full, sessionless).
        closing = wire.fetch_v11(conn, sid, -1, [(topic, 0, 0)])
        assert (closing.error, closing.session_id) == (0, 0)
        assert list(closing.partitions) == [(topic, 0)]
        assert wire.fetch_v11(conn, sid, 5, []).error == FETCH_SESSION_ID_NOT_FOUND


@pytest.mark.timeout(180)
def test_kafka_python_consumes_many_partitions_through_a_session(module_broker):
    from kafka import KafkaConsumer, TopicPartition

    partitions = 60
    topic = unique_topic("sessions-many")
    create_topic(module_broker.bootstrap, topic, partitions=partitions)
    producer = kp_producer(module_broker.bootstrap, linger_ms=5)
    sent = set()
    try:
        for round_ in range(3):
            for p in range(partitions):
                v = f"{p}-{round_}".encode()
                producer.send(topic, value=v, partition=p)
                sent.add(v)
        producer.flush(30)
    finally:
        producer.close(5)
    consumer = KafkaConsumer(bootstrap_servers=module_broker.bootstrap, group_id=None,
                             enable_auto_commit=False, max_partition_fetch_bytes=4096,
                             fetch_max_bytes=16384, request_timeout_ms=30000)
    got = set()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 120
        while got != sent and time.monotonic() < deadline:
            for msgs in consumer.poll(timeout_ms=500).values():
                got.update(m.value for m in msgs)
        handlers = consumer._fetcher._session_handlers
        session_ids = [h.next_metadata.session_id for h in handlers.values()]
    finally:
        consumer.close()
    assert got == sent, f"missing {len(sent - got)} of {len(sent)}"
    assert any(s > 0 for s in session_ids), f"no fetch session in use: {session_ids}"
