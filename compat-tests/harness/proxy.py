"""A Kafka-aware TCP proxy that can swallow Produce responses, so that real clients retry.

    proxy = KafkaProxy()                   # listens on 127.0.0.1:<free port> right away
    broker = broker_factory({"advertised.listeners": f"PLAINTEXT://{proxy.address}"})
    proxy.start(broker.bootstrap)          # every accepted connection is forwarded there
    broker.start()
    proxy.drop_produce_responses(3, every=4)
    ... produce with bootstrap proxy.address ...
    proxy.dropped                          # [(api_version, correlation_id)] of swallowed responses
    proxy.stop()

The broker must advertise the proxy's address, or metadata would send the clients around it.

Client->broker bytes are cut into frames (int32 size, then int16 api_key, int16 api_version,
int32 correlation_id, the same in every request header version); broker->client frames start
with the correlation id. A Produce request chosen for dropping is forwarded to the broker; the
proxy waits for the broker's response, throws it away and ends that connection (see _hang_up:
the client still gets the responses to the requests before it). The broker has appended the
batch, but the client only sees the connection end and sends the batch again (with the same
producer id, epoch and sequence when it is idempotent). Requests the client pipelined behind the
dropped one on that connection are never forwarded (the client re-sends those too). Only
Produce requests (api key 0) are counted, retries included. acks=0 Produce requests get no
response: do not arm drops for such producers (the proxy gives up waiting after
RESPONSE_TIMEOUT_S and closes the connection).

Everything is bounded: the proxy binds 127.0.0.1 only, every socket operation times out, the
threads are daemons that notice stop() within POLL_S, and the proxy stops by itself after
max_lifetime_s.
"""
from __future__ import annotations

import select
import socket
import struct
import threading
import time

API_PRODUCE = 0
MAX_FRAME = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes
IO_TIMEOUT_S = 30.0            # connecting to the broker, one blocked send
RESPONSE_TIMEOUT_S = 30.0      # waiting for the response that is to be dropped
HANG_UP_DELAY_S = 0.5          # between the dropped response and hanging up
HANG_UP_S = 5.0                # waiting for the client to close after the proxy hung up
POLL_S = 0.2


def _take_frames(buf: bytearray, min_size: int):
    """Yield the complete frames (size prefix included) at the front of buf, removing each."""
    while len(buf) >= 4:
        (size,) = struct.unpack_from(">i", buf)
        if not min_size <= size <= MAX_FRAME:
            raise ValueError(f"implausible frame size {size}")
        if len(buf) < 4 + size:
            return
        frame = bytes(buf[:4 + size])
        del buf[:4 + size]
        yield frame


class KafkaProxy:
    def __init__(self, max_lifetime_s: float = 600.0):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))  # the port is ours from here on: no race
        self._listener.listen(64)
        self._listener.settimeout(POLL_S)
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.max_lifetime_s = max_lifetime_s
        self.upstream: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._drops_left = 0
        self._every = 1
        self._until_drop = 1
        self.produce_requests = 0                 # Produce requests seen (forwarded or dropped)
        self.request_sizes: dict[int, list[int]] = {}  # api key -> size of each request frame
        self.dropped: list[tuple[int, int]] = []  # (api_version, correlation_id) swallowed
        self.errors: list[str] = []               # what went wrong on the proxy's side

    # -- control
    def start(self, upstream: str) -> "KafkaProxy":
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        t = threading.Thread(target=self._accept_loop, name=f"proxy-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        self._listener.close()

    def drop_produce_responses(self, n: int, every: int = 1) -> None:
        """Swallow the responses of n Produce requests from now on: of every `every`-th one
        (every=1: the next n), counting all Produce requests, retries included."""
        assert n >= 0 and every >= 1
        with self._lock:
            self._drops_left, self._every, self._until_drop = n, every, every

    def _should_drop(self) -> bool:  # once per Produce request
        with self._lock:
            self.produce_requests += 1
            if self._drops_left <= 0:
                return False
            self._until_drop -= 1
            if self._until_drop > 0:
                return False
            self._drops_left -= 1
            self._until_drop = self._every
            return True

    def _note(self, what: str) -> None:
        with self._lock:
            self.errors.append(what)

    # -- forwarding
    def _accept_loop(self) -> None:
        deadline = time.monotonic() + self.max_lifetime_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            t = threading.Thread(target=self._serve, args=(client,), daemon=True,
                                 name=f"proxy-{self.port}-conn")
            t.start()
            self._threads.append(t)
        self._stop.set()  # past its lifetime the proxy ends every connection too
        self._listener.close()

    def _hang_up(self, client: socket.socket) -> None:
        """End the connection so that the client still reads the responses forwarded before.

        Closing at once loses them: kafka-python 3.0.12 throws away bytes that arrive in the
        same read as the end of the connection, and closing with unread bytes from the client
        sends a RST, after which the client's kernel may drop received but unread data. Either
        way the client would re-send those batches as well. So: wait HANG_UP_DELAY_S, send a
        FIN, discard what the client still sends until it closes its side (or HANG_UP_S pass);
        the caller then closes."""
        if self._stop.wait(HANG_UP_DELAY_S):
            return
        deadline = time.monotonic() + HANG_UP_S
        try:
            client.shutdown(socket.SHUT_WR)
            while time.monotonic() < deadline and not self._stop.is_set():
                readable, _, _ = select.select([client], [], [], POLL_S)
                if readable and not client.recv(65536):
                    return
        except OSError:
            pass

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=IO_TIMEOUT_S)
        except OSError as e:
            self._note(f"connecting to the broker at {self.upstream}: {e}")
            client.close()
            return
        for s in (client, upstream):
            s.settimeout(IO_TIMEOUT_S)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        from_client, from_broker = bytearray(), bytearray()
        dropping: tuple[int, int] | None = None  # (api_version, correlation_id) to swallow
        deadline = 0.0
        try:
            while not self._stop.is_set():
                if dropping is not None and time.monotonic() > deadline:
                    self._note(f"no response to Produce {dropping} within {RESPONSE_TIMEOUT_S}s")
                    return
                # Once a response is to be dropped, the client is no longer listened to.
                watched = [upstream] if dropping is not None else [client, upstream]
                readable, _, _ = select.select(watched, [], [], POLL_S)
                if client in readable:
                    data = client.recv(65536)
                    if not data:
                        return
                    from_client += data
                    for frame in _take_frames(from_client, 8):
                        api_key, api_version, correlation_id = struct.unpack_from(">hhi", frame, 4)
                        with self._lock:
                            self.request_sizes.setdefault(api_key, []).append(len(frame))
                        drop = api_key == API_PRODUCE and self._should_drop()
                        upstream.sendall(frame)
                        if drop:
                            dropping = (api_version, correlation_id)
                            deadline = time.monotonic() + RESPONSE_TIMEOUT_S
                            break  # what the client sent after it is never forwarded
                if upstream in readable:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    from_broker += data
                    for frame in _take_frames(from_broker, 4):
                        (correlation_id,) = struct.unpack_from(">i", frame, 4)
                        if dropping is not None and correlation_id == dropping[1]:
                            with self._lock:
                                self.dropped.append(dropping)
                            self._hang_up(client)  # that is all the client will hear of it
                            return
                        client.sendall(frame)
        except ValueError as e:
            self._note(str(e))
        except OSError:
            pass  # either side went away: so does the other
        finally:
            client.close()
            upstream.close()
