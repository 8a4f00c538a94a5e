//! Read side of `Log`: fetch reads, timestamp lookups, header scans.

use std::ops::ControlFlow;

use bytes::{Bytes, BytesMut};

use super::{CacheEntry, Loc, Log, ReadResult, StorageError, READ_BYTES_MAX};
use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::segment::{read_at, walk_file, Segment};

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

impl Log {
    /// Whole batches from the one containing `offset`, stopping before any batch whose
    /// base offset is `>= max_offset`, at most `max_bytes` — except that with `min_one`
    /// a first batch larger than `max_bytes` is returned whole (KIP-74). Empty at
    /// `log_end_offset` or `max_offset`; `OffsetOutOfRange` outside
    /// `[log_start_offset, log_end_offset]`. Reads stay within one segment on disk.
    pub fn read(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<ReadResult, StorageError> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        let result = |records| ReadResult {
            records,
            log_start_offset: self.log_start_offset,
        };
        if offset >= self.log_end_offset || offset >= max_offset {
            return Ok(result(Bytes::new()));
        }
        match self.tail.front() {
            Some(front) if offset >= front.base_offset => self
                .read_cache(offset, max_offset, max_bytes, min_one)
                .map(result),
            _ => self
                .read_disk(offset, max_offset, max_bytes, min_one)
                .map(result),
        }
    }

    fn read_cache(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Bytes, StorageError> {
        let first = self.tail.partition_point(|e| e.next_offset <= offset);
        let mut pieces: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        'entries: for e in self.tail.iter().skip(first) {
            let mut at = 0usize;
            let mut run: Option<(usize, usize)> = None;
            while at < e.bytes.len() {
                let h = BatchHeader::parse(&e.bytes[at..]).map_err(corrupt)?;
                let size = h.total_size();
                if h.last_offset() >= offset {
                    if h.base_offset >= max_offset
                        || (total + size > max_bytes && !(total == 0 && min_one))
                    {
                        if let Some((s, end)) = run {
                            pieces.push(e.bytes.slice(s..end));
                        }
                        break 'entries;
                    }
                    total += size;
                    run = Some((run.map_or(at, |r| r.0), at + size));
                }
                at += size;
            }
            if let Some((s, end)) = run {
                pieces.push(e.bytes.slice(s..end));
            }
        }
        Ok(concat(pieces))
    }

