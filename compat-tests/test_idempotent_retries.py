"""Real clients retrying a produce whose response was lost: idempotent ones are de-duplicated.

Each test starts its own broker that advertises a proxy (harness/proxy.py) in front of it, so
the clients talk to the broker only through the proxy. The proxy forwards some Produce requests,
waits for the broker's answer, throws it away and closes the connection: the batch is in the
log, but the client only sees a broken connection and sends the batch again. Records are read
back afterwards (batch headers straight from the broker; values with kafka-python).

What Apache Kafka 4.1 does (measured with this file):
- Idempotent producers (kafka-python 3.0.12 by default, confluent-kafka with
  enable.idempotence=true, the Java client 4.1 with enable.idempotence=true): the re-sent batch
  has the same producer id, epoch and sequence as the appended one; the broker answers it like
  the original (error NONE, the original base offset) and appends nothing. Every record is
  acknowledged, at offset i for record i, and stored once, in order, in batches of one producer
  id and epoch whose sequences run on without a gap or a repeat.
  With K=400 records in batches of 1 KiB and 3 responses dropped, the broker gets 28 Produce
  requests for 25 batches (kafka-python, Java) or 32 for 29 (confluent-kafka): one duplicate
  per dropped response (a dropped retry is retried again).
- The control: enable.idempotence=false with retries on. The re-sent batch is appended again,
  so the log holds more records than were sent (e.g. 448 or 442 for 400) and some twice;
  nothing is lost. This shows the proxy provokes real retries. Order is not asserted:
  kafka-python re-sends the failed batches of a broken connection in reverse order then.

Retry settings: all three clients retry a produce that failed on a broken connection without
being told to (kafka-python 3.x: retries=inf within delivery_timeout_ms 120 s; librdkafka:
retries, alias message.send.max.retries, INT32_MAX within message.timeout.ms; the Java client:
retries MAX_INT within delivery.timeout.ms); the tests set retries=RETRIES explicitly anyway,
and every dropped response costs one retry.
"""
from __future__ import annotations

from collections import Counter

import pytest

from harness import wire
from harness.clients import Rec, ck_producer, create_topic, kp_consume, kp_producer, unique_topic
from harness.drivers import DRIVERS, Ack, kp_acks
from harness.proxy import KafkaProxy

CLIENTS = ["kafka-python", "confluent-kafka", "java"]
K = 400            # records per test, one partition
BATCH_BYTES = 1024  # small batches: 25 to 29 of them for the K records
DROPS, EVERY = 3, 4  # swallow the responses of Produce requests 4, 8 and 12 (retries count)
RETRIES = 10


@pytest.fixture
def proxied(broker_factory):
    """(broker, proxy): a fresh broker of the kind, advertising the proxy in front of it."""
    proxy = KafkaProxy()
    try:
        broker = broker_factory({"advertised.listeners": f"PLAINTEXT://{proxy.address}"})
        proxy.start(broker.bootstrap)
        broker.start()
        yield broker, proxy
    finally:
        proxy.stop()


def value(i: int) -> bytes:
    return f"record-{i:05d}-".encode() + b"x" * 40


# --------------------------------------------------------------------------- producers

def produce_kafka_python(bootstrap: str, topic: str, values: list[bytes], idempotent: bool) -> list[Ack]:
    p = kp_producer(bootstrap, acks="all", enable_idempotence=idempotent, retries=RETRIES,
                    linger_ms=5, batch_size=BATCH_BYTES, max_in_flight_requests_per_connection=5)
    try:
        futures = [p.send(topic, value=v, partition=0) for v in values]
        p.flush(timeout=90)
        return kp_acks(futures)
    finally:
        p.close(timeout=10)


def produce_confluent(bootstrap: str, topic: str, values: list[bytes], idempotent: bool) -> list[Ack]:
    p = ck_producer(bootstrap, **{"enable.idempotence": idempotent, "acks": "all", "retries": RETRIES,
                                  "linger.ms": 5, "batch.size": BATCH_BYTES})
    acks: dict[int, Ack] = {}
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=0,
                  on_delivery=lambda err, msg, i=i: acks.__setitem__(
                      i, Ack(None, str(err)) if err else Ack(msg.offset())))
        p.poll(0)
    p.flush(90)
    return [acks.get(i, Ack(None, "not delivered")) for i in range(len(values))]


def produce_java(bootstrap: str, topic: str, values: list[bytes], idempotent: bool) -> list[Ack]:
    recs = [Rec(i, None, v, (), None, "create") for i, v in enumerate(values)]
    return DRIVERS["java"].produce(bootstrap, topic, recs, partition=0, idempotent=idempotent,
                                   retries=RETRIES, linger_ms=5, batch_size=BATCH_BYTES)


PRODUCE = {"kafka-python": produce_kafka_python, "confluent-kafka": produce_confluent,
           "java": produce_java}


def produce_with_drops(client: str, broker, proxy: KafkaProxy, idempotent: bool) -> tuple[str, list[Ack]]:
    topic = unique_topic(f"retry-{client}")
    create_topic(broker.bootstrap, topic)
    proxy.drop_produce_responses(DROPS, every=EVERY)
    acks = PRODUCE[client](proxy.address, topic, [value(i) for i in range(K)], idempotent)
    assert len(proxy.dropped) == DROPS, (
        f"the proxy dropped {proxy.dropped} of {DROPS} responses "
        f"({proxy.produce_requests} Produce requests seen; proxy errors {proxy.errors})")
    assert not proxy.errors, proxy.errors
    return topic, acks


# --------------------------------------------------------------------------- tests

@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", CLIENTS)
def test_idempotent_retry_is_deduplicated(proxied, client):
    broker, proxy = proxied
    topic, acks = produce_with_drops(client, broker, proxy, idempotent=True)
    errors = [(i, a.error) for i, a in enumerate(acks) if a.error]
    assert not errors, errors[:5]
    assert acks == [Ack(i) for i in range(K)], "record i acknowledged at offset i"

    batches = wire.all_batch_headers(broker.bootstrap, topic)
    assert sum(b.record_count for b in batches) == K, "a retried batch was stored again"
    assert batches[0].producer_id >= 0, "not an idempotent producer"
    assert {(b.producer_id, b.producer_epoch) for b in batches} == {
        (batches[0].producer_id, batches[0].producer_epoch)}, "one producer id and epoch"
    assert [b.base_sequence for b in batches] == [
        sum(b.record_count for b in batches[:j]) for j in range(len(batches))], "sequences run on"
    got = kp_consume(broker.bootstrap, topic, expected=K, timeout_s=60)
    assert [(r.offset, r.value) for r in got] == [(i, value(i)) for i in range(K)]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", CLIENTS)
def test_retry_without_idempotence_duplicates(proxied, client):
    """The control: the same drops without idempotence leave duplicates (so retries happened)."""
    broker, proxy = proxied
    topic, acks = produce_with_drops(client, broker, proxy, idempotent=False)
    errors = [(i, a.error) for i, a in enumerate(acks) if a.error]
    assert not errors, errors[:5]

    batches = wire.all_batch_headers(broker.bootstrap, topic)
    assert all(b.producer_id == -1 for b in batches), "not an idempotent producer"
    stored = sum(b.record_count for b in batches)
    assert stored > K, f"{stored} records stored for {K} sent: the dropped batches were not re-sent"
    got = kp_consume(broker.bootstrap, topic, expected=stored, timeout_s=60)
    assert [r.offset for r in got] == list(range(stored))
    counts = Counter(r.value for r in got)
    assert set(counts) == {value(i) for i in range(K)}, "records lost"
