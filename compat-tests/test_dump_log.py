"""Fjord stores partitions in Kafka's own on-disk format: Apache Kafka's DumpLogSegments reads
every segment, offset index and time index it wrote, and finds what was produced.

Fjord-only (Kafka's segments are Kafka's format by definition); `--include-fjord-only` runs it
against Kafka too, which is how this test itself was validated.
"""
from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from harness.clients import create_topic, kp_producer, unique_topic
from harness.java import run_java_main

N = 3000
SEGMENT_BYTES = 1024 * 1024  # Kafka's minimum log.segment.bytes
VALUE_LEN = 900

# Anything DumpLogSegments says when a file is not what it should be.
BAD_OUTPUT = re.compile(r"exception|error|mismatch|non-consecutive|out of order|not found|"
                        r"invalid bytes|isvalid: false|corrupt", re.IGNORECASE)
BATCH_LINE = re.compile(r"^baseOffset: (\d+) lastOffset: (\d+) count: (\d+) .* compresscodec: (\w+) "
                        r"crc: \d+ isvalid: (\w+)$")
RECORD_LINE = re.compile(r"^\| offset: (\d+) CreateTime: (\d+) keySize: (-?\d+) valueSize: (-?\d+) "
                         r".* key: (.*) payload: (.*)$")
INDEX_LINE = re.compile(r"^offset: (\d+) position: (\d+)$")
TIMEINDEX_LINE = re.compile(r"^timestamp: (\d+) offset: (\d+)$")


def value_of(i: int) -> bytes:
    rnd = random.Random(i)
    return f"{i:06d}-".encode() + bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(VALUE_LEN))


def dump(paths: list[Path], *extra: str) -> dict[Path, str]:
    """One DumpLogSegments run over several files; returns each file's section of the output."""
    proc = run_java_main("kafka.tools.DumpLogSegments", ["--files", ",".join(map(str, paths)), *extra],
                         timeout_s=120, check=False)
    out = proc.stdout + proc.stderr
    names = ", ".join(p.name for p in paths)
    assert proc.returncode == 0, f"DumpLogSegments {names} exited {proc.returncode}:\n{out[-4000:]}"
    bad = [line for line in out.splitlines() if BAD_OUTPUT.search(line.split(" payload: ")[0])]
    assert not bad, f"DumpLogSegments {names} complained:\n" + "\n".join(bad[:20])
    sections: dict[Path, list[str]] = {}
    current = None
    for line in proc.stdout.splitlines():
        if line.startswith("Dumping "):
            current = sections.setdefault(Path(line[len("Dumping "):].strip()), [])
        elif current is not None:
            current.append(line)
    assert set(sections) == set(paths), f"sections {sorted(sections)} for files {paths}"
    return {p: "\n".join(lines) for p, lines in sections.items()}


@pytest.mark.fjord_only
@pytest.mark.timeout(240)
def test_kafka_dump_log_segments_reads_fjord_segments(broker_factory):
    broker = broker_factory({"log.segment.bytes": str(SEGMENT_BYTES)})
    broker.start()
    topic = unique_topic("dump")
    create_topic(broker.bootstrap, topic, partitions=1)
    base_ts = int(time.time() * 1000) - 60_000
    for codec, lo, hi in ((None, 0, N // 2), ("lz4", N // 2, N)):
        p = kp_producer(broker.bootstrap, acks="all", linger_ms=5, compression_type=codec)
        try:
            futures = [p.send(topic, key=f"k{i}".encode(), value=value_of(i), partition=0,
                              headers=[("h", b"v")], timestamp_ms=base_ts + i) for i in range(lo, hi)]
            p.flush(timeout=60)
            assert [f.get(timeout=30).offset for f in futures] == list(range(lo, hi))
        finally:
            p.close(timeout=10)
    broker.stop()

    part_dir = broker.data_dir / f"{topic}-0"
    logs = sorted(part_dir.glob("*.log"))
    assert len(logs) >= 2, f"expected several {SEGMENT_BYTES}-byte segments, got {[p.name for p in logs]}"

    indexes = [log.with_suffix(".index") for log in logs]
    timeindexes = [log.with_suffix(".timeindex") for log in logs]
    log_dumps = dump(logs, "--print-data-log")
    index_dumps = dump(indexes)
    timeindex_dumps = dump(timeindexes)
    sanity = dump(indexes + timeindexes, "--index-sanity-check")
    for path, out in sanity.items():
        assert "passed sanity check" in out or "is empty" in out, f"{path.name}: {out}"

    offsets, codecs = [], set()
    for log in logs:
        seg_base = int(log.stem)
        assert log.stem == f"{seg_base:020d}"
        out = log_dumps[log]
        batches = [BATCH_LINE.match(line) for line in out.splitlines() if line.startswith("baseOffset:")]
        assert batches and all(batches), f"unparsed batch lines in {log.name}"
        assert int(batches[0].group(1)) == seg_base, f"{log.name} starts at {batches[0].group(1)}"
        for b in batches:
            first, last, count = int(b.group(1)), int(b.group(2)), int(b.group(3))
            assert last - first + 1 == count and b.group(5) == "true"
            codecs.add(b.group(4))
        seg_offsets = []
        for line in out.splitlines():
            if line.startswith("| offset:"):
                m = RECORD_LINE.match(line)
                assert m, f"unparsed record line in {log.name}: {line[:200]}"
                i = int(m.group(1))
                assert int(m.group(2)) == base_ts + i
                assert m.group(5) == f"k{i}"
                assert m.group(6).encode() == value_of(i)
                seg_offsets.append(i)
        assert sum(int(b.group(3)) for b in batches) == len(seg_offsets)
        offsets += seg_offsets

        seg_end = seg_base + len(seg_offsets)
        entries = [INDEX_LINE.match(line) for line in index_dumps[log.with_suffix(".index")].splitlines()
                   if line.strip()]
        assert all(entries), f"unparsed lines in {log.with_suffix('.index').name}"
        idx = [(int(m.group(1)), int(m.group(2))) for m in entries]
        if log.stat().st_size > 4 * 4096:
            assert idx, f"{log.name} is {log.stat().st_size} bytes but its offset index is empty"
        assert idx == sorted(idx) and all(seg_base <= o < seg_end and 0 < pos < log.stat().st_size
                                          for o, pos in idx), idx
        tentries = [TIMEINDEX_LINE.match(line)
                    for line in timeindex_dumps[log.with_suffix(".timeindex")].splitlines() if line.strip()]
        assert all(tentries), f"unparsed lines in {log.with_suffix('.timeindex').name}"
        for m in tentries:
            ts, o = int(m.group(1)), int(m.group(2))
            assert seg_base <= o < seg_end and ts == base_ts + o, (ts, o)

    assert offsets == list(range(N))
    assert codecs == {"none", "lz4"}
