"""Produce numbered records (value = 8-digit decimal i) to partition 0 of a topic, acks=all,
idempotent, and print "i offset" for each acknowledged record, one line each, flushed.

    python numbered_producer.py BOOTSTRAP TOPIC COUNT CLIENT   (CLIENT: confluent-kafka | kafka-python)

Runs until COUNT records are acknowledged or it is killed (the crash test kills it).
"""
import sys
import time


def run_confluent(bootstrap: str, topic: str, count: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 2, "message.timeout.ms": 120000, "client.id": "fjord-compat-crash"})

    def delivered(err, msg):
        if err is None:
            sys.stdout.write(f"{int(msg.value())} {msg.offset()}\n")
            sys.stdout.flush()

    for i in range(count):
        while True:
            try:
                p.produce(topic, value=f"{i:08d}".encode(), key=b"crash", partition=0,
                          on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        if i % 200 == 199:
            time.sleep(0.002)  # a steady stream rather than one burst
    p.flush(120)


def run_kafka_python(bootstrap: str, topic: str, count: int) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                      client_id="fjord-compat-crash", max_block_ms=120000)

    def on_success(i):
        def cb(meta):
            sys.stdout.write(f"{i} {meta.offset}\n")
            sys.stdout.flush()
        return cb

    for i in range(count):
        p.send(topic, value=f"{i:08d}".encode(), key=b"crash", partition=0).add_callback(on_success(i))
        if i % 200 == 199:
            time.sleep(0.002)
    p.flush(120)


if __name__ == "__main__":
    bootstrap, topic, count, client = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    {"confluent-kafka": run_confluent, "kafka-python": run_kafka_python}[client](bootstrap, topic, count)
