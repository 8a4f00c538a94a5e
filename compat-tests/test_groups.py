"""Consumer groups with real clients: rebalances, committed offsets across a restart, and
Kafka's own kafka-consumer-groups tool.

- three kafka-python consumers in one group split a 6-partition topic 2/2/2; when one leaves,
  the other two take its partitions (3/3); assignments never overlap, every record is read;
- the same with three confluent-kafka consumers, one process each: one is killed (SIGKILL), the
  other two take its partitions (3/3) once its session expires; one of those closes, the last
  one takes all 6; no partition is ever held by two members at once, every record is read;
- a confluent-kafka consumer commits (with metadata), the broker restarts, a new consumer of
  the group resumes exactly after the commit: nothing lost, nothing read twice;
- ConsumerGroupCommand (kafka-tools) lists, describes (members, lag) and deletes a group.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.clients import create_topic, kp_producer, unique_topic
from harness.java import run_java_main

CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
CK_MEMBER_SCRIPT = Path(__file__).resolve().parent / "scripts" / "ck_group_member.py"


def produce_numbered(bootstrap: str, topic: str, partitions: int, per_partition: int,
                     start: int = 0) -> set[tuple[int, bytes]]:
    """`per_partition` records to each partition; returns {(partition, value)}."""
    producer = kp_producer(bootstrap, acks="all", linger_ms=5)
    sent = set()
    try:
        futures = []
        for p in range(partitions):
            for i in range(start, start + per_partition):
                value = f"p{p}-r{i}".encode()
                futures.append(producer.send(topic, value=value, partition=p))
                sent.add((p, value))
        producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=10)
    return sent


class KpMember:
    """One kafka-python consumer polling in its own thread; records its assignment."""

    def __init__(self, bootstrap: str, topic: str, group: str, name: str):
        self.bootstrap, self.topic, self.group, self.name = bootstrap, topic, group, name
        self.assignment: frozenset[int] = frozenset()
        self.seen: list[tuple[int, bytes]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "KpMember":
        self._thread.start()
        return self

    def _run(self) -> None:
        from kafka import KafkaConsumer
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=self.group,
                client_id=self.name, auto_offset_reset="earliest", enable_auto_commit=True,
                auto_commit_interval_ms=500, session_timeout_ms=10000,
                heartbeat_interval_ms=1000, max_poll_interval_ms=60000,
                request_timeout_ms=30000)
            try:
                # Load the topic's metadata first: a leader assigning without it gives
                # every member nothing (kafka-python logs "No partition metadata").
                deadline = time.monotonic() + 30
                while not consumer.partitions_for_topic(self.topic) and time.monotonic() < deadline:
                    time.sleep(0.1)
                consumer.subscribe([self.topic])
                while not self._stop.is_set():
                    for tp, msgs in consumer.poll(timeout_ms=200).items():
                        self.seen.extend((tp.partition, m.value) for m in msgs)
                    self.assignment = frozenset(tp.partition for tp in consumer.assignment())
            finally:
                consumer.close()  # commits and sends LeaveGroup
        except BaseException as e:  # surfaced by the test
            self.error = e

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), f"{self.name} did not close"


def wait_for_split(members: list[KpMember], partitions: int, each: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for m in members:
            assert m.error is None, f"{m.name}: {m.error!r}"
        sets = [m.assignment for m in members]
        if all(len(s) == each for s in sets) and frozenset().union(*sets) == frozenset(range(partitions)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {each}-each split within {timeout_s}s: "
                         f"{[(m.name, sorted(m.assignment)) for m in members]}")


@pytest.mark.needs_groups
@pytest.mark.timeout(180)
def test_three_kafka_python_consumers_split_and_hand_over(broker):
    topic, group = unique_topic("grp-split"), unique_topic("grp-kp")
    create_topic(broker.bootstrap, topic, partitions=6)
    sent = produce_numbered(broker.bootstrap, topic, 6, 10)
    members = [KpMember(broker.bootstrap, topic, group, f"kp-{i}").start() for i in range(3)]
    try:
        wait_for_split(members, 6, 2, timeout_s=90)
        # No partition is held by two members at once (checked on the settled split).
        sets = [m.assignment for m in members]
        assert sum(len(s) for s in sets) == 6
        leaver = members.pop(0)
        leaver.stop()
        wait_for_split(members, 6, 3, timeout_s=60)
        # Records produced after the hand-over reach the remaining members too.
        sent |= produce_numbered(broker.bootstrap, topic, 6, 5, start=10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = set(leaver.seen).union(*(set(m.seen) for m in members))
            if sent <= seen:
                break
            time.sleep(0.2)
        seen = set(leaver.seen).union(*(set(m.seen) for m in members))
        assert sent <= seen, f"{len(sent - seen)} records never consumed"
    finally:
        for m in members:
            m.stop()


class CkMember:
    """One confluent-kafka member in its own process (scripts/ck_group_member.py); a reader
    thread follows its events. `held` is when it held which partition: [partition, from, to]
    (to is None while held), times on the host's CLOCK_MONOTONIC (time.monotonic())."""

    def __init__(self, bootstrap: str, topic: str, group: str, name: str, session_ms: int):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(CK_MEMBER_SCRIPT), bootstrap, topic, group, name, str(session_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.assignment: frozenset[int] = frozenset()
        self.held: list[list] = []
        self.seen: set[tuple[int, bytes]] = set()
        self.problems: list[str] = []
        self.errors: list[dict] = []
        self.closed = False
        self.stderr_tail: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self.lock:
                if e["ev"] == "assign":
                    if self.assignment:
                        self.problems.append(f"assigned {e['parts']} while holding {sorted(self.assignment)}")
                    self.assignment = frozenset(e["parts"])
                    self.held += [[p, e["t"], None] for p in e["parts"]]
                elif e["ev"] == "revoke":
                    self._release(frozenset(e["parts"]), e["t"])
                elif e["ev"] == "records":
                    for p, _, v in e["recs"]:
                        if p not in self.assignment:
                            self.problems.append(f"consumed partition {p} while holding {sorted(self.assignment)}")
                        self.seen.add((p, v.encode()))
                elif e["ev"] == "error":
                    self.errors.append(e)
                    if e["fatal"]:
                        self.problems.append(f"fatal error: {e['error']}")
                elif e["ev"] == "closed":
                    self.closed = True

    def _release(self, parts: frozenset[int], t: float) -> None:
        for h in self.held:
            if h[0] in parts and h[2] is None:
                h[2] = t
        self.assignment -= parts

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [line])[-40:]

    def check(self) -> None:
        with self.lock:
            assert not self.problems, f"{self.name}: {self.problems}\n{''.join(self.stderr_tail)}"
        assert self.closed or self.proc.poll() is None or self.proc.returncode == -signal.SIGKILL, \
            f"{self.name} exited with {self.proc.returncode}:\n{''.join(self.stderr_tail)}"

    def kill(self) -> None:
        """SIGKILL: no LeaveGroup, no commit; it holds nothing from the moment it is dead."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        with self.lock:
            self._release(self.assignment, time.monotonic())

    def close(self, timeout_s: float = 30) -> None:
        """close(): revokes, commits, sends LeaveGroup."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("close\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=30)
        assert self.closed, f"{self.name} did not close:\n{''.join(self.stderr_tail)}"

    def stop(self) -> None:
        """Cleanup: close if it still runs, kill it if that does not work; never raises."""
        try:
            self.close()
        except (AssertionError, OSError, subprocess.SubprocessError):
            if self.proc.poll() is None:
                self.proc.kill()


