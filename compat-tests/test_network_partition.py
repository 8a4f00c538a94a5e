"""A network partition that cuts a partition leader off from the other nodes, on a 3-node cluster
of either broker (RF=3, min.insync.replicas=2) while the confluent-kafka, Java and franz-go history
producers (idempotent, acks=all) write.

Every node runs in a network namespace of its own, wired to a hub namespace where the clients run
(`harness/netns.py`); the cut is nftables in the hub dropping every packet between the leader of
partition 0 and the other two nodes, while the clients can still reach all three. Shown:

- the other two elect a new leader of partition 0 and acknowledge writes again;
- the isolated leader acknowledges no acks=all write: a Produce sent straight to it (a record only
  this test writes) is refused or times out, never answered with success;
- once the cut heals, the old leader is back in every ISR and has truncated its divergent
  suffix: that record is on no replica, the replicas agree byte for byte, and the history checker
  finds no acknowledged write lost or duplicated (`test_replication.check_outcome`).
"""
from __future__ import annotations

import time

import pytest

from conftest import make_cluster
from harness import wire
from harness.brokers import CLUSTER_SIZE
from harness.clients import unique_topic
from harness.netns import Netns
from test_replication import (ACKS_AFTER_ISR, ACKS_AGAIN, ACKS_BEFORE_KILL, CLUSTER_CONFIG, check_outcome,
                              create_full_topic, describe_views, full_isr, leader_of, partition_views,
                              producers_running, replica_logs, start_producers, wait_for)

CUT_S = 12.0            # the cut lasts at least this long: several broker session timeouts
DIVERGENT = b"written-to-the-isolated-leader-only"


def leader_seen_by_others(cluster, topic: str, partition: int, isolated: int) -> int | None:
    """The leader of `partition` as every node but `isolated` reports it, if they agree on one
    other than `isolated`."""
    views = [v for node, v in partition_views(cluster, topic).items() if node != isolated]
    leaders = {v[partition].leader if isinstance(v, dict) and partition in v and v[partition].error == 0 else None
               for v in views}
    if len(views) == CLUSTER_SIZE - 1 and len(leaders) == 1:
        leader = leaders.pop()
        return leader if leader not in (None, -1, isolated) else None
    return None


@pytest.fixture
def netns():
    ns = Netns(CLUSTER_SIZE)
    ns.up()
    yield ns
    ns.down()


@pytest.mark.timeout(300)
@pytest.mark.client("confluent-kafka + java + franz-go")
def test_isolated_leader_acknowledges_nothing_and_truncates_on_return(broker_kind, netns, tmp_path_factory,
                                                                      tmp_path):
    t0 = time.monotonic()

    def phase(name: str) -> None:
        print(f"{time.monotonic() - t0:6.1f}s  {name}", flush=True)

    roots = [tmp_path_factory.mktemp(f"{broker_kind}-ns-node{i}") for i in range(1, CLUSTER_SIZE + 1)]
    cluster = make_cluster(broker_kind, roots, CLUSTER_CONFIG, netns=netns)
    try:
        with netns.entered():  # this thread, the clients it makes and the producers it starts: in the hub
            cluster.start()
            phase(f"cluster up on {[n.host for n in cluster.nodes]}")
            topic = unique_topic("netsplit")
            create_full_topic(cluster, topic)
            with producers_running() as producers:
                start_producers(cluster, topic, tmp_path, producers)
                phase("producers acknowledged")

                isolated = leader_of(cluster, topic, 0)
                assert isolated is not None, describe_views(cluster, topic)
                netns.isolate(isolated, from_clients=False)
                cut_at = time.monotonic()
                phase(f"node {isolated}, leader of partition 0, cut off from the other nodes")

                new_leader = wait_for("the other nodes agree on a new leader of partition 0",
                                      lambda: leader_seen_by_others(cluster, topic, 0, isolated), 60, producers,
                                      detail=lambda: describe_views(cluster, topic))
                phase(f"node {new_leader} leads partition 0 for the majority")

                # A write only this test makes, straight to the isolated node, which still believes
                # it leads partition 0: it may append it, but it must not acknowledge it.
                batch = wire.record_batch([wire.Record(value=DIVERGENT)], base_timestamp=int(time.time() * 1000))
                with wire.RawConnection(cluster.node(isolated).bootstrap, timeout_s=30.0) as conn:
                    answer = wire.produce_v8(conn, topic, 0, batch, acks=-1, timeout_ms=5000)
                phase(f"Produce acks=all to the isolated node: error {answer.error_code} {answer.error_message!r}")
                assert answer.error_code != 0, f"the isolated node acknowledged an acks=all write: {answer}"

                seen = time.monotonic()
                wait_for(f"{ACKS_AGAIN} writes to partition 0 acknowledged per producer by the new leader",
                         lambda: all(p.acked(seen, 0) >= ACKS_AGAIN for p in producers), 90, producers,
                         detail=lambda: describe_views(cluster, topic))
                phase("partition 0 acknowledges writes again")
                time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))

                netns.heal(isolated)
                phase(f"cut healed. {describe_views(cluster, topic)}")
                wait_for("all 3 replicas back in the ISR of every partition", lambda: full_isr(cluster, topic),
                         90, producers, interval_s=0.25, detail=lambda: describe_views(cluster, topic))
                isr_full = time.monotonic()
                phase(f"every ISR full again. {describe_views(cluster, topic)}")
                wait_for(f"{ACKS_AFTER_ISR} more acknowledged writes per producer",
                         lambda: all(p.acked(isr_full) >= ACKS_AFTER_ISR for p in producers), 60, producers)
                for p in producers:
                    p.stop()
                phase("producers stopped")

            check_outcome(cluster, topic, producers, tmp_path, phase, ACKS_BEFORE_KILL + ACKS_AFTER_ISR)
            for node, log in replica_logs(cluster, topic, 0).items():
                held = [r.offset for r in log.records if r.value == DIVERGENT]
                assert not held, (f"node {node} still holds the record only the isolated node appended, at "
                                  f"offsets {held}: its divergent suffix was not truncated")
            phase("the isolated node's divergent suffix is gone from every replica")
    finally:
        cluster.kill9()
