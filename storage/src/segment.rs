//! One segment: `<base>.log` plus its sparse `.index` and `.timeindex`, in Kafka's
//! format. Owned by the `Log` (hence by one shard thread).
//!
//! Invariants:
//! - `index` entries are `(last offset of a batch - base, position of that batch)`,
//!   strictly increasing in both fields, one per `index_interval_bytes` of log, as in
//!   Kafka's `LogSegment.append`.
//! - `time_index` entries are `(running max timestamp, last offset - base of the first
//!   batch reaching it)`, timestamps strictly increasing, appended at the same moments.
//! - Index files are written whole (at open, roll and flush), never preallocated; for
//!   the active segment the in-memory entries are ahead of the files, which is fine
//!   because the active segment is always recovered (and its indexes rebuilt) on open.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{crc_is_valid, BatchHeader, HEADER_SIZE};

pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;
const STAGED_LOG: &str = "log.new";
const STAGED_INDEX: &str = "index.new";
const STAGED_TIME_INDEX: &str = "timeindex.new";
pub(crate) const TIME_ENTRY_BYTES: usize = 12;
/// Read-ahead used when walking batch headers on disk.
const WALK_CHUNK_BYTES: usize = 256 * 1024;

pub(crate) fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// Parses `00000000000000000123.log` into 123.
pub(crate) fn parse_log_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// True for a staged segment file name (`00000000000000000123.log.new`, ...).
pub(crate) fn is_staged_file_name(name: &str) -> bool {
    [STAGED_LOG, STAGED_INDEX, STAGED_TIME_INDEX]
        .iter()
        .any(|ext| {
            name.strip_suffix(ext)
                .and_then(|s| s.strip_suffix('.'))
                .is_some_and(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        })
}

fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub log: Arc<File>,
    pub index_file: Arc<File>,
    pub time_file: Arc<File>,
    /// Bytes assigned in `.log` (including writes still in flight).
    pub size: u64,
    /// Offset after the last batch (== base_offset when empty).
    pub next_offset: i64,
    pub index: Vec<(u32, u32)>,
    pub time_index: Vec<(i64, u32)>,
    /// Largest batch max timestamp so far (-1 = none) and the last offset of the first
    /// batch that reached it.
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    bytes_since_index: u64,
    /// Max timestamp of the first batch, the base of `segment.ms` rolling (Kafka's rule).
    pub rolling_base_timestamp: Option<i64>,
    pub created_ms: i64,
}

/// Where truncating a segment at an offset cuts it, and its in-memory state after the
/// cut (see [`Segment::find_cut`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cut {
    /// File position of the first batch removed (the segment's size if none is).
    pub position: u64,
    /// Next offset after the last batch kept (the base offset if none is).
    pub next_offset: i64,
    index_len: usize,
    time_index_len: usize,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    bytes_since_index: u64,
}

/// Where a walk over a file ended.
pub(crate) struct WalkEnd {
    /// Position after the last batch accepted.
    pub valid_end: u64,
    /// Why the walk stopped early on bad bytes (None: clean end or stopped by callback).
    pub error: Option<String>,
}

/// Called with (position, header, whole batch when verifying) for each batch walked.
pub(crate) type BatchVisitor<'a> =
    dyn FnMut(u64, &BatchHeader, Option<&[u8]>) -> ControlFlow<()> + 'a;

