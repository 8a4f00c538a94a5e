"""A power cut of a whole 3-node cluster while idempotent acks=all producers write.

Every node's log.dirs (partitions and the metadata log; Kafka is formatted there too) lives
on one lossyfs mount (harness/lossyfs.py): a FUSE pass-through whose page cache dies with
it. The cut freezes the filesystem, SIGKILLs all three brokers, SIGKILLs lossyfs (every
write not fsynced is gone) and mounts the backing directory again; then the cluster starts
on what a disk would hold after losing power. (The storage is formatted and put on the disk
before the cluster first starts: Kafka's format does not fsync bootstrap.checkpoint, and a
cut within 30 s of it leaves a node that cannot start, which is not what this test is about.)

1. A topic of 3 partitions, RF=3, min.insync.replicas=2; every ISR full.
2. The confluent-kafka, Java and franz-go history producers (as in test_replication.py) write
   until each has ACKS_BEFORE_CUT acknowledged writes, then the cut, while they still write;
   the producers are killed (what they printed before is their history).
3. The cluster restarts on the remounted disk: every node serves, every ISR is full, the
   replicas agree on the (offset, value) sequence of every partition on disk, and the
   confluent-kafka and kafka-python consumers read every partition to its high watermark.
4. harness.history.check over the producers' acknowledgements and the reads:
   - Fjord (defaults: a replica counts towards the high watermark only for what it has
     fsynced): no defect at all; not one acknowledged write lost.
   - Apache Kafka 4.1 with its defaults (no fsync per write; acks=all means "in three page
     caches"): the lost acknowledged writes are reported, not asserted; every other defect
     (duplicates, one offset with two values, non-monotonic reads, gaps) must be absent.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import make_cluster
from harness.brokers import CLUSTER_SIZE
from harness.clients import unique_topic
from harness.history import History, check
from harness.lossyfs import PowerCut, lossyfs_binary
from test_replication import (CLUSTER_CONFIG, PARTITIONS, ProducerProcess, ck_end_offsets, ck_producer_cmd,
                              ck_read_all, create_full_topic, describe_views, franz_go_producer, full_isr,
                              java_producer_cmd, kp_read_all, producers_running, wait_for,
                              wait_replicas_agree)

ACKS_BEFORE_CUT = 1500      # per producer, over all partitions (about 5 s at 300 records/s)


@pytest.mark.timeout(300)
@pytest.mark.client("confluent-kafka + java + franz-go")
def test_power_cut_of_every_node_loses_no_acknowledged_write(broker_kind, tmp_path):
    t0 = time.monotonic()

    def phase(name: str) -> None:
        print(f"{time.monotonic() - t0:6.1f}s  {name}", flush=True)

    lossyfs_binary()  # fail early, with the reason, where FUSE or the binary is missing
    roots = [tmp_path / f"node{i}" for i in range(1, CLUSTER_SIZE + 1)]
    cluster = make_cluster(broker_kind, roots, CLUSTER_CONFIG)
    with PowerCut(tmp_path / "disk") as disk:
        for n in cluster.nodes:  # logs and configs stay off the mount; log.dirs go on it
            n.data_dir = disk.mountpoint / f"node{n.node_id}"
            n.data_dir.mkdir()
        try:
            run_scenario(cluster, disk, tmp_path, phase)
        finally:
            cluster.kill9()


def run_scenario(cluster, disk: PowerCut, tmp_path: Path, phase) -> None:
    # kafka-storage format writes bootstrap.checkpoint without an fsync: put the formatted
    # storage on the disk first, as on a machine formatted long before the power went.
    for n in cluster.nodes:
        n._prepare()
    disk.sync()
    cluster.start()
    topic = unique_topic("power-cut")
    create_full_topic(cluster, topic)
    phase("cluster up, topic created, every ISR full")

    with producers_running() as producers:
        producers.append(ProducerProcess("ck", ck_producer_cmd(cluster.bootstrap, topic), tmp_path))
        producers.append(ProducerProcess("java", java_producer_cmd(cluster.bootstrap, topic), tmp_path))
        producers.append(franz_go_producer(cluster.bootstrap, topic, tmp_path))
        wait_for(f"{ACKS_BEFORE_CUT} acknowledged writes per producer",
                 lambda: all(p.acked() >= ACKS_BEFORE_CUT for p in producers), 90, producers)
        disk.cut([n.proc.pid for n in cluster.nodes])
        phase("power cut: lossyfs frozen, every broker and lossyfs SIGKILLed")
        cluster.kill9()   # reap
        for p in producers:
            p.kill()
        phase("producers killed: " + ", ".join(f"{p.name} {p.acked()} acknowledged" for p in producers))

    history = History()
    for p in producers:
        for event in p.events:
            history.add_json(event)
    history.write_jsonl(tmp_path / "history-producers.jsonl")

    disk.mount()
    cluster.start()
    phase("remounted, cluster up again")
    wait_for("all 3 replicas in the ISR of every partition after the restart", lambda: full_isr(cluster, topic),
             90, interval_s=0.25, detail=lambda: describe_views(cluster, topic))
    phase(f"every ISR full. {describe_views(cluster, topic)}")

    logs = wait_replicas_agree(cluster, topic, 60)
    ends = {part: next(iter(logs[part].values())).end_offset for part in range(PARTITIONS)}
    for part in range(PARTITIONS):
        for node, log in logs[part].items():
            bad = [b for b in log.batches if not b.crc_ok]
            assert not bad, f"partition {part} on node {node}: {len(bad)} batches with a bad CRC"
            assert [r.offset for r in log.records] == list(range(ends[part])), (
                f"partition {part} on node {node}: offsets are not 0..{ends[part] - 1} without gaps")
    watermarks = ck_end_offsets(cluster.nodes[0].bootstrap, topic)
    assert watermarks == ends, f"high watermarks {watermarks}, but the replicas end at {ends}"
    phase(f"replicas agree on disk, ends {ends}")

    for name, read_all in (("ck", ck_read_all), ("kp", kp_read_all)):
        reached = read_all(cluster.bootstrap, topic, ends, history, f"{name}-consumer")
        assert reached == ends, f"{name} consumer reached {reached}, the partitions end at {ends}"
    history.write_jsonl(tmp_path / "history.jsonl")

    report = check(history)
    print(report.summary())
    assert report.acknowledged >= CLUSTER_SIZE * ACKS_BEFORE_CUT, report.summary()
    if cluster.kind == "fjord":
        assert report.ok, report.details()
        return
    # Apache Kafka acknowledges what is in its followers' page caches: report what it lost.
    print(f"Apache Kafka lost {len(report.lost)} of {report.acknowledged} acknowledged writes in the power cut")
    others = {name: found for name, found in report.defects.items() if name != "lost" and found}
    assert not others, report.details()
