"""Admin APIs through real clients: kafka-python's KafkaAdminClient, Kafka's own
`kafka-configs` (kafka.admin.ConfigCommand) and `kafka-topics` (org.apache.kafka.tools.TopicCommand).

Every scenario runs against Apache Kafka 4.1 as well: the expected defaults, sources and
synonyms below are what Kafka 4.1 reports for a fresh topic on a broker with no log settings.
"""
from __future__ import annotations

import time

import pytest

from harness import wire
from harness.clients import create_topic, kp_producer, unique_topic
from harness.java import run_java_main

# name -> (value, source, [(synonym name, synonym source)]) for a topic without overrides.
D, DD = "DEFAULT_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG"
LONG_MAX = "9223372036854775807"
EXPECTED = {
    "cleanup.policy": ("delete", D, [("log.cleanup.policy", D)]),
    "compression.gzip.level": ("-1", D, [("compression.gzip.level", D)]),
    "compression.lz4.level": ("9", D, [("compression.lz4.level", D)]),
    "compression.type": ("producer", D, [("compression.type", D)]),
    "compression.zstd.level": ("3", D, [("compression.zstd.level", D)]),
    "delete.retention.ms": ("86400000", D, [("log.cleaner.delete.retention.ms", D)]),
    "file.delete.delay.ms": ("60000", D, [("log.segment.delete.delay.ms", D)]),
    "flush.messages": (LONG_MAX, D, [("log.flush.interval.messages", D)]),
    "flush.ms": (LONG_MAX, D, []),
    "follower.replication.throttled.replicas": ("", D, []),
    "index.interval.bytes": ("4096", D, [("log.index.interval.bytes", D)]),
    "leader.replication.throttled.replicas": ("", D, []),
    "local.retention.bytes": ("-2", D, [("log.local.retention.bytes", D)]),
    "local.retention.ms": ("-2", D, [("log.local.retention.ms", D)]),
    "max.compaction.lag.ms": (LONG_MAX, D, [("log.cleaner.max.compaction.lag.ms", D)]),
    "max.message.bytes": ("1048588", D, [("message.max.bytes", D)]),
    "message.timestamp.after.max.ms": ("3600000", D, [("log.message.timestamp.after.max.ms", D)]),
    "message.timestamp.before.max.ms": (LONG_MAX, D, [("log.message.timestamp.before.max.ms", D)]),
    "message.timestamp.type": ("CreateTime", D, [("log.message.timestamp.type", D)]),
    "min.cleanable.dirty.ratio": ("0.5", D, [("log.cleaner.min.cleanable.ratio", D)]),
    "min.compaction.lag.ms": ("0", D, [("log.cleaner.min.compaction.lag.ms", D)]),
    # Recorded as a cluster-wide dynamic default when the cluster is formatted.
    "min.insync.replicas": ("1", DD, [("min.insync.replicas", DD), ("min.insync.replicas", D)]),
    "preallocate": ("false", D, [("log.preallocate", D)]),
    "remote.log.copy.disable": ("false", D, []),
    "remote.log.delete.on.disable": ("false", D, []),
    "remote.storage.enable": ("false", D, []),
    "retention.bytes": ("-1", D, [("log.retention.bytes", D)]),
    "retention.ms": ("604800000", D, []),
    "segment.bytes": ("1073741824", D, [("log.segment.bytes", D)]),
    "segment.index.bytes": ("10485760", D, [("log.index.size.max.bytes", D)]),
    "segment.jitter.ms": ("0", D, []),
    "segment.ms": ("604800000", D, []),
    "unclean.leader.election.enable": ("false", D, [("unclean.leader.election.enable", D)]),
}


@pytest.fixture
def admin(module_broker):
    from kafka import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=module_broker.bootstrap, request_timeout_ms=15000,
                         client_id="fjord-compat-admin")
    yield a
    a.close()


def topic_configs(admin, topic: str) -> dict:
    from kafka.admin import ConfigResource, ConfigResourceType

    r = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                               include_synonyms=True, config_filter="all")
    return r["topic"][topic]


def source_name(s) -> str:
    return getattr(s, "name", s)


def set_configs(admin, topic: str, configs: dict) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])


