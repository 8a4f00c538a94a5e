"""Start, stop and crash the brokers under test: Fjord and Apache Kafka 4.1 (KRaft).

Both expose the same small interface:
    .kind       'fjord' | 'kafka'
    .bootstrap  '127.0.0.1:PORT'
    .data_dir   the broker's log.dirs (partition folders live here)
    .start() / .stop() / .kill9() / .restart()   (.start() = .launch() + .wait_ready())
Every wait is bounded; a broker that does not come up fails with the tail of its logs.

`Cluster` is three nodes of one kind, each a broker and a controller (node i on 127.0.0.i, a
static voter set): `FjordClusterNode` and `KafkaClusterNode` (KRaft combined mode, every node
formatted with the same cluster id), made by `fjord_cluster(...)` / `kafka_cluster(...)`.
Brokers die with the test process (PR_SET_PDEATHSIG) and at interpreter exit.
"""
from __future__ import annotations

import atexit
import base64
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from . import wire
from .java import java_command

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0

_LIVE: set["Broker"] = set()
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@atexit.register
def _kill_leftovers() -> None:
    for b in list(_LIVE):
        b.kill9()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_on(hosts: list[str], attempts: int = 50) -> int:
    """A port that is free on every one of `hosts` (loopback addresses of a local cluster)."""
    for _ in range(attempts):
        port = free_port()
        try:
            for host in hosts:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no port free on all of {hosts} after {attempts} tries")


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])


class BrokerStartError(RuntimeError):
    pass


