//! Log compaction (`cleanup.policy=compact`): keep the latest record per key.
//!
//! Cleaning happens in three steps so the owning shard is never blocked by it:
//! 1. [`Log::plan_cleaning`] (owning shard, cheap): picks the durable, non-active
//!    segments old enough to clean and decides from the dirty ratio and the
//!    compaction lags whether a round is due.
//! 2. [`CleanPlan::run`] (any thread, e.g. a blocking pool): reads those segments'
//!    files, maps each key in the dirty part to its latest offset, and writes a
//!    `<base>.log.cleaned` file per segment holding only the records to keep, with
//!    their original offsets (gaps are legal), then fdatasyncs them.
//! 3. [`Log::install_cleaned`] (owning shard): swaps each cleaned file in, rebuilding
//!    its indexes, unless the segment changed meanwhile (retention deleted it) or the
//!    log was truncated since the plan (a segment re-created with the same base, size
//!    and end would otherwise get the old records back).
//!
//! Crash safety: a `.cleaned` file is complete only once renamed to `.swap`; `open`
//! deletes leftover `.cleaned` files and finishes a `.swap` (drop the old indexes,
//! rename over the `.log`), so a crash at any point loses nothing.
//!
//! The crate knows no record format: a [`RecordCodec`] supplied by the caller reads
//! keys out of a batch and rewrites a batch keeping some of its records.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{read_checkpoint, write_checkpoint, Log, StorageError, RECOVERY_POINT_FILE};
use crate::batch::BatchHeader;
use crate::segment::{segment_path, walk_file, Segment};

/// Where cleaning stopped last time: offsets below it are clean.
pub const CLEANER_OFFSET_FILE: &str = "fjord-cleaner-offset";
/// When the earliest tombstone kept by the last round may be removed (epoch ms): a
/// round is due then even without new dirty records.
pub const TOMBSTONE_EXPIRY_FILE: &str = "fjord-cleaner-tombstone-expiry";

/// One record of a batch: its offset, key and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    pub offset: i64,
    /// The record's timestamp (the batch's base timestamp plus its delta; -1: none).
    pub timestamp: i64,
    /// None: a record without a key (never removed by compaction).
    pub key: Option<Bytes>,
    /// None: a null value, a delete marker for its key (a tombstone).
    pub value: Option<Bytes>,
}

impl RecordInfo {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// Reads and writes the records inside v2 batches. Implemented outside this crate
/// (by the layer that knows the record format and the compression codecs); this crate
/// uses `records` and `retain` for compaction, and the broker's validation and
/// internal topics use the rest.
pub trait RecordCodec: Send + Sync {
    /// Every record of `batch` (a whole v2 batch as stored).
    fn records(&self, batch: &[u8]) -> Result<Vec<RecordInfo>, String>;
    /// `batch` with only the records whose offset `keep` accepts, offsets unchanged,
    /// as a valid batch (CRC included); None if no record is kept.
    fn retain(&self, batch: &[u8], keep: &dyn Fn(i64) -> bool) -> Result<Option<Vec<u8>>, String>;
    /// `batch` re-encoded with compression `codec` (the attribute's codec id: 0 none,
    /// 1 gzip, 2 snappy, 3 lz4, 4 zstd); records, producer fields and timestamps
    /// unchanged.
    fn recompress(&self, batch: &[u8], codec: u8) -> Result<Vec<u8>, String>;
    /// One uncompressed batch of `records` (key, value) at relative offsets 0.., all
    /// stamped `timestamp_ms` (create time), without a producer.
    fn encode(
        &self,
        records: &[(Bytes, Option<Bytes>)],
        timestamp_ms: i64,
    ) -> Result<Vec<u8>, String>;
}

/// Compaction settings of one log (Kafka's topic configs).
#[derive(Clone, Debug)]
pub struct CompactionConfig {
    /// `delete.retention.ms`: how long a tombstone stays readable.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this forces a round.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// Memory for the key map of one round (`log.cleaner.dedupe.buffer.size`).
    pub key_map_bytes_max: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            key_map_bytes_max: 128 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug)]
