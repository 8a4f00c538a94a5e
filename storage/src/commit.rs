//! Write completion tracking and group commit for one `Log`. Shared (`Rc`) between the
//! `Log` and the per-append tasks it spawns; lives on the Log's shard thread.
//!
//! Invariants:
//! - `written_end` only covers a contiguous prefix of completed writes: each append
//!   task marks itself written only after the previous append's task has.
//! - `synced_end <= written_end`; at most one fdatasync round is in flight per Log, and
//!   a round covers every write completed before it started (group commit).
//! - After a write or sync error the Log is `failed`: nothing advances any more and
//!   every later append fails (like Kafka taking the log directory offline).
//! - `synced_end` advances on every successful group-commit round, and when a rolled
//!   segment's background task has synced it and every earlier segment.
//! - `generation` counts truncations. A truncation happens only with no operation in
//!   flight (`in_flight == 0`), lowers `written_end` (and `synced_end`, if above) to the
//!   new end, and nothing started before it may advance either past that end again.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::io::IoEngine;

struct State {
    written_end: i64,
    synced_end: i64,
    sync_in_flight: bool,
    failed: Option<(io::ErrorKind, String)>,
    /// Truncations so far.
    generation: u64,
    /// Log files that may hold unsynced bytes, oldest first, each with the offset its
    /// segment ends at (`i64::MAX` for the active one).
    files: Vec<(Arc<File>, i64)>,
}

pub(crate) struct Committer {
    state: RefCell<State>,
    changed: Notify,
    io: Rc<IoEngine>,
    /// Background segment-durability and truncation tasks still running.
    pub background: Cell<usize>,
    /// Appends whose completion task has not finished, plus flushes not finished.
    in_flight: Cell<usize>,
    /// A truncation's file work is still running: the Log refuses appends.
    pub truncating: Cell<bool>,
}

/// Counts one operation in [`Committer::in_flight`] until dropped.
pub(crate) struct InFlight(Rc<Committer>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let n = &self.0.in_flight;
        n.set(n.get().saturating_sub(1));
    }
}

impl Committer {
    pub fn new(io: Rc<IoEngine>, end: i64, active: Arc<File>) -> Rc<Committer> {
        Rc::new(Committer {
            state: RefCell::new(State {
                written_end: end,
                synced_end: end,
                sync_in_flight: false,
                failed: None,
                generation: 0,
                files: vec![(active, i64::MAX)],
            }),
            changed: Notify::new(),
            io,
            background: Cell::new(0),
            in_flight: Cell::new(0),
            truncating: Cell::new(false),
        })
    }

    pub fn written_end(&self) -> i64 {
        self.state.borrow().written_end
    }

    pub fn synced_end(&self) -> i64 {
        self.state.borrow().synced_end
    }

    pub fn generation(&self) -> u64 {
        self.state.borrow().generation
    }

