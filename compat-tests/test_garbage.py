"""Malformed input on raw sockets: each bad connection is closed (or answered with an error)
promptly, and the broker keeps serving everyone else.

What Apache Kafka 4.1 does (measured with this file): it closes the connection, within
milliseconds, for every case in BAD_INPUTS, without answering; it answers an ApiVersions
request of an unsupported version with UNSUPPORTED_VERSION (35) and its own ApiVersions range
(key 18, versions 0..4) in the v0 format; it keeps a connection holding a truncated frame open
(waiting for the rest) while serving other connections. The tests accept 'closed' or any
response frame, never silence: a broker must not sit on garbage.
"""
from __future__ import annotations

import random
import socket
import struct

import pytest

from harness import wire
from harness.clients import ck_consume, create_topic, kp_producer, unique_topic
from harness.wire import enc_int16, enc_int32, enc_string, frame, request_header_v1

VERDICT_TIMEOUT_S = 10.0


def _random_bytes(seed: int, n: int) -> bytes:
    rnd = random.Random(seed)
    return bytes(rnd.getrandbits(8) for _ in range(n))


def _produce_v8_prefix(cid: int) -> bytes:
    return (request_header_v1(wire.API_PRODUCE, 8, cid) + enc_string(None) + enc_int16(-1)
            + enc_int32(1000))


# (bytes to send, then half-close our side?)
BAD_INPUTS = {
    # socket.request.max.bytes is 100 MiB by default: larger sizes are refused up front.
    "size-2^31-1": (struct.pack(">i", 2**31 - 1), False),
    "size-100MiB-plus-1": (struct.pack(">i", 100 * 1024 * 1024 + 1) + b"\x00" * 64, False),
    "size-negative": (struct.pack(">i", -5), False),
    "size-zero": (struct.pack(">i", 0), False),
    # A frame cut short, then EOF from the client.
    "truncated-then-eof": (struct.pack(">i", 100) + request_header_v1(18, 0, 1)[:6], True),
    # Noise, then EOF (its first four bytes may or may not look like a sane size).
    "random-bytes-then-eof": (_random_bytes(1, 300), True),
    # Well-framed noise.
    "framed-random-1": (frame(_random_bytes(2, 64)), False),
    "framed-random-2": (frame(_random_bytes(3, 200)), False),
    "framed-random-3": (frame(b"\x00\x03" + _random_bytes(4, 40)), False),  # "Metadata" + noise
    # A valid header with an API key no broker knows.
    "unknown-api-key-9999": (frame(request_header_v1(9999, 0, 7) + b"\x00" * 8), False),
    # Header fields that point past the end of the frame.
    "client-id-longer-than-frame": (frame(enc_int16(18) + enc_int16(0) + enc_int32(7) + enc_int16(3000)),
                                    False),
    # Arrays and byte fields with absurd lengths.
    "metadata-v1-topics-2^31-1": (frame(request_header_v1(wire.API_METADATA, 1, 7) + enc_int32(2**31 - 1)),
                                  False),
    "produce-v8-topics-2^31-1": (frame(_produce_v8_prefix(7) + enc_int32(2**31 - 1)), False),
    "produce-v8-records-2^31-1": (frame(_produce_v8_prefix(7) + enc_int32(1) + enc_string("t")
                                        + enc_int32(1) + enc_int32(0) + enc_int32(2**31 - 1)), False),
}


def assert_serves(bootstrap: str) -> None:
    with wire.RawConnection(bootstrap) as conn:
        versions = wire.api_versions_v0(conn)
    assert wire.API_API_VERSIONS in versions


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_closes_connection(module_broker, case):
    data, half_close = BAD_INPUTS[case]
    with wire.RawConnection(module_broker.bootstrap) as conn:
        try:
            conn.send_raw(data)
            if half_close:
                conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the broker may already have hung up; that's a close
        verdict = conn.outcome(VERDICT_TIMEOUT_S)
    assert verdict in ("closed", "response"), f"{case}: connection still open after {VERDICT_TIMEOUT_S}s"
    assert_serves(module_broker.bootstrap)


@pytest.mark.timeout(60)
def test_truncated_frame_does_not_block_other_connections(module_broker):
    with wire.RawConnection(module_broker.bootstrap) as stalled:
        stalled.send_raw(struct.pack(">i", 100) + request_header_v1(18, 0, 1))
        for _ in range(3):
            assert_serves(module_broker.bootstrap)
        # The stalled request is still incomplete: no response may appear for it.
        assert stalled.outcome(1.0) in ("open", "closed")


@pytest.mark.timeout(60)
def test_api_versions_unsupported_version_answers_with_own_range(module_broker):
    # ApiVersions v127 with request header v2 (tagged fields) and a v3-style body.
    header = request_header_v1(wire.API_API_VERSIONS, 127, 42) + b"\x00"
    body = b"\x06fjord" + b"\x021" + b"\x00"  # compact strings client_software_name/version, no tags
    with wire.RawConnection(module_broker.bootstrap) as conn:
        conn.send_raw(frame(header + body))
        r = wire.Reader(conn.recv_frame())
    assert r.int32() == 42
    assert r.int16() == wire.ERR_UNSUPPORTED_VERSION
    keys = {k: (lo, hi) for k, lo, hi in r.array(lambda x: (x.int16(), x.int16(), x.int16()))}
    assert wire.API_API_VERSIONS in keys, keys
    lo, hi = keys[wire.API_API_VERSIONS]
    assert lo == 0 and hi >= 3, keys


@pytest.mark.timeout(120)
def test_real_clients_still_work_after_garbage(module_broker):
    topic = unique_topic("after-garbage")
    create_topic(module_broker.bootstrap, topic, partitions=1)
    producer = kp_producer(module_broker.bootstrap, acks="all")
    try:
        offsets = [producer.send(topic, key=b"k", value=f"v{i}".encode(), partition=0)
                   for i in range(20)]
        producer.flush(timeout=30)
        assert [f.get(timeout=30).offset for f in offsets] == list(range(20))
    finally:
        producer.close(timeout=10)
    got = ck_consume(module_broker.bootstrap, topic, expected=20)
    assert [(r.offset, r.value) for r in got] == [(i, f"v{i}".encode()) for i in range(20)]
