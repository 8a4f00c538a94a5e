"""Replication under a fault: kill -9 the leader of a partition on a 3-node cluster while
idempotent acks=all producers write, bring it back, and check that no acknowledged write is
lost or duplicated and that every replica ends up holding the same log.

The same scenario on a Fjord cluster and an Apache Kafka 4.1 cluster (harness.brokers.Cluster:
node i on 127.0.0.i, each a broker and a controller, static voters; brokers fenced after 3 s
without a heartbeat, so failover takes seconds):

1. A topic of 3 partitions, replication factor 3, min.insync.replicas=2; every ISR full.
2. Three producers in their own processes, confluent-kafka (scripts/history_producer.py), the
   Java client (java/HistoryProducer.java) and franz-go (go/history.go), idempotent, acks=all,
   write unique values round-robin over the partitions and print each outcome as a history.py
   JSON line.
3. The leader of partition 0 (from Metadata) is killed with SIGKILL. Once Metadata names a new
   leader and every producer has writes to partition 0 acknowledged again, and every live
   node's Metadata leaves the dead node out of every ISR (acks=all waits for the whole ISR: a
   dead member still listed while writes are acknowledged means Metadata reports another ISR
   than the one the leader waits for; Kafka drops a fenced broker from every ISR), the node restarts
   on its data dir; the test waits until every node's Metadata shows all 3 replicas in the ISR
   of every partition, lets the producers go on for a little, then stops them.
4. The replicas must converge: each partition's `.log` segments, read from the three nodes'
   data dirs (harness/segments.py; a follower serves no plain Fetch), hold the same
   (offset, value) sequence at offsets 0..end-1, every batch with a valid CRC, a producer id
   and a leader epoch no lower than the one before it, and they are byte for byte the same
   files (followers copy the leader's batches; Kafka passes this). Partition 0 holds batches of
   two leader epochs at least: writes from both sides of the failover. The high watermarks
   are the replicas' ends.
5. confluent-kafka and kafka-python consumers (assign, from offset 0) read every partition to
   its end; with the producers' histories, harness.history.check must find no defect (no lost
   acknowledged write, no duplicate, no offset with two values, ...), and what the consumers
   read must be what the replicas hold.

A second scenario restarts every node in turn (SIGTERM, start again once it is out of every
ISR, the next once every ISR is full and writes are acknowledged again) under the same
producers: no send may fail or end unknown (only retriable errors), and steps 4-5 must hold.

Both clusters keep their offsets topic at replication factor 1 (KafkaBroker's setting; Fjord
has no such key): the assign-based consumers never commit. Durability settings are the
brokers' defaults (no fsync per write): kill -9 keeps the page cache.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import wire
from harness.brokers import Cluster
from harness.clients import create_topic, unique_topic
from harness.history import EVENT_TYPES, History, check
from harness.java import LOG4J2_TOOLS_CONFIG, kafka_libs_dir
from harness.segments import PartitionLog, read_partition

COMPAT_DIR = Path(__file__).resolve().parent
CK_PRODUCER = COMPAT_DIR / "scripts" / "history_producer.py"

PARTITIONS = 3
REPLICATION_FACTOR = 3
CLUSTER_CONFIG = {
    # Fence a dead broker after 3 s (Kafka: the heartbeat interval must be below the session
    # timeout); Kafka's defaults are 9 s and 2 s.
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
}
TOPIC_CONFIG = {"min.insync.replicas": "2"}
RATE = 300                    # records per second per producer
ACKS_BEFORE_KILL = 300        # per producer, over all partitions
ACKS_AGAIN = 30               # per producer, on partition 0 once its new leader is known
ACKS_AFTER_ISR = 300          # per producer, once every ISR is full again
MIN_ACKED = 3000              # acknowledged values, all producers together


# --------------------------------------------------------------------------- producers

class ProducerProcess:
    """A producer program that prints history events as JSON lines; stopped by a line on stdin."""

    def __init__(self, name: str, cmd: list[str], log_dir: Path, request: dict | None = None):
        self.name = name
        self.stderr_path = log_dir / f"producer-{name}.stderr.log"
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, bufsize=1)
        if request is not None:  # a JSON request first (the Go program), then the stop line
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        self.events: list[dict] = []
        self.acks: list[tuple[float, int]] = []   # (time.monotonic() seen, partition) of each send_ok
        self.noise: list[str] = []
        self.done: dict | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if not line.endswith("\n"):
                break  # cut by a kill: no event
            try:
                event = json.loads(line)
            except ValueError:
                self.noise.append(line.rstrip())
                continue
            if event.get("type") == "producer_done":
                self.done = event
            elif event.get("type") in EVENT_TYPES:
                self.events.append(event)
                if event["type"] == "send_ok":
                    self.acks.append((time.monotonic(), event["partition"]))
            else:
                self.noise.append(line.rstrip())

    def acked(self, since: float = 0.0, partition: int | None = None) -> int:
        return sum(1 for t, p in list(self.acks) if t >= since and (partition is None or p == partition))

    def diagnostics(self) -> str:
        try:
            err = self.stderr_path.read_text(errors="replace")[-3000:]
        except OSError:
            err = ""
        return (f"{self.name}: {len(self.events)} events, {self.acked()} acks, exit {self.proc.poll()}; "
                f"stdout noise {self.noise[-5:]}; stderr tail:\n{err}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"producer {self.name} exited early\n{self.diagnostics()}")

    def stop(self, timeout_s: float = 60.0) -> None:
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"producer {self.name} did not stop within {timeout_s}s\n{self.diagnostics()}")
        self._reader.join(timeout=30)
        self.stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        self.stderr.close()


def ck_producer_cmd(bootstrap: str, topic: str) -> list[str]:
    return [sys.executable, str(CK_PRODUCER), bootstrap, topic, str(PARTITIONS), "ck", str(RATE)]


def java_producer_cmd(bootstrap: str, topic: str) -> list[str]:
    classes = os.environ.get("FJORD_COMPAT_JAVA_CLASSES", "")
    if not (Path(classes) / "HistoryProducer.class").is_file():
        raise AssertionError(f"HistoryProducer.class not in {classes!r} (FJORD_COMPAT_JAVA_CLASSES); "
                             "run the suite with compat-tests/run.sh, which compiles java/*.java")
    return ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", f"-Dlog4j2.configurationFile={LOG4J2_TOOLS_CONFIG}",
            "-cp", f"{classes}:{kafka_libs_dir()}/*", "HistoryProducer", bootstrap, topic, str(PARTITIONS),
            "java", str(RATE)]


def franz_go_producer(bootstrap: str, topic: str, log_dir: Path) -> ProducerProcess:
    exe = os.environ.get("FJORD_COMPAT_GO_BIN", "")
    if not os.access(exe, os.X_OK):
        raise AssertionError(f"{exe!r} (FJORD_COMPAT_GO_BIN) missing; run the suite with compat-tests/run.sh")
    return ProducerProcess("franz-go", [exe], log_dir, request={
        "op": "history_produce", "bootstrap": bootstrap, "topic": topic, "partitions": PARTITIONS,
        "prefix": "fg", "rate": RATE, "timeout_ms": 170_000})


def wait_for(what: str, cond, timeout_s: float, producers=(), interval_s: float = 0.1, detail=lambda: ""):
    deadline = time.monotonic() + timeout_s
    while True:
        for p in producers:
            p.check_alive()
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s. {detail()}\n"
                                 + "\n".join(p.diagnostics() for p in producers))
        time.sleep(interval_s)


# --------------------------------------------------------------------------- metadata

def partition_views(cluster: Cluster, topic: str) -> dict[int, dict[int, wire.PartitionState] | str]:
    """Each live node's Metadata for the topic: node id -> partition -> state (or the error)."""
    views: dict[int, dict[int, wire.PartitionState] | str] = {}
    for n in cluster.live():
        try:
            with wire.RawConnection(n.bootstrap, timeout_s=5.0) as conn:
                err, parts = wire.partition_states(conn, topic)
            views[n.node_id] = parts if err == 0 else f"topic error {err}"
        except (OSError, wire.ConnectionClosed, TimeoutError, ValueError) as e:
            views[n.node_id] = repr(e)
    return views


