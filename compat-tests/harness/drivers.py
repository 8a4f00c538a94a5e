"""One interface over every client the suite drives, so a scenario is written once.

Consumers read from offset 0 by position (not "seek to beginning"), so reading never depends
on ListOffsets; list_offsets() is the scenario for that.

    driver = DRIVERS["java"]
    driver.produce(bootstrap, topic, recs, codec="zstd", partition=0, **opts) -> [Ack]
    driver.consume(bootstrap, topic, count, partition=0) -> [Rec]
    driver.list_offsets(bootstrap, topic, timestamps, partition=0) -> Offsets
    driver.admin(bootstrap, op, **args) -> dict        (ops below; not every client has each)

Clients: kafka-python and confluent-kafka (in-process, via harness.clients), aiokafka 0.14
(in-process, asyncio), the Java client kafka-clients 4.1.0 (java/FjordCompat.java, one JVM per
operation), franz-go v1.22.3 (go/main.go, one process per operation) and kcat (Debian).
An Ack is `Ack(offset=..., error=None)` or `Ack(offset=None, error="<what the client said>")`.
Produce options every driver understands: idempotent (bool), acks ("all" | "1"),
max_request_bytes (the client's own size cap, raised so the broker gets to judge).
Admin ops: create_topic(topic, partitions, configs), delete_topic(topic), list_topics(),
describe_topics(topics), describe_cluster(), describe_configs(topic); answers use the Java
program's JSON shape (see java/FjordCompat.java).
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from .clients import Rec, ck_consume, ck_producer, kp_consume, kp_producer, unique_topic
from .java import cache_dir, kafka_libs_dir

PROC_TIMEOUT_S = 120


class Ack(NamedTuple):
    offset: int | None
    error: str | None = None


def kp_acks(futures) -> list[Ack]:
    """The outcome of each kafka-python send future, in order (after flush)."""
    out = []
    for f in futures:
        try:
            out.append(Ack(f.get(timeout=30).offset))
        except Exception as e:  # noqa: BLE001
            out.append(Ack(None, f"{type(e).__name__}: {e}"))
    return out


class Offsets(NamedTuple):
    earliest: int
    latest: int
    by_time: dict[int, int]          # timestamp -> first offset with ts >= it, -1 if none
    max_timestamp: int | None = None  # offset of the record with the largest timestamp (None: not asked)


class ClientUnavailable(RuntimeError):
    pass


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def _unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def _rec_json(r: Rec) -> dict:
    return {"key": _b64(r.key), "value": _b64(r.value), "timestamp": r.timestamp,
            "headers": [[k, _b64(v)] for k, v in r.headers]}


def _rec_from_json(o: dict) -> Rec:
    return Rec(o["offset"], _unb64(o["key"]), _unb64(o["value"]),
               tuple((k, _unb64(v)) for k, v in (o.get("headers") or [])),
               o["timestamp"], o["timestamp_type"])


class Driver:
    name = "?"
    codecs = ("none", "gzip", "snappy", "lz4", "zstd")
    per_record_timestamps = True
    per_record_headers = True
    after_last_is_end = False  # offset for a timestamp after the last record: -1, or the end offset

    def produce(self, bootstrap, topic, recs, codec="none", partition=0, **opts) -> list[Ack]:
        raise NotImplementedError

    def consume(self, bootstrap, topic, count, partition=0, timeout_s=30.0) -> list[Rec]:
        raise NotImplementedError

    def list_offsets(self, bootstrap, topic, timestamps, partition=0) -> Offsets:
        raise NotImplementedError

    def admin(self, bootstrap, op, **args) -> dict:
        raise NotImplementedError


# --------------------------------------------------------------------------- subprocess clients

class _JsonProcessDriver(Driver):
    """A program that reads one JSON request on stdin and writes one JSON answer on stdout."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def call(self, req: dict, timeout_s: float = PROC_TIMEOUT_S) -> dict:
        proc = subprocess.run(self.command(), input=json.dumps(req), capture_output=True, text=True,
                              timeout=timeout_s)
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise RuntimeError(f"{self.name} exited {proc.returncode} without an answer\n"
                               f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")

    def _checked(self, out: dict, what: str) -> dict:
        if "error" in out:
            raise RuntimeError(f"{self.name} {what}: {out['error']}")
        return out

    def produce(self, bootstrap, topic, recs, codec="none", partition=0, **opts) -> list[Ack]:
        out = self._checked(self.call(self.produce_request(bootstrap, topic, recs, codec, partition, **opts)),
                            "produce")
        return [Ack(r.get("offset"), r.get("error")) for r in out["results"]]

    def consume(self, bootstrap, topic, count, partition=0, timeout_s=30.0, **props) -> list[Rec]:
        out = self._checked(self.call({"op": "consume", "bootstrap": bootstrap, "topic": topic,
                                       "partition": partition, "count": count,
                                       "timeout_ms": int(timeout_s * 1000),
                                       "props": {k.replace("_", "."): str(v) for k, v in props.items()}},
                                      timeout_s=timeout_s + PROC_TIMEOUT_S), "consume")
        return [_rec_from_json(o) for o in out["records"]]

    def admin(self, bootstrap, op, **args) -> dict:
        return self._checked(self.call({"op": op, "bootstrap": bootstrap, **args}), op)


class JavaDriver(_JsonProcessDriver):
    name = "java"

    def command(self) -> list[str]:
        classes = os.environ.get("FJORD_COMPAT_JAVA_CLASSES", "")
        if not (Path(classes) / "FjordCompat.class").is_file():
            raise ClientUnavailable(f"FjordCompat.class not in {classes!r} (FJORD_COMPAT_JAVA_CLASSES); run compat-tests/run.sh")
        return ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
                f"-Dlog4j2.configurationFile={Path(__file__).resolve().parent.parent / 'kafka' / 'log4j2-tools.properties'}",
                "-cp", f"{classes}:{kafka_libs_dir()}/*", "FjordCompat"]

    def produce_request(self, bootstrap, topic, recs, codec, partition, idempotent=True, acks="all",
                        max_request_bytes=None, **props):
        p = {"compression.type": codec, "linger.ms": "20", "acks": acks,
             "enable.idempotence": str(idempotent).lower()}
        if max_request_bytes:
            p["max.request.size"] = str(max_request_bytes)
            p["buffer.memory"] = str(max(33554432, 4 * max_request_bytes))
        p.update({k.replace("_", "."): str(v) for k, v in props.items()})
        return {"op": "produce", "bootstrap": bootstrap, "topic": topic, "partition": partition,
                "records": [_rec_json(r) for r in recs], "props": p}

    def list_offsets(self, bootstrap, topic, timestamps, partition=0) -> Offsets:
        out = self._checked(self.call({"op": "list_offsets", "bootstrap": bootstrap, "topic": topic,
                                       "partition": partition, "timestamps": list(timestamps)}),
                            "list_offsets")
        c, a = out["consumer"], out["admin"]
        # The consumer's and the admin client's answers must agree.
        assert (c["earliest"], c["latest"]) == (a["earliest"], a["latest"]), out
        assert c["by_time"] == a["by_time"], out
        return Offsets(c["earliest"], c["latest"], {int(k): v for k, v in c["by_time"].items()},
                       a.get("max_timestamp", a.get("max_timestamp_error")))


