//! `Log`: one partition directory of Kafka-format segments.
//!
//! Invariants:
//! - `segments` is sorted by base offset, never empty; the last one is active and is the
//!   only one appended to. Offsets are assigned (`append`) or checked (`append_replicated`)
//!   synchronously, so `log_end_offset` and every segment's `size` are known before the
//!   write lands. Batch offsets strictly increase through the log; gaps are legal
//!   (compaction, or a follower copying a compacted leader).
//! - The tail cache holds the most recent appends, back to back in the files and in
//!   offset order up to `log_end_offset`; an entry is evicted only once written, so
//!   everything on disk before the cache's first entry is fully written and reads never
//!   see an in-flight region.
//! - Append futures resolve in append order; `written_end_offset` advances only over a
//!   contiguous prefix of completed writes (see `commit.rs`).
//! - Every segment before the one named in `fjord-recovery-point` is durable; on open,
//!   that segment and later ones are validated batch by batch. The recovery point never
//!   names a segment above the active one (see `log/truncate.rs`).

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::commit::Committer;
use crate::io::IoEngine;
use crate::segment::Segment;

/// Log start offset checkpoint, inside the partition directory.
pub const LOG_START_OFFSET_FILE: &str = "fjord-log-start-offset";
/// Base offset of the first segment that may need recovery.
pub const RECOVERY_POINT_FILE: &str = "fjord-recovery-point";
/// Most bytes one `read` copies from a segment file (a fetch gets the rest next time),
/// unless a single first batch is larger and `min_one` asks for it.
pub const READ_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Per-partition settings, Kafka's topic configs under their Kafka names.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this (capped at 2 GiB - 1).
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the first and newest timestamps of a segment are this far apart.
    pub segment_ms: i64,
    /// `retention.ms`; -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`; -1 = unlimited.
    pub retention_bytes: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// `segment.index.bytes`: roll when an index would exceed it.
    pub segment_index_bytes: u32,
    /// Recent appends kept in memory for tailing consumers.
    pub tail_cache_bytes: usize,
    /// `file.delete.delay.ms`: accepted for compatibility; files are unlinked at once
    /// because a read in flight holds its segment's file handle and still reads it.
    pub file_delete_delay_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            tail_cache_bytes: 1024 * 1024,
            file_delete_delay_ms: 60_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Largest batch max timestamp of this append (after LogAppendTime patching).
    pub max_timestamp: i64,
    /// Last offset of the first batch carrying `max_timestamp` (Kafka's shallow offset).
    pub offset_of_max_timestamp: i64,
    /// -1 unless the batches were stamped with LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

#[derive(Clone, Debug)]
pub struct ReadResult {
    /// Whole batches, byte-exact as stored.
    pub records: Bytes,
    pub log_start_offset: i64,
}