    /// Disk positions of the active segment at and after the tail cache's first entry
    /// may still be in flight; only bytes before it are read from disk.
    fn disk_end(&self, seg: &Segment) -> u64 {
        match self.tail.front() {
            Some(CacheEntry {
                segment_base,
                position,
                ..
            }) if *segment_base == seg.base_offset => *position,
            Some(CacheEntry { segment_base, .. }) if *segment_base < seg.base_offset => 0,
            _ => seg.size,
        }
    }

    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    fn read_disk(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Bytes, StorageError> {
        for seg in &self.segments[self.segment_index_for(offset)..] {
            let end = self.disk_end(seg);
            let mut found = None;
            let walk = walk_file(
                &seg.log,
                seg.lookup(offset),
                end,
                false,
                &mut |pos, h, _| {
                    if h.last_offset() >= offset {
                        found = Some((pos, h.total_size()));
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                },
            )?;
            if let Some(err) = walk.error {
                return Err(corrupt(format!("segment {}: {err}", seg.base_offset)));
            }
            let Some((pos, first_size)) = found else {
                if end < seg.size {
                    // The rest of this segment is in the tail cache.
                    return self.read_cache(offset, max_offset, max_bytes, min_one);
                }
                continue;
            };
            if first_size > max_bytes {
                if !min_one {
                    return Ok(Bytes::new());
                }
                return Ok(Bytes::from(read_at(&seg.log, first_size, pos)?));
            }
            let len =
                ((end - pos).min(max_bytes.min(READ_BYTES_MAX) as u64) as usize).max(first_size);
            let mut buf = read_at(&seg.log, len, pos)?;
            let mut keep = 0usize;
            while keep + HEADER_SIZE <= len {
                let h = BatchHeader::parse(&buf[keep..]).map_err(corrupt)?;
                if (keep > 0 && h.base_offset >= max_offset) || keep + h.total_size() > len {
                    break;
                }
                keep += h.total_size();
            }
            buf.truncate(keep);
            return Ok(Bytes::from(buf));
        }
        Ok(Bytes::new())
    }

    /// Visits batches from the one containing `offset` to the end (disk, then cache).
    fn walk_from(
        &self,
        offset: i64,
        f: &mut dyn FnMut(&BatchHeader, Loc<'_>) -> ControlFlow<()>,
    ) -> Result<(), StorageError> {
        let cache_start = self.tail.front().map_or(i64::MAX, |e| e.base_offset);
        if offset < cache_start {
            let mut first = true;
            for seg in &self.segments[self.segment_index_for(offset)..] {
                let end = self.disk_end(seg);
                let start = if first { seg.lookup(offset) } else { 0 };
                first = false;
                let mut stopped = false;
                let walk = walk_file(&seg.log, start, end, false, &mut |pos, h, _| {
                    if h.last_offset() < offset {
                        return ControlFlow::Continue(());
                    }
                    let flow = f(h, Loc::Disk(seg, pos, h.total_size()));
                    stopped = flow.is_break();
                    flow
                })?;
                if let Some(err) = walk.error {
                    return Err(corrupt(format!("segment {}: {err}", seg.base_offset)));
                }
                if stopped {
                    return Ok(());
                }
                if end < seg.size {
                    break;
                }
            }
        }
        for e in &self.tail {
            if e.next_offset <= offset {
                continue;
            }
            let mut at = 0usize;
            while at < e.bytes.len() {
                let h = BatchHeader::parse(&e.bytes[at..]).map_err(corrupt)?;
                let size = h.total_size();
                if h.last_offset() >= offset
                    && f(&h, Loc::Mem(e.bytes.slice(at..at + size))).is_break()
                {
                    return Ok(());
                }
                at += size;
            }
        }
        Ok(())
    }

    /// The first batch (from the log start) whose max timestamp is `>= ts`, found via the
    /// time index of the first segment that can hold it.
    pub fn batch_for_timestamp(&self, ts: i64) -> Result<Option<Bytes>, StorageError> {
        let Some(seg) = self
            .segments
            .iter()
            .find(|s| s.next_offset > self.log_start_offset && s.max_timestamp >= ts)
        else {
            return Ok(None);
        };
        let start = seg.time_lookup(ts).max(self.log_start_offset);
        self.first_batch_where(start, &mut |h| h.max_timestamp >= ts)
    }

    /// The first batch holding the largest timestamp in the log, or None if empty.
    pub fn batch_with_max_timestamp(&self) -> Result<Option<Bytes>, StorageError> {
        if self.log_start_offset >= self.log_end_offset {
            return Ok(None);
        }
        let mut best: Option<&Segment> = None;
        for s in self
            .segments
            .iter()
            .filter(|s| s.next_offset > self.log_start_offset && s.size > 0)
        {
            if best.is_none_or(|b| s.max_timestamp > b.max_timestamp) {
                best = Some(s);
            }
        }
        let Some(best) = best else { return Ok(None) };
        if best.offset_of_max_timestamp >= self.log_start_offset {
            let target = best.offset_of_max_timestamp;
            return self.first_batch_where(target, &mut |h| h.last_offset() >= target);
        }
        // The segment's max lies below the log start: find the max among what remains.
        let mut max = i64::MIN;
        self.scan_headers(self.log_start_offset, &mut |h| {
            max = max.max(h.max_timestamp)
        })?;
        self.first_batch_where(self.log_start_offset, &mut |h| h.max_timestamp >= max)
    }

    fn first_batch_where(
        &self,
        from: i64,
        pred: &mut dyn FnMut(&BatchHeader) -> bool,
    ) -> Result<Option<Bytes>, StorageError> {
        let mut found = None;
        self.walk_from(from, &mut |h, loc| {
            if pred(h) {
                found = Some(loc.bytes());
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(found.transpose()?)
    }

    /// Calls `f` for every batch header from the batch containing `from_offset` (or the
    /// log start, if later) to the end.
    pub fn scan_headers(
        &self,
        from_offset: i64,
        f: &mut dyn FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        self.walk_from(from_offset.max(self.log_start_offset), &mut |h, _| {
            f(h);
            ControlFlow::Continue(())
        })
    }
}

fn concat(mut pieces: Vec<Bytes>) -> Bytes {
    match pieces.len() {
        0 => Bytes::new(),
        1 => pieces.pop().unwrap_or_default(),
        _ => {
            let mut out = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
            for p in pieces {
                out.extend_from_slice(&p);
            }
            out.freeze()
        }
    }
}