/// Visits batches of `file` in `[start, end)`. With `verify`, the callback also gets the
/// whole batch and bad CRCs end the walk; without, only headers are read.
pub(crate) fn walk_file(
    file: &File,
    start: u64,
    end: u64,
    verify: bool,
    f: &mut BatchVisitor<'_>,
) -> io::Result<WalkEnd> {
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_pos = start;
    let mut pos = start;
    // Ensures buf covers [pos, pos + need); false if the file ends first.
    let fill = |buf: &mut Vec<u8>, buf_pos: &mut u64, pos: u64, need: usize| -> io::Result<bool> {
        if pos + need as u64 > end {
            return Ok(false);
        }
        if pos >= *buf_pos && pos + need as u64 <= *buf_pos + buf.len() as u64 {
            return Ok(true);
        }
        let len = (end - pos).min(need.max(WALK_CHUNK_BYTES) as u64) as usize;
        buf.resize(len, 0);
        match file.read_exact_at(buf, pos) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        *buf_pos = pos;
        Ok(true)
    };
    while pos < end {
        if !fill(&mut buf, &mut buf_pos, pos, HEADER_SIZE)? {
            return Ok(WalkEnd {
                valid_end: pos,
                error: Some(format!("truncated header at {pos}")),
            });
        }
        let at = (pos - buf_pos) as usize;
        let header = match BatchHeader::parse(&buf[at..]) {
            Ok(h) => h,
            Err(e) => {
                return Ok(WalkEnd {
                    valid_end: pos,
                    error: Some(format!("{e} at {pos}")),
                })
            }
        };
        let size = header.total_size();
        let whole = if verify {
            if !fill(&mut buf, &mut buf_pos, pos, size)? {
                return Ok(WalkEnd {
                    valid_end: pos,
                    error: Some(format!("truncated batch at {pos}")),
                });
            }
            let at = (pos - buf_pos) as usize;
            let bytes = &buf[at..at + size];
            if !crc_is_valid(bytes) {
                return Ok(WalkEnd {
                    valid_end: pos,
                    error: Some(format!("CRC mismatch at {pos}")),
                });
            }
            Some(bytes)
        } else if pos + size as u64 > end {
            return Ok(WalkEnd {
                valid_end: pos,
                error: Some(format!("truncated batch at {pos}")),
            });
        } else {
            None
        };
        if f(pos, &header, whole).is_break() {
            return Ok(WalkEnd {
                valid_end: pos,
                error: None,
            });
        }
        pos += size as u64;
    }
    Ok(WalkEnd {
        valid_end: pos,
        error: None,
    })
}