class Broker:
    kind = "?"

    def __init__(self, root: Path, port: int | None = None, extra: dict[str, str] | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.extra = dict(extra or {})
        self.proc: subprocess.Popen | None = None
        self.preexec = _die_with_parent  # Popen preexec_fn (netns.Netns.preexec wraps it)
        self._log_files = []

    # -- subclass hooks
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        pass

    def _diagnostics(self) -> str:
        raise NotImplementedError

    def _ready(self, conn: wire.RawConnection) -> bool:
        wire.api_versions_v0(conn)
        return True

    # -- lifecycle
    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        self.launch()
        self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Start the process without waiting for it to serve (a cluster node cannot serve
        before a quorum of its peers runs too)."""
        if self.running():
            raise RuntimeError(f"{self.kind} broker already running (pid {self.proc.pid})")
        self._prepare()
        stdout = open(self.root / f"{self.kind}.stdout.log", "ab")
        stderr = open(self.root / f"{self.kind}.stderr.log", "ab")
        self._log_files = [stdout, stderr]
        self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=stderr, cwd=self.root, preexec_fn=self.preexec)
        _LIVE.add(self)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until the launched broker answers; on failure it is killed (and the error has
        the tail of its logs)."""
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.kill9()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerStartError(
                    f"{self.kind} broker exited with {self.proc.returncode} during start-up\n"
                    + self._diagnostics())
            try:
                with wire.RawConnection(self.bootstrap, timeout_s=3.0) as conn:
                    if self._ready(conn):
                        return
            except (OSError, wire.ConnectionClosed, TimeoutError, ValueError, RuntimeError) as e:
                last_error = e
            time.sleep(0.2)
        raise BrokerStartError(
            f"{self.kind} broker not ready on {self.bootstrap} within {timeout_s}s "
            f"(last probe error: {last_error!r})\n" + self._diagnostics())

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the broker and reap it (what a power cut looks like, minus the page cache)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        self._closed()

    def stop(self) -> None:
        """Clean shutdown: SIGTERM, then SIGKILL if it takes longer than STOP_TIMEOUT_S."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._closed()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _closed(self) -> None:
        _LIVE.discard(self)
        for f in self._log_files:
            f.close()
        self._log_files = []

    def remove(self) -> None:
        self.kill9()
        shutil.rmtree(self.root, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<{self.kind} broker {self.bootstrap} data={self.data_dir}>"


class FjordBroker(Broker):
    kind = "fjord"

    def __init__(self, binary: Path, root: Path, port: int | None = None,
                 extra: dict[str, str] | None = None):
        super().__init__(root, port, extra)
        self.binary = Path(binary)

    def overrides(self) -> dict[str, str]:
        o = {
            "listeners": f"PLAINTEXT://{self.bootstrap}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "log.dirs": str(self.data_dir),
            "node.id": "1",
            "fjord.cores": "2",
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
        }
        o.update(self.extra)
        return o

    def _command(self) -> list[str]:
        if not os.access(self.binary, os.X_OK):
            raise BrokerStartError(f"Fjord binary {self.binary} is missing or not executable "
                                   "(build it with `cargo build --release` or set FJORD_BIN)")
        cmd = [str(self.binary)]
        for k, v in self.overrides().items():
            cmd += ["--override", f"{k}={v}"]
        return cmd

    def _diagnostics(self) -> str:
        return (f"--- command: {' '.join(self._command())}\n"
                f"--- fjord stderr (tail)\n{tail(self.root / 'fjord.stderr.log')}\n"
                f"--- fjord stdout (tail)\n{tail(self.root / 'fjord.stdout.log')}")


class KafkaBroker(Broker):
    """Apache Kafka 4.1, one node in KRaft combined mode (broker + controller)."""

    kind = "kafka"
    JVM_OPTS = ["-Xmx1g", "-Xms256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true"]

    def __init__(self, root: Path, port: int | None = None, extra: dict[str, str] | None = None):
        super().__init__(root, port, extra)
        self.controller_port = free_port()
        self.logs_dir = self.root / "logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.config_path = self.root / "server.properties"

    def properties(self) -> dict[str, str]:
        p = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        p.update(self.extra)
        return p

    def _prepare(self) -> None:
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        if (self.data_dir / "meta.properties").exists():
            return
        cmd = java_command("kafka.tools.StorageTool", self._format_args(),
                           logs_dir=self.logs_dir, jvm_opts=["-Xmx256m"])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise BrokerStartError(f"kafka-storage format failed ({proc.returncode}):\n"
                                   f"{proc.stdout}\n{proc.stderr}\n{tail(self.logs_dir / 'server.log')}")

    def _format_args(self) -> list[str]:
        """kafka-storage format for a lone node: a new cluster id, itself the only voter."""
        return ["format", "--standalone", "-t", _kafka_cluster_id(), "-c", str(self.config_path)]

    def _command(self) -> list[str]:
        return java_command("kafka.Kafka", [str(self.config_path)], logs_dir=self.logs_dir,
                            jvm_opts=self.JVM_OPTS)

    def _ready(self, conn: wire.RawConnection) -> bool:
        wire.api_versions_v0(conn)
        md = wire.metadata_v1(conn, [])
        return bool(md.brokers)

    def _diagnostics(self) -> str:
        return (f"--- kafka stdout/stderr (tail)\n{tail(self.root / 'kafka.stdout.log')}\n"
                f"{tail(self.root / 'kafka.stderr.log')}\n"
                f"--- kafka server.log (tail)\n{tail(self.logs_dir / 'server.log')}")


# --------------------------------------------------------------------------- clusters

CLUSTER_SIZE = 3


def cluster_hosts(size: int = CLUSTER_SIZE) -> list[str]:
    """Node i of a local cluster lives on 127.0.0.i (every 127/8 address is loopback)."""
    return [f"127.0.0.{i}" for i in range(1, size + 1)]


def static_voters(port: int, size: int = CLUSTER_SIZE, hosts: list[str] | None = None) -> str:
    """controller.quorum.voters for node i on hosts[i-1] (default 127.0.0.i):port, i = 1..size."""
    return ",".join(f"{i}@{host}:{port}" for i, host in enumerate(hosts or cluster_hosts(size), 1))


class FjordClusterNode(FjordBroker):
    """Fjord node `node_id` of a local cluster, on 127.0.0.`node_id`: broker and Raft voter."""

    def __init__(self, binary: Path, root: Path, node_id: int, port: int, controller_port: int,
                 voters: str, extra: dict[str, str] | None = None, host: str | None = None):
        super().__init__(binary, root, port=port, extra=extra)
        self.node_id = node_id
        self.host = host or f"127.0.0.{node_id}"
        self.bootstrap = f"{self.host}:{port}"
        self.controller_port = controller_port
        self.voters = voters

    def overrides(self) -> dict[str, str]:
        o = super().overrides()
        o.update({
            "node.id": str(self.node_id),
            "process.roles": "broker,controller",
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.voters": self.voters,
            "fjord.cores": "1",
        })
        o.update(self.extra)
        return o

    def __repr__(self) -> str:
        return f"<fjord node {self.node_id} {self.bootstrap} data={self.data_dir}>"


class KafkaClusterNode(KafkaBroker):
    """Apache Kafka 4.1 node `node_id` of a local cluster on 127.0.0.`node_id`: KRaft combined
    mode with a static voter set (controller.quorum.voters), formatted with the cluster's id
    (`kafka-storage format --cluster-id X --config ...`, no --standalone)."""

    JVM_OPTS = ["-Xmx768m", "-Xms256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true"]

    def __init__(self, root: Path, node_id: int, port: int, controller_port: int, voters: str,
                 cluster_id: str, extra: dict[str, str] | None = None, host: str | None = None):
        super().__init__(root, port=port, extra=extra)
        self.node_id = node_id
        self.host = host or f"127.0.0.{node_id}"
        self.bootstrap = f"{self.host}:{port}"
        self.controller_port = controller_port
        self.voters = voters
        self.cluster_id = cluster_id

    def properties(self) -> dict[str, str]:
        p = super().properties()
        del p["controller.quorum.bootstrap.servers"]
        p.update({
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
        })
        p.update(self.extra)
        return p

    def _format_args(self) -> list[str]:
        return ["format", "--cluster-id", self.cluster_id, "--config", str(self.config_path)]

    def __repr__(self) -> str:
        return f"<kafka node {self.node_id} {self.bootstrap} data={self.data_dir}>"


class Cluster:
    """Nodes of one kind that form one cluster. `bootstrap` names every node (clients that
    start with it survive any one node being down)."""

    def __init__(self, nodes: list[FjordClusterNode] | list[KafkaClusterNode]):
        self.nodes = list(nodes)
        self.kind = self.nodes[0].kind

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int):
        return next(n for n in self.nodes if n.node_id == node_id)

    def live(self) -> list:
        return [n for n in self.nodes if n.running()]

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Launch every node, then wait until each serves and every live node's Metadata lists
        every node."""
        try:
            for n in self.nodes:
                n.launch()
            deadline = time.monotonic() + timeout_s
            for n in self.nodes:
                n.wait_ready(max(1.0, deadline - time.monotonic()))
            self.wait_registered(max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.kill9()
            raise

    def wait_registered(self, timeout_s: float = 60.0) -> None:
        want = {n.node_id for n in self.nodes}
        deadline = time.monotonic() + timeout_s
        seen: dict[int, object] = {}
        while True:
            for n in self.live():
                try:
                    with wire.RawConnection(n.bootstrap, timeout_s=5.0) as conn:
                        seen[n.node_id] = sorted(b[0] for b in wire.metadata_v1(conn, []).brokers)
                except (OSError, wire.ConnectionClosed, TimeoutError, ValueError) as e:
                    seen[n.node_id] = repr(e)
            if all(seen.get(n.node_id) == sorted(want) for n in self.live()):
                return
            if time.monotonic() > deadline:
                raise BrokerStartError(f"{self.kind} cluster: not every node lists brokers {sorted(want)} "
                                       f"after {timeout_s}s (node -> brokers it lists: {seen})")
            time.sleep(0.2)

    def stop(self) -> None:
        """Clean shutdown of every node at once (one by one, the last ones would wait for a
        quorum that is gone)."""
        for n in self.nodes:
            if n.running():
                n.proc.send_signal(signal.SIGTERM)
        for n in self.nodes:
            n.stop()

    def kill9(self) -> None:
        for n in self.nodes:
            n.kill9()

    def __repr__(self) -> str:
        return f"<{self.kind} cluster {self.bootstrap}>"


def _two_ports(hosts: list[str]) -> tuple[int, int]:
    """Two distinct ports free on every host: the nodes' client and controller listeners."""
    port = free_port_on(hosts)
    while (controller_port := free_port_on(hosts)) == port:
        pass
    return port, controller_port


def fjord_cluster(binary: Path, roots: list[Path], extra: dict[str, str] | None = None,
                  netns=None) -> Cluster:
    """An unstarted Fjord cluster of len(roots) nodes (node i's files in roots[i-1]); with a
    netns.Netns that is up, node i binds netns.address(i) and runs in its namespace."""
    hosts = netns.hosts()[:len(roots)] if netns else cluster_hosts(len(roots))
    port, controller_port = _two_ports(["127.0.0.1"] if netns else hosts)
    voters = static_voters(controller_port, len(roots), hosts)
    return _in_netns(Cluster([FjordClusterNode(binary, root, i, port, controller_port, voters, extra,
                                               host=hosts[i - 1])
                              for i, root in enumerate(roots, 1)]), netns)


def _in_netns(cluster: Cluster, netns) -> Cluster:
    if netns is not None:
        for n in cluster.nodes:
            n.preexec = netns.preexec(n.node_id, then=_die_with_parent)
    return cluster


def kafka_cluster(roots: list[Path], extra: dict[str, str] | None = None, netns=None) -> Cluster:
    """An unstarted Apache Kafka cluster of len(roots) combined-mode nodes (netns: see fjord_cluster)."""
    hosts = netns.hosts()[:len(roots)] if netns else cluster_hosts(len(roots))
    port, controller_port = _two_ports(["127.0.0.1"] if netns else hosts)
    voters = static_voters(controller_port, len(roots), hosts)
    cluster_id = _kafka_cluster_id()
    return _in_netns(Cluster([KafkaClusterNode(root, i, port, controller_port, voters, cluster_id, extra,
                                               host=hosts[i - 1])
                              for i, root in enumerate(roots, 1)]), netns)


def _kafka_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: a random UUID, URL-safe base64 without padding,
    never starting with '-' (a command line would take it for an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