#[derive(Debug)]
pub enum StorageError {
    OffsetOutOfRange {
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// A replicated batch starts below the end of what the log (or the batch before it
    /// in the same append) already holds. Nothing was appended.
    NonMonotonicOffset {
        expected_at_least: i64,
        found: i64,
    },
    /// Refused because another operation of this Log has not finished (an append or a
    /// flush before a truncation, a truncation's file work before an append). Nothing
    /// changed; retry once it has.
    Busy(&'static str),
    Corrupt(String),
    Io(io::Error),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::OffsetOutOfRange {
                log_start_offset,
                log_end_offset,
            } => {
                write!(
                    f,
                    "offset out of range [{log_start_offset}, {log_end_offset}]"
                )
            }
            StorageError::NonMonotonicOffset {
                expected_at_least,
                found,
            } => write!(
                f,
                "batch base offset {found} below the log's next offset {expected_at_least}"
            ),
            StorageError::Busy(why) => write!(f, "log busy: {why}"),
            StorageError::Corrupt(m) => write!(f, "corrupt log: {m}"),
            StorageError::Io(e) => write!(f, "log i/o error: {e}"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> Self {
        StorageError::Io(e)
    }
}

/// Resolves when an append is written (and fdatasync'd if requested).
pub type AppendFuture = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// Resolves when a truncation is durable (see [`Log::truncate_to`]).
pub type TruncateFuture = AppendFuture;

/// Wall-clock milliseconds since the Unix epoch: the default `Log` clock.
pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One append's bytes, kept for tail reads.
struct CacheEntry {
    segment_base: i64,
    position: u64,
    base_offset: i64,
    next_offset: i64,
    bytes: Bytes,
}

/// A partition's log. Owned by exactly one shard thread; `append` and `flush` must run
/// inside that thread's `LocalSet` (they spawn local tasks).
pub struct Log {
    dir: PathBuf,
    dir_file: Arc<File>,
    config: LogConfig,
    io: Rc<IoEngine>,
    segments: Vec<Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    tail: VecDeque<CacheEntry>,
    tail_bytes: usize,
    commit: Rc<Committer>,
    last_written: Option<oneshot::Receiver<()>>,
    last_resolved: Option<oneshot::Receiver<()>>,
    last_roll_done: Option<oneshot::Receiver<()>>,
    clock: Rc<dyn Fn() -> i64>,
}

mod append;
pub mod compact;
mod read;
mod recover;
mod retention;
mod truncate;
pub use read::{LookupFuture, ReadFuture};
pub use recover::Recovered;

impl Log {
    /// Opens (creating if missing) the partition directory and recovers it on this
    /// thread: [`Log::recover`] then [`Log::from_recovered`]. Returns the log and the
    /// number of bytes truncated. A shard should rather run `recover` on a blocking
    /// thread.
    pub fn open(
        dir: PathBuf,
        config: LogConfig,
        io: Rc<IoEngine>,
    ) -> Result<(Log, u64), StorageError> {
        let recovered = Log::recover(dir, config)?;
        let truncated = recovered.truncated_bytes();
        Ok((Log::from_recovered(recovered, io), truncated))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, c: LogConfig) {
        self.config = c;
    }

    /// Replaces the wall clock used for `segment.ms` rolling (tests).
    pub fn set_clock(&mut self, clock: Rc<dyn Fn() -> i64>) {
        self.clock = clock;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// End of the contiguous prefix whose writes have completed.
    pub fn written_end_offset(&self) -> i64 {
        self.commit.written_end()
    }

    /// End of the prefix that is fdatasync'd: covers every `sync` append whose future
    /// resolved Ok, and every segment rolled and made durable in the background.
    /// Never above `written_end_offset`.
    pub fn synced_end_offset(&self) -> i64 {
        self.commit.synced_end()
    }

    /// Bytes in all segment files (including writes in flight).
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Checks the invariants in this file's doc comment (debug builds only).
    fn debug_check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        debug_assert!(!self.segments.is_empty(), "segments never empty");
        debug_assert!(
            self.segments.windows(2).all(
                |w| w[0].base_offset < w[1].base_offset && w[0].next_offset <= w[1].base_offset
            ),
            "segments sorted by base offset and disjoint"
        );
        debug_assert_eq!(self.active().next_offset, self.log_end_offset);
        debug_assert!(self.log_start_offset <= self.log_end_offset);
        debug_assert!(self.commit.written_end() <= self.log_end_offset);
        debug_assert!(self.commit.synced_end() <= self.commit.written_end());
        debug_assert!(
            self.tail
                .iter()
                .zip(self.tail.iter().skip(1))
                .all(|(a, b)| a.next_offset <= b.base_offset
                    && (a.segment_base, a.position + a.bytes.len() as u64)
                        <= (b.segment_base, b.position)),
            "tail cache in offset and file order"
        );
        debug_assert!(self
            .tail
            .back()
            .is_none_or(|e| e.next_offset == self.log_end_offset));
        debug_assert_eq!(
            self.tail_bytes,
            self.tail.iter().map(|e| e.bytes.len()).sum::<usize>()
        );
    }

    fn active(&self) -> &Segment {
        // Invariant: never empty.
        &self.segments[self.segments.len() - 1]
    }

    /// Resolves once every append submitted so far has resolved and no background
    /// segment task is running: after it, this Log issues no more writes unless it
    /// is appended to again. Used before the files are reopened after a failure, so
    /// that no write of this Log lands in a file a new Log has recovered.
    pub fn settled(&mut self) -> impl Future<Output = ()> + 'static {
        // The chain of resolutions stays intact: a later append still resolves after
        // every earlier one.
        let (resolved_tx, resolved_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let prev = self.last_resolved.replace(resolved_rx);
        let commit = self.commit.clone();
        tokio::task::spawn_local(async move {
            if let Some(prev) = prev {
                let _ = prev.await;
            }
            let _ = resolved_tx.send(());
            commit.wait_background().await;
            let _ = done_tx.send(());
        });
        async move {
            let _ = done_rx.await;
        }
    }

    /// Makes everything appended so far durable: data, the active segment's indexes and
    /// rolled segments. Used at clean shutdown. The future owns what it needs.
    pub fn flush(&self) -> AppendFuture {
        let in_flight = self.commit.begin();
        let end = self.log_end_offset;
        let active = self.active();
        let [index_bytes, time_bytes] = active.index_bytes();
        let (index, time) = (active.index_file.clone(), active.time_file.clone());
        let (commit, io, dir_file) = (self.commit.clone(), self.io.clone(), self.dir_file.clone());
        Box::pin(async move {
            let _in_flight = in_flight;
            commit.wait_written(end).await?;
            commit.sync_to(end).await?;
            index.set_len(index_bytes.len() as u64)?;
            io.write_at_and_sync(index, 0, index_bytes).await?;
            time.set_len(time_bytes.len() as u64)?;
            io.write_at_and_sync(time, 0, time_bytes).await?;
            commit.wait_background().await;
            io.sync(dir_file, true).await
        })
    }

    /// Removes the partition directory (DeleteTopics). In-flight writes land in
    /// unlinked files and are discarded.
    pub fn delete(self) -> io::Result<()> {
        std::fs::remove_dir_all(&self.dir)
    }
}

/// Reads a checkpoint file holding one decimal offset; None if missing or unreadable.
fn read_checkpoint(dir: &Path, name: &str) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    match text.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(dir = %dir.display(), file = name, "ignoring unreadable checkpoint");
            None
        }
    }
}

/// [`write_checkpoint`] with its write and both syncs through the engine (so they
/// neither block the shard nor escape fault injection); creating and renaming the
/// temp file stay blocking metadata calls.
async fn write_checkpoint_on(
    io: &IoEngine,
    dir: &Path,
    dir_file: Arc<File>,
    name: &str,
    value: i64,
) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = Arc::new(File::create(&tmp)?);
    io.write_at_and_sync(file, 0, Bytes::from(format!("{value}\n")))
        .await?;
    std::fs::rename(&tmp, dir.join(name))?;
    io.sync(dir_file, true).await
}

/// Atomically replaces a checkpoint. Blocking, but small and rare (open, roll,
/// retention, DeleteRecords).
fn write_checkpoint(dir: &Path, name: &str, value: i64) -> io::Result<()> {
    replace_file(dir, name, format!("{value}\n").as_bytes())
}

/// Atomically and durably replaces `dir/name` with `bytes`: temp file, fdatasync,
/// rename, directory fsync. After it returns, a power cut leaves either nothing
/// changed (if it failed) or the new bytes — never an empty or torn file. Blocking;
/// for small, rare files (checkpoints, `partition.metadata`).
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let f = File::create(&tmp)?;
        f.write_all_at(bytes, 0)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}