    /// Counts an append or flush as in flight until the returned guard drops.
    pub fn begin(self: &Rc<Self>) -> InFlight {
        self.in_flight.set(self.in_flight.get() + 1);
        InFlight(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    pub fn failure(&self) -> Option<io::Error> {
        let st = self.state.borrow();
        st.failed
            .as_ref()
            .map(|(k, m)| io::Error::new(*k, m.clone()))
    }

    pub fn fail(&self, e: &io::Error) {
        let mut st = self.state.borrow_mut();
        if st.failed.is_none() {
            tracing::error!(error = %e, "log write failed; log stops accepting appends");
            st.failed = Some((e.kind(), e.to_string()));
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Appends call this in append order, each with its end offset.
    pub fn mark_written(&self, end: i64) {
        let mut st = self.state.borrow_mut();
        debug_assert!(
            st.failed.is_some() || end > st.written_end,
            "written_end grows by each append in order ({} -> {end})",
            st.written_end
        );
        if st.failed.is_none() && end > st.written_end {
            st.written_end = end;
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// A new active log file (segment roll); the previous one ends at `prev_end`.
    pub fn add_file(&self, prev_end: i64, file: Arc<File>) {
        let mut st = self.state.borrow_mut();
        debug_assert!(
            st.files.last().is_none_or(|(_, end)| *end == i64::MAX),
            "only the last file is open-ended"
        );
        if let Some(last) = st.files.last_mut() {
            last.1 = prev_end;
        }
        st.files.push((file, i64::MAX));
    }

    /// A truncation to `end` (no operation in flight): `written_end` becomes `end`,
    /// `synced_end` becomes `synced_end` (at most `end`), the files of segments ending
    /// after `keep_below` are forgotten and `active` is the open-ended file.
    pub fn truncate(&self, end: i64, synced_end: i64, active: Arc<File>, keep_below: i64) {
        debug_assert_eq!(
            self.in_flight.get(),
            0,
            "truncation with operations in flight"
        );
        let mut st = self.state.borrow_mut();
        debug_assert!(synced_end <= end);
        st.written_end = end;
        st.synced_end = synced_end;
        st.generation += 1;
        st.files
            .retain(|(f, seg_end)| *seg_end <= keep_below && !Arc::ptr_eq(f, &active));
        st.files.push((active, i64::MAX));
        drop(st);
        self.changed.notify_waiters();
    }

    /// A rolled segment ending at `end` and every segment before it are durable (its
    /// background task synced it after its predecessors'). No-op if a truncation
    /// happened since generation `generation`.
    pub fn mark_synced(&self, generation: u64, end: i64) {
        let mut st = self.state.borrow_mut();
        if st.generation != generation || st.failed.is_some() {
            return;
        }
        debug_assert!(end <= st.written_end, "synced only what was written");
        st.synced_end = st.synced_end.max(end.min(st.written_end));
        let synced = st.synced_end;
        st.files.retain(|(_, seg_end)| *seg_end > synced);
        drop(st);
        self.changed.notify_waiters();
    }

    /// Forgets a deleted segment's file.
    pub fn remove_file(&self, file: &Arc<File>) {
        self.state
            .borrow_mut()
            .files
            .retain(|(f, _)| !Arc::ptr_eq(f, file));
    }

    pub fn notify(&self) {
        self.changed.notify_waiters();
    }

    /// Resolves once no background segment-durability task is running.
    pub async fn wait_background(&self) {
        loop {
            let changed = self.changed.notified();
            if self.background.get() == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Resolves once `written_end >= end` (or with the Log's failure).
    pub async fn wait_written(&self, end: i64) -> io::Result<()> {
        loop {
            let changed = self.changed.notified();
            if let Some(e) = self.failure() {
                return Err(e);
            }
            if self.written_end() >= end {
                return Ok(());
            }
            changed.await;
        }
    }

    /// Like [`Committer::wait_written`] for a task started in generation `generation`:
    /// also resolves once a truncation happened since (which required every write
    /// before it to have completed).
    pub async fn wait_written_in(&self, generation: u64, end: i64) -> io::Result<()> {
        loop {
            let changed = self.changed.notified();
            if let Some(e) = self.failure() {
                return Err(e);
            }
            if self.written_end() >= end || self.generation() != generation {
                return Ok(());
            }
            changed.await;
        }
    }

    /// Resolves once everything below `end` is durable. Callers must already have
    /// `written_end >= end`. Joins the running fdatasync round only if it started after
    /// `end` was written; otherwise waits for the next round, which it may lead.
    pub async fn sync_to(&self, end: i64) -> io::Result<()> {
        debug_assert!(
            self.failure().is_some() || self.written_end() >= end,
            "sync_to({end}) before the write completed"
        );
        loop {
            let changed = self.changed.notified();
            let lead = {
                let mut st = self.state.borrow_mut();
                if let Some((k, m)) = &st.failed {
                    return Err(io::Error::new(*k, m.clone()));
                }
                if st.synced_end >= end {
                    return Ok(());
                }
                let lead = !st.sync_in_flight;
                st.sync_in_flight = true;
                lead
            };
            if !lead {
                changed.await;
                continue;
            }
            // Clears `sync_in_flight` even if this future is dropped mid-round.
            let round = RoundGuard(self);
            // Let the other appends of this reactor turn finish their writes first, so
            // one round covers them all.
            tokio::task::yield_now().await;
            let (target, files) = {
                let st = self.state.borrow();
                (st.written_end, st.files.clone())
            };
            let mut result = Ok(());
            for (f, _) in &files {
                result = self.io.sync(f.clone(), false).await;
                if result.is_err() {
                    break;
                }
            }
            drop(round);
            let mut st = self.state.borrow_mut();
            match result {
                Ok(()) => {
                    st.synced_end = st.synced_end.max(target);
                    debug_assert!(st.synced_end <= st.written_end, "synced_end <= written_end");
                    // A finished segment is durable once a round covering its end ran.
                    st.files.retain(|(_, seg_end)| *seg_end > target);
                    drop(st);
                    self.changed.notify_waiters();
                }
                Err(e) => {
                    drop(st);
                    self.fail(&e);
                    return Err(e);
                }
            }
        }
    }
}

struct RoundGuard<'a>(&'a Committer);

impl Drop for RoundGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.borrow_mut();
        debug_assert!(st.sync_in_flight, "the one round in flight is this guard's");
        st.sync_in_flight = false;
        drop(st);
        self.0.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    use super::*;

    fn run<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tokio::task::LocalSet::new().block_on(&rt, f());
    }

    /// A committer over a fresh file on the fallback engine, whose faults it returns.
    fn committer(name: &str) -> (Rc<Committer>, crate::io::Faults, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("fjord-commit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let file = File::create(dir.join("log")).expect("file");
        let io = IoEngine::new_fallback();
        let faults = io.faults();
        (Committer::new(io, 0, Arc::new(file)), faults, dir)
    }

    #[test]
    fn appends_of_one_turn_share_one_fdatasync() {
        run(|| async {
            let (c, faults, dir) = committer("group");
            c.mark_written(3);
            c.mark_written(7);
            c.mark_written(10);
            let (a, b, d) = tokio::join!(c.sync_to(3), c.sync_to(7), c.sync_to(10));
            assert!(a.is_ok() && b.is_ok() && d.is_ok());
            assert_eq!(faults.syncs(), 1, "one round covers all three");
            c.sync_to(10).await.expect("already durable");
            assert_eq!(faults.syncs(), 1, "nothing new to sync");
            let _ = std::fs::remove_dir_all(dir);
        });
    }

    #[test]
    fn sync_to_waits_for_a_round_that_covers_it() {
        run(|| async {
            let (c, faults, dir) = committer("cover");
            let delay = Duration::from_millis(40);
            faults.delay_syncs(Some(delay));
            c.mark_written(5);
            let first_done = Rc::new(Cell::new(false));
            let first = tokio::task::spawn_local({
                let (c, done) = (c.clone(), first_done.clone());
                async move {
                    c.sync_to(5).await.expect("first round");
                    done.set(true);
                }
            });
            // Let the first round start (it covers offsets below 5 only).
            while faults.syncs() == 0 {
                tokio::task::yield_now().await;
            }
            let started = Instant::now();
            c.mark_written(9);
            c.sync_to(9).await.expect("second round");
            assert!(first_done.get(), "rounds complete in order");
            assert_eq!(
                faults.syncs(),
                2,
                "9 needed a round started after its write"
            );
            assert!(
                started.elapsed() >= delay,
                "resolved only after its own sync"
            );
            first.await.expect("task");
            let _ = std::fs::remove_dir_all(dir);
        });
    }

    #[test]
    fn a_failed_sync_fails_everything_after_it() {
        run(|| async {
            let (c, faults, dir) = committer("fail");
            faults.fail_sync(1, libc::EIO);
            c.mark_written(5);
            let e = c.sync_to(5).await.expect_err("sync fails");
            assert_eq!(e.kind(), io::Error::from_raw_os_error(libc::EIO).kind());
            assert!(c.failure().is_some());
            // The disk heals, but the data is never again treated as safe.
            faults.clear();
            assert!(c.sync_to(5).await.is_err(), "not retried");
            c.mark_written(8);
            assert_eq!(c.written_end(), 5, "nothing advances after a failure");
            assert!(c.wait_written(8).await.is_err());
            assert_eq!(faults.syncs(), 1);
            let _ = std::fs::remove_dir_all(dir);
        });
    }
}