struct Planned {
    base_offset: i64,
    size: u64,
    next_offset: i64,
}

/// A cleaning round to run off the owning shard. `Send`.
#[derive(Debug)]
pub struct CleanPlan {
    dir: PathBuf,
    segments: Vec<Planned>,
    first_dirty: i64,
    config: CompactionConfig,
    now_ms: i64,
    /// The log's truncation count when planned.
    generation: u64,
}

/// What a round wrote, to install on the owning shard.
#[derive(Debug)]
pub struct CleanOutcome {
    dir: PathBuf,
    segments: Vec<Planned>,
    cleaned_through: i64,
    /// Bytes before and after, for the log line and tests.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    /// When the earliest tombstone kept by this round expires (i64::MAX: none kept).
    tombstone_expiry_ms: i64,
    generation: u64,
}

fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    segment_path(dir, base, "log.cleaned")
}

fn swap_path(dir: &Path, base: i64) -> PathBuf {
    segment_path(dir, base, "log.swap")
}

impl Log {
    /// Decides whether a cleaning round is due and what it covers. Only segments that
    /// are durable (below the recovery point), not active, and whose newest record is
    /// older than `min.compaction.lag.ms` are cleaned.
    pub fn plan_cleaning(&self, config: &CompactionConfig, now_ms: i64) -> Option<CleanPlan> {
        let recovery_point = read_checkpoint(&self.dir, RECOVERY_POINT_FILE).unwrap_or(i64::MIN);
        let written = self.commit.written_end();
        let inactive = &self.segments[..self.segments.len().saturating_sub(1)];
        let segments: Vec<Planned> = inactive
            .iter()
            .take_while(|s| {
                s.next_offset <= recovery_point
                    && s.next_offset <= written
                    && now_ms.saturating_sub(s.largest_timestamp()) >= config.min_compaction_lag_ms
            })
            .map(|s| Planned {
                base_offset: s.base_offset,
                size: s.size,
                next_offset: s.next_offset,
            })
            .collect();
        let first = segments.first()?;
        let end = segments.last()?.next_offset;
        let first_dirty = read_checkpoint(&self.dir, CLEANER_OFFSET_FILE)
            .unwrap_or(i64::MIN)
            .max(first.base_offset);
        if first_dirty >= end {
            // Nothing new, but kept tombstones may have passed delete.retention.ms.
            let expiry = read_checkpoint(&self.dir, TOMBSTONE_EXPIRY_FILE).unwrap_or(i64::MAX);
            if now_ms < expiry {
                return None;
            }
            return Some(CleanPlan {
                dir: self.dir.clone(),
                segments,
                first_dirty: end,
                config: config.clone(),
                now_ms,
                generation: self.commit.generation(),
            });
        }
        let total: u64 = segments.iter().map(|s| s.size).sum();
        let dirty: u64 = segments
            .iter()
            .filter(|s| s.next_offset > first_dirty)
            .map(|s| s.size)
            .sum();
        let ratio = if total == 0 {
            0.0
        } else {
            dirty as f64 / total as f64
        };
        let overdue = self
            .segments
            .iter()
            .filter(|s| s.next_offset > first_dirty)
            .any(|s| {
                let oldest = s
                    .rolling_base_timestamp
                    .unwrap_or_else(|| s.largest_timestamp());
                config.max_compaction_lag_ms < i64::MAX
                    && now_ms.saturating_sub(oldest) > config.max_compaction_lag_ms
            });
        if ratio < config.min_cleanable_dirty_ratio && !overdue {
            return None;
        }
        Some(CleanPlan {
            dir: self.dir.clone(),
            segments,
            first_dirty,
            config: config.clone(),
            now_ms,
            generation: self.commit.generation(),
        })
    }

