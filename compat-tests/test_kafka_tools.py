"""Apache Kafka 4.1's own CLI tools against the broker, run from the jars with `java -cp`:
kafka-topics (org.apache.kafka.tools.TopicCommand), kafka-console-producer
(org.apache.kafka.tools.ConsoleProducer), kafka-console-consumer
(org.apache.kafka.tools.consumer.ConsoleConsumer) and kafka-cluster
(org.apache.kafka.tools.ClusterTool).
"""
from __future__ import annotations

import subprocess

import pytest

from harness.clients import Rec, create_topic, kp_consume, unique_topic, wait_for_leaders
from harness.drivers import DRIVERS
from harness.java import java_command

TOPICS = "org.apache.kafka.tools.TopicCommand"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CLUSTER = "org.apache.kafka.tools.ClusterTool"
JVM = ["-Xmx256m", "-XX:TieredStopAtLevel=1"]


def tool(main: str, args: list[str], stdin: str | None = None, timeout_s: float = 90) -> subprocess.CompletedProcess:
    proc = subprocess.run(java_command(main, args, jvm_opts=JVM), input=stdin, capture_output=True, text=True,
                          timeout=timeout_s)
    return proc


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.client("kafka-topics")
@pytest.mark.timeout(180)
def test_kafka_topics_create_list_describe_delete(broker):
    bs = ["--bootstrap-server", broker.bootstrap]
    topic = unique_topic("cli-topics")
    out = ok(tool(TOPICS, [*bs, "--create", "--topic", topic, "--partitions", "3", "--replication-factor", "1",
                           "--config", "retention.ms=7200000", "--config", "cleanup.policy=compact"]))
    assert f"Created topic {topic}." in out
    wait_for_leaders(broker.bootstrap, topic, 3)
    # Creating it again fails with TopicExistsException.
    again = tool(TOPICS, [*bs, "--create", "--topic", topic, "--partitions", "1"])
    assert again.returncode != 0 and "already exists" in (again.stdout + again.stderr)
    assert topic in ok(tool(TOPICS, [*bs, "--list"])).split()
    desc = ok(tool(TOPICS, [*bs, "--describe", "--topic", topic]))
    head, *parts = [line for line in desc.splitlines() if line.strip()]
    assert f"Topic: {topic}" in head and "PartitionCount: 3" in head and "ReplicationFactor: 1" in head, desc
    assert "TopicId: " in head
    # kafka-topics prints the topic's non-default configs (from DescribeConfigs).
    assert "retention.ms=7200000" in head and "cleanup.policy=compact" in head, head
    assert len(parts) == 3
    for i, line in enumerate(parts):
        fields = dict(f.split(": ", 1) for f in line.strip().split("\t") if ": " in f)
        assert fields["Partition"] == str(i) and fields["Leader"] == fields["Replicas"] == fields["Isr"], line
    # DescribeTopicPartitions paged two partitions at a time: the tool follows the cursor.
    paged = ok(tool(TOPICS, [*bs, "--describe", "--topic", topic, "--partition-size-limit-per-response", "2"]))
    paged_parts = [line for line in paged.splitlines() if line.strip()][1:]
    assert paged_parts == parts, paged
    ok(tool(TOPICS, [*bs, "--delete", "--topic", topic]))
    import time
    deadline = time.monotonic() + 30
    while topic in ok(tool(TOPICS, [*bs, "--list"])).split():
        assert time.monotonic() < deadline, "deleted topic still listed"
        time.sleep(1)


@pytest.mark.client("kafka-cluster")
@pytest.mark.timeout(120)
def test_kafka_cluster_unregister_unknown_broker(broker):
    # UnregisterBroker (key 64) of an id that never registered: the tool fails with
    # BROKER_ID_NOT_REGISTERED's message; the cluster is untouched.
    bs = ["--bootstrap-server", broker.bootstrap]
    proc = tool(CLUSTER, ["unregister", *bs, "--id", "4242"])
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "4242 is not currently registered" in out, out[-3000:]
    assert ok(tool(CLUSTER, ["cluster-id", *bs])).startswith("Cluster ID: ")


@pytest.mark.client("kafka-console-producer")
@pytest.mark.timeout(180)
@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_console_producer(broker, codec):
    topic = unique_topic(f"cli-prod-{codec}")
    create_topic(broker.bootstrap, topic)
    lines = [f"h1:one,h2:two\tkey-{i}|value {i} \u2603" for i in range(20)]
    ok(tool(PRODUCER, ["--bootstrap-server", broker.bootstrap, "--topic", topic, "--compression-codec", codec,
                       "--property", "parse.key=true", "--property", "key.separator=|",
                       "--property", "parse.headers=true",
                       "--producer-property", "linger.ms=50"], stdin="\n".join(lines) + "\n"))
    got = kp_consume(broker.bootstrap, topic, 20)
    assert [(r.offset, r.key, r.value, r.headers) for r in got] == [
        (i, f"key-{i}".encode(), f"value {i} \u2603".encode(), (("h1", b"one"), ("h2", b"two")))
        for i in range(20)]


def _console_consumer_lines(broker, topic: str, n: int, extra: list[str]) -> list[str]:
    out = ok(tool(CONSUMER, ["--bootstrap-server", broker.bootstrap, "--topic", topic, "--max-messages", str(n),
                             "--timeout-ms", "60000", "--property", "print.key=true",
                             "--property", "print.headers=true", "--property", "print.offset=true",
                             "--property", "print.timestamp=true", "--property", "key.separator=|",
                             *extra], timeout_s=120))
    return [line for line in out.splitlines() if line.strip()]


def _seed(broker, topic: str, n: int, base_ts: int) -> None:
    recs = [Rec(i, f"k{i}".encode(), f"v{i}".encode(), (("h", f"{i}".encode()),), base_ts + i, "create")
            for i in range(n)]
    assert [a.offset for a in DRIVERS["kafka-python"].produce(broker.bootstrap, topic, recs)] == list(range(n))


@pytest.mark.client("kafka-console-consumer")
@pytest.mark.timeout(180)
def test_console_consumer_partition(broker):
    topic = unique_topic("cli-cons")
    create_topic(broker.bootstrap, topic)
    _seed(broker, topic, 10, 1_700_000_000_000)
    lines = _console_consumer_lines(broker, topic, 10, ["--partition", "0", "--offset", "earliest"])
    assert lines == [f"CreateTime:{1_700_000_000_000 + i}|Offset:{i}|h:{i}|k{i}|v{i}" for i in range(10)]


@pytest.mark.client("kafka-console-consumer")
@pytest.mark.needs_groups
@pytest.mark.timeout(180)
def test_console_consumer_group(broker):
    topic = unique_topic("cli-cons-grp")
    create_topic(broker.bootstrap, topic)
    _seed(broker, topic, 10, 1_700_000_000_000)
    lines = _console_consumer_lines(broker, topic, 10, ["--from-beginning", "--group", unique_topic("cli-grp")])
    assert lines == [f"CreateTime:{1_700_000_000_000 + i}|Offset:{i}|h:{i}|k{i}|v{i}" for i in range(10)]
