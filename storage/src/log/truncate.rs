//! Truncation of `Log`, for followers: [`Log::truncate_to`] removes every record at
//! or after an offset (Kafka's `UnifiedLog.truncateTo`), and
//! [`Log::truncate_fully_and_start_at`] empties the log to restart it at an offset.
//!
//! Both change the in-memory log at once and leave the files to a background task.
//! That task starts only after every earlier roll task has finished, so no task of the
//! old log touches a file after it, and then:
//! 1. unlinks the removed segments' files, highest base offset first, fsyncing the
//!    directory after each;
//! 2. truncates the cut segment's `.log` at the cut (ftruncate, fdatasync) and rewrites
//!    its index files — or, for a full truncation, renames the staged new segment
//!    (`<offset>.log.new`, ...) into place and fsyncs the directory;
//! 3. writes the checkpoints: the log start offset (full truncation), the recovery
//!    point (the new active segment's base) and the cleaner offset, if above it.
//!
//! Invariants:
//! - A truncation starts only with no append or flush of the Log in flight and no
//!   other truncation running, and until its task ends appends are refused (`Busy`):
//!   no byte of the new log reaches a file before the removed bytes are durably gone.
//! - A crash at any point leaves a prefix of the pre-truncation log: segments go from
//!   the top, each unlink durable before the next; the cut segment is cut, at a batch
//!   boundary, only once no later segment is left; the recovery point on disk is one a
//!   roll task wrote for the old log, and recovery validates the last segment anyway.
//!   A full truncation's new segment appears only after every old one is gone.
//! - Once the returned future resolves Ok, no crash brings a removed record back, and
//!   recovery finds the same log end (and, after a full truncation, log start).
//! - A failure on the way fails the Log (appends refused, like a failed fsync); the
//!   files then hold a prefix for recovery to reopen.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::compact::CLEANER_OFFSET_FILE;
use super::{
    read_checkpoint, write_checkpoint_on, Log, StorageError, TruncateFuture, LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE,
};
use crate::batch::{self, BatchHeader};
use crate::io::IoEngine;
use crate::segment::Segment;

/// The cut segment's files and their new contents.
struct CutFiles {
    log: Arc<File>,
    size: u64,
    index: Arc<File>,
    time: Arc<File>,
    index_bytes: [Bytes; 2],
}

/// The file work of one truncation, in the order it is done.
struct FileWork {
    /// Base offsets of the segments to unlink, highest first.
    deleted: Vec<i64>,
    cut: Option<CutFiles>,
    /// A staged segment to rename into place (full truncation).
    staged_base: Option<i64>,
    /// The new log start offset checkpoint (full truncation).
    log_start_offset: Option<i64>,
    /// The new active segment's base: the recovery point, and the most the cleaner
    /// offset may be.
    active_base: i64,
}

