"""One confluent-kafka consumer group member, for test_groups.py (one process per member, so
a member can be killed with SIGKILL).

    python ck_group_member.py BOOTSTRAP TOPIC GROUP NAME SESSION_TIMEOUT_MS

librdkafka's defaults otherwise (partition.assignment.strategy range,roundrobin: the eager
protocol; heartbeat.interval.ms 3000; auto-commit every 5 s), except auto.offset.reset=earliest
(the test produces before the members join).

stdout, one JSON object per line; t is time.monotonic() (CLOCK_MONOTONIC: one clock for every
process on the host):
    {"ev": "assign", "t", "parts"}    on_assign, before the partitions are assigned
    {"ev": "revoke", "t", "parts"}    on_revoke (also for lost partitions), after unassign()
    {"ev": "records", "t", "recs": [[partition, offset, value], ...]}
    {"ev": "error", "t", "error", "fatal"}
    {"ev": "closed", "t"}             after close() (which commits and leaves the group)
stdin: a line "close", or EOF, closes the consumer and ends the process.
"""
import json
import sys
import threading
import time

from confluent_kafka import Consumer


def emit(ev: str, **fields) -> None:
    print(json.dumps({"ev": ev, "t": time.monotonic(), **fields}), flush=True)


def main() -> None:
    bootstrap, topic, group, name, session_ms = sys.argv[1:6]
    closing = threading.Event()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "close":
                break
        closing.set()

    def on_error(err) -> None:
        emit("error", error=str(err), fatal=err.fatal())

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
                         "auto.offset.reset": "earliest", "session.timeout.ms": int(session_ms),
                         "error_cb": on_error})

    recs: list = []  # polled records not reported yet; reported before any callback's event

    def flush() -> None:
        if recs:
            emit("records", recs=recs[:])
            recs.clear()

    def on_assign(c, partitions) -> None:
        flush()
        emit("assign", parts=sorted(tp.partition for tp in partitions if tp.topic == topic))

    def on_revoke(c, partitions) -> None:
        flush()
        c.unassign()  # done here (not by the library after the callback) so "t" is after it
        emit("revoke", parts=sorted(tp.partition for tp in partitions if tp.topic == topic))

    threading.Thread(target=watch_stdin, daemon=True).start()
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    # poll(), one record at a time, keeps records and rebalance callbacks in order (a batch from
    # consume() may hold records fetched before a revoke that the batch call also served).
    while not closing.is_set():
        m = consumer.poll(0.2)
        if m is None:
            flush()
        elif m.error():
            flush()
            on_error(m.error())
        else:
            recs.append([m.partition(), m.offset(), m.value().decode()])
            if len(recs) >= 100:
                flush()
    flush()
    consumer.close()
    flush()
    emit("closed")


if __name__ == "__main__":
    main()
