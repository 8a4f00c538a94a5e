"""Consumer groups with the Java client (kafka-clients 4.1.0), both group protocols.

Three KafkaConsumers (java/GroupMembers.java, one JVM, one thread each) in one group on a
6-partition topic split it 2/2/2; one closes and the other two take its partitions (3/3)
within the session timeout. Throughout, no partition is owned by two members at once (the
program checks it in its rebalance listener) and no partition is consumed by two members
under one generation (member epoch with group.protocol=consumer). Every record produced
before and after the hand-over is consumed.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import wire
from harness.clients import create_topic, unique_topic
from harness.java import LOG4J2_TOOLS_CONFIG, cache_dir, kafka_libs_dir
from test_groups import produce_numbered

JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "GroupMembers.java"
CONSUMER_GROUP_HEARTBEAT = 68
SESSION_TIMEOUT_S = {"classic": 10, "consumer": 45}  # classic: set by the program; consumer: broker default


def group_members_classes() -> Path:
    """Where GroupMembers.class is: run.sh's java-classes (setup-clients.sh compiles
    compat-tests/java/*.java) when it is there, else compiled here once per source hash."""
    shared = os.environ.get("FJORD_COMPAT_JAVA_CLASSES")
    if shared and (Path(shared) / "GroupMembers.class").is_file():
        return Path(shared)
    digest = hashlib.sha256(JAVA_SOURCE.read_bytes()).hexdigest()[:16]
    out = cache_dir() / f"java-group-members-{digest}"
    if not (out / "GroupMembers.class").is_file():
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", "-cp", f"{kafka_libs_dir()}/*",
                        "-d", str(tmp), str(JAVA_SOURCE)], check=True, timeout=300)
        tmp.rename(out)
    return out


class JavaGroup:
    """The GroupMembers process and what it reported so far (updated by a reader thread)."""

    def __init__(self, bootstrap: str, topic: str, group: str, protocol: str, members: int):
        cmd = ["java", "-Xmx384m", "-XX:TieredStopAtLevel=1",
               f"-Dlog4j2.configurationFile={LOG4J2_TOOLS_CONFIG}",
               "-cp", f"{group_members_classes()}:{kafka_libs_dir()}/*", "GroupMembers",
               bootstrap, topic, group, protocol, str(members)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lock = threading.Lock()
        self.assignment: dict[int, frozenset[int]] = {m: frozenset() for m in range(members)}
        self.seen: set[tuple[int, str]] = set()
        self.consumed_by: dict[tuple[int, int], set[int]] = {}  # (generation, partition) -> members
        self.problems: list[dict] = []
        self.closed: set[int] = set()
        self.stderr_tail: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self.lock:
                m = e.get("m")
                if e["ev"] == "assignment":
                    self.assignment[m] = frozenset(e["parts"])
                elif e["ev"] == "records":
                    for p, v in e["recs"]:
                        self.seen.add((p, v))
                        self.consumed_by.setdefault((e["gen"], p), set()).add(m)
                elif e["ev"] == "closed":
                    self.closed.add(m)
                    self.assignment[m] = frozenset()
                else:
                    self.problems.append(e)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [line])[-40:]

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def check(self) -> None:
        with self.lock:
            assert not self.problems, f"{self.problems}\n{''.join(self.stderr_tail)}"
            shared = {k: v for k, v in self.consumed_by.items() if len(v) > 1}
            assert not shared, f"(generation, partition) consumed by several members: {shared}"
        assert self.proc.poll() is None, f"GroupMembers exited:\n{''.join(self.stderr_tail)}"

    def wait_for_split(self, members: list[int], partitions: int, each: int, timeout_s: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            self.check()
            with self.lock:
                sets = [self.assignment[m] for m in members]
            if all(len(s) == each for s in sets) and frozenset().union(*sets) == frozenset(range(partitions)):
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"no {each}-each split within {timeout_s}s: {self.assignment}\n"
                             f"{''.join(self.stderr_tail)}")

    def wait_for_closed(self, member: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while member not in self.closed and time.monotonic() < deadline:
            self.check()
            time.sleep(0.1)
        assert member in self.closed, f"member {member} did not close\n{''.join(self.stderr_tail)}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("exit")
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


@pytest.mark.needs_groups
@pytest.mark.timeout(240)
@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_three_java_consumers_split_and_hand_over(broker, protocol):
    if protocol == "consumer":
        with wire.RawConnection(broker.bootstrap) as conn:
            if CONSUMER_GROUP_HEARTBEAT not in wire.api_versions_v0(conn):
                pytest.skip(f"{broker.kind} does not advertise ConsumerGroupHeartbeat (KIP-848)")
    topic, group = unique_topic("grp-java"), unique_topic(f"grp-java-{protocol}")
    create_topic(broker.bootstrap, topic, partitions=6)
    sent = produce_numbered(broker.bootstrap, topic, 6, 10)
    sent = {(p, v.decode()) for p, v in sent}
    group_proc = JavaGroup(broker.bootstrap, topic, group, protocol, 3)
    try:
        group_proc.wait_for_split([0, 1, 2], 6, 2, timeout_s=90)
        group_proc.send("close 0")
        group_proc.wait_for_closed(0, timeout_s=30)
        took = group_proc.wait_for_split([1, 2], 6, 3, timeout_s=SESSION_TIMEOUT_S[protocol])
        assert took <= SESSION_TIMEOUT_S[protocol]
        more = produce_numbered(broker.bootstrap, topic, 6, 5, start=10)
        sent |= {(p, v.decode()) for p, v in more}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            group_proc.check()
            with group_proc.lock:
                if sent <= group_proc.seen:
                    break
            time.sleep(0.2)
        with group_proc.lock:
            missing = sent - group_proc.seen
        assert not missing, f"{len(missing)} records never consumed, e.g. {sorted(missing)[:5]}"
        group_proc.check()
    finally:
        group_proc.stop()