    /// Swaps the cleaned segments of `outcome` in. A segment that changed since the
    /// plan (deleted by retention, say) keeps its old file; its cleaned file is removed.
    /// After a truncation since the plan, nothing is installed.
    pub fn install_cleaned(&mut self, outcome: CleanOutcome) -> Result<usize, StorageError> {
        if outcome.dir != self.dir {
            return Err(StorageError::Corrupt(
                "cleaned segments of another log".into(),
            ));
        }
        if outcome.generation != self.commit.generation() {
            for p in &outcome.segments {
                let _ = std::fs::remove_file(cleaned_path(&self.dir, p.base_offset));
            }
            return Ok(0);
        }
        let interval = self.config.index_interval_bytes;
        let now = (self.clock)();
        let mut installed = 0;
        let mut highest = i64::MIN;
        for p in &outcome.segments {
            let pos = self
                .segments
                .iter()
                .position(|s| s.base_offset == p.base_offset);
            let unchanged = pos.is_some_and(|i| {
                let s = &self.segments[i];
                i + 1 < self.segments.len() && s.size == p.size && s.next_offset == p.next_offset
            });
            let (Some(i), true) = (pos, unchanged) else {
                let _ = std::fs::remove_file(cleaned_path(&self.dir, p.base_offset));
                continue;
            };
            std::fs::rename(
                cleaned_path(&self.dir, p.base_offset),
                swap_path(&self.dir, p.base_offset),
            )?;
            self.dir_file.sync_all()?;
            finish_swap(&self.dir, p.base_offset)?;
            let (seg, _) = Segment::open(&self.dir, p.base_offset, true, interval, now)?;
            let old = std::mem::replace(&mut self.segments[i], seg);
            self.commit.remove_file(&old.log);
            installed += 1;
            highest = highest.max(p.base_offset);
        }
        // Cached bytes of swapped segments are stale.
        while let Some(e) = self.tail.front() {
            if e.segment_base > highest {
                break;
            }
            self.tail_bytes -= e.bytes.len();
            self.tail.pop_front();
        }
        self.debug_check();
        if installed == outcome.segments.len() && installed > 0 {
            write_checkpoint(&self.dir, CLEANER_OFFSET_FILE, outcome.cleaned_through)?;
            write_checkpoint(
                &self.dir,
                TOMBSTONE_EXPIRY_FILE,
                outcome.tombstone_expiry_ms,
            )?;
        }
        Ok(installed)
    }
}

/// Completes an interrupted or current swap: drops the old indexes (they describe
/// the old file) and renames the `.swap` over the `.log`.
fn finish_swap(dir: &Path, base: i64) -> io::Result<()> {
    for ext in ["index", "timeindex"] {
        match std::fs::remove_file(segment_path(dir, base, ext)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(swap_path(dir, base), segment_path(dir, base, "log"))?;
    File::open(dir)?.sync_all()
}

/// At open: removes unfinished `.cleaned` files and completes `.swap` files.
pub(crate) fn recover_cleaning(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log.cleaned") {
            if stem.parse::<i64>().is_ok() {
                tracing::warn!(dir = %dir.display(), file = name, "removing an unfinished cleaned segment");
                std::fs::remove_file(dir.join(name))?;
            }
        } else if let Some(base) = name
            .strip_suffix(".log.swap")
            .and_then(|s| s.parse::<i64>().ok())
        {
            tracing::warn!(dir = %dir.display(), file = name, "completing an interrupted segment swap");
            finish_swap(dir, base)?;
        }
    }
    Ok(())
}