def eventually(check, timeout_s: float = 15.0, interval_s: float = 0.2):
    """Retries `check` (returning a truthy value) until the deadline; returns its value."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"not reached in {timeout_s} s (last: {last!r})")


def kafka_configs(bootstrap: str, *args: str) -> str:
    return run_java_main("kafka.admin.ConfigCommand", ["--bootstrap-server", bootstrap, *args]).stdout


def test_topic_defaults_sources_and_synonyms_match_kafka(module_broker, admin):
    topic = unique_topic("admin-defaults")
    create_topic(module_broker.bootstrap, topic, partitions=1)
    got = topic_configs(admin, topic)
    assert set(got) == set(EXPECTED)
    for name, (value, source, synonyms) in EXPECTED.items():
        c = got[name]
        assert (c["value"], source_name(c["config_source"])) == (value, source), name
        assert [(s["name"], source_name(s["source"])) for s in c["synonyms"]] == synonyms, name
        assert not c["is_sensitive"] and not c["read_only"], name


def test_kafka_configs_tool_describes_alters_and_deletes(module_broker):
    bs = module_broker.bootstrap
    topic = unique_topic("admin-tool")
    create_topic(bs, topic, partitions=2)
    out = kafka_configs(bs, "--entity-type", "topics", "--entity-name", topic, "--alter",
                        "--add-config", "retention.ms=1000,cleanup.policy=[compact,delete]")
    assert f"Completed updating config for topic {topic}." in out
    out = kafka_configs(bs, "--entity-type", "topics", "--entity-name", topic, "--describe", "--all")
    lines = {line.split("=", 1)[0].strip(): line.strip() for line in out.splitlines()[1:] if "=" in line}
    assert set(lines) == set(EXPECTED)
    assert lines["retention.ms"] == ("retention.ms=1000 sensitive=false "
                                     "synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000}")
    assert lines["cleanup.policy"] == (
        "cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:"
        "cleanup.policy=compact,delete, DEFAULT_CONFIG:log.cleanup.policy=delete}")
    assert lines["segment.bytes"] == ("segment.bytes=1073741824 sensitive=false "
                                      "synonyms={DEFAULT_CONFIG:log.segment.bytes=1073741824}")
    assert lines["segment.ms"] == "segment.ms=604800000 sensitive=false synonyms={}"

    # kafka-topics --describe shows the partitions and the non-default configs.
    out = run_java_main("org.apache.kafka.tools.TopicCommand",
                        ["--bootstrap-server", bs, "--describe", "--topic", topic]).stdout
    header = next(line for line in out.splitlines() if "PartitionCount" in line)
    assert "PartitionCount: 2" in header and "ReplicationFactor: 1" in header
    configs = header.split("Configs:", 1)[1]
    for expected in ("retention.ms=1000", "cleanup.policy=compact,delete", "min.insync.replicas=1"):
        assert expected in configs, header
    assert sum(1 for line in out.splitlines() if "Partition:" in line) == 2

    kafka_configs(bs, "--entity-type", "topics", "--entity-name", topic, "--alter",
                  "--delete-config", "retention.ms")
    out = kafka_configs(bs, "--entity-type", "topics", "--entity-name", topic, "--describe")
    assert "retention.ms" not in out and "cleanup.policy=compact,delete" in out

    # A bad value is refused with INVALID_CONFIG naming the key.
    proc = run_java_main("kafka.admin.ConfigCommand",
                         ["--bootstrap-server", bs, "--entity-type", "topics", "--entity-name", topic,
                          "--alter", "--add-config", "segment.bytes=10"], check=False)
    assert proc.returncode != 0
    assert "segment.bytes" in proc.stdout + proc.stderr


def test_max_message_bytes_lowered_takes_effect_at_once(module_broker, admin):
    from kafka.errors import MessageSizeTooLargeError

    bs = module_broker.bootstrap
    topic = unique_topic("admin-maxmsg")
    create_topic(bs, topic, partitions=1)
    producer = kp_producer(bs, retries=0)
    try:
        producer.send(topic, b"x" * 5000).get(timeout=30)
        set_configs(admin, topic, {"max.message.bytes": "1000"})
        assert topic_configs(admin, topic)["max.message.bytes"]["value"] == "1000"

        def refused():
            try:
                producer.send(topic, b"y" * 5000).get(timeout=30)
                return False
            except MessageSizeTooLargeError:
                return True
        eventually(refused)
        producer.send(topic, b"small").get(timeout=30)
    finally:
        producer.close()


def test_retention_ms_lowered_deletes_old_segments(broker_factory):
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    b = broker_factory({"log.retention.check.interval.ms": "1000"})
    b.start()
    topic = unique_topic("admin-retention")
    create_topic(b.bootstrap, topic, partitions=1, configs={"segment.bytes": "1048576"})
    two_days_ago = int(time.time() * 1000) - 2 * 86400 * 1000
    producer = kp_producer(b.bootstrap, linger_ms=0)
    try:
        for _ in range(12):
            producer.send(topic, b"r" * 100_000, timestamp_ms=two_days_ago).get(timeout=30)
    finally:
        producer.close()
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    try:
        assert consumer.beginning_offsets([tp])[tp] == 0
        set_configs(admin, topic, {"retention.ms": str(86400 * 1000)})
        eventually(lambda: consumer.beginning_offsets([tp])[tp] > 0, timeout_s=30)
    finally:
        consumer.close()
        admin.close()


def test_create_partitions_then_produce_to_new_ones(module_broker, admin):
    from kafka.admin import NewPartitions

    bs = module_broker.bootstrap
    topic = unique_topic("admin-grow")
    create_topic(bs, topic, partitions=1)
    r = admin.create_partitions({topic: NewPartitions(3)}, validate_only=True)
    assert [x.error_code for x in r.results] == [0]
    admin.create_partitions({topic: NewPartitions(3)})
    r = admin.create_partitions({topic: NewPartitions(2)}, raise_errors=False)
    assert [(x.error_code, x.error_message) for x in r.results] == [
        (37, f"The topic {topic} currently has 3 partition(s); 2 would not be an increase.")]
    producer = kp_producer(bs)
    try:
        for p in range(3):
            md = producer.send(topic, f"v{p}".encode(), partition=p).get(timeout=30)
            assert (md.partition, md.offset) == (p, 0)
    finally:
        producer.close()
    with wire.RawConnection(bs) as conn:
        err, hw, records = wire.fetch_v4(conn, topic, 2, 0)
        assert (err, hw) == (0, 1) and b"v2" in records


def test_delete_records_then_fetch_below_start(module_broker, admin):
    from kafka import TopicPartition

    bs = module_broker.bootstrap
    topic = unique_topic("admin-delrec")
    create_topic(bs, topic, partitions=1)
    producer = kp_producer(bs)
    try:
        for i in range(10):
            producer.send(topic, f"r{i}".encode(), partition=0).get(timeout=30)
    finally:
        producer.close()
    tp = TopicPartition(topic, 0)
    r = admin.delete_records({tp: 6})
    assert r[tp]["low_watermark"] == 6
    with wire.RawConnection(bs) as conn:
        assert wire.fetch_v4(conn, topic, 0, 2)[0] == 1  # OFFSET_OUT_OF_RANGE
        err, hw, records = wire.fetch_v4(conn, topic, 0, 6)
        assert (err, hw) == (0, 10) and b"r6" in records


def test_describe_cluster_log_dirs_and_elect_leaders(module_broker, admin):
    bs = module_broker.bootstrap
    topic = unique_topic("admin-misc")
    create_topic(bs, topic, partitions=2)
    cluster = admin.describe_cluster()
    assert [b["node_id"] if "node_id" in b else b["broker_id"] for b in cluster["brokers"]] == [1]
    assert cluster["controller_id"] == 1

    dirs = admin.describe_log_dirs()
    text = repr(dirs)
    assert topic in text
    r = admin.elect_leaders(0, {topic: [0, 1]}, raise_errors=False)
    results = {(t.topic, p.partition_id): (p.error_code, p.error_message)
               for t in r.replica_election_results for p in t.partition_result}
    assert results == {(topic, 0): (84, "Leader election not needed for topic partition."),
                       (topic, 1): (84, "Leader election not needed for topic partition.")}
    r = admin.elect_leaders(0, {"no-such-topic": [0]}, raise_errors=False)
    codes = [(p.error_code, p.error_message) for t in r.replica_election_results for p in t.partition_result]
    assert codes == [(3, "No such topic as no-such-topic")]
