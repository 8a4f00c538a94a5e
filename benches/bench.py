#!/usr/bin/env python3
"""Fjord vs Apache Kafka 4.1 on this machine, in one command (issue 6).

Usage: benches/run.sh [--quick] [--brokers fjord,kafka,kafka-flush1]
                      [--workloads W1,W2,W3,W4,W5,W6,R1] [--keep-work]

Builds Fjord and fjord-bench (release), resolves Kafka 4.1 jars from Maven Central
(cached in ${FJORD_CACHE:-~/.cache/fjord}/kafka-4.1.0/libs), creates a matplotlib
venv (${FJORD_CACHE}/bench-venv), then, one broker at a time on the same disk with a
fresh data directory, runs every workload with two load generators: fjord-bench
(benches/src/) and Kafka's own ProducerPerformance / ConsumerPerformance /
EndToEndLatency. Brokers:
  fjord          target/release/fjord, default durability (fdatasync before acking acks=all)
  kafka          Apache Kafka 4.1 as shipped (no fsync per write)
  kafka-flush1   Apache Kafka 4.1 with log.flush.interval.messages=1 (fsync per append)
Workloads:
  W1 peak produce, 1 KiB records, acks=1, 1 and 8 partitions
  W2 acks=all at a fixed 50 MB/s, 8 partitions: latency p50/p99/p99.9
  W3 consume 8 partitions from the tail and from the start (2 GiB; 256 MiB quick)
  W4 end-to-end latency at a fixed rate
  W5 cold start to first acknowledged produce, idle/peak RSS, CPU s per GB moved
  W6 10,000 partitions (2,000 quick): creation time, Metadata latency, RSS
  R1 (not in the default set) W2's load on a 3-node cluster (127.0.0.1-3, each node a
     broker and a controller), replication factor 3, min.insync.replicas=2; fjord and
     kafka only. The clusters are compat-tests/harness/brokers.py's.
The binaries: $CARGO_TARGET_DIR (default target/)/release/{fjord,fjord-bench}; FJORD_BIN
overrides the fjord binary (and then only fjord-bench is built).
Writes benches/results/<date>-<commit>.md (+ .json and PNG plots). Every step runs
under a timeout; every process started is stopped at the end (also on Ctrl-C).
"""

import argparse
import atexit
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("FJORD_CACHE", Path.home() / ".cache" / "fjord"))
KAFKA_LIBS = Path(os.environ.get("FJORD_KAFKA_LIBS", CACHE / "kafka-4.1.0" / "libs"))
KAFKA_POM = ROOT / "compat-tests" / "kafka" / "pom.xml"
KAFKA_LOG4J = ROOT / "compat-tests" / "kafka" / "log4j2.properties"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
BENCH = TARGET / "release" / "fjord-bench"
FJORD = Path(os.environ.get("FJORD_BIN") or TARGET / "release" / "fjord")
VENV = CACHE / "bench-venv"
MATPLOTLIB = "matplotlib==3.9.2"
RESULTS = ROOT / "benches" / "results"

# R1's 3-node clusters come from the compatibility suite's harness, which finds the Kafka
# jars through FJORD_KAFKA_LIBS.
os.environ["FJORD_KAFKA_LIBS"] = str(KAFKA_LIBS)
sys.path.insert(0, str(ROOT / "compat-tests"))
from harness.brokers import fjord_cluster, kafka_cluster  # noqa: E402

MIB = 1024 * 1024
LOOPBACK_CEILING_MB_S = 3200  # one TCP stream on this machine (shared/REFERENCE.md)
RECORD_BYTES = 1024
BATCH_RECORDS = 16  # fjord-bench batches; the Java producer gets the matching batch.size
JAVA_BATCH_SIZE = 17 * 1024  # fits 16 records of 1 KiB plus batch/record overhead
LINGER_MS = 5  # the Java producer's default in Kafka 4.x; fjord-bench sends full batches
W2_RATE_MB_S = 50  # MB/s (10^6 bytes) of record values
W4_RATE_MIB_S = 8
W3_TAIL_RECORDS = 4096  # per partition: the last 4 MiB of each of the 8 partitions
SHAPE = ["--record-bytes", str(RECORD_BYTES), "--batch-records", str(BATCH_RECORDS)]
R1_TOPIC = ["--replication-factor", "3", "--topic-config", "min.insync.replicas=2"]

BROKERS = {
    "fjord": "Fjord (default durability: fdatasync before acking acks=all)",
    "kafka": "Apache Kafka 4.1 as shipped (no fsync per write)",
    "kafka-flush1": "Apache Kafka 4.1, log.flush.interval.messages=1 (fsync per append)",
}
R1_BROKERS = ("fjord", "kafka")  # flush=1 could not take 50 MB/s
DEFAULT_BROKERS = "fjord,kafka,kafka-flush1"
DEFAULT_WORKLOADS = "W1,W2,W3,W4,W5,W6"  # R1 would add ~6 minutes to a ~9-minute run

T0 = time.monotonic()
CHILDREN = []  # Popen objects of long-running processes (brokers)