class FranzGoDriver(_JsonProcessDriver):
    name = "franz-go"
    after_last_is_end = True  # kadm turns Kafka's -1 ("no record that late") into the end offset

    def command(self) -> list[str]:
        exe = os.environ.get("FJORD_COMPAT_GO_BIN", "")
        if not os.access(exe, os.X_OK):
            raise ClientUnavailable(f"{exe!r} (FJORD_COMPAT_GO_BIN) missing; run compat-tests/run.sh")
        return [exe]

    def produce_request(self, bootstrap, topic, recs, codec, partition, idempotent=True, acks="all",
                        max_request_bytes=None):
        return {"op": "produce", "bootstrap": bootstrap, "topic": topic, "partition": partition,
                "records": [_rec_json(r) for r in recs], "codec": codec, "acks": acks,
                "disable_idempotence": not idempotent, "max_batch_bytes": max_request_bytes or 0}

    def list_offsets(self, bootstrap, topic, timestamps, partition=0) -> Offsets:
        out = self._checked(self.call({"op": "list_offsets", "bootstrap": bootstrap, "topic": topic,
                                       "partition": partition, "timestamps": list(timestamps)}),
                            "list_offsets")
        return Offsets(out["earliest"], out["latest"], {int(k): v for k, v in out["by_time"].items()},
                       out.get("max_timestamp", out.get("max_timestamp_error")))