impl Segment {
    /// Creates empty files (truncating leftovers) for a new segment.
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let log = open_rw(&segment_path(dir, base_offset, "log"), true)?;
        let index = open_rw(&segment_path(dir, base_offset, "index"), true)?;
        let time = open_rw(&segment_path(dir, base_offset, "timeindex"), true)?;
        Ok(Segment::empty(base_offset, log, index, time, now_ms))
    }

    /// Creates empty files for a segment under staged names (`<base>.log.new`, ...),
    /// which recovery ignores and removes, until [`Segment::install_staged`] renames
    /// them into place.
    pub fn create_staged(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let log = open_rw(&segment_path(dir, base_offset, STAGED_LOG), true)?;
        let index = open_rw(&segment_path(dir, base_offset, STAGED_INDEX), true)?;
        let time = open_rw(&segment_path(dir, base_offset, STAGED_TIME_INDEX), true)?;
        Ok(Segment::empty(base_offset, log, index, time, now_ms))
    }

    /// Renames a staged segment's files into place, the `.log` last (a segment exists
    /// for recovery once its `.log` does; missing indexes are rebuilt). Blocking.
    pub fn install_staged(dir: &Path, base_offset: i64) -> io::Result<()> {
        for (staged, ext) in [
            (STAGED_INDEX, "index"),
            (STAGED_TIME_INDEX, "timeindex"),
            (STAGED_LOG, "log"),
        ] {
            std::fs::rename(
                segment_path(dir, base_offset, staged),
                segment_path(dir, base_offset, ext),
            )?;
        }
        Ok(())
    }

    fn empty(base_offset: i64, log: File, index: File, time: File, now_ms: i64) -> Segment {
        Segment {
            base_offset,
            log: Arc::new(log),
            index_file: Arc::new(index),
            time_file: Arc::new(time),
            size: 0,
            next_offset: base_offset,
            index: Vec::new(),
            time_index: Vec::new(),
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            bytes_since_index: 0,
            rolling_base_timestamp: None,
            created_ms: now_ms,
        }
    }

    /// Opens an existing segment. With `recover`, validates every batch (length, magic,
    /// CRC-32C, offsets), truncates the log after the last good batch and rebuilds both
    /// indexes; otherwise loads the index files and falls back to recovery if they are
    /// missing or fail a sanity check. Returns the segment and the bytes truncated.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        interval: u32,
        now_ms: i64,
    ) -> io::Result<(Segment, u64)> {
        let log = open_rw(&segment_path(dir, base_offset, "log"), false)?;
        let index = open_rw(&segment_path(dir, base_offset, "index"), false)?;
        let time = open_rw(&segment_path(dir, base_offset, "timeindex"), false)?;
        let mut seg = Segment::empty(base_offset, log, index, time, now_ms);
        if !recover {
            match seg.load_indexes() {
                Ok(()) => return Ok((seg, 0)),
                Err(why) => tracing::warn!(
                    segment = %segment_path(dir, base_offset, "log").display(), %why,
                    "rebuilding segment indexes"
                ),
            }
            seg.reset();
        }
        let truncated = seg.recover(dir, interval)?;
        Ok((seg, truncated))
    }

    fn reset(&mut self) {
        self.size = 0;
        self.next_offset = self.base_offset;
        self.index.clear();
        self.time_index.clear();
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_index = 0;
        self.rolling_base_timestamp = None;
    }

    fn recover(&mut self, dir: &Path, interval: u32) -> io::Result<u64> {
        let len = self.log.metadata()?.len();
        let base = self.base_offset;
        let mut batches: Vec<(u64, BatchHeader)> = Vec::new();
        let mut expected = base;
        let mut bad_offset = None;
        let end = walk_file(&self.log, 0, len, true, &mut |pos, h, _| {
            if h.base_offset < expected || h.last_offset() - base > i64::from(i32::MAX) {
                bad_offset = Some(format!(
                    "batch offset {} out of order at {pos}",
                    h.base_offset
                ));
                return ControlFlow::Break(());
            }
            expected = h.next_offset();
            batches.push((pos, *h));
            ControlFlow::Continue(())
        })?;
        for (pos, h) in &batches {
            self.on_batch(*pos, h, interval);
        }
        self.seal_time_index();
        self.size = end.valid_end;
        let truncated = len - end.valid_end;
        if truncated > 0 {
            let why = end.error.or(bad_offset).unwrap_or_default();
            tracing::warn!(
                segment = %segment_path(dir, base, "log").display(),
                valid_bytes = end.valid_end, truncated_bytes = truncated, %why,
                "truncating corrupt or torn tail of log segment"
            );
            self.log.set_len(end.valid_end)?;
            self.log.sync_data()?;
        }
        self.rewrite_index_files()?;
        Ok(truncated)
    }

    /// Loads index files of a segment that needs no recovery; Err(reason) if unusable.
    fn load_indexes(&mut self) -> Result<(), String> {
        let io_err = |e: io::Error| e.to_string();
        self.size = self.log.metadata().map_err(io_err)?.len();
        let raw = read_all(&self.index_file).map_err(io_err)?;
        if raw.len() % OFFSET_ENTRY_BYTES != 0 {
            return Err(format!(
                "offset index length {} not a multiple of 8",
                raw.len()
            ));
        }
        let mut prev: Option<(u32, u32)> = None;
        for e in raw.chunks_exact(OFFSET_ENTRY_BYTES) {
            let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if u64::from(pos) >= self.size
                || prev.is_some_and(|(r, p)| rel <= r || pos <= p)
                || rel > i32::MAX as u32
            {
                return Err(format!(
                    "offset index entry ({rel}, {pos}) out of order or past the log"
                ));
            }
            prev = Some((rel, pos));
            self.index.push((rel, pos));
        }
        // Walk from the last indexed batch to the end: finds next_offset, checks the tail.
        let start = self.index.last().map_or(0, |&(_, p)| u64::from(p));
        let mut next = self.base_offset;
        let mut count = 0usize;
        let mut since = 0u64;
        let end = walk_file(&self.log, start, self.size, false, &mut |_, h, _| {
            next = h.next_offset();
            count += 1;
            since += h.total_size() as u64;
            ControlFlow::Continue(())
        })
        .map_err(io_err)?;
        if end.error.is_some() || end.valid_end != self.size || (self.size > 0 && count == 0) {
            return Err(end
                .error
                .unwrap_or_else(|| "log tail does not parse".into()));
        }
        if let Some(&(rel, _)) = self.index.last() {
            if i64::from(rel) + self.base_offset >= next {
                return Err("offset index points past the last batch".into());
            }
        }
        self.next_offset = next;
        self.bytes_since_index = since;
        let raw = read_all(&self.time_file).map_err(io_err)?;
        if raw.len() % TIME_ENTRY_BYTES != 0 {
            return Err(format!(
                "time index length {} not a multiple of 12",
                raw.len()
            ));
        }
        let mut prev: Option<(i64, u32)> = None;
        for e in raw.chunks_exact(TIME_ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&e[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            if prev.is_some_and(|(t, r)| ts <= t || rel < r)
                || i64::from(rel) + self.base_offset >= next
            {
                return Err(format!(
                    "time index entry ({ts}, {rel}) out of order or past the log"
                ));
            }
            prev = Some((ts, rel));
            self.time_index.push((ts, rel));
        }
        if let Some(&(ts, rel)) = self.time_index.last() {
            self.max_timestamp = ts;
            self.offset_of_max_timestamp = self.base_offset + i64::from(rel);
        }
        Ok(())
    }

    /// Accounts for a batch (offsets and timestamps already final) written at `pos`.
    pub fn on_batch(&mut self, pos: u64, h: &BatchHeader, interval: u32) {
        debug_assert!(
            h.base_offset >= self.next_offset,
            "batches of a segment in offset order"
        );
        if pos == 0 {
            self.rolling_base_timestamp = Some(h.max_timestamp);
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        if self.bytes_since_index > u64::from(interval) {
            let entry = ((h.last_offset() - self.base_offset) as u32, pos as u32);
            debug_assert!(
                self.index
                    .last()
                    .is_none_or(|&(r, p)| entry.0 > r && entry.1 > p),
                "offset index entries strictly increase"
            );
            self.index.push(entry);
            self.maybe_append_time_entry();
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.total_size() as u64;
        self.next_offset = h.next_offset();
        self.size = self.size.max(pos + h.total_size() as u64);
    }

    fn maybe_append_time_entry(&mut self) {
        let last_ts = self.time_index.last().map_or(-1, |e| e.0);
        if self.max_timestamp > last_ts {
            let rel = (self.offset_of_max_timestamp - self.base_offset) as u32;
            debug_assert!(
                self.time_index.last().is_none_or(|&(_, r)| rel >= r),
                "time index offsets never decrease"
            );
            self.time_index.push((self.max_timestamp, rel));
        }
    }

    /// Kafka's `onBecomeInactiveSegment`: the time index ends with the segment's max.
    pub fn seal_time_index(&mut self) {
        self.maybe_append_time_entry();
    }

    /// Would appending `batches` more batches overflow either index (Kafka keeps the
    /// last time index slot for the roll entry)?
    pub fn index_full(&self, segment_index_bytes: u32, batches: usize) -> bool {
        let max_offsets = segment_index_bytes as usize / OFFSET_ENTRY_BYTES;
        let max_times = segment_index_bytes as usize / TIME_ENTRY_BYTES;
        self.index.len() + batches > max_offsets || self.time_index.len() + batches + 1 > max_times
    }

    /// Where truncating at `offset` cuts this segment: before its first batch whose last
    /// offset is >= `offset` (at its end if none is), and the state `on_batch` would
    /// have reached over the batches kept. Kept index entries are those of batches
    /// ending below `offset`; the time index keeps the entries added up to the last of
    /// them (each was added with an offset index entry, or by sealing, after every
    /// batch it covers). Blocking: reads the headers from that entry's batch to the cut.
    /// Every byte of the segment must be written.
    pub fn find_cut(&self, offset: i64) -> io::Result<Cut> {
        let rel = offset - self.base_offset;
        let index_len = self.index.partition_point(|&(r, _)| i64::from(r) < rel);
        let last_kept = index_len.checked_sub(1).map(|k| self.index[k]);
        let time_index_len = last_kept.map_or(0, |(r, _)| {
            self.time_index.partition_point(|&(_, t)| t <= r)
        });
        let (max_timestamp, offset_of_max_timestamp) = match time_index_len.checked_sub(1) {
            Some(k) => (
                self.time_index[k].0,
                self.base_offset + i64::from(self.time_index[k].1),
            ),
            None => (-1, self.base_offset),
        };
        let start = last_kept.map_or(0, |(_, pos)| u64::from(pos));
        let mut cut = Cut {
            position: start,
            next_offset: self.base_offset,
            index_len,
            time_index_len,
            max_timestamp,
            offset_of_max_timestamp,
            bytes_since_index: 0,
        };
        // The batch of the last kept index entry is already counted in the time index.
        let mut counted = last_kept.is_some();
        let walk = walk_file(&self.log, start, self.size, false, &mut |pos, h, _| {
            if h.last_offset() >= offset {
                return ControlFlow::Break(());
            }
            let size = h.total_size() as u64;
            if counted {
                counted = false;
                cut.bytes_since_index = 0;
            } else if h.max_timestamp > cut.max_timestamp {
                cut.max_timestamp = h.max_timestamp;
                cut.offset_of_max_timestamp = h.last_offset();
            }
            cut.bytes_since_index += size;
            cut.next_offset = h.next_offset();
            cut.position = pos + size;
            ControlFlow::Continue(())
        })?;
        match walk.error {
            Some(e) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment {}: {e}", self.base_offset),
            )),
            None => Ok(cut),
        }
    }

    /// Applies a cut from [`Segment::find_cut`] to the in-memory state (the caller
    /// truncates the files).
    pub fn apply_cut(&mut self, cut: &Cut) {
        debug_assert!(cut.position <= self.size && cut.next_offset <= self.next_offset);
        self.size = cut.position;
        self.next_offset = cut.next_offset;
        self.index.truncate(cut.index_len);
        self.time_index.truncate(cut.time_index_len);
        self.max_timestamp = cut.max_timestamp;
        self.offset_of_max_timestamp = cut.offset_of_max_timestamp;
        self.bytes_since_index = cut.bytes_since_index;
        if cut.position == 0 {
            self.rolling_base_timestamp = None;
        }
        debug_assert!(self
            .index
            .last()
            .is_none_or(|&(_, p)| u64::from(p) < self.size));
        debug_assert!(self
            .time_index
            .last()
            .is_none_or(|&(_, r)| self.base_offset + i64::from(r) < self.next_offset));
    }

    /// Position of the last indexed batch whose last offset is <= `offset` (0 if none).
    pub fn lookup(&self, offset: i64) -> u64 {
        let rel = offset - self.base_offset;
        let n = self.index.partition_point(|&(r, _)| i64::from(r) <= rel);
        if n == 0 {
            0
        } else {
            u64::from(self.index[n - 1].1)
        }
    }

    /// Offset of the time index entry with the largest timestamp <= `ts` (base if none).
    pub fn time_lookup(&self, ts: i64) -> i64 {
        let n = self.time_index.partition_point(|&(t, _)| t <= ts);
        if n == 0 {
            self.base_offset
        } else {
            self.base_offset + i64::from(self.time_index[n - 1].1)
        }
    }

    /// Both index files' full contents (`.index`, `.timeindex`) in Kafka's format.
    /// Index files are always written whole, so their length is entries * entry size.
    pub fn index_bytes(&self) -> [Bytes; 2] {
        let mut ib = BytesMut::with_capacity(self.index.len() * OFFSET_ENTRY_BYTES);
        for &(rel, pos) in &self.index {
            ib.put_u32(rel);
            ib.put_u32(pos);
        }
        let mut tb = BytesMut::with_capacity(self.time_index.len() * TIME_ENTRY_BYTES);
        for &(ts, rel) in &self.time_index {
            tb.put_i64(ts);
            tb.put_u32(rel);
        }
        [ib.freeze(), tb.freeze()]
    }

    /// Replaces both index files with the in-memory entries (blocking; open time only).
    fn rewrite_index_files(&self) -> io::Result<()> {
        let [ib, tb] = self.index_bytes();
        for (file, bytes) in [(&self.index_file, ib), (&self.time_file, tb)] {
            file.set_len(0)?;
            file.write_all_at(&bytes, 0)?;
            file.sync_data()?;
        }
        Ok(())
    }

    /// Largest timestamp for retention: the max batch timestamp, else the file mtime.
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_millis() as i64)
    }

    pub fn delete_files(dir: &Path, base_offset: i64) -> io::Result<()> {
        for ext in ["log", "index", "timeindex"] {
            match std::fs::remove_file(segment_path(dir, base_offset, ext)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

fn read_all(file: &File) -> io::Result<Vec<u8>> {
    let len = file.metadata()?.len() as usize;
    read_at(file, len, 0)
}

/// Reads exactly `len` bytes at `pos` (blocking; recovery and compaction only).
pub(crate) fn read_at(file: &File, len: usize, pos: u64) -> io::Result<Vec<u8>> {
    let buf = crate::io::pread_upto(file, pos, len)?;
    if buf.len() < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::set_base_offset;
    use crate::testing::build_batch_with;

    const BASE: i64 = 100;
    const INTERVAL: u32 = 150;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fjord-segment-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

    /// Batches from `BASE` with 1-3 records, a gap before every fifth and max
    /// timestamps that go up and down (with repeats).
    fn batches(n: usize) -> Vec<(BatchHeader, BytesMut)> {
        let mut next = BASE;
        (0..n)
            .map(|i| {
                if i % 5 == 4 {
                    next += 3;
                }
                let max_ts = 1_000 + ((i * 37) % 101) as i64 * 10;
                let value = format!("value-{i}");
                let values: Vec<&[u8]> = (0..1 + i % 3).map(|_| value.as_bytes()).collect();
                let mut b = build_batch_with(max_ts - 5, max_ts, &values);
                set_base_offset(&mut b, next);
                let h = BatchHeader::parse(&b).expect("header");
                next = h.next_offset();
                (h, b)
            })
            .collect()
    }

    /// A segment in `dir` holding `batches`, written to its file and accounted.
    fn segment(dir: &Path, batches: &[(BatchHeader, BytesMut)], sealed: bool) -> Segment {
        let mut seg = Segment::create(dir, BASE, 0).expect("create");
        for (h, b) in batches {
            seg.log.write_all_at(b, seg.size).expect("write");
            seg.on_batch(seg.size, h, INTERVAL);
        }
        if sealed {
            seg.seal_time_index();
        }
        seg
    }

    type State = (
        u64,
        i64,
        Vec<(u32, u32)>,
        Vec<(i64, u32)>,
        i64,
        i64,
        u64,
        Option<i64>,
    );

    fn state(s: &Segment) -> State {
        (
            s.size,
            s.next_offset,
            s.index.clone(),
            s.time_index.clone(),
            s.max_timestamp,
            s.offset_of_max_timestamp,
            s.bytes_since_index,
            s.rolling_base_timestamp,
        )
    }

    #[test]
    fn a_cut_leaves_the_state_of_a_segment_of_the_kept_batches() {
        let (dir, reference_dir) = (temp_dir("cut"), temp_dir("cut-reference"));
        let all = batches(40);
        let end = all[all.len() - 1].0.next_offset();
        for sealed in [false, true] {
            assert!(
                segment(&dir, &all, sealed).index.len() > 5,
                "sparse entries"
            );
            for offset in BASE..=end + 1 {
                let mut seg = segment(&dir, &all, sealed);
                let cut = seg.find_cut(offset).expect("cut");
                seg.apply_cut(&cut);
                let kept = all.partition_point(|(h, _)| h.last_offset() < offset);
                let reference = segment(&reference_dir, &all[..kept], false);
                assert_eq!(
                    state(&seg),
                    state(&reference),
                    "cut at {offset} (sealed {sealed})"
                );
                let removed = all.get(kept).map(|(h, _)| h.base_offset);
                assert!(removed.is_none_or(|b| b >= cut.next_offset));
            }
        }
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(reference_dir);
    }

    #[test]
    fn staged_file_names() {
        assert!(is_staged_file_name("00000000000000000123.log.new"));
        assert!(is_staged_file_name("00000000000000000123.timeindex.new"));
        assert!(!is_staged_file_name("00000000000000000123.log"));
        assert!(!is_staged_file_name("123.log.new"));
        assert!(!is_staged_file_name("00000000000000000123.log.cleaned"));
    }
}
