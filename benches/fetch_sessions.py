#!/usr/bin/env python3
"""Fetch request bytes of a consumer of many partitions, with fetch sessions (KIP-227) and
without, on Fjord and on Apache Kafka 4.1.

Usage: benches/fetch_sessions.sh [--partitions 1000] [--seconds 20] [--brokers fjord,kafka]

For each broker and each of `max.incremental.fetch.session.cache.slots` = 1000 (sessions)
and 0 (every Fetch in full): starts the broker on 127.0.0.1 (compat-tests/harness), creates
one topic of --partitions partitions, and runs a kafka-python consumer assigned to all of
them through a byte-counting proxy for --seconds while a producer writes one small record
to a random partition every 10 ms. Prints, per run, the Fetch requests sent and their median
and mean size, and the ratio of the median without sessions to the median with them. Every
process is stopped at the end; every wait is bounded.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "compat-tests"))

from harness.brokers import FjordBroker, KafkaBroker  # noqa: E402
from harness.clients import create_topic, kp_producer  # noqa: E402
from harness.proxy import KafkaProxy  # noqa: E402

API_FETCH = 1


def run(kind: str, fjord: Path, partitions: int, seconds: float, slots: int) -> list[int]:
    root = Path(tempfile.mkdtemp(prefix=f"fetch-sessions-{kind}-{slots}-"))
    proxy = KafkaProxy(max_lifetime_s=seconds + 300)
    extra = {"advertised.listeners": f"PLAINTEXT://{proxy.address}",
             "max.incremental.fetch.session.cache.slots": str(slots)}
    broker = FjordBroker(fjord, root, extra=extra) if kind == "fjord" else KafkaBroker(root, extra=extra)
    if kind == "kafka":
        # Kafka's listener advertises the proxy too; its controller listener stays its own.
        broker.extra["advertised.listeners"] = f"PLAINTEXT://{proxy.address}"
    proxy.start(broker.bootstrap)
    broker.start()
    stop = threading.Event()
    try:
        topic = "sessions-bench"
        create_topic(broker.bootstrap, topic, partitions=partitions, timeout_s=120)
        from kafka import KafkaConsumer, TopicPartition

        def produce() -> None:
            p = kp_producer(broker.bootstrap, linger_ms=0)
            try:
                while not stop.is_set():
                    p.send(topic, value=b"x" * 100, partition=random.randrange(partitions))
                    time.sleep(0.01)
            finally:
                p.close(5)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        consumer = KafkaConsumer(bootstrap_servers=proxy.address, group_id=None,
                                 enable_auto_commit=False, request_timeout_ms=30000)
        try:
            consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
            consumer.seek_to_end()
            consumer.poll(timeout_ms=1000)
            with proxy._lock:
                proxy.request_sizes.pop(API_FETCH, None)  # the first, full fetches
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=200)
        finally:
            consumer.close()
        with proxy._lock:
            return list(proxy.request_sizes.get(API_FETCH, []))
    finally:
        stop.set()
        broker.stop()
        proxy.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--brokers", default="fjord,kafka")
    ap.add_argument("--fjord", type=Path, default=ROOT / "target" / "release" / "fjord")
    args = ap.parse_args()
    print(f"consumer of {args.partitions} partitions, kafka-python, {args.seconds:.0f} s per run")
    print(f"{'broker':8} {'sessions':9} {'fetches':>8} {'median B':>9} {'mean B':>9}")
    for kind in args.brokers.split(","):
        medians = {}
        for slots in (1000, 0):
            sizes = run(kind, args.fjord, args.partitions, args.seconds, slots)
            if not sizes:
                print(f"{kind:8} {'on' if slots else 'off':9} no Fetch requests seen")
                continue
            medians[slots] = statistics.median(sizes)
            print(f"{kind:8} {'on' if slots else 'off':9} {len(sizes):8} "
                  f"{medians[slots]:9.0f} {statistics.mean(sizes):9.0f}")
        if len(medians) == 2:
            print(f"{kind:8} without/with sessions, median request bytes: "
                  f"{medians[0] / medians[1000]:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