impl Log {
    /// Removes every record at offset `offset` and later, whole batches: the batch
    /// holding `offset` and every later one go. Segments whose base offset is >=
    /// `offset` are deleted; the one holding the cut is truncated at that batch's file
    /// position (indexes, largest timestamp and tail cache follow) and becomes active.
    /// `log_end_offset` becomes the end of the last batch kept: the first removed
    /// batch's base offset, or lower when compaction left a gap just before it (on disk
    /// the gap is indistinguishable from the end of the log). `written_end_offset`
    /// becomes the new end; `synced_end_offset` too, if it was above.
    ///
    /// No-op (ready Ok) when `offset >= log_end_offset`. When `offset <=
    /// log_start_offset`, or the cut would leave the end below the log start offset,
    /// this is [`Log::truncate_fully_and_start_at`]`(offset)`.
    ///
    /// Refused with `Busy`, changing nothing, while an append's future or a flush has
    /// not resolved or an earlier truncation's future has not; the caller awaits them
    /// first ([`Log::settled`] covers appends). Blocking: reads the batch headers from
    /// the offset index entry before the cut to the cut.
    ///
    /// The returned future resolves once the truncation is durable (see `truncate.rs`);
    /// until then appends are refused with `Busy`. Its work runs whether or not the
    /// future is polled.
    pub fn truncate_to(&mut self, offset: i64) -> Result<TruncateFuture, StorageError> {
        if let Some(e) = self.commit.failure() {
            return Err(StorageError::Io(e));
        }
        if offset < 0 {
            return Err(self.out_of_range());
        }
        if offset >= self.log_end_offset {
            return Ok(Box::pin(std::future::ready(Ok(()))));
        }
        self.check_idle()?;
        if offset <= self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        // The last segment starting below `offset` holds the cut; later ones go.
        // Invariant: segments[0].base_offset <= log_start_offset < offset.
        let i = self
            .segments
            .partition_point(|s| s.base_offset < offset)
            .saturating_sub(1);
        let cut = self.segments[i].find_cut(offset).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                StorageError::Corrupt(e.to_string())
            } else {
                StorageError::Io(e)
            }
        })?;
        if cut.next_offset < self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        let deleted: Vec<i64> = self
            .segments
            .drain(i + 1..)
            .rev()
            .map(|s| s.base_offset)
            .collect();
        let seg = &mut self.segments[i];
        seg.apply_cut(&cut);
        let end = seg.next_offset;
        let work = FileWork {
            deleted,
            cut: Some(CutFiles {
                log: seg.log.clone(),
                size: seg.size,
                index: seg.index_file.clone(),
                time: seg.time_file.clone(),
                index_bytes: seg.index_bytes(),
            }),
            staged_base: None,
            log_start_offset: None,
            active_base: seg.base_offset,
        };
        let (active_log, active_base) = (seg.log.clone(), seg.base_offset);
        tracing::info!(
            dir = %self.dir.display(), offset, log_end_offset = end,
            previous_log_end_offset = self.log_end_offset,
            segments_deleted = work.deleted.len(), "truncating log"
        );
        self.log_end_offset = end;
        self.trim_tail(end);
        let synced = self.commit.synced_end().min(end);
        self.commit.truncate(end, synced, active_log, active_base);
        let fut = self.spawn_truncation(work);
        self.debug_check();
        Ok(fut)
    }

    /// Kafka's `truncateFullyAndStartAt`: deletes every segment and starts an empty
    /// log whose log start and log end offsets are `offset` (a follower whose fetch
    /// offset is below the leader's log start offset). The new segment is created
    /// under a staged name and renamed into place once every old segment is gone; the
    /// log start offset checkpoint is then written, so recovery gives start = end =
    /// `offset` (below the old log start, the start moves down, as in Kafka). `Busy`
    /// and the returned future as for [`Log::truncate_to`].
    pub fn truncate_fully_and_start_at(
        &mut self,
        offset: i64,
    ) -> Result<TruncateFuture, StorageError> {
        self.check_idle()?;
        if offset < 0 {
            return Err(self.out_of_range());
        }
        let staged = Segment::create_staged(&self.dir, offset, (self.clock)())?;
        let active_log = staged.log.clone();
        let old = std::mem::replace(&mut self.segments, vec![staged]);
        let work = FileWork {
            deleted: old.iter().rev().map(|s| s.base_offset).collect(),
            cut: None,
            staged_base: Some(offset),
            log_start_offset: Some(offset),
            active_base: offset,
        };
        tracing::info!(
            dir = %self.dir.display(), offset,
            previous_log_end_offset = self.log_end_offset,
            segments_deleted = old.len(), "truncating log fully"
        );
        drop(old);
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.tail.clear();
        self.tail_bytes = 0;
        self.commit.truncate(offset, offset, active_log, i64::MIN);
        let fut = self.spawn_truncation(work);
        self.debug_check();
        Ok(fut)
    }

    fn out_of_range(&self) -> StorageError {
        StorageError::OffsetOutOfRange {
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
        }
    }

    /// A truncation's precondition: a healthy log with nothing in flight.
    fn check_idle(&self) -> Result<(), StorageError> {
        if let Some(e) = self.commit.failure() {
            return Err(StorageError::Io(e));
        }
        if self.commit.truncating.get() {
            return Err(StorageError::Busy(
                "an earlier truncation is being made durable",
            ));
        }
        if self.commit.in_flight() > 0 {
            return Err(StorageError::Busy("appends or a flush in flight"));
        }
        Ok(())
    }

    /// Drops the tail cache's bytes at and after `end` (a batch boundary).
    fn trim_tail(&mut self, end: i64) {
        while let Some(e) = self.tail.back() {
            if e.base_offset < end {
                break;
            }
            self.tail_bytes -= e.bytes.len();
            self.tail.pop_back();
        }
        let Some(e) = self.tail.back_mut() else {
            return;
        };
        if e.next_offset <= end {
            return;
        }
        // The entry holds the cut: keep its batches ending at or before `end`.
        let kept = batch::parse_headers(&e.bytes).ok().map(|headers| {
            let kept = headers.iter().take_while(|h| h.next_offset() <= end);
            let size: usize = kept.clone().map(BatchHeader::total_size).sum();
            (size, kept.last().map(BatchHeader::next_offset))
        });
        match kept {
            Some((size, Some(next))) => {
                self.tail_bytes -= e.bytes.len() - size;
                e.bytes = e.bytes.slice(..size);
                e.next_offset = next;
            }
            _ => {
                self.tail_bytes -= e.bytes.len();
                self.tail.pop_back();
            }
        }
    }

    /// Runs a truncation's file work after every earlier roll task, as a link of the
    /// roll chain (later roll tasks write the recovery point only after it).
    fn spawn_truncation(&mut self, work: FileWork) -> TruncateFuture {
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let prev_roll = self.last_roll_done.replace(done_rx);
        let (result_tx, result_rx) = oneshot::channel();
        let (commit, io, dir, dir_file) = (
            self.commit.clone(),
            self.io.clone(),
            self.dir.clone(),
            self.dir_file.clone(),
        );
        commit.truncating.set(true);
        commit.background.set(commit.background.get() + 1);
        tokio::task::spawn_local(async move {
            if let Some(prev) = prev_roll {
                let _ = prev.await;
            }
            let result = match commit.failure() {
                Some(e) => Err(e),
                None => work.run(&io, &dir, dir_file).await,
            };
            if let Err(e) = &result {
                tracing::warn!(dir = %dir.display(), error = %e, "making a truncation durable failed");
                commit.fail(e);
            }
            commit.truncating.set(false);
            let _ = done_tx.send(());
            commit
                .background
                .set(commit.background.get().saturating_sub(1));
            commit.notify();
            let _ = result_tx.send(result);
        });
        Box::pin(async move {
            result_rx
                .await
                .unwrap_or_else(|_| Err(io::Error::other("truncation task dropped")))
        })
    }
}

