"""Every client, the same scenarios: aiokafka 0.14, the Java client 4.1, franz-go v1.22.3, kcat
(and kafka-python / confluent-kafka where a scenario is new for them too). See harness/drivers.py.

- roundtrip: produce with each codec (keys, headers, null values and keys, empty values,
  explicit create timestamps), read back with the same client and with kafka-python; stored
  batches carry the producer's codec.
- large_record_near_limit / message_too_large: one record in a batch just under the broker's
  default message.max.bytes (1048588) is stored and read back; one just over it is refused by
  the broker with MESSAGE_TOO_LARGE (the client's own cap is raised so the broker decides).
- idempotent_producer: the client's idempotent producer; offsets dense and in order, batches
  carry a producer id and contiguous sequences.
- list_offsets_by_time: earliest, latest, offset for a timestamp, none after the last
  timestamp, and (Java, franz-go) the max-timestamp offset.
- admin_*: create a topic with configs, describe it, its configs, the cluster; delete it.
"""
from __future__ import annotations

import time

import pytest

from harness import wire
from harness.clients import Rec, create_topic, kp_consume, unique_topic, wait_for_leaders
from harness.drivers import DRIVERS, Ack

NEW_CLIENTS = ["aiokafka", "java", "franz-go", "kcat"]
ALL_CLIENTS = ["kafka-python", "confluent-kafka", *NEW_CLIENTS]
ADMIN_CLIENTS = ["aiokafka", "java", "franz-go"]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N = 30
MESSAGE_MAX_BYTES = 1048588  # Kafka's default message.max.bytes (a whole record batch)

def records(client: str, base_ts: int) -> list[Rec]:
    d = DRIVERS[client]
    out = []
    for i in range(N):
        key = None if i % 7 == 3 else f"key-{i % 5}".encode()
        if i == 5:
            value = None
        elif i == 6 and client != "kcat":  # kcat -Z sends an empty value as null
            value = b""
        elif client == "kcat":
            value = f"value-{i}-".encode() + b"z" * (i * 13)
        else:
            value = f"value-{i}-".encode() + bytes(range(256)) * (i % 3) + b"z" * (i * 17)
        if d.per_record_headers:
            headers = (("index", str(i).encode()), ("empty", b""), ("utf8-\u00e9", "\u2603".encode()))
            headers = () if i % 4 == 1 else headers + ((("index", b"repeated"),) if i % 4 == 2 else ())
        else:
            headers = (("h1", b"one"), ("h2", b""), ("h1", b"again"))
        ts = base_ts + i * 37 if d.per_record_timestamps else None
        out.append(Rec(i, key, value, headers, ts, "create"))
    return out


def assert_same(got: list[Rec], want: list[Rec], who: str) -> None:
    assert [r.offset for r in got] == [r.offset for r in want], f"{who}: offsets"
    for w, g in zip(want, got):
        if w.timestamp is None:  # the client stamps it
            assert g.timestamp > 0 and g.timestamp_type == "create", f"{who}: {g}"
            g = g._replace(timestamp=None)
        assert g == w, f"{who}: record {w.offset}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", NEW_CLIENTS)
def test_roundtrip(broker, client, codec):
    d = DRIVERS[client]
    topic = unique_topic(f"rt-{client}-{codec}")
    create_topic(broker.bootstrap, topic)
    want = records(client, int(time.time() * 1000) - 3_600_000)
    acks = d.produce(broker.bootstrap, topic, want, codec=codec)
    assert acks == [Ack(i) for i in range(N)]
    assert_same(d.consume(broker.bootstrap, topic, N), want, client)
    assert_same(kp_consume(broker.bootstrap, topic, N), want, "kafka-python reading it")
    batches = wire.all_batch_headers(broker.bootstrap, topic)
    assert sum(b.record_count for b in batches) == N
    assert {b.compression for b in batches} == {codec}


