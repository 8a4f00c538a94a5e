"""Kafka's own tools see replication as it is, on a 3-broker cluster of either broker:
kafka-topics (org.apache.kafka.tools.TopicCommand) creates a topic with replication factor 3
and describes every replica in sync; after one broker is killed with SIGKILL, --describe shows
it gone from every ISR and --under-replicated-partitions lists every partition; after a
restart every ISR is whole again; and kafka-leader-election
(org.apache.kafka.tools.LeaderElectionCommand, PREFERRED, all partitions) gives every
partition its preferred (first) replica as leader.
"""
from __future__ import annotations

import time

import pytest

from harness.clients import unique_topic
from test_kafka_tools import ok, tool
from test_replication import CLUSTER_CONFIG

TOPICS = "org.apache.kafka.tools.TopicCommand"
ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"
PARTITIONS = 6


def describe(bootstrap: str, topic: str, *extra: str) -> list[dict[str, str]]:
    """kafka-topics --describe: one dict per partition line."""
    out = ok(tool(TOPICS, ["--bootstrap-server", bootstrap, "--describe", "--topic", topic, *extra]))
    rows = []
    for line in out.splitlines():
        fields = dict(f.split(": ", 1) for f in line.strip().split("\t") if ": " in f)
        if "Partition" in fields:
            rows.append(fields)
    return rows


def ids(field: str) -> list[int]:
    return [int(x) for x in field.split(",") if x]


def wait_rows(what: str, bootstrap: str, topic: str, cond, timeout_s: float, *extra: str) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = describe(bootstrap, topic, *extra)
        if cond(rows):
            return rows
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s: {rows}"
        time.sleep(1)


@pytest.mark.client("kafka-topics + kafka-leader-election")
@pytest.mark.timeout(300)
def test_tools_show_isr_shrink_rejoin_and_preferred_election(cluster_factory):
    cluster = cluster_factory(CLUSTER_CONFIG)
    cluster.start()
    bootstrap = cluster.nodes[0].bootstrap
    topic = unique_topic("tools-replicas")
    ok(tool(TOPICS, ["--bootstrap-server", bootstrap, "--create", "--topic", topic,
                     "--partitions", str(PARTITIONS), "--replication-factor", "3"]))
    rows = wait_rows("every replica in sync", bootstrap, topic,
                     lambda rs: len(rs) == PARTITIONS and all(
                         len(ids(r["Replicas"])) == 3 and sorted(ids(r["Isr"])) == sorted(ids(r["Replicas"]))
                         and r["Leader"] not in ("none", "-1") for r in rs), 60)

    # Kill a broker that leads something and is not the one we bootstrap from.
    victim = next(int(r["Leader"]) for r in rows if int(r["Leader"]) != cluster.nodes[0].node_id) \
        if any(int(r["Leader"]) != cluster.nodes[0].node_id for r in rows) else cluster.nodes[1].node_id
    cluster.node(victim).kill9()
    wait_rows(f"broker {victim} out of every ISR, a live leader everywhere", bootstrap, topic,
              lambda rs: len(rs) == PARTITIONS and all(
                  victim not in ids(r["Isr"]) and r["Leader"] not in ("none", "-1", str(victim)) for r in rs), 60)
    under = describe(bootstrap, topic, "--under-replicated-partitions")
    assert sorted(int(r["Partition"]) for r in under) == list(range(PARTITIONS)), under

    cluster.node(victim).start()
    wait_rows("every ISR whole again", bootstrap, topic,
              lambda rs: len(rs) == PARTITIONS and all(len(ids(r["Isr"])) == 3 for r in rs), 90)
    assert describe(bootstrap, topic, "--under-replicated-partitions") == []

    out = ok(tool(ELECTION, ["--bootstrap-server", bootstrap, "--election-type", "PREFERRED",
                             "--all-topic-partitions"]))
    rows = wait_rows("every leader the preferred replica", bootstrap, topic,
                     lambda rs: all(int(r["Leader"]) == ids(r["Replicas"])[0] for r in rs), 30)
    if any(ids(r["Replicas"])[0] == victim for r in rows):
        assert any(int(r["Leader"]) == victim for r in rows), (rows, out)