/// Calls `f` with each whole, CRC-checked batch of the segment file at `path`.
fn each_batch(
    path: &Path,
    size: u64,
    f: &mut dyn FnMut(&BatchHeader, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let file = File::open(path)?;
    let mut result = Ok(());
    let walk = walk_file(&file, 0, size, true, &mut |_, h, whole| {
        if let Some(bytes) = whole {
            if let Err(e) = f(h, bytes) {
                result = Err(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    result?;
    match walk.error {
        Some(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )),
        None => Ok(()),
    }
}

fn codec_err(e: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl CleanPlan {
    /// Runs the round: builds the key map over the dirty part, then writes and syncs
    /// one cleaned file per segment. Touches no state of the `Log`.
    pub fn run(mut self, codec: &dyn RecordCodec) -> io::Result<CleanOutcome> {
        // Latest offset of each key in the dirty part, within the memory bound; the
        // round ends after the last segment whose keys all fit.
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        let mut map_bytes = 0usize;
        let mut keep_segments = self.segments.len();
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.next_offset <= self.first_dirty {
                continue;
            }
            let path = segment_path(&self.dir, seg.base_offset, "log");
            each_batch(&path, seg.size, &mut |h, bytes| {
                if h.is_control() || h.last_offset() < self.first_dirty {
                    return Ok(());
                }
                for r in codec.records(bytes).map_err(codec_err)? {
                    if let (Some(k), true) = (r.key, r.offset >= self.first_dirty) {
                        map_bytes += k.len() + 48;
                        latest.insert(k, r.offset);
                    }
                }
                Ok(())
            })?;
            if map_bytes > self.config.key_map_bytes_max && i + 1 < self.segments.len() {
                keep_segments = i + 1;
                break;
            }
        }
        self.segments.truncate(keep_segments);
        let cleaned_through = self
            .segments
            .last()
            .map_or(self.first_dirty, |s| s.next_offset);
        let horizon = self.now_ms.saturating_sub(self.config.delete_retention_ms);

        let mut out = CleanOutcome {
            dir: self.dir.clone(),
            segments: self.segments.clone(),
            cleaned_through,
            bytes_before: 0,
            bytes_after: 0,
            records_removed: 0,
            tombstone_expiry_ms: i64::MAX,
            generation: self.generation,
        };
        let mut tombstone_expiry = i64::MAX;
        for seg in &self.segments {
            let path = segment_path(&self.dir, seg.base_offset, "log");
            let mut cleaned =
                std::io::BufWriter::new(File::create(cleaned_path(&self.dir, seg.base_offset))?);
            let mut written = 0u64;
            let mut removed = 0u64;
            each_batch(&path, seg.size, &mut |h, bytes| {
                if h.is_control() {
                    written += bytes.len() as u64;
                    return cleaned.write_all(bytes);
                }
                let records = codec.records(bytes).map_err(codec_err)?;
                let expired_tombstones = h.max_timestamp < horizon;
                let dropped: HashSet<i64> = records
                    .iter()
                    .filter(|r| match &r.key {
                        None => false,
                        Some(k) => {
                            latest.get(k).is_some_and(|&l| l > r.offset)
                                || (r.is_tombstone() && expired_tombstones)
                        }
                    })
                    .map(|r| r.offset)
                    .collect();
                removed += dropped.len() as u64;
                if records
                    .iter()
                    .any(|r| r.is_tombstone() && !dropped.contains(&r.offset))
                {
                    let due = h
                        .max_timestamp
                        .saturating_add(self.config.delete_retention_ms);
                    tombstone_expiry = tombstone_expiry.min(due);
                }
                if dropped.is_empty() {
                    written += bytes.len() as u64;
                    return cleaned.write_all(bytes);
                }
                if let Some(kept) = codec
                    .retain(bytes, &|o| !dropped.contains(&o))
                    .map_err(codec_err)?
                {
                    written += kept.len() as u64;
                    cleaned.write_all(&kept)?;
                }
                Ok(())
            })?;
            let file = cleaned.into_inner().map_err(|e| e.into_error())?;
            file.sync_data()?;
            out.bytes_before += seg.size;
            out.bytes_after += written;
            out.records_removed += removed;
        }
        out.tombstone_expiry_ms = tombstone_expiry;
        Ok(out)
    }

    /// The offsets this round would mark clean.
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty
    }
}