def log(msg):
    t = time.monotonic() - T0
    print(f"[{int(t // 60):02d}:{t % 60:04.1f}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

def stop(proc, grace=15):
    """TERM the process group of `proc`, then KILL it after `grace` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def stop_all():
    for p in CHILDREN:
        stop(p)


def run(cmd, timeout, out=None, env=None):
    """Runs `cmd` in its own process group, killed (the whole group) at `timeout`.
    Its stderr goes to the file `out` (None: discarded; "-": ours). Returns (exit code
    or None on timeout, stdout text)."""
    if out == "-":
        return _run(cmd, timeout, None, env)
    with open(out or os.devnull, "w") as err:
        return _run(cmd, timeout, err, env)


def _run(cmd, timeout, err, env):
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=err,
                            text=True, start_new_session=True, env=env)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
        return proc.returncode, stdout
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate()
        return None, stdout
    finally:  # also on Ctrl-C: never leave a load generator behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    """VmRSS and VmHWM of `pid` in MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out


def cpu_secs(pid):
    """utime + stime of `pid` in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------- setup

def build():
    packages = ["-p", "fjord-benches"] + ([] if os.environ.get("FJORD_BIN") else ["-p", "fjord"])
    log(f"building {' '.join(packages[1::2])} (cargo build --release) into {TARGET}")
    rc, _ = run(["cargo", "build", "--release", "-q", "--manifest-path", ROOT / "Cargo.toml"]
                + packages, 1800, out="-")
    if rc != 0:
        sys.exit("cargo build failed")


def ensure_kafka():
    if (KAFKA_LIBS / "kafka_2.13-4.1.0.jar").exists() and (KAFKA_LIBS / "kafka-tools-4.1.0.jar").exists():
        log(f"Kafka 4.1.0 jars cached in {KAFKA_LIBS}")
        return
    log(f"resolving Kafka 4.1.0 jars from Maven Central into {KAFKA_LIBS}")
    KAFKA_LIBS.mkdir(parents=True, exist_ok=True)
    rc, _ = run(["mvn", "-q", "-B", "-f", KAFKA_POM, "dependency:copy-dependencies",
                 "-DincludeScope=runtime", f"-DoutputDirectory={KAFKA_LIBS}"], 900, out="-")
    if rc != 0:
        sys.exit("mvn could not resolve the Kafka jars")


def ensure_venv():
    py = VENV / "bin" / "python"
    marker = VENV / ".installed"
    if marker.exists() and marker.read_text().strip() == MATPLOTLIB:
        return py
    log(f"creating {VENV} with {MATPLOTLIB}")
    rc, _ = run([sys.executable, "-m", "venv", VENV], 120, out="-")
    rc2, _ = run([py, "-m", "pip", "install", "-q", "--progress-bar", "off", MATPLOTLIB], 600, out="-")
    if rc != 0 or rc2 != 0:
        log("could not install matplotlib: the report will have no plots")
        return None
    marker.write_text(MATPLOTLIB + "\n")
    return py


def machine():
    def read(path):
        try:
            return Path(path).read_text()
        except OSError:
            return ""
    cpuinfo = read("/proc/cpuinfo")
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+)", read("/proc/meminfo"))
    df = subprocess.run(["df", "-hT", str(tempfile.gettempdir())], capture_output=True, text=True).stdout
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "cpu": model.group(1) if model else "?",
        "nproc": os.cpu_count(),
        "mem_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else "?",
        "kernel": os.uname().release,
        "disk": df.strip().splitlines()[-1] if df.strip() else "?",
        "java": java[0] if java else "?",
        "commit": commit + ("-dirty" if dirty else ""),
        "date": datetime.date.today().isoformat(),
    }


# ---------------------------------------------------------------- brokers

class Broker:
    """One running broker: its kind, address, pid, and measurements."""

    def __init__(self, kind, work):
        self.kind = kind
        self.dir = work / kind
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.bootstrap = self.addr
        self.proc = None

    def start(self):
        """Starts the broker and returns the Unix time (ms) of the spawn."""
        data = self.dir / "data"
        data.mkdir()
        logf = open(self.dir / "broker.log", "w")
        if self.kind == "fjord":
            cmd = [FJORD, "--override", f"listeners=PLAINTEXT://{self.addr}",
                   "--override", f"advertised.listeners=PLAINTEXT://{self.addr}",
                   "--override", f"log.dirs={data}",
                   # As for Kafka below: no initial rebalance delay for the consumer group.
                   "--override", "group.initial.rebalance.delay.ms=0"]
        else:
            cport = free_port()
            props = self.dir / "server.properties"
            props.write_text("\n".join([
                "process.roles=broker,controller", "node.id=1",
                f"controller.quorum.bootstrap.servers=127.0.0.1:{cport}",
                f"listeners=PLAINTEXT://{self.addr},CONTROLLER://127.0.0.1:{cport}",
                f"advertised.listeners=PLAINTEXT://{self.addr}",
                "controller.listener.names=CONTROLLER", "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={data}", "num.partitions=1",
                "offsets.topic.replication.factor=1", "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1", "group.initial.rebalance.delay.ms=0",
            ] + (["log.flush.interval.messages=1"] if self.kind == "kafka-flush1" else [])) + "\n")
            java = ["java", f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
                    f"-Dkafka.logs.dir={self.dir / 'logs'}", "-cp", f"{KAFKA_LIBS}/*"]
            rc, cid = run(java + ["kafka.tools.StorageTool", "random-uuid"], 60)
            rc2, _ = run(java + ["kafka.tools.StorageTool", "format", "--standalone", "-t",
                                 cid.strip().splitlines()[-1], "-c", props], 60)
            if rc != 0 or rc2 != 0:
                raise RuntimeError("kafka-storage format failed")
            # JVM options as kafka-server-start.sh sets them.
            cmd = java[:3] + ["-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                              "-XX:InitiatingHeapOccupancyPercent=35",
                              "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
                              "-cp", f"{KAFKA_LIBS}/*", "kafka.Kafka", props]
        spawned_ms = time.time() * 1000
        self.proc = subprocess.Popen([str(c) for c in cmd], stdout=logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        CHILDREN.append(self.proc)
        return spawned_ms

    @property
    def pid(self):
        return self.proc.pid

    def cpu(self):
        return cpu_secs(self.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc:
            stop(self.proc)


class ClusterBroker:
    """R1's 3-node cluster (harness.brokers.Cluster: node i on 127.0.0.i, a broker and a
    controller, static voters), as Runner sees a broker: fjord-bench bootstraps from node 1,
    the Java tools from every node; CPU is the sum over the nodes."""

    def __init__(self, kind, work):
        self.kind = kind
        self.dir = work / f"{kind}-R1"
        roots = [self.dir / f"node{i}" for i in (1, 2, 3)]
        self.cluster = fjord_cluster(FJORD, roots) if kind == "fjord" else kafka_cluster(roots)
        self.addr = self.cluster.nodes[0].bootstrap
        self.bootstrap = self.cluster.bootstrap

    def start(self):
        self.cluster.start()

    def cpu(self):
        return sum(cpu_secs(n.proc.pid) for n in self.cluster.live())

    def alive(self):
        return len(self.cluster.live()) == len(self.cluster.nodes)

    def stop(self):
        self.cluster.stop()


# ---------------------------------------------------------------- load generators

def parse_results(text):
    """`RESULT <phase> k=v ...` lines -> {phase: {k: float}}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "RESULT":
            kv = {}
            for p in parts[2:]:
                k, _, v = p.partition("=")
                try:
                    kv[k] = float(v)
                except ValueError:
                    pass
            out[parts[1]] = kv
    return out


def with_mb(r):
    """Adds MB/s (10^6 bytes) to a result with MiB/s."""
    if r.get("mib_per_sec") is not None:
        r["mb_per_sec"] = r["mib_per_sec"] * MIB / 1e6
    return r