# --------------------------------------------------------------------------- kcat

class KcatDriver(Driver):
    """kcat 1.7.1 (Debian, librdkafka 2.0.2). Reads from offset 0 (-o 0, no ListOffsets). Text-friendly: one -H set for all records, no
    per-record timestamps; -Z turns empty values into nulls; JSON envelope (-J) on the way out."""

    name = "kcat"
    per_record_timestamps = False
    per_record_headers = False
    DELIM = "\x1f"  # key/value delimiter (-K) and message delimiter (-D) that no test value uses
    MSG_DELIM = "\x1e"

    def exe(self) -> str:
        exe = os.environ.get("KCAT") or shutil.which("kcat")
        if not exe:
            raise ClientUnavailable("kcat is not installed; run compat-tests/run.sh (apt-get install kcat)")
        return exe

    def produce(self, bootstrap, topic, recs, codec="none", partition=0, idempotent=False, acks="all",
                max_request_bytes=None) -> list[Ack]:
        headers = recs[0].headers if recs else ()
        assert all(r.headers == headers for r in recs), "kcat sends one header set for all records"
        cmd = [self.exe(), "-P", "-b", bootstrap, "-t", topic, "-p", str(partition), "-z", codec,
               "-K", self.DELIM, "-D", self.MSG_DELIM, "-Z", "-X", f"acks={acks}",
               "-X", f"enable.idempotence={str(idempotent).lower()}", "-X", "linger.ms=20",
               "-X", "message.timeout.ms=30000"]
        if max_request_bytes:
            cmd += ["-X", f"message.max.bytes={max_request_bytes}"]
        for k, v in headers:
            cmd += ["-H", f"{k}={(v or b'').decode()}"]
        data = b""
        for r in recs:
            assert r.value is None or r.value != b"", "kcat -Z sends empty values as null"
            data += (r.key or b"") + self.DELIM.encode() + (r.value or b"") + self.MSG_DELIM.encode()
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=PROC_TIMEOUT_S)
        err = proc.stderr.decode(errors="replace")
        if proc.returncode != 0 or "fail" in err.lower() or "error" in err.lower():
            return [Ack(None, f"kcat exited {proc.returncode}: {err.strip()[-2000:]}")] * len(recs)
        # kcat does not print offsets: read them back.
        return [Ack(r.offset) for r in self.consume(bootstrap, topic, len(recs), partition)][-len(recs):]

    def consume(self, bootstrap, topic, count, partition=0, timeout_s=30.0) -> list[Rec]:
        if count == 0:
            return []
        cmd = [self.exe(), "-C", "-b", bootstrap, "-t", topic, "-p", str(partition), "-o", "0",
               "-c", str(count), "-e", "-J", "-X", "fetch.wait.max.ms=200"]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 30)
        assert proc.returncode == 0, f"kcat -C exited {proc.returncode}: {proc.stderr.decode()[-2000:]}"
        out = []
        for line in proc.stdout.decode().splitlines():
            if not line.startswith("{"):
                continue
            o = json.loads(line)
            hs = o.get("headers") or []
            headers = tuple((hs[i], None if hs[i + 1] is None else hs[i + 1].encode())
                            for i in range(0, len(hs), 2))
            out.append(Rec(o["offset"], None if o["key"] is None else o["key"].encode(),
                           None if o["payload"] is None else o["payload"].encode(), headers,
                           o["ts"], {"create": "create", "log-append": "append"}.get(o.get("tstype"), o.get("tstype"))))
        return out

    def list_offsets(self, bootstrap, topic, timestamps, partition=0) -> Offsets:
        def query(ts: int) -> int:
            proc = subprocess.run([self.exe(), "-Q", "-b", bootstrap, "-t", f"{topic}:{partition}:{ts}",
                                   "-X", "socket.timeout.ms=10000"],
                                  capture_output=True, text=True, timeout=PROC_TIMEOUT_S)
            assert proc.returncode == 0, f"kcat -Q exited {proc.returncode}: {proc.stderr[-2000:]}"
            # "<topic> [<partition>] offset <n>"
            line = next(l for l in proc.stdout.splitlines() if " offset " in l)
            return int(line.rsplit(" ", 1)[1])
        return Offsets(query(-2), query(-1), {ts: query(ts) for ts in timestamps})

    def admin(self, bootstrap, op, **args) -> dict:
        if op not in ("describe_topics", "describe_cluster", "list_topics"):
            raise ClientUnavailable(f"kcat has no {op}")
        cmd = [self.exe(), "-L", "-J", "-b", bootstrap]
        if op == "describe_topics" and len(args["topics"]) == 1:
            cmd += ["-t", args["topics"][0]]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROC_TIMEOUT_S)
        assert proc.returncode == 0, f"kcat -L exited {proc.returncode}: {proc.stderr[-2000:]}"
        md = json.loads(proc.stdout)
        if op == "list_topics":
            return {"topics": sorted(t["topic"] for t in md["topics"])}
        if op == "describe_cluster":
            return {"cluster_id": None, "controller": md.get("controllerid", -1),
                    "nodes": [{"id": b["id"], "host": b["name"].rsplit(":", 1)[0],
                               "port": int(b["name"].rsplit(":", 1)[1])} for b in md["brokers"]]}
        topics = {}
        for t in md["topics"]:
            if t["topic"] not in args["topics"]:
                continue
            if t.get("error"):
                raise RuntimeError(f"kcat -L: {t['topic']}: {t['error']}")
            topics[t["topic"]] = {"internal": False, "topic_id": None, "partitions": [
                {"partition": p["partition"], "leader": p["leader"],
                 "replicas": [r["id"] for r in p["replicas"]], "isr": [r["id"] for r in p["isrs"]]}
                for p in sorted(t["partitions"], key=lambda p: p["partition"])]}
        return {"topics": topics}