def _big(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_large_record_near_limit(broker, client):
    d = DRIVERS[client]
    topic = unique_topic(f"big-{client}")
    create_topic(broker.bootstrap, topic)
    # 61 bytes of batch header, ~20 of record framing: the batch lands ~200 bytes under the limit.
    value = _big(MESSAGE_MAX_BYTES - 300)
    rec = Rec(0, b"k", value, (("h", b"v"),) if d.per_record_headers else (), None, "create")
    acks = d.produce(broker.bootstrap, topic, [rec], max_request_bytes=4 * 1048576)
    assert acks == [Ack(0)]
    batches = wire.all_batch_headers(broker.bootstrap, topic)
    assert len(batches) == 1 and MESSAGE_MAX_BYTES - 400 < batches[0].length + 12 <= MESSAGE_MAX_BYTES
    got = d.consume(broker.bootstrap, topic, 1)
    assert len(got) == 1 and got[0].value == value and got[0].key == b"k"


TOO_LARGE_WORDS = ("MESSAGE_TOO_LARGE", "MessageSizeTooLarge", "RecordTooLarge", "Message size too large",
                   "message larger than the max message size", "MessageTooLarge")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_message_too_large(broker, client):
    d = DRIVERS[client]
    topic = unique_topic(f"toobig-{client}")
    create_topic(broker.bootstrap, topic)
    rec = Rec(0, b"k", _big(MESSAGE_MAX_BYTES + 1000), (), None, "create")
    acks = d.produce(broker.bootstrap, topic, [rec], max_request_bytes=4 * 1048576)
    assert len(acks) == 1 and acks[0].offset is None, acks
    assert any(w.lower() in acks[0].error.lower() for w in TOO_LARGE_WORDS), acks[0].error
    assert wire.all_batch_headers(broker.bootstrap, topic) == [], "nothing may be stored"
    # The topic still takes records of an allowed size.
    assert d.produce(broker.bootstrap, topic, [rec._replace(value=b"small")]) == [Ack(0)]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", NEW_CLIENTS)
def test_idempotent_producer(broker, client):
    d = DRIVERS[client]
    topic = unique_topic(f"idem-{client}")
    create_topic(broker.bootstrap, topic)
    n = 2000
    recs = [Rec(i, f"k{i % 13}".encode(), f"{i:06d}".encode(), (), None, "create") for i in range(n)]
    acks = d.produce(broker.bootstrap, topic, recs, idempotent=True)
    assert acks == [Ack(i) for i in range(n)]
    batches = wire.all_batch_headers(broker.bootstrap, topic)
    assert sum(b.record_count for b in batches) == n
    assert all(b.producer_id >= 0 and b.producer_epoch >= 0 for b in batches), batches[:3]
    assert len({b.producer_id for b in batches}) == 1
    seq = 0
    for b in batches:
        assert b.base_sequence == seq, f"batch at {b.base_offset}: sequence {b.base_sequence}, expected {seq}"
        seq += b.record_count
    got = kp_consume(broker.bootstrap, topic, n)
    assert [r.value for r in got] == [r.value for r in recs]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_list_offsets_by_time(broker, client):
    topic = unique_topic(f"lot-{client}")
    create_topic(broker.bootstrap, topic)
    base = int(time.time() * 1000) - 7_200_000
    # Timestamps rise by 1 s, except record 6 which is older than record 5 (out of order).
    stamps = [base + i * 1000 for i in range(10)]
    stamps[6] = base + 4200
    recs = [Rec(i, None, f"v{i}".encode(), (), ts, "create") for i, ts in enumerate(stamps)]
    # Three produce calls: three batches, so the answers span batches.
    for part in (recs[:4], recs[4:7], recs[7:]):
        assert [a.error for a in DRIVERS["kafka-python"].produce(broker.bootstrap, topic, part)] == [None] * len(part)
    # The first offset whose timestamp is >= the target (so base+4200 is offset 5, not 6).
    queries = {base - 1: 0, base: 0, base + 4200: 5, base + 4500: 5, base + 5001: 7, base + 9000: 9,
               base + 9001: -1}
    d = DRIVERS[client]
    got = d.list_offsets(broker.bootstrap, topic, list(queries))
    if d.after_last_is_end:
        queries[base + 9001] = 10
    assert (got.earliest, got.latest) == (0, 10)
    assert got.by_time == queries
    if got.max_timestamp is not None:
        assert got.max_timestamp == 9, got


# --------------------------------------------------------------------------- admin

CONFIGS = {"retention.ms": "3600000", "cleanup.policy": "compact", "max.message.bytes": "2000000",
           "segment.bytes": "10485760"}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ADMIN_CLIENTS)
def test_admin_create_topic_with_configs(broker, client):
    d = DRIVERS[client]
    topic = unique_topic(f"adm-create-{client}")
    out = d.admin(broker.bootstrap, "create_topic", topic=topic, partitions=3, configs=CONFIGS)
    if "partitions" in out:  # Java and franz-go read CreateTopics v5+'s answer
        assert (out["partitions"], out["replication_factor"]) == (3, 1)
        assert out["topic_id"] not in ("", "AAAAAAAAAAAAAAAAAAAAAA", "00000000-0000-0000-0000-000000000000")
        for k, v in CONFIGS.items():
            assert out["configs"].get(k) == v, (k, out["configs"].get(k))
    wait_for_leaders(broker.bootstrap, topic, 3)
    assert topic in d.admin(broker.bootstrap, "list_topics")["topics"]
    # The configs took effect: a batch over the default 1048588 but under 2000000 is accepted.
    rec = Rec(0, b"k", _big(1_500_000), (), None, "create")
    assert DRIVERS["kafka-python"].produce(broker.bootstrap, topic, [rec], max_request_bytes=4 * 1048576) == [Ack(0)]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ADMIN_CLIENTS)
