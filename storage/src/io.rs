//! `IoEngine`: positional reads, writes and fdatasync for one shard, through io_uring when the
//! kernel allows it, else through blocking std file I/O.
//!
//! io_uring path: one ring per shard. Operations push SQEs and flag the driver; the
//! driver task (spawned with `spawn_local` by [`IoEngine::new`]) submits everything
//! queued during the reactor turn in one `io_uring_enter`, and reaps completions when
//! the eventfd registered with the ring (watched through `AsyncFd`) becomes readable.
//!
//! Fault layer (`io/faults.rs`): every operation asks the engine's `Faults` first, so
//! tests fail, tear and delay writes, syncs and reads deterministically on both paths.
//!
//! Invariant: a buffer or file handed to an operation stays alive (owned by its op
//! slot) until the kernel posts the completion, even if the caller's future is dropped.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use io_uring::{opcode, squeue, types, IoUring};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;

mod faults;
use faults::Action;
pub use faults::Faults;

/// Disk I/O for one shard. Owned by one shard thread (`!Send`); every `Log` of that
/// shard shares it through an `Rc`. Every operation first asks the engine's [`Faults`]
/// (counters, and injected failures in tests), on both paths.
pub struct IoEngine {
    uring: Option<Rc<Uring>>,
    faults: Faults,
}

impl IoEngine {
    /// Sets up a ring of `ring_entries` SQEs. Must run inside a tokio current-thread
    /// runtime within a `LocalSet` (it spawns the completion driver with `spawn_local`).
    /// Falls back to blocking std I/O, with one warning, when io_uring is unavailable.
    pub fn new(ring_entries: u32) -> io::Result<Rc<IoEngine>> {
        let attempt = if tokio::runtime::Handle::try_current().is_ok() {
            Uring::new(ring_entries.max(8))
        } else {
            Err(io::Error::other("no tokio runtime on this thread"))
        };
        match attempt {
            Ok(u) => {
                let u = Rc::new(u);
                tokio::task::spawn_local(drive(u.clone()));
                Ok(Rc::new(IoEngine {
                    uring: Some(u),
                    faults: Faults::default(),
                }))
            }
            Err(e) => {
                tracing::warn!(error = %e, "io_uring unavailable; storage falls back to blocking file I/O");
                Ok(IoEngine::new_fallback())
            }
        }
    }

    /// Blocking std I/O (pwrite/fdatasync) only; needs no runtime.
    pub fn new_fallback() -> Rc<IoEngine> {
        Rc::new(IoEngine {
            uring: None,
            faults: Faults::default(),
        })
    }

    pub fn is_uring(&self) -> bool {
        self.uring.is_some()
    }

    /// This engine's fault rules and operation counters (shared handle).
    pub fn faults(&self) -> Faults {
        self.faults.clone()
    }

    /// fsync/fdatasync operations issued so far (for metrics and group-commit tests).
    pub fn sync_count(&self) -> u64 {
        self.faults.syncs()
    }

    /// Writes all of `buf` at byte `pos` of `file` (short writes are continued).
    pub fn write_at(
        &self,
        file: Arc<File>,
        pos: u64,
        buf: Bytes,
    ) -> impl Future<Output = io::Result<()>> + 'static {
        let decision = self.faults.on_write();
        let uring = self.uring.clone();
        async move {
            let result = write_faulted(uring.as_ref(), &file, pos, buf, decision.action).await;
            decision.finish(result).await
        }
    }

    /// `fdatasync(file)`; `fsync` semantics when `full` (needed for directories).
    pub fn sync(
        &self,
        file: Arc<File>,
        full: bool,
    ) -> impl Future<Output = io::Result<()>> + 'static {
        let decision = self.faults.on_sync();
        let uring = self.uring.clone();
        async move {
            let result = sync_faulted(uring.as_ref(), &file, full, decision.action).await;
            decision.finish(result).await
        }
    }

    /// Writes `buf` at `pos` then fdatasyncs, linked on the ring (`IOSQE_IO_LINK`) so
    /// both go to the kernel in one submission and the sync starts only after the write.
    /// Counts one write and one sync; with a fault on either, the two run unlinked.
    pub fn write_at_and_sync(
        &self,
        file: Arc<File>,
        pos: u64,
        buf: Bytes,
    ) -> impl Future<Output = io::Result<()>> + 'static {
        let write = self.faults.on_write();
        let sync = self.faults.on_sync();
        let uring = self.uring.clone();
        async move {
            let result = match uring {
                Some(u) if write.action.is_none() && sync.action.is_none() => {
                    write_and_sync_uring(&u, &file, pos, buf).await
                }
                u => {
                    let u = u.as_ref();
                    match write_faulted(u, &file, pos, buf, write.action).await {
                        Ok(()) => sync_faulted(u, &file, false, sync.action).await,
                        Err(e) => Err(e),
                    }
                }
            };
            let result = write.finish(result).await;
            sync.finish(result).await
        }
    }

    /// Reads `len` bytes at byte `pos` of `file` (short reads are continued); fewer only
    /// when the file ends first. The buffer belongs to the op slot until the kernel is
    /// done with it, so dropping the future mid-read is safe.
    pub fn read_at(
        &self,
        file: Arc<File>,
        pos: u64,
        len: usize,
    ) -> impl Future<Output = io::Result<Bytes>> + 'static {
        let decision = self.faults.on_read();
        let uring = self.uring.clone();
        async move {
            let result = match (decision.action, uring) {
                (Some(Action::Fail(errno)), _) => Err(io::Error::from_raw_os_error(errno)),
                (Some(Action::Tear(_)), _) => Err(io::Error::from_raw_os_error(libc::EIO)),
                (None, None) => pread_upto(&file, pos, len).map(Bytes::from),
                (None, Some(u)) => read_uring(&u, &file, pos, len).await,
            };
            decision.finish(result).await
        }
    }
}

