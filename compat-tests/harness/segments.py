"""Read a partition's `.log` segment files straight from a broker's data dir (Kafka's on-disk
format, which Fjord shares): magic-2 record batches back to back, each
    int64 base offset, int32 length, int32 partition leader epoch, int8 magic (2), uint32 CRC-32C
    (of everything after it), int16 attributes, int32 last offset delta, int64 base timestamp,
    int64 max timestamp, int64 producer id, int16 producer epoch, int32 base sequence,
    int32 record count, records
and each record: varint length, int8 attributes, varlong timestamp delta, varint offset delta,
varint key length + key, varint value length + value, varint header count + headers.

Used to compare the replicas of a partition on disk, where no consumer can look (a follower
serves no plain Fetch). Compressed batches are decompressed with kafka-python's codecs.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = _HEADER.size  # 61
_CRC_FROM = 21              # the CRC covers the batch from the attributes on


@dataclass(frozen=True)
class StoredRecord:
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class StoredBatch:
    segment: str            # the .log file's name
    position: int           # byte position in it
    base_offset: int
    last_offset: int
    partition_leader_epoch: int
    attributes: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    crc_ok: bool
    records: tuple[StoredRecord, ...]
    raw: bytes              # the whole batch, as stored

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & 0x20)


@dataclass
class PartitionLog:
    """Every segment of one replica of a partition, in base-offset order."""
    path: Path
    segments: list[tuple[str, bytes]]     # (file name, its bytes)
    batches: list[StoredBatch]
    trailing: list[tuple[str, int, int]]  # (file, position, bytes) no batch could be read from

    @property
    def records(self) -> list[StoredRecord]:
        return [r for b in self.batches if not b.is_control for r in b.records]

    @property
    def end_offset(self) -> int:
        return self.batches[-1].last_offset + 1 if self.batches else 0


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data):
            raise ValueError("varint runs past the end of the batch")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _varbytes(data: bytes, pos: int) -> tuple[bytes | None, int]:
    n, pos = _varint(data, pos)
    if n < 0:
        return None, pos
    if pos + n > len(data):
        raise ValueError("field runs past the end of the batch")
    return data[pos:pos + n], pos + n


def _decompress(codec: int, data: bytes) -> bytes:
    from kafka import codec as c  # kafka-python's codecs (snappy/lz4/zstd need their packages)

    return {1: c.gzip_decode, 2: c.snappy_decode, 3: c.lz4_decode, 4: c.zstd_decode}[codec](data)


def parse_records(base_offset: int, attributes: int, count: int, body: bytes) -> tuple[StoredRecord, ...]:
    codec = attributes & 7
    if codec:
        body = _decompress(codec, body)
    out, pos = [], 0
    for _ in range(count):
        length, pos = _varint(body, pos)
        end = pos + length
        pos += 1  # record attributes
        _, pos = _varint(body, pos)  # timestamp delta
        delta, pos = _varint(body, pos)
        key, pos = _varbytes(body, pos)
        value, pos = _varbytes(body, pos)
        headers, pos = _varint(body, pos)
        for _ in range(headers):
            _, pos = _varbytes(body, pos)
            _, pos = _varbytes(body, pos)
        if pos != end:
            raise ValueError(f"record at offset {base_offset + delta} is {pos - end + length} bytes, "
                             f"its length says {length}")
        out.append(StoredRecord(base_offset + delta, key, value))
    return tuple(out)


def read_segment(path: Path) -> tuple[bytes, list[StoredBatch], tuple[int, int] | None]:
    """A .log file's bytes, its batches, and (position, bytes) of a tail that is no complete
    batch (None when the batches fill the file exactly)."""
    import crc32c

    data = Path(path).read_bytes()
    batches, pos = [], 0
    while pos + 12 <= len(data):
        base_offset, length = struct.unpack_from(">qi", data, pos)
        if length < HEADER_SIZE - 12 or pos + 12 + length > len(data):
            break
        h = _HEADER.unpack_from(data, pos)
        (_, _, leader_epoch, magic, crc, attributes, last_delta, _, _, producer_id, producer_epoch,
         base_sequence, count) = h
        if magic != 2:
            break
        raw = data[pos:pos + 12 + length]
        crc_ok = crc32c.crc32c(raw[_CRC_FROM:]) == crc
        try:
            records = parse_records(base_offset, attributes, count, raw[HEADER_SIZE:])
        except (ValueError, KeyError) as e:
            raise ValueError(f"{path} at byte {pos}: batch at offset {base_offset}: {e}") from None
        batches.append(StoredBatch(Path(path).name, pos, base_offset, base_offset + last_delta, leader_epoch,
                                   attributes, producer_id, producer_epoch, base_sequence, crc_ok,
                                   records, raw))
        pos += 12 + length
    return data, batches, (None if pos == len(data) else (pos, len(data) - pos))


def read_partition(path: Path) -> PartitionLog:
    """Every .log segment in a partition folder (`<log.dirs>/<topic>-<partition>`)."""
    path = Path(path)
    segments, batches, trailing = [], [], []
    for seg in sorted(path.glob("*.log"), key=lambda p: int(p.stem)):
        data, seg_batches, tail = read_segment(seg)
        segments.append((seg.name, data))
        batches += seg_batches
        if tail:
            trailing.append((seg.name, *tail))
    return PartitionLog(path, segments, batches, trailing)
