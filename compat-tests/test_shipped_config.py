"""Kafka 4.1's own shipped `config/server.properties` (KRaft combined mode) starts either
broker, and clients work through it. The file is `server/tests/data/kafka-4.1-server.properties`
as published; only its ports, its `log.dirs` and (this machine binds loopback only) its
listener hosts are changed. DescribeConfigs for the broker then reports the file's values
with their source, for keys Fjord acts on and for those it accepts without effect alike.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import fjord_bin
from harness.brokers import FjordBroker, KafkaBroker, free_port
from harness.clients import create_topic, kp_producer, unique_topic

SHIPPED = Path(__file__).resolve().parent.parent / "server/tests/data/kafka-4.1-server.properties"


def shipped_text(port: int, controller_port: int, data_dir: Path) -> str:
    text = SHIPPED.read_text()
    text = text.replace("://:", "://127.0.0.1:").replace("localhost:", "127.0.0.1:")
    text = text.replace(":9092", f":{port}").replace(":9093", f":{controller_port}")
    return re.sub(r"(?m)^log\.dirs=.*$", f"log.dirs={data_dir}", text)


class FjordShipped(FjordBroker):
    def __init__(self, root: Path):
        super().__init__(fjord_bin(), root)
        self.controller_port = free_port()
        self.config_path = self.root / "server.properties"

    def _prepare(self) -> None:
        self.config_path.write_text(shipped_text(self.port, self.controller_port, self.data_dir))

    def _command(self) -> list[str]:
        return [str(self.binary), "--config", str(self.config_path)]


class KafkaShipped(KafkaBroker):
    def _prepare(self) -> None:
        text = shipped_text(self.port, self.controller_port, self.data_dir)
        # KafkaBroker._prepare formats the storage from self.config_path; write ours first.
        self.properties = lambda: dict(  # type: ignore[method-assign]
            line.split("=", 1) for line in text.splitlines()
            if line.strip() and not line.startswith("#"))
        super()._prepare()


@pytest.fixture
def shipped_broker(broker_kind, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"{broker_kind}-shipped")
    b = FjordShipped(root) if broker_kind == "fjord" else KafkaShipped(root)
    b.start()
    yield b
    b.kill9()


@pytest.mark.timeout(240)
def test_kafkas_shipped_server_properties_serve_a_producer_and_a_group(shipped_broker):
    from kafka import KafkaConsumer

    topic = unique_topic("shipped")
    create_topic(shipped_broker.bootstrap, topic, partitions=1)
    producer = kp_producer(shipped_broker.bootstrap, acks="all")
    sent = [f"m{i}".encode() for i in range(20)]
    try:
        for v in sent:
            producer.send(topic, v).get(timeout=30)
    finally:
        producer.close(5)
    consumer = KafkaConsumer(topic, bootstrap_servers=shipped_broker.bootstrap,
                             group_id=unique_topic("shipped-group"), auto_offset_reset="earliest",
                             enable_auto_commit=False, request_timeout_ms=30000)
    got = []
    try:
        deadline = time.monotonic() + 120
        while len(got) < len(sent) and time.monotonic() < deadline:
            for msgs in consumer.poll(timeout_ms=500).values():
                got.extend(m.value for m in msgs)
        consumer.commit()
    finally:
        consumer.close()
    assert got == sent


@pytest.mark.timeout(120)
def test_describe_configs_reports_the_shipped_files_values(shipped_broker):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=shipped_broker.bootstrap, request_timeout_ms=30000)
    try:
        r = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")],
                                   include_synonyms=True, config_filter="all")
    finally:
        admin.close()
    got = r["broker"]["1"]
    source = lambda c: getattr(c["config_source"], "name", c["config_source"])  # noqa: E731
    for name, value in [("num.io.threads", "8"), ("num.network.threads", "3"),
                        ("log.retention.hours", "168"), ("socket.send.buffer.bytes", "102400"),
                        ("transaction.state.log.replication.factor", "1"),
                        ("num.recovery.threads.per.data.dir", "1"),
                        ("offsets.topic.replication.factor", "1")]:
        assert (got[name]["value"], source(got[name])) == (value, "STATIC_BROKER_CONFIG"), name
    # A key the file leaves out: Kafka's default.
    assert (got["background.threads"]["value"], source(got["background.threads"])) == \
        ("10", "DEFAULT_CONFIG")
    # Kafka lists every non-internal key of its broker configuration.
    assert len(got) >= 300, len(got)
