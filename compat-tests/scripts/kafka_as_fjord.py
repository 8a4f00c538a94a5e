#!/usr/bin/env python3
"""Apache Kafka 4.1 behind Fjord's command line: a self-test of the suite's Fjord code path.

    FJORD_BIN=compat-tests/scripts/kafka_as_fjord.py FJORD_GROUPS=1 compat-tests/run.sh --broker fjord

Accepts `--override key=value` (and `--config file.properties`) as Fjord does, maps them onto a
single-node KRaft configuration, formats log.dirs on first start, then execs the JVM so that
this process *is* the broker (signals, kill -9 and exit codes behave as Fjord's would). The
controller listener's port is kept next to log.dirs so a restart reuses it.

With `controller.quorum.voters` (a cluster node, harness.brokers.FjordClusterNode) it runs a
node of a Kafka cluster instead: the listeners as given (PLAINTEXT and CONTROLLER), every node
formatted with a cluster id derived from the voter list, so the nodes agree without talking.
"""
import base64
import hashlib
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.brokers import KafkaBroker, KafkaClusterNode, free_port  # noqa: E402
from harness.java import java_command  # noqa: E402


def parse_args(argv: list[str]) -> dict[str, str]:
    props: dict[str, str] = {}
    it = iter(argv)
    for arg in it:
        if arg == "--override":
            k, _, v = next(it).partition("=")
            props[k] = v
        elif arg == "--config":
            for line in Path(next(it)).read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, _, v = line.partition("=")
                    props[k.strip()] = v.strip()
        else:
            sys.exit(f"kafka_as_fjord: unknown argument {arg!r}")
    return props


def cluster_node(root: Path, data_dir: Path, props: dict[str, str]) -> KafkaClusterNode:
    voters = props.pop("controller.quorum.voters")
    listeners = dict(reversed(x.split("://", 1)) for x in props.pop("listeners").split(","))
    inverse = {name: addr for addr, name in listeners.items()}
    host, port = inverse["PLAINTEXT"].rsplit(":", 1)
    _, controller_port = inverse["CONTROLLER"].rsplit(":", 1)
    node_id = int(props.pop("node.id"))
    assert host == f"127.0.0.{node_id}", (host, node_id)
    for k in ("advertised.listeners", "fjord.cores"):
        props.pop(k, None)
    # The same id on every node: 16 bytes of the voter list's hash, as kafka-storage prints ids.
    cluster_id = base64.urlsafe_b64encode(hashlib.sha256(voters.encode()).digest()[:16]).decode().rstrip("=")
    if cluster_id.startswith("-"):
        cluster_id = "A" + cluster_id[1:]
    node = KafkaClusterNode(root, node_id, int(port), int(controller_port), voters, cluster_id,
                            extra={"log.dirs": str(data_dir), **props})
    node.data_dir = data_dir
    return node


def main() -> None:
    props = parse_args(sys.argv[1:])
    data_dir = Path(props.pop("log.dirs"))
    root = data_dir.parent / (data_dir.name + ".kafka-shim")
    root.mkdir(parents=True, exist_ok=True)
    if "controller.quorum.voters" in props:
        node = cluster_node(root, data_dir, props)
        node._prepare()  # writes server.properties, formats data_dir once
        cmd = java_command("kafka.Kafka", [str(node.config_path)], logs_dir=node.logs_dir,
                           jvm_opts=KafkaClusterNode.JVM_OPTS)
        os.execvp(cmd[0], cmd)
    port_file = root / "controller.port"
    if not port_file.exists():
        port_file.write_text(str(free_port()))
    host, port = props.pop("listeners").split("://", 1)[1].rsplit(":", 1)
    assert host == "127.0.0.1", host
    props.pop("advertised.listeners", None)
    props.pop("fjord.cores", None)

    broker = KafkaBroker(root, port=int(port), extra={"log.dirs": str(data_dir), **props})
    broker.controller_port = int(port_file.read_text())
    broker.data_dir = data_dir
    broker._prepare()  # writes server.properties, formats data_dir once
    cmd = java_command("kafka.Kafka", [str(broker.config_path)], logs_dir=broker.logs_dir,
                       jvm_opts=KafkaBroker.JVM_OPTS)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
