"""Network partitions for the cluster tests: every node of a local cluster in a Linux network
namespace of its own, all of them wired to a "hub" namespace where the test's clients run, and
nftables in the hub to cut one node off from everything and to heal it again.

    ns = Netns(3)                          # or `with Netns(3) as ns:` (up() ... down())
    ns.up()
    ns.address(2)                          # '127.0.1.2': what node 2 binds and advertises
    Popen(cmd, preexec_fn=ns.preexec(2, then=_die_with_parent))   # node 2 runs in its namespace
    Popen(ns.node_cmd(2, cmd))             # the same through `ip netns exec`
    with ns.entered():                     # this thread in the hub: clients, their threads,
        ...                                # their sockets and subprocesses live there
    ns.isolate(2)                          # every packet to or from 127.0.1.2 is dropped
    ns.isolate(2, from_clients=False)      # only node 2 <-> other nodes is dropped
    ns.heal(2)                             # (heal() heals every node)
    ns.down()                              # also at interpreter exit, whatever happened

Topology, every address in 127.0.0.0/8 (the root namespace is never touched):
    hub    <P>hub  lo 127.0.0.1/32 and 127.0.1.254/32 (the clients' source address);
                   veth <P>h<i> to node i with the route 127.0.1.i/32; ip_forward=1; the nft
                   table `inet <P>` whose sets `cut` (all traffic) and `peers` (node to node
                   only, the forward hook) hold the isolated nodes' addresses
    node i <P>n<i> lo 127.0.0.1/32; veth <P>n<i> with 127.0.1.i/32; 127.0.1.0/24 via the hub
<P> is fj<pid>_<k> (k counts the instances of this process), so interface names stay within
15 characters and leftovers of a run killed before its atexit are recognisable (up() removes
those whose pid is gone). 127/8 on anything but lo is martian unless route_localnet=1 (set in
every namespace) and lo's usual 127.0.0.1/8 would make the whole of 127/8 local: every
namespace has 127.0.0.1/32 instead, so 127.0.0.1 is still each namespace's own loopback and
127.0.1.x goes over the veths. A cut drops packets (never rejects): connections through it
stall, new ones time out, and they resume after heal() if TCP has not given up meanwhile.

setns(2) moves one thread: entered() moves the calling thread and puts it back on exit.
Threads and processes started inside inherit the hub (librdkafka's threads, Java and Go
clients); a client made or used outside entered() is in the root namespace, where 127.0.1.x is
local and nothing listens (connection refused). kafka-python opens sockets from the thread
that polls, so use those clients inside entered() only; the simplest is a fixture that yields
inside `with ns.entered():`. Binding 127.0.1.x (e.g. brokers.free_port_on) works in the root
namespace only; the namespaces are fresh, any port is free in them.

Needs root, iproute2 (`ip`) and nftables (`nft`; setup-clients.sh installs it).
"""
from __future__ import annotations

import atexit
import ctypes
import itertools
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from typing import Callable, Iterator

CMD_TIMEOUT_S = 20.0
SUBNET = "127.0.1"
HUB_ADDRESS = f"{SUBNET}.254"

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000
_SEQ = itertools.count()
_STALE = re.compile(r"^fj(\d+)_\d+(?:hub|n\d+)$")


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, input=stdin if stdin is not None else "", capture_output=True,
                       text=True, timeout=CMD_TIMEOUT_S)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()}\n{stdin or ''}")
    return p