# --------------------------------------------------------------------------- aiokafka

class AiokafkaDriver(Driver):
    name = "aiokafka"

    def produce(self, bootstrap, topic, recs, codec="none", partition=0, idempotent=False, acks="all",
                max_request_bytes=None) -> list[Ack]:
        from aiokafka import AIOKafkaProducer

        async def go():
            p = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id="fjord-compat-aiokafka",
                                 compression_type=None if codec == "none" else codec,
                                 enable_idempotence=idempotent, acks=-1 if acks == "all" else int(acks),
                                 linger_ms=20, request_timeout_ms=15000,
                                 max_request_size=max_request_bytes or 1048576)
            await p.start()
            try:
                futs = [await p.send(topic, value=r.value, key=r.key, partition=partition,
                                     timestamp_ms=r.timestamp, headers=list(r.headers) or None)
                        for r in recs]
                acks_ = []
                for f in futs:
                    try:
                        acks_.append(Ack((await f).offset))
                    except Exception as e:  # noqa: BLE001 - the error is the result
                        acks_.append(Ack(None, f"{type(e).__name__}: {e}"))
                return acks_
            finally:
                await p.stop()
        return asyncio.run(asyncio.wait_for(go(), 90))

    def _consumer(self, bootstrap):
        from aiokafka import AIOKafkaConsumer
        return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                client_id="fjord-compat-aiokafka", request_timeout_ms=15000,
                                max_partition_fetch_bytes=4 * 1048576)

    def consume(self, bootstrap, topic, count, partition=0, timeout_s=30.0) -> list[Rec]:
        from aiokafka import TopicPartition

        async def go():
            c = self._consumer(bootstrap)
            await c.start()
            out = []
            try:
                tp = TopicPartition(topic, partition)
                c.assign([tp])
                c.seek(tp, 0)  # not seek_to_beginning: reading must not depend on ListOffsets
                deadline = time.monotonic() + timeout_s
                while len(out) < count and time.monotonic() < deadline:
                    for msgs in (await c.getmany(tp, timeout_ms=500)).values():
                        for m in msgs:
                            out.append(Rec(m.offset, m.key, m.value, tuple(m.headers or ()), m.timestamp,
                                           "create" if m.timestamp_type == 0 else "append"))
            finally:
                await c.stop()
            return out
        return asyncio.run(asyncio.wait_for(go(), timeout_s + 60))

    def list_offsets(self, bootstrap, topic, timestamps, partition=0) -> Offsets:
        from aiokafka import TopicPartition

        async def go():
            c = self._consumer(bootstrap)
            await c.start()
            try:
                tp = TopicPartition(topic, partition)
                earliest = (await c.beginning_offsets([tp]))[tp]
                latest = (await c.end_offsets([tp]))[tp]
                by_time = {}
                for ts in timestamps:
                    r = (await c.offsets_for_times({tp: ts}))[tp]
                    by_time[ts] = -1 if r is None else r.offset
                return Offsets(earliest, latest, by_time)
            finally:
                await c.stop()
        return asyncio.run(asyncio.wait_for(go(), 40))

    def admin(self, bootstrap, op, **args) -> dict:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        async def go():
            a = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="fjord-compat-aiokafka-admin",
                                    request_timeout_ms=15000)
            await a.start()
            try:
                if op == "create_topic":
                    r = (await a.create_topics([NewTopic(args["topic"], args.get("partitions", 1), 1,
                                                         topic_configs=args.get("configs") or {})])).to_object()
                    errs = [(t["topic"] if "topic" in t else t.get("name"), t["error_code"])
                            for t in r.get("topic_errors", r.get("topics", []))]
                    if any(code for _, code in errs):
                        raise RuntimeError(f"aiokafka create_topics: {r}")
                    return {}
                if op == "delete_topic":
                    r = (await a.delete_topics([args["topic"]])).to_object()
                    errs = [t["error_code"] for t in r.get("topic_error_codes", r.get("responses", []))]
                    if any(errs):
                        raise RuntimeError(f"aiokafka delete_topics: {r}")
                    return {}
                if op == "list_topics":
                    return {"topics": sorted(await a.list_topics())}
                if op == "describe_topics":
                    topics = {}
                    for t in await a.describe_topics(args["topics"]):
                        if t["error_code"]:
                            raise RuntimeError(f"aiokafka describe_topics: {t}")
                        topics[t["topic"]] = {"internal": t["is_internal"], "topic_id": None, "partitions": [
                            {"partition": p["partition"], "leader": p["leader"], "replicas": p["replicas"],
                             "isr": p["isr"]} for p in sorted(t["partitions"], key=lambda p: p["partition"])]}
                    return {"topics": topics}
                if op == "describe_cluster":
                    c = await a.describe_cluster()
                    return {"cluster_id": c.get("cluster_id"), "controller": c.get("controller_id", -1),
                            "nodes": [{"id": b["node_id"], "host": b["host"], "port": b["port"]}
                                      for b in c["brokers"]]}
                if op == "describe_configs":
                    rs = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, args["topic"])])
                    cfg, src = {}, {}
                    for r in rs:
                        for res in r.to_object()["resources"]:
                            if res["error_code"]:
                                raise RuntimeError(f"aiokafka describe_configs: {res}")
                            for e in res["config_entries"]:
                                cfg[e["config_names"]] = e["config_value"]
                    return {"configs": cfg, "sources": src}
                raise ClientUnavailable(f"aiokafka has no {op}")
            finally:
                await a.close()
        return asyncio.run(asyncio.wait_for(go(), 90))