def full_isr(cluster: Cluster, topic: str) -> bool:
    """Every node runs and every node's Metadata shows every replica of every partition in sync."""
    everyone = sorted(n.node_id for n in cluster.nodes)
    views = partition_views(cluster, topic)
    return len(views) == len(cluster.nodes) and all(
        isinstance(v, dict) and len(v) == PARTITIONS and all(
            s.error == 0 and s.leader >= 0 and sorted(s.replicas) == everyone and sorted(s.isr) == everyone
            for s in v.values())
        for v in views.values())


def out_of_every_isr(cluster: Cluster, topic: str, node_id: int) -> bool:
    """Every live node's Metadata leaves node_id out of the ISR of every partition."""
    views = partition_views(cluster, topic)
    return bool(views) and all(
        isinstance(v, dict) and len(v) == PARTITIONS and all(node_id not in s.isr for s in v.values())
        for v in views.values())


def describe_views(cluster: Cluster, topic: str) -> str:
    lines = []
    for node, v in partition_views(cluster, topic).items():
        if isinstance(v, str):
            lines.append(f"node {node}: {v}")
        else:
            lines.append(f"node {node}: " + "; ".join(
                f"p{s.partition} err {s.error} leader {s.leader} replicas {s.replicas} isr {s.isr}"
                for s in sorted(v.values(), key=lambda s: s.partition)))
    return "Metadata: " + " | ".join(lines)