/// Reads up to `len` bytes at `pos` with blocking preads into a buffer that is not
/// zeroed first (a fetch reads megabytes; zeroing cost as much as the read). Shorter
/// than `len` only at end of file.
pub(crate) fn pread_upto(file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let done = buf.len();
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        let at = libc::off_t::try_from(pos + done as u64)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "read position too large"))?;
        // SAFETY: pread writes at most `spare.len()` bytes into `spare`, memory this
        // Vec owns and that nothing else references during the call.
        let n =
            unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at) };
        match n {
            0 => break,
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // SAFETY: pread initialized the `n <= spare.len()` bytes after the first `done`.
            n => unsafe { buf.set_len(done + (n as usize).min(len - done)) },
        }
    }
    Ok(buf)
}

async fn read_uring(u: &Rc<Uring>, file: &Arc<File>, pos: u64, len: usize) -> io::Result<Bytes> {
    let buf = Rc::new(RefCell::new(Vec::<u8>::with_capacity(len)));
    loop {
        let (ptr, want, done) = {
            let mut b = buf.borrow_mut();
            let done = b.len();
            if done >= len {
                break;
            }
            let spare = b.spare_capacity_mut();
            (spare.as_mut_ptr().cast::<u8>(), len - done, done)
        };
        let want_u32 = u32::try_from(want).unwrap_or(u32::MAX);
        let sqe = opcode::Read::new(types::Fd(file.as_raw_fd()), ptr, want_u32)
            .offset(pos + done as u64)
            .build();
        let keep = Keep {
            _file: Some(file.clone()),
            _read: Some(buf.clone()),
            ..Keep::default()
        };
        let mut ops = u.push(&[sqe], keep)?;
        let Some(op) = ops.pop() else {
            return Err(io::Error::other("io_uring: submission lost"));
        };
        let n = op.await? as usize;
        if n == 0 {
            break; // end of file
        }
        // SAFETY: the completed Read initialized `n` bytes (at most `want`) of the spare
        // capacity after `done`; the Vec was not touched while the op was in flight.
        unsafe { buf.borrow_mut().set_len(done + n.min(want)) };
    }
    let out = std::mem::take(&mut *buf.borrow_mut());
    Ok(Bytes::from(out))
}

/// One write as the fault rule says: untouched, failed before the disk, or torn.
async fn write_faulted(
    uring: Option<&Rc<Uring>>,
    file: &Arc<File>,
    pos: u64,
    buf: Bytes,
    action: Option<Action>,
) -> io::Result<()> {
    let buf = match action {
        None => buf,
        Some(Action::Fail(errno)) => return Err(io::Error::from_raw_os_error(errno)),
        Some(Action::Tear(at)) => buf.slice(..at.min(buf.len())),
    };
    match uring {
        None => file.write_all_at(&buf, pos)?,
        Some(u) => write_all_uring(u, file, pos, buf).await?,
    }
    match action {
        Some(Action::Tear(_)) => Err(io::Error::from_raw_os_error(libc::EIO)),
        _ => Ok(()),
    }
}

async fn sync_faulted(
    uring: Option<&Rc<Uring>>,
    file: &Arc<File>,
    full: bool,
    action: Option<Action>,
) -> io::Result<()> {
    match action {
        Some(Action::Fail(errno)) => return Err(io::Error::from_raw_os_error(errno)),
        Some(Action::Tear(_)) => return Err(io::Error::from_raw_os_error(libc::EIO)),
        None => {}
    }
    match uring {
        None if full => file.sync_all(),
        None => file.sync_data(),
        Some(u) => {
            let mut ops = u.push(&[fsync_sqe(file, full)], Keep::file(file.clone()))?;
            let Some(op) = ops.pop() else {
                return Err(io::Error::other("io_uring: submission lost"));
            };
            op.await.map(|_| ())
        }
    }
}