def _netns_names() -> list[str]:
    out = _run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def remove_stale() -> None:
    """Delete the namespaces of earlier runs whose process is gone (a SIGKILLed pytest)."""
    for name in _netns_names():
        m = _STALE.match(name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _run(["ip", "netns", "del", name], check=False)


class Netns:
    """A hub namespace and `nodes` node namespaces (node i is 1-based)."""

    def __init__(self, nodes: int = 3):
        if not 1 <= nodes <= 99:
            raise ValueError("1..99 nodes")
        self.nodes = nodes
        self.prefix = f"fj{os.getpid()}_{next(_SEQ)}"
        self.hub = f"{self.prefix}hub"
        self._fds: dict[str, int] = {}
        self._cut: set[int] = set()
        self._registered = False

    # -- names and addresses
    def node_ns(self, i: int) -> str:
        self._check(i)
        return f"{self.prefix}n{i}"

    def address(self, i: int) -> str:
        self._check(i)
        return f"{SUBNET}.{i}"

    def hosts(self) -> list[str]:
        return [self.address(i) for i in range(1, self.nodes + 1)]

    def _check(self, i: int) -> None:
        if not 1 <= i <= self.nodes:
            raise ValueError(f"no node {i} (nodes are 1..{self.nodes})")

    # -- lifecycle
    def up(self) -> None:
        for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
            if shutil.which(tool) is None:
                raise AssertionError(f"`{tool}` is missing (apt-get install {pkg}; setup-clients.sh does)")
        if not self._registered:
            atexit.register(self.down)
            self._registered = True
        remove_stale()
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _up(self) -> None:
        names = [self.hub] + [self.node_ns(i) for i in range(1, self.nodes + 1)]
        for name in names:
            _run(["ip", "netns", "add", name])
            self._fds[name] = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
            with self._in(name):   # before any veth exists, so the veths inherit 'default'
                for conf in ("all", "default"):
                    self._sysctl(name, f"ipv4/conf/{conf}/route_localnet", "1")
                    self._sysctl(name, f"ipv4/conf/{conf}/rp_filter", "0")
                if name == self.hub:
                    self._sysctl(name, "ipv4/ip_forward", "1")
        lo = ["link set lo up", "addr del 127.0.0.1/8 dev lo", "addr add 127.0.0.1/32 dev lo"]
        hub = lo + [f"addr add {HUB_ADDRESS}/32 dev lo"]
        for i in range(1, self.nodes + 1):
            h, n = f"{self.prefix}h{i}", f"{self.prefix}n{i}"
            hub += [f"link add {h} type veth peer name {n} netns {self.node_ns(i)}",
                    f"link set {h} up",
                    f"route add {self.address(i)}/32 dev {h} src {HUB_ADDRESS}"]
        _run(["ip", "-n", self.hub, "-batch", "-"], "\n".join(hub) + "\n")
        for i in range(1, self.nodes + 1):
            n, a = f"{self.prefix}n{i}", self.address(i)
            node = lo + [f"addr add {a}/32 dev {n}", f"link set {n} up",
                         f"route add {HUB_ADDRESS}/32 dev {n} src {a}",
                         f"route add {SUBNET}.0/24 via {HUB_ADDRESS} dev {n} src {a}"]
            _run(["ip", "-n", self.node_ns(i), "-batch", "-"], "\n".join(node) + "\n")
        # `cut`: dropped everywhere in the hub; `peers`: dropped only where the hub forwards
        # (node to node), so the clients, which live in the hub, still reach the node.
        chains = "".join(
            f"  chain {hook} {{ type filter hook {hook} priority -10; policy accept;"
            f" ip saddr @cut drop; ip daddr @cut drop;{peers} }}\n"
            for hook, peers in (("input", ""), ("output", ""),
                                ("forward", " ip saddr @peers drop; ip daddr @peers drop;")))
        sets = "  set cut { type ipv4_addr; }\n  set peers { type ipv4_addr; }\n"
        _run(["ip", "netns", "exec", self.hub, "nft", "-f", "-"],
             f"table inet {self.prefix} {{\n{sets}{chains}}}\n")

    def down(self) -> None:
        """Remove every namespace and veth of this instance (idempotent; best effort, then an
        error naming what is left, except at interpreter exit)."""
        if not self._fds:
            return
        for fd in self._fds.values():
            os.close(fd)
        names = list(self._fds)
        self._fds.clear()
        self._cut.clear()
        for i in range(1, self.nodes + 1):  # a pair goes with either end, even if a node's
            _run(["ip", "-n", self.hub, "link", "del", f"{self.prefix}h{i}"], check=False)  # ns lives on
        for name in names:
            _run(["ip", "netns", "del", name], check=False)
        left = [n for n in _netns_names() if n in names]
        if left:
            raise RuntimeError(f"network namespaces left behind: {left}")

    def __enter__(self) -> "Netns":
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    # -- running things inside
    @contextmanager
    def _in(self, name: str) -> Iterator[None]:
        saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(self._fds[name])
            try:
                if os.stat("/proc/thread-self/ns/net").st_ino != os.fstat(self._fds[name]).st_ino:
                    raise RuntimeError(f"setns did not move this thread into {name}")
                yield
            finally:
                _setns(saved)
        finally:
            os.close(saved)

    def _sysctl(self, name: str, key: str, value: str) -> None:
        # /proc/sys/net is the calling thread's namespace: only ever written inside _in(name)
        if os.stat("/proc/thread-self/ns/net").st_ino != os.fstat(self._fds[name]).st_ino:
            raise RuntimeError(f"refusing to write {key} outside {name}")
        with open(f"/proc/sys/net/{key}", "w") as f:
            f.write(value)

    @contextmanager
    def entered(self, node: int | None = None) -> Iterator[None]:
        """The calling thread in the hub (or in node `node`'s namespace) until the block ends;
        threads, sockets and subprocesses made meanwhile stay there for good."""
        with self._in(self.hub if node is None else self.node_ns(node)):
            yield

    def node_cmd(self, i: int, argv: list[str]) -> list[str]:
        """argv run in node i's namespace by `ip netns exec` (which execs it: same pid; it
        also gives the process a private mount namespace with its own /sys)."""
        return ["ip", "netns", "exec", self.node_ns(i), *argv]

    def preexec(self, i: int, then: Callable[[], None] | None = None) -> Callable[[], None]:
        """A subprocess.Popen preexec_fn that moves the child into node i's namespace (through
        an fd inherited across fork; it is O_CLOEXEC, so the program never sees it), then
        calls `then` (e.g. brokers._die_with_parent)."""
        fd = self._fds[self.node_ns(i)]

        def enter() -> None:
            _setns(fd)
            if then is not None:
                then()
        return enter

    # -- partitions
    def isolate(self, i: int, from_clients: bool = True) -> None:
        """Drop every packet from or to node i in the hub: it reaches neither the other nodes
        nor (with `from_clients`) the clients, and none of them reaches it. Without
        `from_clients` only the traffic between node i and the other nodes is cut."""
        self._nft(f"add element inet {self.prefix} {'cut' if from_clients else 'peers'} "
                  f"{{ {self.address(i)} }}")
        self._cut.add(i)

    def heal(self, i: int | None = None) -> None:
        """Undo isolate(i) (every cut when i is None)."""
        if i is None:
            for name in ("cut", "peers"):
                self._nft(f"flush set inet {self.prefix} {name}")
            self._cut.clear()
        elif i in self._cut:
            for name in ("cut", "peers"):
                self._nft(f"delete element inet {self.prefix} {name} {{ {self.address(i)} }}", check=False)
            self._cut.discard(i)

    @property
    def isolated(self) -> set[int]:
        return set(self._cut)

    def _nft(self, command: str, check: bool = True) -> None:
        if not self._fds:
            raise RuntimeError("Netns is not up")
        _run(["ip", "netns", "exec", self.hub, "nft", command], check=check)

    def __repr__(self) -> str:
        return f"<Netns {self.prefix} nodes={self.hosts()} isolated={sorted(self._cut)}>"