def leader_of(cluster: Cluster, topic: str, partition: int) -> int | None:
    for v in partition_views(cluster, topic).values():
        if isinstance(v, dict) and partition in v and v[partition].error == 0 and v[partition].leader >= 0:
            return v[partition].leader
    return None


# --------------------------------------------------------------------------- consumers

def ck_read_all(bootstrap: str, topic: str, ends: dict[int, int], history: History, consumer: str,
                timeout_s: float = 60.0) -> dict[int, int]:
    """confluent-kafka, assign from offset 0: read every partition below its end offset into
    `history`, one poll per consume() call. Returns partition -> next offset reached."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("fjord-compat-unused"),
                  "enable.auto.commit": False, "enable.auto.offset.store": False,
                  "client.id": "fjord-compat-replication-ck", "socket.timeout.ms": 10000})
    reached = {p: 0 for p in ends}
    try:
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout_s
        while any(reached[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            batch = []
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    raise AssertionError(f"confluent consumer error: {m.error()}")
                batch.append((m.partition(), m.offset(), m.value().decode()))
                reached[m.partition()] = max(reached[m.partition()], m.offset() + 1)
            if batch:
                history.poll(consumer, batch)
    finally:
        c.close()
    return reached


def kp_read_all(bootstrap: str, topic: str, ends: dict[int, int], history: History, consumer: str,
                timeout_s: float = 60.0) -> dict[int, int]:
    """kafka-python, assign + seek(0): the same as ck_read_all."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False,
                      request_timeout_ms=15000, client_id="fjord-compat-replication-kp")
    reached = {p: 0 for p in ends}
    try:
        tps = [TopicPartition(topic, p) for p in ends]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, 0)
        deadline = time.monotonic() + timeout_s
        while any(reached[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            batch = []
            for tp, msgs in c.poll(timeout_ms=500, max_records=1000).items():
                for m in msgs:
                    batch.append((tp.partition, m.offset, m.value.decode()))
                    reached[tp.partition] = max(reached[tp.partition], m.offset + 1)
            if batch:
                history.poll(consumer, batch)
    finally:
        c.close()
    return reached


def ck_end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("fjord-compat-unused"),
                  "enable.auto.commit": False, "client.id": "fjord-compat-replication-ends"})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1] for p in range(PARTITIONS)}
    finally:
        c.close()


# --------------------------------------------------------------------------- replicas on disk

def replica_logs(cluster: Cluster, topic: str, partition: int) -> dict[int, PartitionLog]:
    return {n.node_id: read_partition(n.data_dir / f"{topic}-{partition}") for n in cluster.nodes}


def offsets_values(log: PartitionLog) -> list[tuple[int, str | None]]:
    return [(r.offset, None if r.value is None else r.value.decode(errors="replace")) for r in log.records]


def describe_divergence(logs: dict[int, PartitionLog]) -> str:
    seqs = {node: offsets_values(log) for node, log in logs.items()}
    lines = [f"node {node}: {len(s)} records, offsets {s[0][0] if s else '-'}..{s[-1][0] if s else '-'}, "
             f"{len(logs[node].batches)} batches, segments {[name for name, _ in logs[node].segments]}"
             for node, s in seqs.items()]
    first = next(iter(seqs.values()))
    for node, s in seqs.items():
        i = next((i for i, (a, b) in enumerate(zip(first, s)) if a != b), None)
        if i is not None:
            lines.append(f"node {node} differs from node {next(iter(seqs))} at record #{i}: "
                         f"{s[i]} vs {first[i]}")
    return "\n".join(lines)