def test_admin_describe_configs(broker, client):
    d = DRIVERS[client]
    topic = unique_topic(f"adm-cfg-{client}")
    create_topic(broker.bootstrap, topic, configs=CONFIGS)
    out = d.admin(broker.bootstrap, "describe_configs", topic=topic)
    for k, v in CONFIGS.items():
        assert out["configs"].get(k) == v, (k, out["configs"].get(k))
    # Defaults are listed too (Kafka lists every topic config).
    assert out["configs"].get("min.insync.replicas") == "1"
    assert out["configs"].get("compression.type") == "producer"
    if out["sources"]:
        assert out["sources"]["retention.ms"] in ("DYNAMIC_TOPIC_CONFIG", "DynamicTopicConfig")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", [*ADMIN_CLIENTS, "kcat"])
def test_admin_describe_topics(broker, client):
    d = DRIVERS[client]
    topic = unique_topic(f"adm-desc-{client}")
    create_topic(broker.bootstrap, topic, partitions=3)
    out = d.admin(broker.bootstrap, "describe_topics", topics=[topic])
    t = out["topics"][topic]
    assert t["internal"] is False
    assert [p["partition"] for p in t["partitions"]] == [0, 1, 2]
    for p in t["partitions"]:
        assert p["leader"] >= 0 and p["replicas"] == [p["leader"]] and p["isr"] == [p["leader"]], p


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", [*ADMIN_CLIENTS, "kcat"])
def test_admin_describe_cluster(broker, client):
    out = DRIVERS[client].admin(broker.bootstrap, "describe_cluster")
    host, port = broker.bootstrap.rsplit(":", 1)
    assert [(n["host"], n["port"]) for n in out["nodes"]] == [(host, int(port))]
    assert out["controller"] in [n["id"] for n in out["nodes"]], out
    if client != "kcat":
        assert out["cluster_id"], out


def test_admin_list_config_resources_java(broker):
    """Admin.listConfigResources (ListConfigResources v1): the live brokers and every topic, in
    Kafka's type order (BROKER before TOPIC) whatever the order asked; groups, client-metrics
    subscriptions and broker loggers only where the broker keeps them."""
    d = DRIVERS["java"]
    topic = unique_topic("adm-list-cfg")
    create_topic(broker.bootstrap, topic)
    ids = sorted(str(n["id"]) for n in d.admin(broker.bootstrap, "describe_cluster")["nodes"])
    rows = d.admin(broker.bootstrap, "list_config_resources", types=["TOPIC", "BROKER"])["resources"]
    types = [t for t, _ in rows]
    assert types == sorted(types, key=["BROKER", "TOPIC"].index), rows
    assert sorted(n for t, n in rows if t == "BROKER") == ids
    assert topic in [n for t, n in rows if t == "TOPIC"]
    topics = d.admin(broker.bootstrap, "list_config_resources", types=["TOPIC"])["resources"]
    assert sorted(topics) == sorted(r for r in rows if r[0] == "TOPIC")
    every = d.admin(broker.bootstrap, "list_config_resources")["resources"]
    assert [n for t, n in every if t == "TOPIC"].count(topic) == 1, every
    assert sorted(n for t, n in every if t == "BROKER") == ids


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ADMIN_CLIENTS)
def test_admin_delete_topic(broker, client):
    d = DRIVERS[client]
    topic = unique_topic(f"adm-del-{client}")
    create_topic(broker.bootstrap, topic)
    d.admin(broker.bootstrap, "delete_topic", topic=topic)
    deadline = time.monotonic() + 30
    while topic in d.admin(broker.bootstrap, "list_topics")["topics"]:
        assert time.monotonic() < deadline, "deleted topic still listed"
        time.sleep(0.5)


# --------------------------------------------------------------------------- transactions

@pytest.mark.not_yet_on_fjord("transactions: FindCoordinator key_type=1, InitProducerId with a "
                              "transactional id, AddPartitionsToTxn, EndTxn, control batches, read_committed")
@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ["java"])
def test_transactional_producer(broker, client):
    d = DRIVERS[client]
    topic = unique_topic(f"txn-{client}")
    create_topic(broker.bootstrap, topic)
    recs = [Rec(i, f"k{i}".encode(), f"v{i}".encode(), (), None, "create") for i in range(10)]
    acks = d.produce(broker.bootstrap, topic, recs, transactional_id=unique_topic("fjord-compat-txn"))
    assert acks == [Ack(i) for i in range(10)]
    got = d.consume(broker.bootstrap, topic, 10, isolation_level="read_committed")
    assert [(r.offset, r.value) for r in got] == [(i, f"v{i}".encode()) for i in range(10)]
    batches = wire.all_batch_headers(broker.bootstrap, topic)
    assert batches[0].attributes & 0x10, "records of a transaction are in a transactional batch"
    assert batches[-1].attributes & 0x20 and batches[-1].base_offset == 10, "a commit marker follows"