impl FileWork {
    async fn run(self, io: &IoEngine, dir: &Path, dir_file: Arc<File>) -> io::Result<()> {
        for base in &self.deleted {
            Segment::delete_files(dir, *base)?;
            io.sync(dir_file.clone(), true).await?;
        }
        if let Some(cut) = self.cut {
            cut.log.set_len(cut.size)?;
            io.sync(cut.log, false).await?;
            let [index_bytes, time_bytes] = cut.index_bytes;
            for (file, bytes) in [(cut.index, index_bytes), (cut.time, time_bytes)] {
                file.set_len(bytes.len() as u64)?;
                io.write_at_and_sync(file, 0, bytes).await?;
            }
        }
        if let Some(base) = self.staged_base {
            Segment::install_staged(dir, base)?;
            io.sync(dir_file.clone(), true).await?;
        }
        if let Some(start) = self.log_start_offset {
            write_checkpoint_on(io, dir, dir_file.clone(), LOG_START_OFFSET_FILE, start).await?;
        }
        let base = self.active_base;
        write_checkpoint_on(io, dir, dir_file.clone(), RECOVERY_POINT_FILE, base).await?;
        if read_checkpoint(dir, CLEANER_OFFSET_FILE).is_some_and(|c| c > base) {
            write_checkpoint_on(io, dir, dir_file, CLEANER_OFFSET_FILE, base).await?;
        }
        Ok(())
    }
}

/// At open: removes the staged files of a full truncation that did not finish (its
/// old segments may be partly gone; the new one never existed).
pub(crate) fn remove_staged(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if crate::segment::is_staged_file_name(name) {
            tracing::warn!(dir = %dir.display(), file = name, "removing a staged segment file of an unfinished truncation");
            std::fs::remove_file(dir.join(name))?;
        }
    }
    Ok(())
}