def wait_replicas_agree(cluster: Cluster, topic: str, timeout_s: float) -> dict[int, dict[int, PartitionLog]]:
    """Waits until every node's segments of every partition hold the same (offset, value)
    sequence; returns partition -> node -> log (fails with where they differ)."""
    logs: dict[int, dict[int, PartitionLog]] = {}

    def replicas_agree() -> bool:
        agree = True
        for part in range(PARTITIONS):
            logs[part] = replica_logs(cluster, topic, part)
            seqs = [offsets_values(log) for log in logs[part].values()]
            agree = agree and all(s == seqs[0] for s in seqs)
        return agree

    deadline = time.monotonic() + timeout_s
    while not replicas_agree() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert replicas_agree(), f"replicas still differ after {timeout_s} s:\n" + "\n".join(
        f"partition {part}:\n{describe_divergence(logs[part])}" for part in range(PARTITIONS))
    return logs


def first_byte_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# --------------------------------------------------------------------------- the test

def create_full_topic(cluster: Cluster, topic: str) -> None:
    """The scenarios' topic, created and with every ISR full."""
    create_topic(cluster.nodes[0].bootstrap, topic, PARTITIONS, TOPIC_CONFIG, replication_factor=REPLICATION_FACTOR)
    wait_for("every ISR full after CreateTopics", lambda: full_isr(cluster, topic), 30,
             detail=lambda: describe_views(cluster, topic))


@contextlib.contextmanager
def producers_running():
    """A list for the scenario's producers; any still running at the end are killed."""
    producers: list[ProducerProcess] = []
    try:
        yield producers
    finally:
        for p in producers:
            if p.proc.poll() is None:
                p.kill()


def start_producers(cluster: Cluster, topic: str, tmp_path: Path, producers: list) -> None:
    """Starts the three producers (appended to `producers` as they start, so the caller
    can kill them whatever happens) and waits for their first acknowledged writes."""
    producers.append(ProducerProcess("ck", ck_producer_cmd(cluster.bootstrap, topic), tmp_path))
    producers.append(ProducerProcess("java", java_producer_cmd(cluster.bootstrap, topic), tmp_path))
    producers.append(franz_go_producer(cluster.bootstrap, topic, tmp_path))
    wait_for(f"{ACKS_BEFORE_KILL} acknowledged writes per producer",
             lambda: all(p.acked() >= ACKS_BEFORE_KILL for p in producers), 60, producers)


