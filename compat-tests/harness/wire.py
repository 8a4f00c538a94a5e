"""Raw Kafka wire protocol, hand-packed with struct: just enough to poke a broker.

Used for readiness probes (ApiVersions v0), the raw idempotence tests
(InitProducerId v0, Produce v8 with hand-built v2 record batches) and the garbage
tests. Only non-flexible request versions are encoded here (request header v1),
except for the ApiVersions probe with an unsupported version.

Layout of a request frame: int32 size, then header v1
(int16 api_key, int16 api_version, int32 correlation_id, string client_id), then body.
A response frame is int32 size, int32 correlation_id, body (header v0).
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

API_PRODUCE = 0
API_METADATA = 3
API_API_VERSIONS = 18
API_INIT_PRODUCER_ID = 22

CLIENT_ID = "fjord-compat-raw"

# Kafka error codes the tests look at.
ERR_NONE = 0
ERR_INVALID_REQUEST = 42
ERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45
ERR_DUPLICATE_SEQUENCE_NUMBER = 46
ERR_UNSUPPORTED_VERSION = 35


# --------------------------------------------------------------------------- encoding

def enc_int8(v: int) -> bytes:
    return struct.pack(">b", v)


def enc_int16(v: int) -> bytes:
    return struct.pack(">h", v)


def enc_int32(v: int) -> bytes:
    return struct.pack(">i", v)


def enc_int64(v: int) -> bytes:
    return struct.pack(">q", v)


def enc_string(s: str | None) -> bytes:
    if s is None:
        return enc_int16(-1)
    b = s.encode()
    return enc_int16(len(b)) + b


def enc_bytes(b: bytes | None) -> bytes:
    if b is None:
        return enc_int32(-1)
    return enc_int32(len(b)) + b


def enc_array(items: list[bytes]) -> bytes:
    return enc_int32(len(items)) + b"".join(items)


def enc_uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def enc_varint(v: int) -> bytes:
    """Zig-zag signed varint (32 or 64 bit: the encoding is the same)."""
    return enc_uvarint((v << 1) ^ (v >> 63))


def enc_varbytes(b: bytes | None) -> bytes:
    if b is None:
        return enc_varint(-1)
    return enc_varint(len(b)) + b


def request_header_v1(api_key: int, api_version: int, correlation_id: int,
                      client_id: str | None = CLIENT_ID) -> bytes:
    return enc_int16(api_key) + enc_int16(api_version) + enc_int32(correlation_id) + enc_string(client_id)


def frame(payload: bytes) -> bytes:
    return enc_int32(len(payload)) + payload


# --------------------------------------------------------------------------- decoding

class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"short read at {self.pos}: need {size} of {len(self.data)}")
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return v

    def int8(self) -> int:
        return self._take(">b")

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def int64(self) -> int:
        return self._take(">q")

    def string(self) -> str | None:
        n = self.int16()
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        return s.decode()

    def array(self, item):
        n = self.int32()
        if n < 0:
            return None
        return [item(self) for _ in range(n)]


# --------------------------------------------------------------------------- record batches

@dataclass
class Record:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp_delta: int = 0


def record_batch(records: list[Record], *, base_timestamp: int, producer_id: int = -1,
                 producer_epoch: int = -1, base_sequence: int = -1, attributes: int = 0,
                 base_offset: int = 0, partition_leader_epoch: int = -1) -> bytes:
    """An uncompressed magic-2 record batch, exactly as a producer puts it on the wire."""
    import crc32c  # imported here so the rest of this module needs only the standard library

    body = bytearray()
    for i, r in enumerate(records):
        rec = bytearray()
        rec += enc_int8(0)  # record attributes
        rec += enc_varint(r.timestamp_delta)
        rec += enc_varint(i)  # offset delta
        rec += enc_varbytes(r.key)
        rec += enc_varbytes(r.value)
        rec += enc_varint(len(r.headers))
        for hk, hv in r.headers:
            rec += enc_varbytes(hk.encode())
            rec += enc_varbytes(hv)
        body += enc_varint(len(rec)) + rec
    max_ts = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    after_crc = (
        enc_int16(attributes)
        + enc_int32(len(records) - 1)  # last offset delta
        + enc_int64(base_timestamp)
        + enc_int64(max_ts)
        + enc_int64(producer_id)
        + enc_int16(producer_epoch)
        + enc_int32(base_sequence)
        + enc_int32(len(records))
        + bytes(body)
    )
    crc = crc32c.crc32c(after_crc)
    after_length = enc_int32(partition_leader_epoch) + enc_int8(2) + struct.pack(">I", crc) + after_crc
    return enc_int64(base_offset) + enc_int32(len(after_length)) + after_length


# --------------------------------------------------------------------------- connection

class ConnectionClosed(Exception):
    pass


API_NAMES = {0: "Produce", 1: "Fetch", 3: "Metadata", 18: "ApiVersions", 22: "InitProducerId"}


class VersionNotAdvertised(AssertionError):
    """The broker's ApiVersions does not cover a request version this harness sends."""


