"""Start, stop and crash the brokers under test: Fjord and Apache Kafka 4.1 (KRaft).

Both expose the same small interface:
    .kind       'fjord' | 'kafka'
    .bootstrap  '127.0.0.1:PORT'
    .data_dir   the broker's log.dirs (partition folders live here)
    .start() / .stop() / .kill9() / .restart()
Every wait is bounded; a broker that does not come up fails with the tail of its logs.
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
        if self.running():
            raise RuntimeError(f"{self.kind} broker already running (pid {self.proc.pid})")
        self._prepare()
        stdout = open(self.root / f"{self.kind}.stdout.log", "ab")
        stderr = open(self.root / f"{self.kind}.stderr.log", "ab")
        self._log_files = [stdout, stderr]
        self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=stderr, cwd=self.root, preexec_fn=_die_with_parent)
        _LIVE.add(self)
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
        cluster_id = _kafka_cluster_id()
        cmd = java_command("kafka.tools.StorageTool",
                           ["format", "--standalone", "-t", cluster_id, "-c", str(self.config_path)],
                           logs_dir=self.logs_dir, jvm_opts=["-Xmx256m"])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise BrokerStartError(f"kafka-storage format failed ({proc.returncode}):\n"
                                   f"{proc.stdout}\n{proc.stderr}\n{tail(self.logs_dir / 'server.log')}")

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


def _kafka_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: a random UUID, URL-safe base64 without padding,
    never starting with '-' (a command line would take it for an option)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