class Runner:
    """Runs the workloads against one broker and collects results in `res`."""

    def __init__(self, broker, args, work):
        self.b = broker
        self.args = args
        self.work = work
        self.res = {}
        self.cpu = {}  # step -> (broker cpu seconds, bytes moved)
        self.n = 0

    def step(self, name, cmd, timeout):
        """Runs one load-generator command; returns its stdout or None on failure."""
        self.n += 1
        errf = self.b.dir / f"{self.n:02d}-{name}.err"
        cpu0 = self.b.cpu()
        t = time.monotonic()
        rc, out = run(cmd, timeout, out=errf)
        cpu = self.b.cpu() - cpu0 if self.b.alive() else None
        (self.b.dir / f"{self.n:02d}-{name}.out").write_text(out or "")
        took = time.monotonic() - t
        if rc != 0:
            why = "timed out" if rc is None else f"exit {rc}"
            lines = errf.read_text().strip().splitlines() if errf.exists() else []
            # The error itself, not the backtrace after it (RUST_BACKTRACE may be set).
            errors = [l for l in lines if l.startswith(("Error", "Caused by", "Exception"))]
            tail = errors[:2] or lines[-3:]
            log(f"  {self.b.kind} {name}: FAILED ({why}, {took:.0f}s): {' | '.join(tail)}")
            return None, cpu
        return out, cpu

    def bench(self, name, sub, extra, timeout):
        out, cpu = self.step(name, [BENCH, sub, "--bootstrap", self.b.addr] + extra, timeout)
        if out is None:
            return {}
        r = parse_results(out)
        moved = sum(v.get("bytes", 0) for v in r.values())
        if cpu is not None and moved:
            self.cpu[name] = (cpu, moved)
        summary = ", ".join(f"{ph}: " + " ".join(f"{k}={v:g}" for k, v in kv.items()
                                                  if k in ("mib_per_sec", "p50_us", "p99_us",
                                                           "p999_us", "create_ms", "errors"))
                            for ph, kv in r.items())
        log(f"  {self.b.kind} {name}: {summary}")
        return r

    def java(self, name, main, argv, timeout):
        cmd = ["java", "-Xms256m", "-Xmx512m", f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
               f"-Dkafka.logs.dir={self.b.dir / 'tool-logs'}", "-cp", f"{KAFKA_LIBS}/*",
               f"org.apache.kafka.tools.{main}"] + argv
        out, _ = self.step(name, cmd, timeout)
        return out

    def producer_perf(self, name, topic, records, throughput, acks):
        out = self.java(name, "ProducerPerformance", [
            "--topic", topic, "--num-records", str(records), "--record-size", str(RECORD_BYTES),
            "--throughput", str(throughput), "--producer-props",
            f"bootstrap.servers={self.b.bootstrap}", f"acks={acks}",
            f"batch.size={JAVA_BATCH_SIZE}",
            f"linger.ms={LINGER_MS}", "compression.type=none", "enable.idempotence=false",
            "max.in.flight.requests.per.connection=5", "buffer.memory=67108864",
        ], self.args.phase * 3 + 120)
        # "N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency,
        #  p50 ms 50th, p95 ms 95th, p99 ms 99th, p999 ms 99.9th."
        m = re.findall(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg "
                       r"latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms "
                       r"99th, (\d+) ms 99.9th", out or "")
        if not m:
            return {}
        n, rps, mbs, avg, mx, p50, p95, p99, p999 = map(float, m[-1])
        r = {"records": n, "mib_per_sec": rps * RECORD_BYTES / MIB, "p50_ms": p50,
             "p99_ms": p99, "p999_ms": p999, "avg_ms": avg}
        log(f"  {self.b.kind} {name}: {r['mib_per_sec']:.1f} MiB/s, p50 {p50:g} ms, "
            f"p99 {p99:g} ms, p99.9 {p999:g} ms")
        return r

    def settle(self):
        """Writes dirty pages back before a workload, so that the writeback of one
        workload's gigabytes does not land in the next one's fsync latencies."""
        t = time.monotonic()
        os.sync()
        log(f"  sync before the next workload: {time.monotonic() - t:.1f}s")

    def create(self, topic, partitions, extra=()):
        self.bench(f"create-{topic}", "partitions", ["--topic", topic, "--partitions",
                                                     str(partitions), "--metadata-requests", "1",
                                                     *extra], 120)

    # ---- workloads

    def at_rate(self, step, topic, opts, secs, extra):
        """fjord-bench, acks=all at W2_RATE_MB_S to 8 partitions of `topic` (created with the
        fjord-bench options `opts`) for `secs`: its produce result, with MB/s."""
        r = self.bench(step, "produce", [
            "--topic", topic, "--partitions", "8", *opts, "--acks", "-1", "--rate-mib",
            f"{W2_RATE_MB_S * 1e6 / MIB:.3f}", "--duration-secs", str(secs), *extra] + SHAPE,
            secs + 120)
        return with_mb(r.get("produce", {}))

    def acks_all_at_rate(self, name, tools, topic=()):
        """W2 and R1: acks=all at W2_RATE_MB_S to 8 partitions (created with the fjord-bench
        options `topic`), fjord-bench, then ProducerPerformance if `tools`."""
        d, prefix = self.args.phase, name.lower()
        self.res[f"{name}.fb"] = self.at_rate(f"{name}-fb", f"{prefix}-fb", topic, d,
                                              ["--inflight", "64", "--warmup-secs", "1"])
        if tools:
            self.create(f"{prefix}-java", 8, topic)
            self.res[f"{name}.java"] = with_mb(self.producer_perf(
                f"{name}-java", f"{prefix}-java", int(W2_RATE_MB_S * 1e6 / RECORD_BYTES * d),
                int(W2_RATE_MB_S * 1e6 / RECORD_BYTES), "all"))

    def run_r1(self):
        """R1: a warm-up, then W2's load on the 3-node cluster, topic RF=3, min ISR 2, once on
        one connection per leader (as W2 and the Java client), once on 4. Three Kafka JVMs on
        2 cores take minutes to reach 50 MB/s of acks=all (JIT), so the warm-up repeats 10 s
        rounds at that rate until a round achieves it (or r1_warmup seconds have passed)."""
        t0 = time.monotonic()
        log(f"  {self.b.kind} R1 warm-up: 10 s rounds of acks=all at {W2_RATE_MB_S} MB/s, 4 "
            f"connections per leader, until one achieves it (at most {self.args.r1_warmup} s)")
        i = 0
        while True:
            i += 1
            r = self.at_rate(f"R1-warmup{i}", "r1-warmup", R1_TOPIC, 10, ["--connections", "4"])
            if (r.get("mb_per_sec", 0) >= 0.97 * W2_RATE_MB_S
                    or time.monotonic() - t0 >= self.args.r1_warmup):
                break
        self.res["R1.warmup_s"] = time.monotonic() - t0
        self.settle()
        self.acks_all_at_rate("R1", True, R1_TOPIC)
        if "R1-fb" in self.cpu:
            cpu, moved = self.cpu["R1-fb"]
            self.res["R1.cpu_s_per_gb"] = cpu / (moved / 1e9)
        self.res["R1.fb4"] = self.at_rate("R1-fb4", "r1-fb4", R1_TOPIC, self.args.phase, [
            "--connections", "4", "--inflight", "16", "--warmup-secs", "1"])

    def run_all(self, workloads, spawned_ms):
        a, b, res = self.args, self.b, self.res
        d = a.phase
        common = SHAPE
        # The probe is also the readiness wait, so it runs whatever the workloads.
        r = self.bench("W5-probe", "probe", ["--timeout-secs", "120"], 130)
        if "probe" not in r:
            raise RuntimeError("the broker never acknowledged a produce")
        res["W5.start_ms"] = r["probe"]["acked_unix_ms"] - spawned_ms
        log(f"  {b.kind} W5 cold start to first acknowledged produce: {res['W5.start_ms']:.0f} ms")
        time.sleep(2)
        res["W5.idle_rss_mib"] = proc_status(b.pid)["VmRSS"]
        log(f"  {b.kind} warm-up: {d}s unmeasured produce to 8 partitions")
        self.bench("warmup", "produce", ["--topic", "warmup", "--partitions", "8",
                                         "--duration-secs", str(d)] + common, d + 120)
        self.cpu.pop("warmup", None)

        # With an fsync per append Kafka moves ~1-2 MiB/s here: the Java tools' fixed
        # record counts would take minutes, and W3 (reads) and W6 do not depend on the
        # flush setting, so flush=1 runs only fjord-bench's W1, W2 and W4.
        tools = b.kind != "kafka-flush1"
        if "W1" in workloads:
            self.settle()
            for p in (1, 8):
                r = self.bench(f"W1-fb-p{p}", "produce", [
                    "--topic", f"w1-fb-p{p}", "--partitions", str(p), "--acks", "1",
                    "--inflight", "8", "--duration-secs", str(d)] + common, d + 120)
                res[f"W1.fb.p{p}"] = r.get("produce", {})
            for p in (1, 8) if tools else ():
                self.create(f"w1-java-p{p}", p)
                res[f"W1.java.p{p}"] = self.producer_perf(
                    f"W1-java-p{p}", f"w1-java-p{p}", a.java_records, -1, 1)

        if "W2" in workloads:
            self.settle()
            self.acks_all_at_rate("W2", tools)

        if "W3" in workloads and tools:
            self.settle()
            r = self.bench("W3-fill", "produce", [
                "--topic", "w3", "--partitions", "8", "--acks", "1", "--total-mib",
                str(a.w3_mib), "--duration-secs", "600"] + common, 660)
            res["W3.fill"] = r.get("produce", {})
            r = self.bench("W3-fb-start", "fetch", ["--topic", "w3", "--partitions", "8",
                                                    "--once", "--duration-secs", "600"], 660)
            res["W3.fb.start"] = r.get("fetch", {})
            r = self.bench("W3-fb-tail", "fetch", [
                "--topic", "w3", "--partitions", "8", "--tail-records", str(W3_TAIL_RECORDS),
                "--duration-secs", str(d)], d + 120)
            res["W3.fb.tail"] = r.get("fetch", {})
            records = int(a.w3_mib * MIB / RECORD_BYTES)
            out = self.java("W3-java-start", "ConsumerPerformance", [
                "--bootstrap-server", b.addr, "--topic", "w3", "--messages", str(records),
                "--group", f"perf-{b.kind}", "--timeout", "30000"], 600)
            # header: start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg,
            # nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
            row = [l for l in (out or "").splitlines() if re.match(r"^\d{4}-", l)]
            if row:
                f = [x.strip() for x in row[-1].split(",")]
                res["W3.java.start"] = {"mib_per_sec": float(f[8]), "overall_mib_per_sec": float(f[3]),
                                        "records": float(f[4])}
                log(f"  {b.kind} W3-java-start: {float(f[8]):.1f} MB/s while fetching "
                    f"({float(f[3]):.1f} overall, {float(f[4]):.0f} records)")

        if "W4" in workloads:
            self.settle()
            r = self.bench("W4-fb", "e2e", [
                "--topic", "w4-fb", "--partitions", "1", "--acks", "1", "--rate-mib",
                str(W4_RATE_MIB_S), "--duration-secs", str(d), "--warmup-secs", "1"] + common, d + 120)
            res["W4.fb"] = r.get("e2e", {})
            if tools:
                self.create("w4-java", 1)
            out = None if not tools else self.java("W4-java", "EndToEndLatency", [
                b.addr, "w4-java", str(a.e2e_messages), "1", str(RECORD_BYTES)], 300)
            m = re.search(r"Percentiles: 50th = (\d+), 99th = (\d+), 99.9th = (\d+)", out or "")
            avg = re.search(r"Avg latency: ([\d.]+) ms", out or "")
            if m:
                res["W4.java"] = {"p50_ms": float(m.group(1)), "p99_ms": float(m.group(2)),
                                  "p999_ms": float(m.group(3)),
                                  "avg_ms": float(avg.group(1)) if avg else None}
                log(f"  {b.kind} W4-java: p50 {m.group(1)} ms, p99 {m.group(2)} ms, "
                    f"p99.9 {m.group(3)} ms (avg {avg.group(1) if avg else '?'} ms)")

        if b.alive():  # VmHWM only grows: this is the peak over start-up and W1-W4
            res["W5.peak_rss_mib"] = proc_status(b.pid)["VmHWM"]
        if "W6" in workloads and tools:
            self.settle()
            r = self.bench("W6", "partitions", [
                "--topic", "w6", "--partitions", str(a.w6_partitions), "--topics",
                str(a.w6_partitions // 1000), "--metadata-requests", "100",
                "--timeout-secs", "400"], 460)
            res["W6"] = r.get("partitions", {})
            if b.alive():
                res["W6"]["rss_mib"] = proc_status(b.pid)["VmRSS"]

        # W5: broker CPU per GB moved (fjord-bench steps only), peak RSS.
        for kind, steps in (("produce", ("W1-fb-p1", "W1-fb-p8")),
                            ("fetch", ("W3-fb-start", "W3-fb-tail"))):
            cpu = sum(self.cpu[s][0] for s in steps if s in self.cpu)
            moved = sum(self.cpu[s][1] for s in steps if s in self.cpu)
            if moved:
                res[f"W5.cpu_s_per_gb_{kind}"] = cpu / (moved / 1e9)


# ---------------------------------------------------------------- report

def g(res, kind, key, field=None):
    v = res.get(kind, {}).get(key)
    if field is not None:
        v = v.get(field) if isinstance(v, dict) else None
    return v


def fmt(v, digits=1):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(f, k):
    if f is None or k is None or k == 0:
        return "–"
    r = f / k
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"


def table(res, kinds, rows, title, note):
    """rows: (label, key, field, better) where better is 'higher' or 'lower'."""
    if all(g(res, k, key, field) is None for k in kinds for _, key, field, _ in rows):
        return None  # not run: report() leaves it out
    lines = [f"### {title}", "", note, ""] if note else [f"### {title}", ""]
    head = ["metric"] + [k for k in kinds]
    if "fjord" in kinds:
        head += [f"fjord/{k}" for k in kinds if k != "fjord"]
    head.append("better")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for label, key, field, better in rows:
        vals = [g(res, k, key, field) for k in kinds]
        cells = [label] + [fmt(v) for v in vals]
        if "fjord" in kinds:
            f = g(res, "fjord", key, field)
            cells += [ratio(f, g(res, k, key, field)) for k in kinds if k != "fjord"]
        cells.append(f"{better} is better")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


TARGETS_HEAD = "| target | Fjord/Kafka | goal | |\n|---|---|---|---|\n"


def target(name, f, k, cmp, goal):
    """One row of a targets table: Fjord's value `f` against Kafka's `k`."""
    if f is None or k is None or k == 0:
        return f"| {name} | – | – | not measured |"
    r = f / k
    ok = r >= goal if cmp == ">=" else r <= goal
    return f"| {name} | {ratio(f, k)} | {cmp} {goal}× | {'met' if ok else '**missed**'} |"


def targets(res):
    """The issue's targets, checked against Kafka as shipped."""
    out = []

    def check(name, f, k, cmp, goal):
        out.append(target(name, f, k, cmp, goal))

    for p in (1, 8):
        check(f"W1 fjord-bench produce, {p} partition(s)", g(res, "fjord", f"W1.fb.p{p}", "mib_per_sec"),
              g(res, "kafka", f"W1.fb.p{p}", "mib_per_sec"), ">=", 3)
    best = max([g(res, "fjord", f"W1.fb.p{p}", "mib_per_sec") or 0 for p in (1, 8)])
    if best:
        share = best * MIB / 1e6 / LOOPBACK_CEILING_MB_S
        out.append(f"| W1 best produce vs loopback ceiling ({LOOPBACK_CEILING_MB_S} MB/s) | "
                   f"{share:.2f} | >= 0.5 | {'met' if share >= 0.5 else '**missed**'} |")
    check("W2 p99 (Fjord with fsync vs Kafka without)", g(res, "fjord", "W2.fb", "p99_us"),
          g(res, "kafka", "W2.fb", "p99_us"), "<=", 0.2)
    check("W3 consume from start", g(res, "fjord", "W3.fb.start", "mib_per_sec"),
          g(res, "kafka", "W3.fb.start", "mib_per_sec"), ">=", 2)
    check("W3 consume from tail", g(res, "fjord", "W3.fb.tail", "mib_per_sec"),
          g(res, "kafka", "W3.fb.tail", "mib_per_sec"), ">=", 2)
    check("W4 end-to-end p99", g(res, "fjord", "W4.fb", "p99_us"), g(res, "kafka", "W4.fb", "p99_us"),
          "<=", 0.25)
    check("W5 peak RSS", g(res, "fjord", "W5.peak_rss_mib"), g(res, "kafka", "W5.peak_rss_mib"), "<=", 0.1)
    check("W5 idle RSS", g(res, "fjord", "W5.idle_rss_mib"), g(res, "kafka", "W5.idle_rss_mib"), "<=", 0.1)
    check("W5 start-up", g(res, "fjord", "W5.start_ms"), g(res, "kafka", "W5.start_ms"), "<=", 0.05)
    return TARGETS_HEAD + "\n".join(out) + "\n"


def report(data, plots):
    res, m, a = data["results"], data["machine"], data["settings"]
    kinds = [k for k in BROKERS if k in res]
    s = []
    s.append(f"# Fjord vs Apache Kafka 4.1 — {m['date']}, commit {m['commit']}\n")
    opts = "".join(f" --{k} {a[k]}" for k, v in (("brokers", DEFAULT_BROKERS),
                                                  ("workloads", DEFAULT_WORKLOADS))
                   if a.get(k, v) != v)
    s.append(f"Command: `benches/run.sh{' --quick' if a['quick'] else ''}{opts}` "
             f"({'quick' if a['quick'] else 'full'} run, {a['phase']} s phases, "
             f"took {data['took_s'] / 60:.1f} min).\n")
    loads = [float(v.split()[0]) for la in data["loadavg"].values() for v in la.values()]
    if loads and max(loads) > (m["nproc"] or 1):
        s.append(f"**Noisy run:** the 1-minute load average reached {max(loads):.1f} on "
                 f"{m['nproc']} vCPUs (other work shared the machine), so these numbers say "
                 "more about the machinery than about either broker; compare brokers only "
                 "where their load averages below are alike.\n")
    s.append("## Machine\n")
    s.append(f"- CPU: {m['cpu']}, {m['nproc']} vCPUs (nproc); memory {m['mem_gib']} GiB; "
             f"kernel {m['kernel']}; {m['java']}")
    s.append(f"- Disk (df -hT of the data directories): `{m['disk']}`")
    s.append("- Load average (1/5/15 min) sampled before and after each broker — the machine "
             "was shared, so judge the noise by these:\n")
    s.append("| broker | before | after |\n|---|---|---|")
    for k, la in data["loadavg"].items():
        s.append(f"| {k} | {la.get('before', '–')} | {la.get('after', '–')} |")
    s.append("")
    s.append("## Settings\n")
    for k in kinds:
        s.append(f"- **{k}**: {BROKERS[k]}")
    s.append(f"""- W1-W6, same for every broker: replication factor 1, one broker on 127.0.0.1, fresh
  data directory on the same disk, brokers run one at a time (never competing for the 2 cores),
  each first takes a {a['phase']} s unmeasured produce warm-up (the JVM needs it), and
  dirty pages are written back (`sync`) before each workload, so one workload's
  writeback does not land in the next one's latencies.
  Kafka runs with kafka-server-start.sh's JVM options (-Xms1g -Xmx1g, G1).
- Records: {RECORD_BYTES} B values, no key, no headers, **no compression**.
- **fjord-bench** (benches/src/, Rust, one connection, one thread): pre-encoded v2 batches of
  {BATCH_RECORDS} records (~16.4 KiB), full batches (no linger), 8 requests in flight
  (W1), no idempotence. Produce latency is per request, timed from the scheduled send time in
  fixed-rate runs (no coordinated omission). Fetch: 1 MiB per partition per request, one
  request per partition outstanding, pipelined on one connection.
- **Kafka's tools** (Java client 4.1, a JVM on the same 2 cores as the broker):
  ProducerPerformance with acks as the workload says, batch.size={JAVA_BATCH_SIZE}
  (16 records of 1 KiB), linger.ms={LINGER_MS}, compression.type=none,
  enable.idempotence=false, max.in.flight.requests.per.connection=5; its latency is per record
  (send() to callback, including time waiting in the batch). ConsumerPerformance with its
  defaults (fetch.max.bytes 50 MiB, max.partition.fetch.bytes 1 MiB, group {'perf-<broker>'}).
  EndToEndLatency sends one record at a time (acks=1) and waits for it to be consumed,
  so it is not at a fixed rate; it reports whole milliseconds.
- W1: {a['phase']} s per fjord-bench run; ProducerPerformance sends {a['java_records']:,} records.
- W2: {W2_RATE_MB_S} MB/s of record values over 8 partitions, acks=all, {a['phase']} s.
- W3: {a['w3_mib']} MiB of record values in 8 partitions written with acks=1, then read once
  from offset 0 ("start") and, for {a['phase']} s, the last {W3_TAIL_RECORDS} records of
  every partition over and over ("tail"). Data is in the page cache for both brokers
  ({a['w3_mib']} MiB on a {m['mem_gib']} GiB machine; caches are not dropped).
- W4: fjord-bench produces {W4_RATE_MIB_S} MiB/s ({BATCH_RECORDS}-record batches, acks=1) to one
  partition while a second connection long-polls Fetch; latency from scheduled send to
  fetch response. EndToEndLatency: {a['e2e_messages']:,} messages.
- W5: start-up = broker process spawn to the first acknowledged produce (fjord-bench probe:
  connect, CreateTopics, Produce acks=1); Kafka's storage format step runs before the timer
  starts. RSS from /proc/<pid>/status (VmRSS 2 s after start-up; VmHWM after W1-W4,
  before W6, which is reported on its own). CPU from /proc/<pid>/stat utime+stime of the broker during the fjord-bench
  W1 runs (produce) and W3 reads (fetch), per 10^9 bytes of record values/batches moved.
- W6: {a['w6_partitions']:,} partitions in topics of 1,000 (Kafka's controller refuses one
  operation of over 10,000 records, so one topic of 10,000 partitions fails), created one
  CreateTopics after another; creation time until Metadata shows a leader for every
  partition; then 100 Metadata requests naming those topics, one after another.
- Kafka with flush=1 moves only a few MiB/s here, so it runs fjord-bench's W1, W2 and W4
  (and W5) only: the Java tools' fixed record counts would take minutes, and W3 (reads) and
  W6 (metadata) do not depend on the flush setting.
""")
    r1 = [k for k in kinds if any(key.startswith("R1.") for key in res[k])]
    if r1:
        s.append(f"""- R1: W2's load (fjord-bench, then ProducerPerformance with bootstrap.servers naming
  all three nodes) on a 3-node cluster of each broker, started after the single-node runs,
  one cluster at a time: node i on 127.0.0.i, each a broker and a controller (combined mode,
  static voters; compat-tests/harness/brokers.py). Topics of 8 partitions, replication factor
  3, min.insync.replicas=2; acks=all. fjord-bench opens one connection per partition leader
  (64 requests in flight each), each request carrying a batch for every partition that node
  leads. Fjord nodes run with fjord.cores=1 and fdatasync before acking (its default); Kafka
  nodes as shipped (no fsync per write), -Xmx768m. Warm-up: unmeasured 10 s rounds of
  acks=all at {W2_RATE_MB_S} MB/s on 4 connections per leader until one achieves that rate
  (at most {a.get('r1_warmup', '?')} s): three Kafka JVMs on 2 cores need minutes of load
  (JIT) before they take 50 MB/s. Then {a['phase']} s phases: fjord-bench as in W2 (one
  connection per leader, 64 in flight), ProducerPerformance, and fjord-bench on 4
  connections per leader (16 in flight each): Kafka serves one request per connection at a
  time, so on one connection its acks=all throughput is one request per replication round
  trip. CPU: the three nodes' utime+stime during the one-connection fjord-bench run.
""")
    s.append("## Results\n")
    s.append("Ratios are Fjord/Kafka. Dashes: not measured or failed (see the run's log).\n")
    s.append(table(res, kinds, [
        ("fjord-bench, 1 partition (MiB/s)", "W1.fb.p1", "mib_per_sec", "higher"),
        ("fjord-bench, 8 partitions (MiB/s)", "W1.fb.p8", "mib_per_sec", "higher"),
        ("fjord-bench, 8 partitions, request p99 (µs)", "W1.fb.p8", "p99_us", "lower"),
        ("ProducerPerformance, 1 partition (MiB/s)", "W1.java.p1", "mib_per_sec", "higher"),
        ("ProducerPerformance, 8 partitions (MiB/s)", "W1.java.p8", "mib_per_sec", "higher"),
    ], "W1 — peak produce throughput, 1 KiB records, acks=1",
        f"Loopback ceiling for reference: one TCP stream ≈ {LOOPBACK_CEILING_MB_S} MB/s "
        f"({LOOPBACK_CEILING_MB_S * 1e6 / MIB:,.0f} MiB/s)."))
    s.append(table(res, kinds, [
        ("fjord-bench achieved (MiB/s)", "W2.fb", "mib_per_sec", "higher"),
        ("fjord-bench request p50 (µs)", "W2.fb", "p50_us", "lower"),
        ("fjord-bench request p99 (µs)", "W2.fb", "p99_us", "lower"),
        ("fjord-bench request p99.9 (µs)", "W2.fb", "p999_us", "lower"),
        ("ProducerPerformance achieved (MiB/s)", "W2.java", "mib_per_sec", "higher"),
        ("ProducerPerformance record p50 (ms)", "W2.java", "p50_ms", "lower"),
        ("ProducerPerformance record p99 (ms)", "W2.java", "p99_ms", "lower"),
        ("ProducerPerformance record p99.9 (ms)", "W2.java", "p999_ms", "lower"),
    ], f"W2 — acks=all at a fixed {W2_RATE_MB_S} MB/s, 8 partitions", ""))
    s.append(table(res, kinds, [
        ("fjord-bench fill, acks=1 (MiB/s)", "W3.fill", "mib_per_sec", "higher"),
        ("fjord-bench from the start (MiB/s)", "W3.fb.start", "mib_per_sec", "higher"),
        ("fjord-bench from the tail (MiB/s)", "W3.fb.tail", "mib_per_sec", "higher"),
        ("ConsumerPerformance from the start, fetch MB/s", "W3.java.start", "mib_per_sec", "higher"),
    ], f"W3 — consume throughput, 8 partitions, {a['w3_mib']} MiB", ""))
    s.append(table(res, kinds, [
        ("fjord-bench p50 (µs)", "W4.fb", "p50_us", "lower"),
        ("fjord-bench p99 (µs)", "W4.fb", "p99_us", "lower"),
        ("fjord-bench p99.9 (µs)", "W4.fb", "p999_us", "lower"),
        ("fjord-bench batches not delivered within 10 s", "W4.fb", "unseen", "lower"),
        ("EndToEndLatency p50 (ms)", "W4.java", "p50_ms", "lower"),
        ("EndToEndLatency p99 (ms)", "W4.java", "p99_ms", "lower"),
        ("EndToEndLatency p99.9 (ms)", "W4.java", "p999_ms", "lower"),
        ("EndToEndLatency average (ms)", "W4.java", "avg_ms", "lower"),
    ], f"W4 — end-to-end latency (fjord-bench at {W4_RATE_MIB_S} MiB/s)", ""))
    s.append(table(res, kinds, [
        ("cold start to first acknowledged produce (ms)", "W5.start_ms", None, "lower"),
        ("idle RSS (MiB)", "W5.idle_rss_mib", None, "lower"),
        ("peak RSS over W1-W4, VmHWM (MiB)", "W5.peak_rss_mib", None, "lower"),
        ("broker CPU s per GB produced", "W5.cpu_s_per_gb_produce", None, "lower"),
        ("broker CPU s per GB fetched", "W5.cpu_s_per_gb_fetch", None, "lower"),
    ], "W5 — start-up, memory, CPU", ""))
    s.append(table(res, kinds, [
        ("creation until all have leaders (ms)", "W6", "create_ms", "lower"),
        ("CreateTopics answered after (ms)", "W6", "create_answer_ms", "lower"),
        ("Metadata for the topic p50 (µs)", "W6", "metadata_p50_us", "lower"),
        ("Metadata for the topic p99 (µs)", "W6", "metadata_p99_us", "lower"),
        ("RSS after (MiB)", "W6", "rss_mib", "lower"),
    ], f"W6 — {a['w6_partitions']:,} partitions", ""))
    s.append(table(res, r1, [
        ("fjord-bench achieved (MB/s)", "R1.fb", "mb_per_sec", "higher"),
        ("fjord-bench request p50 (µs)", "R1.fb", "p50_us", "lower"),
        ("fjord-bench request p99 (µs)", "R1.fb", "p99_us", "lower"),
        ("fjord-bench request p99.9 (µs)", "R1.fb", "p999_us", "lower"),
        ("fjord-bench produce errors", "R1.fb", "errors", "lower"),
        ("ProducerPerformance achieved (MB/s)", "R1.java", "mb_per_sec", "higher"),
        ("ProducerPerformance record p50 (ms)", "R1.java", "p50_ms", "lower"),
        ("ProducerPerformance record p99 (ms)", "R1.java", "p99_ms", "lower"),
        ("ProducerPerformance record p99.9 (ms)", "R1.java", "p999_ms", "lower"),
        ("fjord-bench, 4 connections per leader, achieved (MB/s)", "R1.fb4", "mb_per_sec",
         "higher"),
        ("fjord-bench, 4 connections per leader, p50 (µs)", "R1.fb4", "p50_us", "lower"),
        ("fjord-bench, 4 connections per leader, p99 (µs)", "R1.fb4", "p99_us", "lower"),
        ("fjord-bench, 4 connections per leader, p99.9 (µs)", "R1.fb4", "p999_us", "lower"),
        ("cluster CPU s per GB produced (fjord-bench)", "R1.cpu_s_per_gb", None, "lower"),
        (f"warm-up (s): until a round takes {W2_RATE_MB_S} MB/s, at most "
         f"{a.get('r1_warmup', '?')} s", "R1.warmup_s", None, "lower"),
    ], f"R1 — 3 nodes, replication factor 3, acks=all at a fixed {W2_RATE_MB_S} MB/s, "
        "8 partitions",
        "MB = 10^6 bytes of record values. Fjord with fsync (its default), Kafka without."))
    if r1:
        s.append("Replication target (fjord-bench numbers, Fjord vs Kafka as shipped):\n")
        s.append(TARGETS_HEAD + "\n".join([
            target("R1 p99 <= Kafka RF=3", g(res, "fjord", "R1.fb", "p99_us"),
                   g(res, "kafka", "R1.fb", "p99_us"), "<=", 1),
            target("R1 p99 <= Kafka RF=3 (fjord-bench, 4 connections per leader)",
                   g(res, "fjord", "R1.fb4", "p99_us"), g(res, "kafka", "R1.fb4", "p99_us"),
                   "<=", 1),
            target("R1 p99 <= Kafka RF=3 (ProducerPerformance, for reference)",
                   g(res, "fjord", "R1.java", "p99_ms"), g(res, "kafka", "R1.java", "p99_ms"),
                   "<=", 1)]) + "\n")
    if any(key.startswith("W") for r in res.values() for key in r):
        s.append("## Issue 6 targets (fjord-bench numbers, Fjord vs Kafka as shipped)\n")
        s.append(targets(res))
    if plots:
        s.append("## Plots\n")
        for p in plots:
            s.append(f"![{p.stem}]({p.name})\n")
    s.append("Raw numbers: the `.json` file next to this report.\n")
    return "\n".join(x for x in s if x is not None)


def plot(data_path, prefix):
    """Runs inside the venv: throughput bars and latency percentiles as PNGs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(data_path).read_text())
    res = data["results"]
    kinds = [k for k in BROKERS if k in res]
    colors = {"fjord": "#1f77b4", "kafka": "#ff7f0e", "kafka-flush1": "#d62728"}
    made = []

    def bars(ax, groups, field_of, ylabel, log=False):
        width = 0.8 / max(1, len(kinds))
        for i, k in enumerate(kinds):
            vals = [field_of(k, grp) or 0 for grp in groups]
            xs = [x + i * width for x in range(len(groups))]
            ax.bar(xs, vals, width, label=k, color=colors.get(k))
        ax.set_xticks([x + width * (len(kinds) - 1) / 2 for x in range(len(groups))])
        ax.set_xticklabels([grp[0] for grp in groups], fontsize=8)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)

    thr = [("W1 fb p1", "W1.fb.p1"), ("W1 fb p8", "W1.fb.p8"), ("W1 ProdPerf p1", "W1.java.p1"),
           ("W1 ProdPerf p8", "W1.java.p8"), ("W3 fb start", "W3.fb.start"),
           ("W3 fb tail", "W3.fb.tail"), ("W3 ConsPerf", "W3.java.start")]

    def measured(keys):
        return any(res[k].get(key) for k in kinds for key in keys)

    if measured([grp[1] for grp in thr]):
        fig, ax = plt.subplots(figsize=(10, 4.5))
        bars(ax, thr, lambda k, grp: res[k].get(grp[1], {}).get("mib_per_sec"), "MiB/s")
        ax.set_title("Throughput (higher is better)")
        fig.tight_layout()
        p = Path(f"{prefix}-throughput.png")
        fig.savefig(p, dpi=110)
        made.append(p.name)

    panels = [(title, key) for title, key in [
        ("W2 acks=all @ 50 MB/s, request latency", "W2.fb"), ("W4 end-to-end latency", "W4.fb"),
        ("R1 3 nodes, RF=3, acks=all @ 50 MB/s", "R1.fb")] if measured([key])]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
        for ax, (title, key) in zip(axes[0], panels):
            pct = [("p50", "p50_us"), ("p99", "p99_us"), ("p99.9", "p999_us")]
            bars(ax, pct, lambda k, grp: (res[k].get(key, {}).get(grp[1]) or 0) / 1000, "ms",
                 log=True)
            ax.set_title(f"{title} (fjord-bench; lower is better)", fontsize=9)
        fig.tight_layout()
        p = Path(f"{prefix}-latency.png")
        fig.savefig(p, dpi=110)
        made.append(p.name)
    print("\n".join(made))


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 2 minutes instead of 10")
    ap.add_argument("--brokers", default=DEFAULT_BROKERS)
    ap.add_argument("--workloads", default=DEFAULT_WORKLOADS,
                    help="W1-W6 one broker at a time; R1 (not in the default set) 3-node clusters")
    ap.add_argument("--keep-work", action="store_true", help="keep logs and data dirs")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--render", metavar="JSON", help="rewrite the report (and plots) of a run")
    ap.add_argument("--plot", nargs=2, metavar=("JSON", "PREFIX"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plot:
        plot(*a.plot)
        return
    if a.render:
        jpath = Path(a.render).resolve()
        write_report(json.loads(jpath.read_text()), jpath, ensure_venv())
        return
    a.phase = 3 if a.quick else 10
    a.java_records = 100_000 if a.quick else 1_000_000
    a.w3_mib = 256 if a.quick else 2048
    a.e2e_messages = 500 if a.quick else 3000
    a.w6_partitions = 2000 if a.quick else 10000
    a.r1_warmup = 30 if a.quick else 180
    kinds = [k.strip() for k in a.brokers.split(",") if k.strip()]
    for k in kinds:
        if k not in BROKERS:
            sys.exit(f"unknown broker {k}; choose from {', '.join(BROKERS)}")
    workloads = {w.strip().upper() for w in a.workloads.split(",")}

    work = Path(tempfile.mkdtemp(prefix="fjord-bench."))
    atexit.register(lambda: (stop_all(), None if a.keep_work else shutil.rmtree(work, True)))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))

    if not a.no_build:
        build()
    if any(k.startswith("kafka") for k in kinds):
        ensure_kafka()
    venv_py = ensure_venv()
    info = machine()
    log(f"machine: {info['cpu']}, {info['nproc']} vCPUs, {info['mem_gib']} GiB, "
        f"kernel {info['kernel']}; work dir {work}")

    data = {"machine": info, "settings": {k: getattr(a, k) for k in
                                          ("quick", "phase", "java_records", "w3_mib",
                                           "e2e_messages", "w6_partitions", "r1_warmup",
                                           "brokers", "workloads")},
            "results": {}, "loadavg": {}}
    if workloads - {"R1"}:
        for kind in kinds:
            b = Broker(kind, work)
            session(data, a, work, kind, b, lambda r, b=b: r.run_all(workloads, b.start()))
    if "R1" in workloads:
        if "kafka-flush1" in kinds:
            log("R1 runs fjord and kafka only (kafka with flush=1 cannot take 50 MB/s)")
        for kind in [k for k in kinds if k in R1_BROKERS]:
            b = ClusterBroker(kind, work)
            session(data, a, work, f"{kind} R1", b, lambda r, b=b: (b.start(), r.run_r1()))
    data["took_s"] = time.monotonic() - T0

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"{info['date']}-{info['commit'].replace('-dirty', '')}"  # the report says if quick
    jpath = RESULTS / f"{stem}.json"
    jpath.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    write_report(data, jpath, venv_py)


def session(data, a, work, key, b, go):
    """Runs go(Runner(b)), which starts the broker or cluster `b`, then stops `b`; its results
    go to data["results"][b.kind] and the load averages to data["loadavg"][key]."""
    la = {"before": loadavg()}
    log(f"== {key}: starting ({BROKERS[b.kind]}); load average {la['before']}")
    try:
        r = Runner(b, a, work)
        go(r)
        data["results"].setdefault(b.kind, {}).update(r.res)
    except Exception as e:  # a broken broker must not stop the others
        log(f"  {key}: aborted: {e!r}")
        data["results"].setdefault(b.kind, {})
    finally:
        b.stop()
        la["after"] = loadavg()
        data["loadavg"][key] = la
        log(f"== {key}: stopped; load average {la['after']}")
        if a.keep_work:
            log(f"   logs in {b.dir}")


def write_report(data, jpath, venv_py):
    """Writes <stem>.md and <stem>-*.png next to the run's <stem>.json."""
    prefix = jpath.with_suffix("")
    plots = []
    if venv_py:
        rc, out = run([venv_py, Path(__file__).resolve(), "--plot", jpath, prefix], 120, out="-")
        if rc == 0:
            plots = [prefix.parent / n for n in out.split()]
    md = prefix.with_suffix(".md")
    md.write_text(report(data, plots))
    log(f"report: {md}")
    print(md.read_text())


if __name__ == "__main__":
    main()