class RawConnection:
    """One TCP connection speaking length-prefixed frames, every read bounded in time."""

    def __init__(self, bootstrap: str, timeout_s: float = 10.0):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout_s = timeout_s
        self.next_correlation_id = 1
        self.versions: dict[int, tuple[int, int]] | None = None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv_exact(self, n: int, deadline: float) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete frame within {self.timeout_s}s ({len(buf)}/{n} bytes)")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError as e:
                raise ConnectionClosed(f"reset: {e}") from e
            except socket.timeout as e:
                raise TimeoutError(f"no complete frame within {self.timeout_s}s ({len(buf)}/{n} bytes)") from e
            if not chunk:
                raise ConnectionClosed(f"closed by peer after {len(buf)}/{n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self, timeout_s: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.timeout_s)
        (size,) = struct.unpack(">i", self._recv_exact(4, deadline))
        if size < 4 or size > 64 * 1024 * 1024:
            raise ValueError(f"implausible response size {size}")
        return self._recv_exact(size, deadline)

    def request(self, api_key: int, api_version: int, body: bytes) -> Reader:
        """Send one request with header v1; return a Reader positioned after the response header.

        The first request on a connection is preceded by ApiVersions v0, and a version the broker
        does not advertise fails clearly instead of sending it anyway."""
        if api_key != API_API_VERSIONS:
            if self.versions is None:
                self.versions = api_versions_v0(self)
            lo, hi = self.versions.get(api_key, (None, None))
            if lo is None or not lo <= api_version <= hi:
                name = API_NAMES.get(api_key, str(api_key))
                raise VersionNotAdvertised(
                    f"this harness sends {name} v{api_version}; the broker advertises "
                    + ("nothing" if lo is None else f"v{lo}..v{hi}") + " (Apache Kafka 4.1 covers it)")
        cid = self.next_correlation_id
        self.next_correlation_id += 1
        self.send_raw(frame(request_header_v1(api_key, api_version, cid) + body))
        resp = Reader(self.recv_frame())
        got = resp.int32()
        if got != cid:
            raise ValueError(f"correlation id mismatch: sent {cid}, got {got}")
        return resp

    def outcome(self, timeout_s: float) -> str:
        """After sending something bad: 'closed' if the broker closes the connection,
        'response' if it answers with a frame, or 'open' if neither happens in time."""
        try:
            self.recv_frame(timeout_s)
            return "response"
        except ConnectionClosed:
            return "closed"
        except TimeoutError:
            return "open"
        except ValueError:
            # Bytes arrived but not a sane frame: as good as a broken connection.
            return "closed"


# --------------------------------------------------------------------------- requests

def api_versions_v0(conn: RawConnection) -> dict[int, tuple[int, int]]:
    r = conn.request(API_API_VERSIONS, 0, b"")
    err = r.int16()
    if err != ERR_NONE:
        raise RuntimeError(f"ApiVersions v0 error {err}")
    keys = r.array(lambda x: (x.int16(), x.int16(), x.int16()))
    return {k: (lo, hi) for k, lo, hi in keys}


@dataclass
class MetadataV1:
    brokers: list[tuple[int, str, int]]
    controller_id: int
    topics: list[tuple[int, str, list[tuple[int, int, int]]]]  # (error, name, [(err, partition, leader)])


def metadata_v1(conn: RawConnection, topics: list[str] | None = None) -> MetadataV1:
    body = enc_int32(-1) if topics is None else enc_array([enc_string(t) for t in topics])
    r = conn.request(API_METADATA, 1, body)
    brokers = r.array(lambda x: (x.int32(), x.string(), x.int32(), x.string())[:3])
    controller_id = r.int32()

    def partition(x: Reader):
        err, idx, leader = x.int16(), x.int32(), x.int32()
        x.array(Reader.int32)  # replicas
        x.array(Reader.int32)  # isr
        return err, idx, leader

    def topic(x: Reader):
        err, name = x.int16(), x.string()
        x.int8()  # is_internal
        return err, name, x.array(partition)

    return MetadataV1(brokers, controller_id, r.array(topic))


@dataclass
class PartitionState:
    error: int
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


def partition_states(conn: RawConnection, topic: str) -> tuple[int, dict[int, PartitionState]]:
    """Metadata v1 for one topic: (topic error, partition -> leader, replicas and ISR)."""
    r = conn.request(API_METADATA, 1, enc_array([enc_string(topic)]))
    r.array(lambda x: (x.int32(), x.string(), x.int32(), x.string()))  # brokers
    r.int32()  # controller id

    def partition(x: Reader) -> PartitionState:
        return PartitionState(x.int16(), x.int32(), x.int32(), x.array(Reader.int32), x.array(Reader.int32))

    def one(x: Reader):
        err, name = x.int16(), x.string()
        x.int8()  # is_internal
        return err, name, x.array(partition)

    for err, name, parts in r.array(one):
        if name == topic:
            return err, {s.partition: s for s in parts or []}
    raise ValueError(f"{topic} missing from the Metadata response")


def init_producer_id_v0(conn: RawConnection, transaction_timeout_ms: int = 60000) -> tuple[int, int, int]:
    """Returns (error_code, producer_id, producer_epoch)."""
    r = conn.request(API_INIT_PRODUCER_ID, 0, enc_string(None) + enc_int32(transaction_timeout_ms))
    r.int32()  # throttle
    return r.int16(), r.int64(), r.int16()


@dataclass
class PartitionProduceResult:
    error_code: int
    base_offset: int
    log_append_time_ms: int
    log_start_offset: int
    record_errors: list[tuple[int, str | None]]
    error_message: str | None


def produce_v8(conn: RawConnection, topic: str, partition: int, batch: bytes, *, acks: int = -1,
               timeout_ms: int = 10000) -> PartitionProduceResult:
    body = (
        enc_string(None)  # transactional id
        + enc_int16(acks)
        + enc_int32(timeout_ms)
        + enc_array([enc_string(topic) + enc_array([enc_int32(partition) + enc_bytes(batch)])])
    )
    r = conn.request(API_PRODUCE, 8, body)

    def part(x: Reader):
        idx = x.int32()
        res = PartitionProduceResult(
            error_code=x.int16(),
            base_offset=x.int64(),
            log_append_time_ms=x.int64(),
            log_start_offset=x.int64(),
            record_errors=x.array(lambda y: (y.int32(), y.string())),
            error_message=x.string(),
        )
        return idx, res

    topics = r.array(lambda x: (x.string(), x.array(part)))
    for name, parts in topics:
        for idx, res in parts:
            if name == topic and idx == partition:
                return res
    raise ValueError(f"no result for {topic}-{partition} in produce response {topics!r}")


API_FETCH = 1


@dataclass
class BatchHeader:
    base_offset: int
    length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def compression(self) -> str:
        return {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}.get(self.attributes & 7, "?")


_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")


def batch_headers(records: bytes) -> list[BatchHeader]:
    """The v2 batch headers in a Fetch response's records field (a trailing partial batch,
    which brokers may return, is ignored)."""
    out = []
    pos = 0
    while pos + 12 <= len(records):
        _, length = struct.unpack_from(">qi", records, pos)
        if pos + 12 + length > len(records):
            break
        h = BatchHeader(*_BATCH_HEADER.unpack_from(records, pos))
        if h.magic != 2:
            raise ValueError(f"unexpected magic {h.magic} at {pos}")
        out.append(h)
        pos += 12 + length
    return out


def fetch_v4(conn: RawConnection, topic: str, partition: int, offset: int, *,
             max_bytes: int = 8 * 1024 * 1024, max_wait_ms: int = 100) -> tuple[int, int, bytes]:
    """Returns (error_code, high_watermark, records bytes)."""
    body = (
        enc_int32(-1)  # replica id
        + enc_int32(max_wait_ms)
        + enc_int32(1)  # min bytes
        + enc_int32(max_bytes)
        + enc_int8(0)  # read_uncommitted
        + enc_array([enc_string(topic) + enc_array([enc_int32(partition) + enc_int64(offset)
                                                     + enc_int32(max_bytes)])])
    )
    r = conn.request(API_FETCH, 4, body)
    r.int32()  # throttle

    def part(x: Reader):
        idx, err, hw = x.int32(), x.int16(), x.int64()
        x.int64()  # last stable offset
        x.array(lambda y: (y.int64(), y.int64()))  # aborted transactions
        n = x.int32()
        records = b"" if n < 0 else x.data[x.pos:x.pos + n]
        x.pos += max(n, 0)
        return idx, err, hw, records

    for name, parts in r.array(lambda x: (x.string(), x.array(part))):
        for idx, err, hw, records in parts:
            if name == topic and idx == partition:
                return err, hw, records
    raise ValueError(f"no fetch result for {topic}-{partition}")


@dataclass
class SessionFetch:
    """A Fetch v11 answer: top-level error, session id, and per (topic, partition) the
    error, high watermark and record bytes."""
    error: int
    session_id: int
    partitions: dict[tuple[str, int], tuple[int, int, bytes]]


def fetch_v11(conn: RawConnection, session_id: int, session_epoch: int,
              fetch: list[tuple[str, int, int]], forget: list[tuple[str, int]] | None = None, *,
              max_bytes: int = 1024 * 1024, max_wait_ms: int = 100,
              min_bytes: int = 1) -> SessionFetch:
    """Fetch v11 (fetch sessions, KIP-227) of `fetch` = [(topic, partition, offset)], forgetting
    `forget` = [(topic, partition)]."""
    by_topic: dict[str, list[bytes]] = {}
    for topic, partition, offset in fetch:
        by_topic.setdefault(topic, []).append(
            enc_int32(partition) + enc_int32(-1)  # current leader epoch
            + enc_int64(offset) + enc_int64(-1)  # log start offset
            + enc_int32(max_bytes))
    forgotten: dict[str, list[bytes]] = {}
    for topic, partition in forget or []:
        forgotten.setdefault(topic, []).append(enc_int32(partition))
    body = (
        enc_int32(-1) + enc_int32(max_wait_ms) + enc_int32(min_bytes) + enc_int32(max_bytes)
        + enc_int8(0) + enc_int32(session_id) + enc_int32(session_epoch)
        + enc_array([enc_string(t) + enc_array(ps) for t, ps in by_topic.items()])
        + enc_array([enc_string(t) + enc_array(ps) for t, ps in forgotten.items()])
        + enc_string("")  # rack id
    )
    r = conn.request(API_FETCH, 11, body)
    r.int32()  # throttle
    error, sid = r.int16(), r.int32()

    def part(x: Reader):
        idx, err, hw = x.int32(), x.int16(), x.int64()
        x.int64()  # last stable offset
        x.int64()  # log start offset
        x.array(lambda y: (y.int64(), y.int64()))  # aborted transactions
        x.int32()  # preferred read replica
        n = x.int32()
        records = b"" if n < 0 else x.data[x.pos:x.pos + n]
        x.pos += max(n, 0)
        return idx, err, hw, records

    out = {}
    for name, parts in r.array(lambda x: (x.string(), x.array(part))) or []:
        for idx, err, hw, records in parts:
            out[(name, idx)] = (err, hw, records)
    return SessionFetch(error, sid, out)


def all_batch_headers(bootstrap: str, topic: str, partition: int = 0) -> list[BatchHeader]:
    """Every batch header of a partition, from offset 0 to the high watermark."""
    out: list[BatchHeader] = []
    with RawConnection(bootstrap) as conn:
        offset = 0
        while True:
            err, hw, records = fetch_v4(conn, topic, partition, offset)
            if err != ERR_NONE:
                raise RuntimeError(f"Fetch {topic}-{partition}@{offset}: error {err}")
            batches = batch_headers(records)
            if not batches:
                return out
            out.extend(b for b in batches if b.base_offset + b.last_offset_delta >= offset)
            offset = batches[-1].base_offset + batches[-1].last_offset_delta + 1
            if offset >= hw:
                return out