@pytest.mark.timeout(180)
@pytest.mark.client("confluent-kafka + java + franz-go")
def test_leader_kill9_loses_no_acknowledged_write_and_replicas_agree(cluster_factory, tmp_path):
    phases: list[tuple[str, float]] = []
    t0 = time.monotonic()

    def phase(name: str) -> None:  # printed as it goes: a failure's captured output shows how far it got
        phases.append((name, time.monotonic() - t0))
        print(f"{phases[-1][1]:6.1f}s  {name}", flush=True)

    cluster = cluster_factory(CLUSTER_CONFIG)
    cluster.start()
    phase("cluster up")
    topic = unique_topic("replication")
    create_full_topic(cluster, topic)
    phase("topic created, every ISR full")

    with producers_running() as producers:
        start_producers(cluster, topic, tmp_path, producers)
        phase("producers acknowledged")

        victim_id = leader_of(cluster, topic, 0)
        assert victim_id is not None, describe_views(cluster, topic)
        victim = cluster.node(victim_id)
        victim.kill9()
        phase(f"killed node {victim_id}, leader of partition 0")

        new_leader = wait_for("a new leader of partition 0 in Metadata",
                              lambda: (lambda l: l if l not in (None, victim_id) else None)(
                                  leader_of(cluster, topic, 0)),
                              30, producers, detail=lambda: describe_views(cluster, topic))
        seen_new_leader = time.monotonic()
        phase(f"node {new_leader} leads partition 0")
        wait_for(f"{ACKS_AGAIN} writes to partition 0 acknowledged per producer after the failover",
                 lambda: all(p.acked(seen_new_leader, 0) >= ACKS_AGAIN for p in producers), 60, producers,
                 detail=lambda: describe_views(cluster, topic))
        phase("partition 0 acknowledges writes again")
        wait_for(f"node {victim_id} out of the ISR of every partition while it is down",
                 lambda: out_of_every_isr(cluster, topic, victim_id), 30, producers,
                 detail=lambda: describe_views(cluster, topic))
        phase(f"node {victim_id} out of every ISR. {describe_views(cluster, topic)}")

        victim.start()
        phase(f"node {victim_id} restarted")
        wait_for("all 3 replicas back in the ISR of every partition", lambda: full_isr(cluster, topic), 60,
                 producers, interval_s=0.25, detail=lambda: describe_views(cluster, topic))
        isr_full = time.monotonic()
        phase(f"every ISR full again. {describe_views(cluster, topic)}")
        wait_for(f"{ACKS_AFTER_ISR} more acknowledged writes per producer",
                 lambda: all(p.acked(isr_full) >= ACKS_AFTER_ISR for p in producers), 60, producers)
        for p in producers:
            p.stop()
        phase("producers stopped")

    check_outcome(cluster, topic, producers, tmp_path, phase, ACKS_BEFORE_KILL + ACKS_AFTER_ISR)
    logs = {part: replica_logs(cluster, topic, part) for part in range(PARTITIONS)}
    epochs = sorted({b.partition_leader_epoch for b in next(iter(logs[0].values())).batches})
    assert len(epochs) >= 2, (f"partition 0 holds batches of leader epochs {epochs} only: no writes from "
                              "both sides of its failover")



@pytest.mark.timeout(360)
@pytest.mark.client("confluent-kafka + java + franz-go")
def test_rolling_restart_under_load_loses_nothing_and_fails_no_send(cluster_factory, tmp_path):
    """Each node in turn is stopped cleanly (SIGTERM) and started again once the others lead
    without it; the next goes once every ISR is full again. The idempotent producers see only
    retriable errors (no send fails or ends unknown), nothing acknowledged is lost or
    duplicated, and the replicas end byte-identical."""
    t0 = time.monotonic()

    def phase(name: str) -> None:
        print(f"{time.monotonic() - t0:6.1f}s  {name}", flush=True)

    cluster = cluster_factory(CLUSTER_CONFIG)
    cluster.start()
    topic = unique_topic("rolling")
    create_full_topic(cluster, topic)
    with producers_running() as producers:
        start_producers(cluster, topic, tmp_path, producers)
        phase("producers acknowledged")
        for node in cluster.nodes:
            node.stop()
            phase(f"node {node.node_id} stopped")
            wait_for(f"node {node.node_id} out of the ISR of every partition",
                     lambda: out_of_every_isr(cluster, topic, node.node_id), 30, producers,
                     detail=lambda: describe_views(cluster, topic))
            node.start()
            wait_for("all 3 replicas back in the ISR of every partition", lambda: full_isr(cluster, topic), 60,
                     producers, interval_s=0.25, detail=lambda: describe_views(cluster, topic))
            back = time.monotonic()
            wait_for(f"{ACKS_AGAIN} more acknowledged writes per producer",
                     lambda: all(p.acked(back) >= ACKS_AGAIN for p in producers), 60, producers)
            phase(f"node {node.node_id} back in every ISR, writes acknowledged")
        for p in producers:
            p.stop()
        phase("producers stopped")
    for p in producers:
        failed = [e for e in p.events if e.get("type") in ("send_failed", "send_unknown")]
        assert not failed, f"producer {p.name}: {len(failed)} sends failed, first {failed[0]}\n{p.diagnostics()}"
    per_producer = ACKS_BEFORE_KILL + 3 * ACKS_AGAIN
    check_outcome(cluster, topic, producers, tmp_path, phase, per_producer, min_acked=3 * per_producer)


