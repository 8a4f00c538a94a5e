"""kafka-metadata-quorum (org.apache.kafka.tools.MetadataQuorumCommand) against either broker,
through `--bootstrap-server` (DescribeQuorum, key 55, answered for the Raft leader by whichever
broker is asked):

- one broker: `describe --status` names it leader and only voter, with a high watermark;
- a 3-node cluster: asked through every node, `--status` names the same leader among three voters,
  each with its CONTROLLER endpoint; `--replication` (also `--human-readable`) lists one Leader and
  two Followers, caught up; after the leader is killed with SIGKILL a survivor becomes leader in a
  later epoch and the dead node falls behind as metadata is written; once it is back, every voter
  is caught up again.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from harness.clients import create_topic, unique_topic
from test_kafka_tools import TOPICS, ok, tool
from test_replication import CLUSTER_CONFIG

QUORUM = "org.apache.kafka.tools.MetadataQuorumCommand"


def status(bootstrap: str) -> dict[str, str]:
    """`describe --status` as a dict of its `Key: value` lines."""
    out = ok(tool(QUORUM, ["--bootstrap-server", bootstrap, "describe", "--status"]))
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def replication(bootstrap: str, *extra: str) -> list[dict[str, str]]:
    """`describe --replication`: one dict per row, keyed by the tab-separated header."""
    out = ok(tool(QUORUM, ["--bootstrap-server", bootstrap, "describe", "--replication", *extra]))
    head, *rows = [[c.strip() for c in line.split("\t") if c.strip()] for line in out.splitlines() if line.strip()]
    return [dict(zip(head, r)) for r in rows]


def voters(st: dict[str, str]) -> list[dict]:
    return json.loads(st["CurrentVoters"])


def wait_until(what: str, probe, cond, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            seen = probe()
        except AssertionError as e:  # a tool run that failed while the quorum moves
            seen = e
        if not isinstance(seen, AssertionError) and cond(seen):
            return seen
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s: {seen}"
        time.sleep(1)


@pytest.mark.client("kafka-metadata-quorum")
@pytest.mark.timeout(180)
def test_metadata_quorum_of_one_broker(broker):
    create_topic(broker.bootstrap, unique_topic("quorum-one"), 1)
    st = status(broker.bootstrap)
    assert int(st["HighWatermark"]) > 0 and int(st["LeaderEpoch"]) >= 1, st
    assert [v["id"] for v in voters(st)] == [int(st["LeaderId"])], st
    assert json.loads(st["CurrentObservers"]) == []
    rows = replication(broker.bootstrap)
    assert [(r["NodeId"], r["Status"]) for r in rows] == [(st["LeaderId"], "Leader")], rows


@pytest.mark.client("kafka-metadata-quorum")
@pytest.mark.timeout(300)
def test_metadata_quorum_of_a_cluster_through_a_leader_kill(cluster_factory):
    cluster = cluster_factory(CLUSTER_CONFIG)
    cluster.start()
    endpoints = {n.node_id: [f"CONTROLLER://{n.host}:{n.controller_port}"] for n in cluster.nodes}

    views = [status(n.bootstrap) for n in cluster.nodes]
    leader = int(views[0]["LeaderId"])
    epoch = int(views[0]["LeaderEpoch"])
    for st in views:
        assert int(st["LeaderId"]) == leader, views
        assert {v["id"]: v.get("endpoints") for v in voters(st)} == endpoints, st
        assert int(st["HighWatermark"]) > 0, st

    def caught_up(rows):
        return (sorted(r["Status"] for r in rows) == ["Follower", "Follower", "Leader"]
                and all(r["Lag"] == "0" for r in rows))

    rows = wait_until("every voter caught up", lambda: replication(cluster.nodes[0].bootstrap), caught_up, 30)
    assert next(r for r in rows if r["Status"] == "Leader")["NodeId"] == str(leader), rows
    human = replication(cluster.nodes[1].bootstrap, "--human-readable")
    assert all(re.fullmatch(r"\d+ ms ago", r["LastFetchTimestamp"]) for r in human), human

    cluster.node(leader).kill9()
    survivor = next(n for n in cluster.nodes if n.node_id != leader)
    st = wait_until("a new leader in a later epoch", lambda: status(survivor.bootstrap),
                    lambda s: int(s["LeaderId"]) != leader and int(s["LeaderEpoch"]) > epoch, 60)
    # A metadata write while it is down (the Java admin client, which routes around the dead node).
    ok(tool(TOPICS, ["--bootstrap-server", survivor.bootstrap, "--create", "--topic",
                     unique_topic("quorum-after-kill"), "--partitions", "1", "--replication-factor", "1"]))
    rows = wait_until("the dead voter behind", lambda: replication(survivor.bootstrap),
                      lambda rs: int(next(r for r in rs if r["NodeId"] == str(leader))["Lag"]) > 0, 30)
    assert next(r for r in rows if r["Status"] == "Leader")["NodeId"] == st["LeaderId"], rows

    cluster.node(leader).start()
    wait_until("every voter caught up after the restart", lambda: replication(survivor.bootstrap), caught_up, 60)
