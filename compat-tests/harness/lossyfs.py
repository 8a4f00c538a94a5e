"""A power cut for the fault tests: brokers keep their files on a `lossyfs` mount
(compat-tests/lossyfs), a FUSE pass-through that holds every write not yet fsynced in its
own memory. `PowerCut.cut()` freezes the filesystem (SIGSTOP), SIGKILLs every process
given to it, SIGKILLs lossyfs (its unsynced writes die with it) and detaches the mount;
`PowerCut.mount()` brings the backing directory back as a fresh mount, holding exactly what
a disk would hold after the cut. `PowerCut.sync()` puts everything written so far on the
disk (as if it had been written long before the cut).

The binary is $FJORD_LOSSYFS (run.sh points it at the workspace build); mounting needs
/dev/fuse and Debian's fuse3 (fusermount3), which setup-clients.sh installs.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

MOUNT_TIMEOUT_S = 10.0


def lossyfs_binary() -> Path:
    exe = os.environ.get("FJORD_LOSSYFS", "")
    if not os.access(exe, os.X_OK):
        raise AssertionError(f"lossyfs binary {exe!r} (FJORD_LOSSYFS) missing: build the workspace "
                             "(cargo build --release --workspace) and run the suite with compat-tests/run.sh")
    if shutil.which("fusermount3") is None or not os.path.exists("/dev/fuse"):
        raise AssertionError("FUSE is not available here (needs /dev/fuse and fusermount3: apt-get install fuse3)")
    return Path(exe)


class PowerCut:
    """One lossyfs mount at `root/mnt` over `root/backing`. Use as a context manager: on exit
    the mount is killed and detached whatever happened."""

    def __init__(self, root: Path, expire_ms: int = 30_000):
        self.root = Path(root)
        self.backing = self.root / "backing"
        self.mountpoint = self.root / "mnt"
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.expire_ms = expire_ms
        self.proc: subprocess.Popen | None = None
        self.mounts = 0

    def mount(self) -> None:
        self.mounts += 1
        log = open(self.root / f"lossyfs-{self.mounts}.log", "wb")
        self.proc = subprocess.Popen(
            [str(lossyfs_binary()), "--backing", str(self.backing), "--mount", str(self.mountpoint),
             "--expire-ms", str(self.expire_ms)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        while not os.path.ismount(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise AssertionError(f"lossyfs did not mount {self.mountpoint}: "
                                     f"{(self.root / f'lossyfs-{self.mounts}.log').read_text(errors='replace')}")
            time.sleep(0.05)

    def sync(self) -> None:
        """Everything written so far reaches the disk: a clean unmount (lossyfs writes its
        dirty pages back), then a fresh mount."""
        subprocess.run(["fusermount3", "-u", str(self.mountpoint)], check=True, timeout=60,
                       capture_output=True)
        self.proc.wait(timeout=60)
        self.proc = None
        self.mount()

    def cut(self, pids: list[int]) -> None:
        """The power cut: no write reaches the backing directory from this instant, every
        process in `pids` gets SIGKILL, then lossyfs dies with its dirty pages (which also
        fails the FUSE requests the killed processes may be blocked in; reap them after)."""
        if self.proc is None:
            raise RuntimeError("not mounted")
        self.proc.send_signal(signal.SIGSTOP)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._kill()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None
        # Always detach: a mount whose daemon died fails stat (ENOTCONN), so ismount says no.
        if self.mounts:
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False, timeout=30,
                           capture_output=True)

    def __enter__(self) -> "PowerCut":
        self.mount()
        return self

    def __exit__(self, *exc) -> None:
        self._kill()