def check_outcome(cluster: Cluster, topic: str, producers: list, tmp_path: Path, phase, acks_min: int,
                  min_acked: int = MIN_ACKED) -> History:
    """The replicas converge byte for byte, the consumers read what they hold, and the history
    checker finds no lost or duplicated acknowledged write. Returns the history."""
    for p in producers:
        assert p.proc.returncode == 0 and p.done is not None, f"producer {p.name} did not finish\n{p.diagnostics()}"
        assert p.acked() >= acks_min, p.diagnostics()
    history = History()
    for p in producers:
        for event in p.events:
            history.add_json(event)
    history.write_jsonl(tmp_path / "history-producers.jsonl")

    # The replicas converge on disk: the same records, then the same bytes.
    for n in cluster.nodes:
        for part in range(PARTITIONS):
            folder = n.data_dir / f"{topic}-{part}"
            assert folder.is_dir(), (f"node {n.node_id} has no {folder.name} in its log.dirs {n.data_dir} "
                                     f"(it holds {sorted(x.name for x in n.data_dir.iterdir())})")
    logs = wait_replicas_agree(cluster, topic, 30)
    phase("replicas agree on disk")

    ends = {part: next(iter(logs[part].values())).end_offset for part in range(PARTITIONS)}
    for part in range(PARTITIONS):
        for node, log in logs[part].items():
            bad = [b for b in log.batches if not b.crc_ok]
            assert not bad, (f"partition {part} on node {node}: {len(bad)} batches with a bad CRC, first at "
                             f"{bad[0].segment} byte {bad[0].position} (offset {bad[0].base_offset})")
            assert not log.trailing, f"partition {part} on node {node}: bytes that are no batch: {log.trailing}"
            anonymous = [b for b in log.batches if b.producer_id < 0]
            assert not anonymous, (f"partition {part} on node {node}: a batch at offset "
                                   f"{anonymous[0].base_offset} has no producer id (not idempotent)")
            epochs = [b.partition_leader_epoch for b in log.batches]
            assert epochs == sorted(epochs), (
                f"partition {part} on node {node}: leader epochs go down along the log: "
                f"{sorted(set(epochs))} in the order {list(dict.fromkeys(epochs))}")
            offsets = [r.offset for r in log.records]
            assert offsets == list(range(ends[part])), (
                f"partition {part} on node {node}: offsets are not 0..{ends[part] - 1} without gaps")
        reference_node, reference = next(iter(logs[part].items()))
        for node, log in logs[part].items():
            names = [name for name, _ in log.segments]
            assert names == [name for name, _ in reference.segments], (
                f"partition {part}: node {node} has segments {names}, node {reference_node} "
                f"{[name for name, _ in reference.segments]}")
            for (name, data), (_, ref_data) in zip(log.segments, reference.segments):
                if data != ref_data:
                    at = first_byte_difference(data, ref_data)
                    batch = next((b for b in log.batches if b.segment == name and b.position <= at
                                  < b.position + len(b.raw)), None)
                    raise AssertionError(
                        f"partition {part}: {name} differs between node {node} ({len(data)} bytes) and node "
                        f"{reference_node} ({len(ref_data)} bytes) from byte {at}"
                        + (f", in the batch at offset {batch.base_offset} (leader epoch "
                           f"{batch.partition_leader_epoch} on node {node})" if batch else ""))
    phase("replicas byte-identical")
    watermarks = ck_end_offsets(cluster.nodes[0].bootstrap, topic)
    assert watermarks == ends, f"high watermarks {watermarks}, but the replicas end at {ends}"

    reads = {}
    for name, read_all in (("ck", ck_read_all), ("kp", kp_read_all)):
        reads[name] = read_all(cluster.bootstrap, topic, ends, history, f"{name}-consumer")
    history.write_jsonl(tmp_path / "history.jsonl")
    phase("consumers read every partition")
    for name, reached in reads.items():
        assert reached == ends, f"{name} consumer reached {reached}, the partitions end at {ends}"

    report = check(history)
    print(report.summary())
    print("acknowledged per producer: " + ", ".join(f"{p.name} {p.acked()}" for p in producers))
    assert report.ok, report.details()
    assert not report.lost and not report.duplicates, report.details()
    assert report.acknowledged >= min_acked, f"only {report.acknowledged} acknowledged writes\n{report.details()}"

    # What the consumers read is what every replica holds.
    read = {}
    for e in history.events:
        if e.type == "read" and e.consumer == "ck-consumer":
            read.setdefault(e.partition, []).append((e.offset, e.value))
    for part in range(PARTITIONS):
        assert read.get(part, []) == offsets_values(next(iter(logs[part].values()))), (
            f"partition {part}: the consumer read other records than the replicas hold")
    return history