async fn write_and_sync_uring(
    u: &Rc<Uring>,
    file: &Arc<File>,
    pos: u64,
    buf: Bytes,
) -> io::Result<()> {
    let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
    let write = opcode::Write::new(types::Fd(file.as_raw_fd()), buf.as_ptr(), len)
        .offset(pos)
        .build()
        .flags(squeue::Flags::IO_LINK);
    let keep = Keep {
        _buf: Some(buf.clone()),
        _file: Some(file.clone()),
        ..Keep::default()
    };
    let mut ops = u.push(&[write, fsync_sqe(file, false)], keep)?.into_iter();
    let (Some(w), Some(s)) = (ops.next(), ops.next()) else {
        return Err(io::Error::other("io_uring: linked submission lost"));
    };
    let written = w.await;
    let synced = s.await;
    let n = written? as usize;
    if n < buf.len() {
        // A short write cancels the linked sync: finish the write, then sync.
        write_all_uring(u, file, pos + n as u64, buf.slice(n..)).await?;
        return sync_faulted(Some(u), file, false, None).await;
    }
    synced.map(|_| ())
}

fn fsync_sqe(file: &File, full: bool) -> squeue::Entry {
    let flags = if full {
        types::FsyncFlags::empty()
    } else {
        types::FsyncFlags::DATASYNC
    };
    opcode::Fsync::new(types::Fd(file.as_raw_fd()))
        .flags(flags)
        .build()
}

async fn write_all_uring(
    u: &Rc<Uring>,
    file: &Arc<File>,
    mut pos: u64,
    mut buf: Bytes,
) -> io::Result<()> {
    while !buf.is_empty() {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let sqe = opcode::Write::new(types::Fd(file.as_raw_fd()), buf.as_ptr(), len)
            .offset(pos)
            .build();
        let keep = Keep {
            _buf: Some(buf.clone()),
            _file: Some(file.clone()),
            ..Keep::default()
        };
        let mut ops = u.push(&[sqe], keep)?;
        let Some(op) = ops.pop() else {
            return Err(io::Error::other("io_uring: submission lost"));
        };
        let n = op.await? as usize;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "io_uring write returned 0",
            ));
        }
        buf = buf.slice(n.min(buf.len())..);
        pos += n as u64;
    }
    Ok(())
}

/// What an in-flight op keeps alive until its completion arrives.
#[derive(Default)]
struct Keep {
    _buf: Option<Bytes>,
    _file: Option<Arc<File>>,
    /// A read's destination: the kernel writes into its spare capacity.
    _read: Option<Rc<RefCell<Vec<u8>>>>,
}

impl Keep {
    fn file(f: Arc<File>) -> Keep {
        Keep {
            _file: Some(f),
            ..Keep::default()
        }
    }
}

struct Slot {
    result: Option<i32>,
    waker: Option<Waker>,
    /// The op future was dropped: free the slot when the completion arrives.
    orphaned: bool,
    _keep: Rc<Keep>,
}

/// Ring state. Field order matters: `ring` drops first (after `Drop` drained it).
struct Uring {
    ring: RefCell<IoUring>,
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<usize>>,
    in_flight: Cell<usize>,
    submit_pending: Cell<bool>,
    kick: Notify,
    eventfd: AsyncFd<OwnedFd>,
}

