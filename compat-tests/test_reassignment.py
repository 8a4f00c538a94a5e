"""kafka-reassign-partitions (org.apache.kafka.tools.reassign.ReassignPartitionsCommand) moves
replicas between brokers of a 3-broker cluster of either broker, and no record is lost:

1. kafka-topics creates a topic of 3 partitions with an explicit --replica-assignment
   (1:2,2:3,3:1: partition 0 on [1,2], 1 on [2,3], 2 on [3,1]); kafka-python writes 3000 keyed
   records with acks=all, 1000 to each partition.
2. --list prints "No partition reassignments found." while nothing moves. --execute with a plan
   naming broker 4 (not in the cluster) fails with exit 1 and "Error: Unknown broker id 4" (the
   tool checks DescribeCluster first); the broker itself refuses AlterPartitionReassignments
   naming broker 4 with INVALID_REPLICA_ASSIGNMENT (error 39; kafka-python's admin client);
   nothing starts moving.
3. --execute moves every partition: 0 from [1,2] to [3,2] (its leader's broker leaves the
   replica set), 1 from [2,3] to [1,2,3] (the replication factor grows to 3), 2 from [3,1] to
   [2,1]. It prints the current assignment as rollback JSON and "Successfully started partition
   reassignments for T-0,T-1,T-2"; --verify is run until every partition "is completed" (it then
   clears the throttles: "Clearing broker-level throttles on brokers 1,2,3"); --list is empty
   again; kafka-topics --describe shows each partition's Replicas as the plan lists them, the
   ISR equal to them and a leader among them. Every record reads back (kafka-python, from
   offset 0 to the high watermark) exactly once and in order; 300 more acks=all writes succeed.
4. The rollback JSON printed by the first --execute is executed with --throttle 1000000: the
   tool sets leader/follower.replication.throttled.rate=1000000 on brokers 1,2,3 and
   leader/follower.replication.throttled.replicas on the topic (IncrementalAlterConfigs; seen
   with kafka-configs --describe), --verify completes and removes them all; the partitions are
   back on [1,2], [2,3], [3,1] (partition 1 shrinks to 2 replicas) and all 3300 records read back.
"""
from __future__ import annotations

import json
import time

import pytest

from harness.clients import kp_producer, unique_topic
from test_kafka_tools import ok, tool
from test_replication import CLUSTER_CONFIG
from test_replication_tools import TOPICS, describe, ids, wait_rows

REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
CONFIGS = "kafka.admin.ConfigCommand"
INITIAL = {0: [1, 2], 1: [2, 3], 2: [3, 1]}
MOVED = {0: [3, 2], 1: [1, 2, 3], 2: [2, 1]}
PARTITIONS = len(INITIAL)
RECORDS = 3000
MORE = 300
THROTTLE = 1000000


def plan(topic: str, assignment: dict[int, list[int]]) -> str:
    return json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": p, "replicas": r}
                                                    for p, r in sorted(assignment.items())]})


def reassign(bootstrap: str, *args: str):
    return tool(REASSIGN, ["--bootstrap-server", bootstrap, *args])


def verify_until_done(bootstrap: str, plan_file: str, topic: str, timeout_s: float = 60) -> str:
    """--verify until it says every partition of the plan is completed; its last output."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = ok(reassign(bootstrap, "--verify", "--reassignment-json-file", plan_file))
        lines = [line for line in out.splitlines() if line.strip()]
        assert lines[0] == "Status of partition reassignment:", out
        status = lines[1:1 + PARTITIONS]
        assert all(s in (f"Reassignment of partition {topic}-{p} is completed.",
                         f"Reassignment of partition {topic}-{p} is still in progress.")
                   for p, s in enumerate(status)), out
        if all(s.endswith("is completed.") for s in status):
            return out
        assert time.monotonic() < deadline, f"reassignment not complete within {timeout_s}s:\n{out}"
        time.sleep(1)


def expect_placement(bootstrap: str, topic: str, assignment: dict[int, list[int]]) -> list[dict[str, str]]:
    """kafka-topics --describe: Replicas in the plan's order, ISR = replicas, a leader among them."""
    return wait_rows(f"placement {assignment}", bootstrap, topic,
                     lambda rs: len(rs) == PARTITIONS and all(
                         ids(r["Replicas"]) == assignment[int(r["Partition"])]
                         and sorted(ids(r["Isr"])) == sorted(assignment[int(r["Partition"])])
                         and r["Leader"] not in ("none", "-1")
                         and int(r["Leader"]) in assignment[int(r["Partition"])] for r in rs), 60)


def record(i: int) -> tuple[int, bytes, bytes]:
    return i % PARTITIONS, f"k{i}".encode(), f"v{i}".encode()


def produce(bootstrap: str, topic: str, first: int, n: int) -> None:
    producer = kp_producer(bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=k, value=v, partition=p)
                   for p, k, v in map(record, range(first, first + n))]
        producer.flush(timeout=60)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=10)