# --------------------------------------------------------------------------- kafka-python, confluent

class KafkaPythonDriver(Driver):
    name = "kafka-python"

    def produce(self, bootstrap, topic, recs, codec="none", partition=0, idempotent=True, acks="all",
                max_request_bytes=None) -> list[Ack]:
        p = kp_producer(bootstrap, compression_type=None if codec == "none" else codec, linger_ms=20,
                        acks=acks if acks == "all" else int(acks), enable_idempotence=idempotent,
                        max_request_size=max_request_bytes or 1048576, retries=3)
        try:
            futs = [p.send(topic, value=r.value, key=r.key, headers=list(r.headers), partition=partition,
                           timestamp_ms=r.timestamp) for r in recs]
            p.flush(timeout=60)
            return kp_acks(futs)
        finally:
            p.close(timeout=10)

    def consume(self, bootstrap, topic, count, partition=0, timeout_s=30.0) -> list[Rec]:
        return kp_consume(bootstrap, topic, count, partition, timeout_s)

    def list_offsets(self, bootstrap, topic, timestamps, partition=0) -> Offsets:
        from kafka import KafkaConsumer, TopicPartition
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                          request_timeout_ms=15000, client_id="fjord-compat-kp-offsets")
        try:
            tp = TopicPartition(topic, partition)
            by_time = {}
            for ts in timestamps:
                r = c.offsets_for_times({tp: ts})[tp]
                by_time[ts] = -1 if r is None else r.offset
            return Offsets(c.beginning_offsets([tp])[tp], c.end_offsets([tp])[tp], by_time)
        finally:
            c.close()


