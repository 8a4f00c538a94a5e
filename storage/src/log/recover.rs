//! Opening a `Log` in two steps, so recovery never blocks a shard:
//! 1. [`Log::recover`] (any thread, e.g. a blocking pool): finishes interrupted
//!    compaction swaps, validates segments from the recovery point on batch by batch,
//!    truncates a torn or corrupt tail, rebuilds indexes. Blocking file I/O.
//! 2. [`Log::from_recovered`] (the owning shard, cheap): binds the result to the
//!    shard's `IoEngine`; no I/O.
//!
//! Between the two, [`Recovered::scan_headers`] rebuilds producer state off the shard.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::{
    compact, read_checkpoint, system_now_ms, truncate, write_checkpoint, Log, LogConfig,
    StorageError, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use crate::batch::BatchHeader;
use crate::commit::Committer;
use crate::io::IoEngine;
use crate::segment::{parse_log_file_name, walk_file, Segment};

/// A recovered partition directory not yet bound to a shard. `Send`, so recovery can
/// run on a blocking thread and hand the result to the owning shard.
///
/// Invariants: `segments` is sorted by base offset and never empty; every segment is
/// valid batch by batch up to its `size`, with indexes matching its file;
/// `log_start_offset` lies in `[first base offset, log_end_offset]`.
pub struct Recovered {
    dir: PathBuf,
    dir_file: Arc<File>,
    config: LogConfig,
    segments: Vec<Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    truncated_bytes: u64,
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Recovered>();
};

impl Recovered {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes cut off torn or corrupt segment tails (segments deleted after a truncated
    /// one are not counted).
    pub fn truncated_bytes(&self) -> u64 {
        self.truncated_bytes
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Calls `f` for every batch header from the batch containing `from_offset` (or the
    /// log start, if later) to the end. Blocking reads; run it where recovery ran.
    pub fn scan_headers(
        &self,
        from_offset: i64,
        f: &mut dyn FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let from = from_offset.max(self.log_start_offset);
        let first = self
            .segments
            .partition_point(|s| s.base_offset <= from)
            .saturating_sub(1);
        for seg in &self.segments[first..] {
            let walk = walk_file(
                &seg.log,
                seg.lookup(from),
                seg.size,
                false,
                &mut |_, h, _| {
                    if h.last_offset() >= from {
                        f(h);
                    }
                    ControlFlow::Continue(())
                },
            )?;
            if let Some(err) = walk.error {
                return Err(StorageError::Corrupt(format!(
                    "segment {}: {err}",
                    seg.base_offset
                )));
            }
        }
        Ok(())
    }
}

impl Log {
    /// Opens (creating if missing) the partition directory and recovers it: segments
    /// from the recovery point on are validated batch by batch (length, magic 2,
    /// CRC-32C, offsets) and a torn or corrupt tail is truncated on disk (segments after
    /// a truncated one are deleted, as Kafka does); missing or insane indexes are
    /// rebuilt. Blocking; touches no shard state.
    pub fn recover(dir: PathBuf, config: LogConfig) -> Result<Recovered, StorageError> {
        std::fs::create_dir_all(&dir)?;
        compact::recover_cleaning(&dir)?;
        truncate::remove_staged(&dir)?;
        let now = system_now_ms();
        let mut bases: Vec<i64> = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name();
            if let Some(base) = name.to_str().and_then(parse_log_file_name) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let checkpointed_start = read_checkpoint(&dir, LOG_START_OFFSET_FILE);
        let recovery_point = read_checkpoint(&dir, RECOVERY_POINT_FILE).unwrap_or(i64::MIN);
        let interval = config.index_interval_bytes;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let mut truncated_bytes = 0u64;
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let (seg, truncated) =
                Segment::open(&dir, base, last || base >= recovery_point, interval, now)?;
            truncated_bytes += truncated;
            segments.push(seg);
            if truncated > 0 && !last {
                for &later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), base_offset = later, "deleting segment after a truncated one");
                    Segment::delete_files(&dir, later)?;
                }
                break;
            }
        }
        if segments.is_empty() {
            segments.push(Segment::create(
                &dir,
                checkpointed_start.unwrap_or(0).max(0),
                now,
            )?);
        }
        let (first_base, active_base, log_end_offset) = match (segments.first(), segments.last()) {
            (Some(f), Some(l)) => (f.base_offset, l.base_offset, l.next_offset),
            _ => return Err(StorageError::Corrupt("no segment".into())),
        };
        debug_assert!(
            segments.windows(2).all(
                |w| w[0].base_offset < w[1].base_offset && w[0].next_offset <= w[1].base_offset
            ),
            "segments sorted and disjoint"
        );
        let log_start_offset = checkpointed_start
            .unwrap_or(first_base)
            .clamp(first_base, log_end_offset);
        let dir_file = Arc::new(File::open(&dir)?);
        dir_file.sync_all()?;
        write_checkpoint(&dir, RECOVERY_POINT_FILE, active_base)?;
        Ok(Recovered {
            dir,
            dir_file,
            config,
            segments,
            log_start_offset,
            log_end_offset,
            truncated_bytes,
        })
    }

    /// Binds a recovered directory to the owning shard's engine. No I/O.
    pub fn from_recovered(r: Recovered, io: Rc<IoEngine>) -> Log {
        // Invariant of `Recovered`: never empty.
        let active_log = r.segments[r.segments.len() - 1].log.clone();
        let commit = Committer::new(io.clone(), r.log_end_offset, active_log);
        Log {
            dir: r.dir,
            dir_file: r.dir_file,
            config: r.config,
            io,
            segments: r.segments,
            log_start_offset: r.log_start_offset,
            log_end_offset: r.log_end_offset,
            tail: VecDeque::new(),
            tail_bytes: 0,
            commit,
            last_written: None,
            last_resolved: None,
            last_roll_done: None,
            clock: Rc::new(system_now_ms),
        }
    }
}