def expected(n: int) -> dict[int, list[tuple[int, bytes, bytes]]]:
    out: dict[int, list[tuple[int, bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    for p, k, v in map(record, range(n)):
        out[p].append((len(out[p]), k, v))
    return out


def read_all(bootstrap: str, topic: str, timeout_s: float = 60) -> dict[int, list[tuple[int, bytes, bytes]]]:
    """kafka-python, assign + seek to 0: every partition from offset 0 to its high watermark."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             request_timeout_ms=15000, client_id="fjord-compat-reassign-consumer")
    got: dict[int, list[tuple[int, bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"not read to {end} within {timeout_s}s"
            for tp, msgs in consumer.poll(timeout_ms=500).items():
                got[tp.partition].extend((m.offset, m.key, m.value) for m in msgs)
    finally:
        consumer.close()
    return got


def dynamic_configs(bootstrap: str, entity_type: str, name: str) -> dict[str, str]:
    """kafka-configs --describe: the entity's dynamic configs, name -> value."""
    out = ok(tool(CONFIGS, ["--bootstrap-server", bootstrap, "--describe", "--entity-type", entity_type,
                            "--entity-name", name]))
    return dict(line.split()[0].split("=", 1) for line in out.splitlines()[1:] if "=" in line)


@pytest.mark.client("kafka-reassign-partitions")
@pytest.mark.timeout(360)
def test_reassign_partitions_moves_replicas_without_losing_records(cluster_factory, tmp_path):
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import InvalidReplicationAssignmentError

    cluster = cluster_factory(CLUSTER_CONFIG)
    cluster.start()
    bs = cluster.nodes[0].bootstrap
    topic = unique_topic("reassign")
    out = ok(tool(TOPICS, ["--bootstrap-server", bs, "--create", "--topic", topic, "--replica-assignment",
                           ",".join(":".join(map(str, r)) for _, r in sorted(INITIAL.items()))]))
    assert f"Created topic {topic}." in out
    expect_placement(bs, topic, INITIAL)
    produce(cluster.bootstrap, topic, 0, RECORDS)

    assert ok(reassign(bs, "--list")).strip() == "No partition reassignments found."

    # A plan naming a broker that does not exist: the tool refuses it (it checks DescribeCluster)...
    bad = tmp_path / "bad.json"
    bad.write_text(plan(topic, {0: [1, 4]}))
    proc = reassign(bs, "--execute", "--reassignment-json-file", str(bad))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout.startswith("Error: Unknown broker id 4\n"), proc.stdout
    # ... and so does the broker, to a client that sends AlterPartitionReassignments anyway.
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=15000,
                             client_id="fjord-compat-reassign-admin")
    try:
        answer = admin.alter_partition_reassignments({TopicPartition(topic, 0): [1, 4]})
        assert answer == {TopicPartition(topic, 0): InvalidReplicationAssignmentError}, answer
        assert admin.list_partition_reassignments() == {}
    finally:
        admin.close()
    assert ok(reassign(bs, "--list")).strip() == "No partition reassignments found."

    # Phase 1: move every partition (a leader's broker leaves; one partition grows to 3 replicas).
    moved = tmp_path / "moved.json"
    moved.write_text(plan(topic, MOVED))
    out = ok(reassign(bs, "--execute", "--reassignment-json-file", str(moved)))
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0] == "Current partition replica assignment", out
    rollback = json.loads(lines[1])
    assert rollback == {"version": 1, "partitions": [
        {"topic": topic, "partition": p, "replicas": r, "log_dirs": ["any"] * len(r)}
        for p, r in sorted(INITIAL.items())]}, out
    assert lines[2] == "Save this to use as the --reassignment-json-file option during rollback", out
    assert lines[3] == ("Successfully started partition reassignments for "
                        + ",".join(f"{topic}-{p}" for p in range(PARTITIONS))), out
    assert len(lines) == 4, out
    done = verify_until_done(bs, str(moved), topic)
    assert "Clearing broker-level throttles on brokers 1,2,3\n" in done, done
    assert f"Clearing topic-level throttles on topic {topic}\n" in done, done
    assert ok(reassign(bs, "--list")).strip() == "No partition reassignments found."
    rows = expect_placement(bs, topic, MOVED)
    assert int(rows[0]["Leader"]) != 1, rows  # broker 1 led partition 0 and left it
    assert read_all(cluster.bootstrap, topic) == expected(RECORDS)
    produce(cluster.bootstrap, topic, RECORDS, MORE)  # acks=all on the new replica sets

    # Phase 2: roll back with the JSON the tool printed, throttled; --verify removes the throttles.
    back = tmp_path / "rollback.json"
    back.write_text(lines[1])
    out = ok(reassign(bs, "--execute", "--reassignment-json-file", str(back), "--throttle", str(THROTTLE)))
    assert "Warning: You must run --verify periodically, until the reassignment completes, to ensure " \
           "the throttle is removed." in out, out
    assert f"The inter-broker throttle limit was set to {THROTTLE} B/s" in out, out
    assert ("Successfully started partition reassignments for "
            + ",".join(f"{topic}-{p}" for p in range(PARTITIONS))) in out, out
    rate = {"leader.replication.throttled.rate": str(THROTTLE),
            "follower.replication.throttled.rate": str(THROTTLE)}
    for n in cluster.nodes:
        assert dynamic_configs(bs, "brokers", str(n.node_id)) == rate, n
    # Leader throttles: partition:broker for every current replica; follower: every new one.
    assert dynamic_configs(bs, "topics", topic) == {
        "leader.replication.throttled.replicas": "0:2,0:3,1:1,1:2,1:3,2:1,2:2",
        "follower.replication.throttled.replicas": "0:1,2:3"}
    done = verify_until_done(bs, str(back), topic)
    assert "Clearing broker-level throttles on brokers 1,2,3\n" in done, done
    assert f"Clearing topic-level throttles on topic {topic}\n" in done, done
    for n in cluster.nodes:
        assert dynamic_configs(bs, "brokers", str(n.node_id)) == {}, n
    assert dynamic_configs(bs, "topics", topic) == {}
    assert ok(reassign(bs, "--list")).strip() == "No partition reassignments found."
    expect_placement(bs, topic, INITIAL)
    assert read_all(cluster.bootstrap, topic) == expected(RECORDS + MORE)
    assert describe(bs, topic, "--under-replicated-partitions") == []