class ConfluentDriver(Driver):
    name = "confluent-kafka"

    def produce(self, bootstrap, topic, recs, codec="none", partition=0, idempotent=False, acks="all",
                max_request_bytes=None) -> list[Ack]:
        conf = {"compression.type": codec, "linger.ms": 20, "acks": acks, "enable.idempotence": idempotent}
        if max_request_bytes:
            conf["message.max.bytes"] = max_request_bytes
        p = ck_producer(bootstrap, **conf)
        acks_: dict[int, Ack] = {}
        for i, r in enumerate(recs):
            p.produce(topic, value=r.value, key=r.key, partition=partition, timestamp=r.timestamp or 0,
                      headers=list(r.headers) or None,
                      on_delivery=lambda err, msg, i=i: acks_.__setitem__(
                          i, Ack(None, str(err)) if err else Ack(msg.offset())))
        p.flush(60)
        return [acks_.get(i, Ack(None, "not delivered")) for i in range(len(recs))]

    def consume(self, bootstrap, topic, count, partition=0, timeout_s=30.0) -> list[Rec]:
        return ck_consume(bootstrap, topic, count, partition, timeout_s)

    def list_offsets(self, bootstrap, topic, timestamps, partition=0) -> Offsets:
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("fjord-compat-unused"),
                      "enable.auto.commit": False})
        try:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=20)
            by_time = {}
            for ts in timestamps:
                r = c.offsets_for_times([TopicPartition(topic, partition, ts)], timeout=20)[0]
                assert r.error is None, r.error
                by_time[ts] = r.offset
            return Offsets(lo, hi, by_time)
        finally:
            c.close()


DRIVERS: dict[str, Driver] = {d.name: d for d in (
    KafkaPythonDriver(), ConfluentDriver(), AiokafkaDriver(), JavaDriver(), FranzGoDriver(), KcatDriver())}
