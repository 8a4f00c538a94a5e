"""Eligible leader replicas (KIP-966, on in Kafka 4.1) on a 5-node cluster of either broker, seen
through kafka-topics --describe (DescribeTopicPartitions): a partition on brokers 1 and 2 with
min.insync.replicas=2 (5 nodes, so the metadata quorum outlives both).

- Broker 2 stops: it leaves the ISR while the ISR falls under the minimum, so it becomes an
  eligible leader replica (Elr: 2), and acks=all writes are refused (NOT_ENOUGH_REPLICAS).
- Broker 1 stops too: no leader, an empty ISR, Elr: 1,2 and LastKnownElr: 1.
- Broker 2 starts again: as an eligible replica it leads (ISR 2, Elr 1) although it was not in
  the ISR, and every acknowledged record is still there; without ELR the partition would wait
  for broker 1.
- Broker 1 starts again: back in the ISR, nobody eligible any more.

The brokers stop cleanly (SIGTERM): Kafka takes a broker that crashed out of the ELR (its
page cache may be gone); Fjord, which counts only fsynced bytes towards the high watermark,
keeps it eligible then too (server/tests/replication.rs shows that with SIGKILL).
"""
from __future__ import annotations

import time

import pytest

from conftest import make_cluster
from harness import wire
from harness.clients import kp_consume, unique_topic
from test_kafka_tools import TOPICS, ok, tool
from test_replication import CLUSTER_CONFIG
from test_replication_tools import describe, ids

NODES = 5
RECORDS = 20


def only_partition(bootstrap: str, topic: str) -> dict[str, str]:
    rows = describe(bootstrap, topic)
    assert len(rows) == 1, rows
    return rows[0]


def wait_state(what: str, bootstrap: str, topic: str, cond, timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        row = only_partition(bootstrap, topic)
        if cond(row):
            return row
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s: {row}"
        time.sleep(1)


def state(row: dict[str, str]) -> tuple[str, list[int], list[int], list[int]]:
    """(leader, ISR, ELR, last known ELR), the lists sorted."""
    return (row["Leader"], sorted(ids(row["Isr"])), sorted(ids(row.get("Elr", ""))),
            sorted(ids(row.get("LastKnownElr", ""))))


@pytest.mark.client("kafka-topics + kafka-python")
@pytest.mark.timeout(420)
def test_an_eligible_replica_leads_when_the_isr_is_gone(broker_kind, tmp_path_factory):
    roots = [tmp_path_factory.mktemp(f"{broker_kind}-elr-node{i}") for i in range(1, NODES + 1)]
    cluster = make_cluster(broker_kind, roots, CLUSTER_CONFIG)
    try:
        cluster.start()
        watcher = cluster.node(5).bootstrap
        topic = unique_topic("elr")
        ok(tool(TOPICS, ["--bootstrap-server", watcher, "--create", "--topic", topic,
                         "--replica-assignment", "1:2", "--config", "min.insync.replicas=2"]))
        wait_state("both replicas in sync", watcher, topic,
                   lambda r: state(r) == ("1", [1, 2], [], []), 60)

        values = [f"elr-{i}".encode() for i in range(RECORDS)]
        with wire.RawConnection(cluster.node(1).bootstrap, timeout_s=30.0) as conn:
            for v in values:
                batch = wire.record_batch([wire.Record(value=v)], base_timestamp=int(time.time() * 1000))
                r = wire.produce_v8(conn, topic, 0, batch, acks=-1, timeout_ms=10000)
                assert r.error_code == 0, f"acks=all write not acknowledged with the ISR full: {r}"

        # A follower hears of the last high watermark at its next fetch (Kafka: within
        # replica.fetch.wait.max.ms); what it has not heard of it serves only once the ISR
        # is back at the minimum.
        time.sleep(2)
        cluster.node(2).stop()
        row = wait_state("broker 2 out of the ISR and eligible", watcher, topic,
                         lambda r: state(r) == ("1", [1], [2], []), 60)
        print("broker 2 stopped:", row)
        with wire.RawConnection(cluster.node(1).bootstrap, timeout_s=30.0) as conn:
            batch = wire.record_batch([wire.Record(value=b"refused")], base_timestamp=int(time.time() * 1000))
            r = wire.produce_v8(conn, topic, 0, batch, acks=-1, timeout_ms=5000)
        assert r.error_code == 19, f"an acks=all write under min.insync.replicas: {r} (want NOT_ENOUGH_REPLICAS)"

        cluster.node(1).stop()
        row = wait_state("no leader, an empty ISR, both eligible", watcher, topic,
                         lambda r: state(r)[1:] == ([], [1, 2], [1]) and r["Leader"] in ("none", "-1"), 60)
        print("broker 1 stopped:", row)

        cluster.node(2).start()
        row = wait_state("broker 2 leads as an eligible replica", watcher, topic,
                         lambda r: state(r) == ("2", [2], [1], []), 60)
        print("broker 2 back:", row)
        got = kp_consume(cluster.node(2).bootstrap, topic, RECORDS, timeout_s=30)
        assert [m.value for m in got] == values, f"read {[m.value for m in got]}"

        cluster.node(1).start()
        row = wait_state("both in sync again, nobody eligible", watcher, topic,
                         lambda r: state(r) == ("2", [1, 2], [], []), 90)
        print("broker 1 back:", row)
    finally:
        cluster.kill9()
