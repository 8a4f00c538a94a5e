"""kill -9 the broker while an acks=all idempotent producer streams numbered records.

After a restart on the same data dir and port, the partition must hold records 0..M-1 at
offsets 0..M-1 (a prefix of what was sent: no gaps, no duplicates, no garbage), every
acknowledged record must be there at the offset it was acknowledged with, and producing
continues at offset M.

Apache Kafka passes this because kill -9 keeps the page cache; Fjord must pass it whatever its
fsync policy, since an acknowledged acks=all write has to survive the process.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import wire
from harness.clients import create_topic, kp_consume, kp_producer, unique_topic

SCRIPT = Path(__file__).resolve().parent / "scripts" / "numbered_producer.py"
ACKED_BEFORE_CRASH = 3000
TOTAL = 1_000_000  # never reached: the producer is killed after the broker


class ProducerProcess:
    def __init__(self, bootstrap: str, topic: str, client: str):
        self.proc = subprocess.Popen([sys.executable, str(SCRIPT), bootstrap, topic, str(TOTAL), client],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        self.acked: dict[int, int] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a line cut by the kill is not an acknowledgement
                i, offset = line.split()
                self.acked[int(i)] = int(offset)

    def wait_for_acks(self, n: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.acked) < n:
            if self.proc.poll() is not None:
                raise AssertionError(f"producer exited {self.proc.returncode}: {self.proc.stderr.read()[-3000:]}")
            assert time.monotonic() < deadline, f"only {len(self.acked)} acks after {timeout_s}s"
            time.sleep(0.02)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        self.proc.stderr.close()


def partition_size(bootstrap: str, topic: str) -> int:
    batches = wire.all_batch_headers(bootstrap, topic)
    return 0 if not batches else batches[-1].base_offset + batches[-1].last_offset_delta + 1


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_kill9_keeps_acknowledged_records(fresh_broker, client):
    broker = fresh_broker
    topic = unique_topic("crash")
    create_topic(broker.bootstrap, topic, partitions=1)

    producer = ProducerProcess(broker.bootstrap, topic, client)
    try:
        producer.wait_for_acks(ACKED_BEFORE_CRASH, timeout_s=90)
        broker.kill9()
        time.sleep(0.5)  # let any response already on the wire reach the producer
    finally:
        producer.kill()
    acked = dict(producer.acked)
    assert len(acked) >= ACKED_BEFORE_CRASH

    broker.start()

    size = partition_size(broker.bootstrap, topic)
    assert size > max(acked.values()), f"log ends at {size}, acknowledged up to {max(acked.values())}"
    records = kp_consume(broker.bootstrap, topic, expected=size, timeout_s=90)
    assert [r.offset for r in records] == list(range(size)), "offsets are not contiguous from 0"
    values = [r.value for r in records]
    assert values == [f"{i:08d}".encode() for i in range(size)], "log is not the sent prefix 0..M-1"
    for i, offset in acked.items():
        assert offset == i, f"record {i} was acknowledged at offset {offset}"

    # The partition takes new writes right after the end of the recovered log.
    p = kp_producer(broker.bootstrap, acks="all")
    try:
        futures = [p.send(topic, value=f"after-{j}".encode(), partition=0) for j in range(10)]
        p.flush(timeout=30)
        assert [f.get(timeout=30).offset for f in futures] == list(range(size, size + 10))
    finally:
        p.close(timeout=10)
    tail = kp_consume(broker.bootstrap, topic, expected=size + 10, timeout_s=60)[size:]
    assert [(r.offset, r.value) for r in tail] == [(size + j, f"after-{j}".encode()) for j in range(10)]
