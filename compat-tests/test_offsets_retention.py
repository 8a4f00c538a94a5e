"""Offsets retention (offsets.retention.minutes) with real clients, on a broker of its own
started with the smallest retention Kafka accepts (1 minute) checked every second.

What Apache Kafka 4.1 does (and this test checks on both brokers):
- offsets committed outside group membership (a consumer with assign(), generation -1)
  expire one retention after their commit; the group, left empty and without offsets,
  is deleted;
- offsets of a consumer group whose last member left expire one retention after the
  group became Empty, and then the group is deleted (ListGroups no longer shows it);
- offsets of a live group, for a topic its members subscribe to, never expire, however
  old the commit.
"""
from __future__ import annotations

import threading
import time

import pytest

from harness.clients import create_topic, kp_producer, unique_topic

RETENTION = {"offsets.retention.minutes": "1", "offsets.retention.check.interval.ms": "1000"}


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """{partition: committed offset} of the group; partitions without one are left out."""
    from kafka import KafkaAdminClient, TopicPartition
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        got = admin.list_group_offsets(
            {group: [TopicPartition(topic, p) for p in range(partitions)]})[group]
    finally:
        admin.close()
    return {tp.partition: om.offset for tp, om in got.items() if om.offset >= 0}


def group_ids(bootstrap: str) -> set[str]:
    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        return {g["group_id"] if isinstance(g, dict) else g[0] for g in admin.list_groups()}
    finally:
        admin.close()


def consumer(bootstrap: str, group: str, **extra):
    from kafka import KafkaConsumer
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=False, session_timeout_ms=10000,
                         heartbeat_interval_ms=1000, request_timeout_ms=30000, **extra)


def subscribe(c, topic: str) -> None:
    """Loads the topic's metadata first: a kafka-python leader assigning without it gives
    every member nothing ("No partition metadata")."""
    deadline = time.monotonic() + 30
    while not c.partitions_for_topic(topic) and time.monotonic() < deadline:
        time.sleep(0.1)
    c.subscribe([topic])


def consume_and_commit(c, want: int, timeout_s: float = 60) -> None:
    got, deadline = 0, time.monotonic() + timeout_s
    while got < want and time.monotonic() < deadline:
        got += sum(len(m) for m in c.poll(timeout_ms=200).values())
    assert got == want, f"read {got} of {want}"
    c.commit()


class LiveMember(threading.Thread):
    """A subscribed consumer that keeps polling (so its group stays Stable)."""

    def __init__(self, bootstrap: str, group: str, topic: str, want: int):
        super().__init__(daemon=True)
        self.bootstrap, self.group, self.topic, self.want = bootstrap, group, topic, want
        self.committed = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.committed_at = 0.0

    def run(self) -> None:
        try:
            c = consumer(self.bootstrap, self.group)
            try:
                subscribe(c, self.topic)
                consume_and_commit(c, self.want)
                self.committed_at = time.monotonic()
                self.committed.set()
                while not self.stop.is_set():
                    c.poll(timeout_ms=200)
            finally:
                c.close()
        except BaseException as e:  # surfaced by the test
            self.error = e
            self.committed.set()


@pytest.mark.needs_groups
@pytest.mark.timeout(240)
def test_offsets_expire_after_retention_unless_the_group_is_live(broker_factory):
    broker = broker_factory(RETENTION)
    broker.start()
    bootstrap = broker.bootstrap
    topic = unique_topic("retention")
    create_topic(bootstrap, topic, partitions=2)
    producer = kp_producer(bootstrap, acks="all")
    try:
        for i in range(10):
            producer.send(topic, value=f"r{i}".encode(), partition=i % 2).get(timeout=30)
    finally:
        producer.close(timeout=10)

    # Standalone: assign() and commit, no membership (generation -1, no protocol type).
    from kafka import TopicPartition
    standalone = consumer(bootstrap, "retention-standalone")
    try:
        standalone.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        consume_and_commit(standalone, 10)
    finally:
        standalone.close()

    # A group whose only member commits and leaves: Empty from now on.
    left = consumer(bootstrap, "retention-left")
    try:
        subscribe(left, topic)
        consume_and_commit(left, 10)
    finally:
        left.close()

    # A group whose member stays subscribed throughout.
    live = LiveMember(bootstrap, "retention-live", topic, 10)
    live.start()
    try:
        assert live.committed.wait(60) and live.error is None, live.error
        for g in ("retention-standalone", "retention-left", "retention-live"):
            assert committed(bootstrap, g, topic, 2) == {0: 5, 1: 5}, g
        assert "retention-left" in group_ids(bootstrap)

        # One minute of retention, checked every second: both idle groups lose their
        # offsets (and the empty group itself) soon after it.
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            gone = [g for g in ("retention-standalone", "retention-left")
                    if not committed(bootstrap, g, topic, 2)]
            if len(gone) == 2 and "retention-left" not in group_ids(bootstrap):
                break
            time.sleep(2)
        else:
            raise AssertionError("offsets not expired 150 s after commit: "
                                 f"{committed(bootstrap, 'retention-standalone', topic, 2)} "
                                 f"{committed(bootstrap, 'retention-left', topic, 2)} "
                                 f"{sorted(group_ids(bootstrap))}")
        # The live group's offsets are older than the retention too, but its member
        # subscribes to the topic: they stay.
        time.sleep(max(0.0, live.committed_at + 65 - time.monotonic()))
        assert live.error is None, live.error
        assert committed(bootstrap, "retention-live", topic, 2) == {0: 5, 1: 5}
        assert "retention-live" in group_ids(bootstrap)
    finally:
        live.stop.set()
        live.join(timeout=30)