impl Uring {
    fn new(entries: u32) -> io::Result<Uring> {
        let ring = IoUring::new(entries)?;
        // SAFETY: plain syscall; the returned fd is checked and then owned.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own exclusively.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter().register_eventfd(owned.as_raw_fd())?;
        // SAFETY: `owned` is a valid open eventfd, owned by the AsyncFd from here on.
        let eventfd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Uring {
            ring: RefCell::new(ring),
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            in_flight: Cell::new(0),
            submit_pending: Cell::new(false),
            kick: Notify::new(),
            eventfd,
        })
    }

    /// Queues `sqes` (one chain if linked) and returns one op future per SQE. They are
    /// submitted by the driver at the end of the current reactor turn.
    fn push(self: &Rc<Self>, sqes: &[squeue::Entry], keep: Keep) -> io::Result<Vec<Op>> {
        let keep = Rc::new(keep);
        let mut ring = self.ring.borrow_mut();
        {
            let sq = ring.submission();
            if sq.capacity() - sq.len() < sqes.len() {
                drop(sq);
                ring.submit()?;
            }
        }
        let mut ops = Vec::with_capacity(sqes.len());
        let mut slots = self.slots.borrow_mut();
        let mut entries = Vec::with_capacity(sqes.len());
        for sqe in sqes {
            let idx = match self.free.borrow_mut().pop() {
                Some(i) => i,
                None => {
                    slots.push(None);
                    slots.len() - 1
                }
            };
            slots[idx] = Some(Slot {
                result: None,
                waker: None,
                orphaned: false,
                _keep: keep.clone(),
            });
            entries.push(sqe.clone().user_data(idx as u64));
            ops.push(Op {
                uring: self.clone(),
                idx,
            });
        }
        // SAFETY: every buffer and fd referenced by the SQEs is owned by `keep`, which the
        // slots hold until the completion is reaped (or the ring is drained on drop).
        let pushed = unsafe { ring.submission().push_multiple(&entries) };
        if pushed.is_err() {
            for op in &ops {
                slots[op.idx] = None;
                self.free.borrow_mut().push(op.idx);
            }
            std::mem::forget(ops);
            return Err(io::Error::other("io_uring submission queue full"));
        }
        self.in_flight.set(self.in_flight.get() + sqes.len());
        self.submit_pending.set(true);
        self.kick.notify_one();
        Ok(ops)
    }

    /// Moves completions into their slots; returns the wakers to wake.
    fn reap(&self) -> Vec<Waker> {
        let mut wakers = Vec::new();
        let mut ring = self.ring.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        for cqe in ring.completion() {
            let idx = cqe.user_data() as usize;
            let Some(Some(slot)) = slots.get_mut(idx) else {
                continue;
            };
            self.in_flight.set(self.in_flight.get().saturating_sub(1));
            if slot.orphaned {
                slots[idx] = None;
                self.free.borrow_mut().push(idx);
            } else {
                slot.result = Some(cqe.result());
                if let Some(w) = slot.waker.take() {
                    wakers.push(w);
                }
            }
        }
        wakers
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        // Buffers owned by in-flight ops must outlive the kernel's use of them.
        while self.in_flight.get() > 0 {
            let want = self.in_flight.get();
            if self.ring.get_mut().submit_and_wait(want).is_err() {
                break;
            }
            drop(self.reap());
        }
    }
}

/// The completion driver: submits queued SQEs once per wake-up and reaps completions.
async fn drive(u: Rc<Uring>) {
    loop {
        if u.submit_pending.replace(false) {
            let submitted = u.ring.borrow().submit();
            if let Err(e) = submitted {
                // EBUSY/EAGAIN: the completion queue is backed up; reap then retry.
                tracing::debug!(error = %e, "io_uring submit deferred");
                u.submit_pending.set(true);
            }
        }
        for w in u.reap() {
            w.wake();
        }
        // More completions than the completion queue holds wait in the kernel's
        // overflow list, and no eventfd signal comes for them until an io_uring_enter
        // flushes them (which `submit` does when the overflow flag is set): without
        // this, a burst of completions could leave their ops waiting forever.
        if u.ring.borrow_mut().submission().cq_overflow() {
            u.submit_pending.set(true);
        }
        if u.submit_pending.get() {
            // A deferred submit retries once reaping has made room, without waiting.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            biased;
            () = u.kick.notified() => {}
            ready = u.eventfd.readable() => match ready {
                Ok(mut guard) => {
                    let mut counter = [0u8; 8];
                    // Reset the eventfd before reaping, so any later completion re-arms it.
                    // SAFETY: reads 8 bytes into a local buffer from our own eventfd.
                    while unsafe { libc::read(u.eventfd.as_raw_fd(), counter.as_mut_ptr().cast(), 8) } == 8 {}
                    guard.clear_ready();
                }
                Err(e) => {
                    tracing::error!(error = %e, "io_uring eventfd failed; driver stops");
                    return;
                }
            },
        }
    }
}

/// One in-flight SQE. Resolves to the CQE result (`>= 0`) or the errno as an error.
struct Op {
    uring: Rc<Uring>,
    idx: usize,
}

impl Future for Op {
    type Output = io::Result<i32>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<i32>> {
        let mut slots = self.uring.slots.borrow_mut();
        let Some(Some(slot)) = slots.get_mut(self.idx) else {
            return Poll::Ready(Err(io::Error::other("io_uring op slot vanished")));
        };
        match slot.result {
            Some(res) if res < 0 => Poll::Ready(Err(io::Error::from_raw_os_error(-res))),
            Some(res) => Poll::Ready(Ok(res)),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let mut slots = self.uring.slots.borrow_mut();
        if let Some(entry) = slots.get_mut(self.idx) {
            match entry {
                Some(slot) if slot.result.is_none() => slot.orphaned = true,
                Some(_) => {
                    *entry = None;
                    self.uring.free.borrow_mut().push(self.idx);
                }
                None => {}
            }
        }
    }
}