def wait_for_ck_split(members: list[CkMember], partitions: int, each: int, timeout_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        for m in members:
            m.check()
        sets = [m.assignment for m in members]
        if all(len(s) == each for s in sets) and frozenset().union(*sets) == frozenset(range(partitions)):
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"no {each}-each split within {timeout_s}s: "
                         f"{[(m.name, sorted(m.assignment)) for m in members]}")


def overlapping_holds(members: list[CkMember]) -> list:
    """Pairs of holds of one partition by two members whose time spans intersect."""
    spans = [(m.name, p, t0, t1 if t1 is not None else float("inf"))
             for m in members for p, t0, t1 in m.held]
    return [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:]
            if a[0] != b[0] and a[1] == b[1] and a[2] < b[3] and b[2] < a[3]]


CK_SESSION_TIMEOUT_MS = 10000  # Kafka's group.min.session.timeout.ms is 6000
CK_HEARTBEAT_S = 3             # librdkafka's default heartbeat.interval.ms


@pytest.mark.needs_groups
@pytest.mark.timeout(240)
def test_three_confluent_consumers_split_and_hand_over(broker):
    """Killed: its session expires (up to the session timeout after its last heartbeat), then the
    others learn of the rebalance at their next heartbeat: hence the bound session timeout +
    one heartbeat interval (+ slack for the join round). Closed: LeaveGroup, no expiry to wait."""
    topic, group = unique_topic("grp-ck-split"), unique_topic("grp-ck")
    create_topic(broker.bootstrap, topic, partitions=6)
    sent = produce_numbered(broker.bootstrap, topic, 6, 10)
    members = [CkMember(broker.bootstrap, topic, group, f"ck-{i}", CK_SESSION_TIMEOUT_MS)
               for i in range(3)]
    everyone = list(members)

    def all_read(timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for m in members:
                m.check()
            if sent <= set().union(*(m.seen for m in everyone)):
                return
            time.sleep(0.2)
        missing = sent - set().union(*(m.seen for m in everyone))
        raise AssertionError(f"{len(missing)} records never consumed, e.g. {sorted(missing)[:5]}")

    try:
        wait_for_ck_split(members, 6, 2, timeout_s=90)
        all_read(60)

        killed = members.pop(0)
        killed.kill()
        took = wait_for_ck_split(members, 6, 3, timeout_s=60)
        print(f"{broker.kind}: after SIGKILL of {killed.name}, 3/3 after {took:.1f}s")
        assert took <= CK_SESSION_TIMEOUT_MS / 1000 + CK_HEARTBEAT_S + 5
        sent |= produce_numbered(broker.bootstrap, topic, 6, 5, start=10)
        all_read(60)

        leaver = members.pop(0)
        leaver.close()
        took = wait_for_ck_split(members, 6, 6, timeout_s=60)
        print(f"{broker.kind}: after close of {leaver.name}, 6 after {took:.1f}s")
        assert took <= CK_SESSION_TIMEOUT_MS / 1000
        sent |= produce_numbered(broker.bootstrap, topic, 6, 5, start=15)
        all_read(60)

        for m in everyone:
            m.check()
        overlaps = overlapping_holds(everyone)
        assert not overlaps, f"partitions held by two members at once: {overlaps}"
    finally:
        for m in everyone:
            m.stop()


@pytest.mark.needs_groups
@pytest.mark.timeout(240)
def test_confluent_commit_survives_restart_and_resumes_exactly(fresh_broker):
    from confluent_kafka import Consumer, TopicPartition

    topic, group = unique_topic("grp-resume"), unique_topic("grp-ck")
    create_topic(fresh_broker.bootstrap, topic, partitions=3)
    sent = produce_numbered(fresh_broker.bootstrap, topic, 3, 30)

    def consumer():
        return Consumer({"bootstrap.servers": fresh_broker.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
                         "client.id": "fjord-compat-ck-group", "socket.timeout.ms": 10000})

    def take(c, n: int, timeout_s: float) -> list[tuple[int, int, bytes]]:
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            out.append((m.partition(), m.offset(), m.value()))
        return out

    first = consumer()
    first.subscribe([topic])
    got = take(first, 40, 90)
    assert len(got) == 40
    # Commit exactly what was processed, with metadata, synchronously.
    position: dict[int, int] = {}
    for p, off, _ in got:
        position[p] = max(position.get(p, 0), off + 1)
    commits = [TopicPartition(topic, p, o, metadata=f"meta-{p}") for p, o in position.items()]
    first.commit(offsets=commits, asynchronous=False)
    first.close()

    fresh_broker.restart()

    second = consumer()
    committed = committed_with_retry(second, [TopicPartition(topic, p) for p in range(3)])
    assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == position
    assert {tp.partition: tp.metadata for tp in committed if tp.offset >= 0} == {
        p: f"meta-{p}" for p in position}
    second.subscribe([topic])
    rest = take(second, 90 - 40, 90)
    extra = take(second, 1, 3)
    second.close()
    assert not extra, f"read past the end: {extra}"
    before = {(p, off) for p, off, _ in got}
    after = {(p, off) for p, off, _ in rest}
    assert not before & after, f"delivered twice past the commit: {sorted(before & after)}"
    assert all(off >= position.get(p, 0) for p, off in after)
    assert {(p, v) for p, _, v in got} | {(p, v) for p, _, v in rest} == sent


def committed_with_retry(consumer, partitions, timeout_s: float = 60.0):
    """Consumer.committed, retried while the coordinator is still loading after a restart
    (Kafka answers NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS for a while)."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.committed(partitions, timeout=10)
        except KafkaException as e:
            if time.monotonic() > deadline or not e.args[0].retriable() and e.args[0].code() not in (
                    16, 14, 15):  # NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE
                raise
            time.sleep(0.5)


def consumer_groups(bootstrap: str, *args: str) -> str:
    proc = run_java_main(CONSUMER_GROUP_COMMAND, ["--bootstrap-server", bootstrap, *args],
                         timeout_s=120)
    return proc.stdout


def lag_rows(output: str, group: str, topic: str) -> dict[int, tuple[int, int, int, str]]:
    """partition -> (current offset, log end offset, lag, consumer id) from --describe."""
    rows = {}
    for line in output.splitlines():
        cols = line.split()
        if len(cols) >= 9 and cols[0] == group and cols[1] == topic:
            rows[int(cols[2])] = (int(cols[3]), int(cols[4]), int(cols[5]), cols[6])
    return rows


@pytest.mark.needs_groups
@pytest.mark.timeout(240)
def test_consumer_groups_tool_lists_describes_and_deletes(broker):
    topic, group = unique_topic("grp-tool"), unique_topic("grp-tool")
    create_topic(broker.bootstrap, topic, partitions=2)
    produce_numbered(broker.bootstrap, topic, 2, 5)
    member = KpMember(broker.bootstrap, topic, group, "tool-member").start()
    try:
        deadline = time.monotonic() + 60
        while len(member.seen) < 10 and time.monotonic() < deadline:
            assert member.error is None, repr(member.error)
            time.sleep(0.1)
        assert len(member.seen) == 10
        # Let an auto-commit happen, then describe the live group.
        rows = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = lag_rows(consumer_groups(broker.bootstrap, "--describe", "--group", group),
                            group, topic)
            if rows and all(r[0] == 5 for r in rows.values()):
                break
            time.sleep(1)
        assert sorted(rows) == [0, 1], rows
        assert all(r[:3] == (5, 5, 0) for r in rows.values()), rows
        assert all(r[3].startswith("tool-member") for r in rows.values()), rows
        members = consumer_groups(broker.bootstrap, "--describe", "--group", group, "--members")
        assert "tool-member" in members and "/127.0.0.1" in members, members
        # A live group cannot be deleted.
        busy = run_java_main(CONSUMER_GROUP_COMMAND,
                             ["--bootstrap-server", broker.bootstrap, "--delete", "--group", group],
                             timeout_s=120, check=False)
        assert "NonEmptyGroup" in busy.stdout + busy.stderr or "not empty" in (busy.stdout + busy.stderr)
    finally:
        member.stop()

    produce_numbered(broker.bootstrap, topic, 2, 3, start=5)
    listed = consumer_groups(broker.bootstrap, "--list")
    assert group in listed.split(), listed
    state = consumer_groups(broker.bootstrap, "--describe", "--group", group, "--state")
    assert "Empty" in state, state
    rows = lag_rows(consumer_groups(broker.bootstrap, "--describe", "--group", group), group, topic)
    assert {p: r[:3] for p, r in rows.items()} == {0: (5, 8, 3), 1: (5, 8, 3)}, rows
    deleted = consumer_groups(broker.bootstrap, "--delete", "--group", group)
    assert "successful" in deleted, deleted
    assert group not in consumer_groups(broker.bootstrap, "--list").split()
