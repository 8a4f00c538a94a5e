"""Idempotent producers: the clients' own, and hand-made batches replayed on the wire.

What Apache Kafka 4.1 answers (measured with this file):
- InitProducerId right after start-up may answer COORDINATOR_LOAD_IN_PROGRESS (14) until the
  broker has its producer-id block; clients retry, so do we.
- A batch re-sent with the same producer id, epoch and sequence range as one of the last five
  is a duplicate: error NONE and the base offset of the original; nothing is appended.
  (Kafka puts the batch's max timestamp in log_append_time_ms of that answer; not asserted.)
- A batch whose first sequence skips ahead of the next expected one is rejected with
  OUT_OF_ORDER_SEQUENCE_NUMBER (45) and nothing is appended; the expected sequence still works.
"""
from __future__ import annotations

import time

import pytest

from harness import wire
from harness.clients import ck_producer, create_topic, kp_consume, kp_producer, unique_topic

N = 3000
PARTITIONS = 3
RETRIABLE_INIT_PID_ERRORS = {7, 14, 15, 51}  # timed out, load in progress, not available, concurrent txns


def check_partitions(bootstrap: str, topic: str, sent: dict[int, list[bytes]]) -> None:
    """Every partition holds exactly what was sent to it, in order, at offsets 0..n-1."""
    for p in range(PARTITIONS):
        got = kp_consume(bootstrap, topic, expected=len(sent.get(p, [])), partition=p, timeout_s=60)
        assert [r.offset for r in got] == list(range(len(sent.get(p, []))))
        assert [r.value for r in got] == sent.get(p, [])
        batches = wire.all_batch_headers(bootstrap, topic, p)
        assert sum(b.record_count for b in batches) == len(sent.get(p, [])), "extra records stored"


@pytest.mark.timeout(180)
def test_kafka_python_idempotent_producer(broker):
    topic = unique_topic("idem-kp")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    producer = kp_producer(broker.bootstrap, acks="all", linger_ms=5, batch_size=4096,
                           max_in_flight_requests_per_connection=5)
    try:
        assert producer.config["enable_idempotence"] is True  # the kafka-python 3.x default
        futures = [producer.send(topic, key=f"k{i % 17}".encode(), value=f"{i:06d}".encode())
                   for i in range(N)]
        producer.flush(timeout=60)
        metas = [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)
    sent: dict[int, list[bytes]] = {}
    for i, m in enumerate(metas):
        assert m.offset == len(sent.setdefault(m.partition, [])), f"record {i}: {m}"
        sent[m.partition].append(f"{i:06d}".encode())
    assert len(sent) > 1, "keys should spread over partitions"
    check_partitions(broker.bootstrap, topic, sent)


@pytest.mark.timeout(180)
def test_confluent_idempotent_producer(broker):
    topic = unique_topic("idem-ck")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    producer = ck_producer(broker.bootstrap, **{"enable.idempotence": True, "acks": "all",
                                                "linger.ms": 5, "batch.size": 4096})
    acked: dict[int, tuple[int, int]] = {}
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[int(msg.value())] = (msg.partition(), msg.offset())

    for i in range(N):
        producer.produce(topic, key=f"k{i % 17}".encode(), value=f"{i:06d}".encode(),
                         on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:5]
    assert sorted(acked) == list(range(N))
    sent: dict[int, list[bytes]] = {}
    for i in range(N):
        part, offset = acked[i]
        assert offset == len(sent.setdefault(part, [])), f"record {i} acked at {part}/{offset}"
        sent[part].append(f"{i:06d}".encode())
    assert len(sent) > 1, "keys should spread over partitions"
    check_partitions(broker.bootstrap, topic, sent)


# --------------------------------------------------------------------------- raw protocol

def init_producer_id(conn: wire.RawConnection, timeout_s: float = 30.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        err, pid, epoch = wire.init_producer_id_v0(conn)
        if err == wire.ERR_NONE:
            assert pid >= 0 and epoch >= 0
            return pid, epoch
        assert err in RETRIABLE_INIT_PID_ERRORS, f"InitProducerId error {err}"
        assert time.monotonic() < deadline, f"InitProducerId still failing with {err}"
        time.sleep(0.2)


def make_batch(pid: int, epoch: int, seq: int, count: int, tag: str) -> bytes:
    return wire.record_batch(
        [wire.Record(f"{tag}-{seq + i}".encode(), key=b"k") for i in range(count)],
        base_timestamp=int(time.time() * 1000), producer_id=pid, producer_epoch=epoch,
        base_sequence=seq)


def stored(bootstrap: str, topic: str) -> list[tuple[int, int, int, int, int]]:
    return [(h.base_offset, h.record_count, h.producer_id, h.producer_epoch, h.base_sequence)
            for h in wire.all_batch_headers(bootstrap, topic)]


@pytest.mark.timeout(120)
def test_raw_duplicate_batch_gets_original_offset(broker):
    topic = unique_topic("idem-raw-dup")
    create_topic(broker.bootstrap, topic, partitions=1)
    with wire.RawConnection(broker.bootstrap) as conn:
        pid, epoch = init_producer_id(conn)
        first = make_batch(pid, epoch, 0, 3, "a")
        second = make_batch(pid, epoch, 3, 3, "a")

        r = wire.produce_v8(conn, topic, 0, first)
        assert (r.error_code, r.base_offset) == (0, 0)
        r = wire.produce_v8(conn, topic, 0, first)  # a retry of the same batch
        assert (r.error_code, r.base_offset) == (0, 0), r
        r = wire.produce_v8(conn, topic, 0, second)
        assert (r.error_code, r.base_offset) == (0, 3), r
        r = wire.produce_v8(conn, topic, 0, first)  # an older batch, still among the last five
        assert (r.error_code, r.base_offset) == (0, 0), r
        r = wire.produce_v8(conn, topic, 0, second)
        assert (r.error_code, r.base_offset) == (0, 3), r

    assert stored(broker.bootstrap, topic) == [(0, 3, pid, epoch, 0), (3, 3, pid, epoch, 3)]
    got = kp_consume(broker.bootstrap, topic, expected=6)
    assert [(r.offset, r.value) for r in got] == [(i, f"a-{i}".encode()) for i in range(6)]


@pytest.mark.timeout(120)
def test_raw_sequence_gap_is_out_of_order(broker):
    topic = unique_topic("idem-raw-gap")
    create_topic(broker.bootstrap, topic, partitions=1)
    with wire.RawConnection(broker.bootstrap) as conn:
        pid, epoch = init_producer_id(conn)
        r = wire.produce_v8(conn, topic, 0, make_batch(pid, epoch, 0, 3, "g"))
        assert (r.error_code, r.base_offset) == (0, 0)
        r = wire.produce_v8(conn, topic, 0, make_batch(pid, epoch, 10, 3, "g"))  # expected 3
        assert r.error_code == wire.ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, r
        r = wire.produce_v8(conn, topic, 0, make_batch(pid, epoch, 3, 3, "g"))  # still accepted
        assert (r.error_code, r.base_offset) == (0, 3), r

    assert stored(broker.bootstrap, topic) == [(0, 3, pid, epoch, 0), (3, 3, pid, epoch, 3)]
    got = kp_consume(broker.bootstrap, topic, expected=6)
    assert [(r.offset, r.value) for r in got] == [(i, f"g-{i}".encode()) for i in range(6)]
