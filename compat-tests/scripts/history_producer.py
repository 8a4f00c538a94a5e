"""Produce unique values round-robin over a topic's partitions with confluent-kafka (librdkafka),
idempotent and acks=all, until told to stop; print each send's outcome as one JSON line in
harness/history.py's format, flushed:

    {"type": "send_ok", "value": "ck-17", "partition": 2, "offset": 5}
    {"type": "send_unknown", "value": "ck-18", "partition": 0, "error": "..."}

    python history_producer.py BOOTSTRAP TOPIC PARTITIONS PREFIX [RATE]

Values are PREFIX-0, PREFIX-1, ...; value i goes to partition i % PARTITIONS; RATE records per
second in all (default 400). A line on stdin, or its end, stops it: it sends nothing more,
flushes for up to 30 s, prints send_unknown for every send still without an outcome, then
"{"type": "producer_done", ...}" and exits 0 (readers of the history skip that line).

A delivery error is an indeterminate send (send_unknown): confluent-kafka does not expose
librdkafka's message status (persisted / possibly persisted / not persisted), and with retries
an error answer to the last attempt says nothing about the earlier ones.
"""
import json
import sys
import threading
import time

from confluent_kafka import KafkaException, Producer


def main() -> None:
    bootstrap, topic, partitions, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 400.0
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()

    def emit(event: dict) -> None:
        sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    pending: dict[str, int] = {}  # value -> partition, sent and without an outcome yet

    def delivered(err, msg) -> None:
        value = msg.value().decode()
        partition = pending.pop(value, msg.partition())
        if err is None:
            emit({"type": "send_ok", "value": value, "partition": msg.partition(), "offset": msg.offset()})
        else:
            emit({"type": "send_unknown", "value": value, "partition": partition, "error": str(err)})

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "message.timeout.ms": 60000, "socket.timeout.ms": 10000,
                  "client.id": f"fjord-compat-history-{prefix}"})
    i, start = 0, time.monotonic()
    while not stop.is_set():
        # Keep to RATE: send what is due, then serve callbacks until the next one is.
        while i < (time.monotonic() - start) * rate and not stop.is_set():
            value, partition = f"{prefix}-{i}", i % partitions
            try:
                p.produce(topic, value=value.encode(), partition=partition, on_delivery=delivered)
            except BufferError:
                break  # the local queue is full (brokers unavailable): serve callbacks first
            except KafkaException as e:
                emit({"type": "send_failed", "value": value, "partition": partition, "error": str(e)})
                i += 1
                continue
            pending[value] = partition
            i += 1
        p.poll(0.005)
    left = p.flush(30)
    for value, partition in list(pending.items()):
        emit({"type": "send_unknown", "value": value, "partition": partition,
              "error": "no outcome after a 30 s flush"})
    emit({"type": "producer_done", "sent": i, "unflushed": left})


if __name__ == "__main__":
    main()
