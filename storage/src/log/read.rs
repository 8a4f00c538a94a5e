//! Read side of `Log`: fetch reads and, in `read/lookup.rs`, timestamp lookups. Both
//! are planned synchronously on the shard and read the disk on the ring when awaited,
//! borrowing nothing from the Log.

use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};

use super::{CacheEntry, Log, ReadResult, StorageError, READ_BYTES_MAX};
use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::io::IoEngine;
use crate::segment::Segment;

mod lookup;
pub use lookup::LookupFuture;

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(e.to_string())
}

/// Read-ahead of the first disk read past `max_bytes`, covering the batches between
/// the index entry and the one holding the fetch offset (`index.interval.bytes` apart).
const READ_AHEAD_BYTES: usize = 64 * 1024;
/// Read size when walking headers beyond the first read.
const WALK_CHUNK_BYTES: usize = 256 * 1024;

/// A result known when planned, or the disk reads producing it in flight on the ring.
/// Owns everything it reads (segment file handles, tail-cache bytes), so a segment
/// deleted meanwhile stays readable through its handle. `!Send`, like the engine.
enum Pending<T> {
    Ready(Option<Result<T, StorageError>>),
    Disk(Pin<Box<dyn Future<Output = Result<T, StorageError>>>>),
}

impl<T> Pending<T> {
    fn is_ready(&self) -> bool {
        matches!(self, Pending::Ready(_))
    }

    fn poll_result(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, StorageError>> {
        match self {
            Pending::Ready(r) => match r.take() {
                Some(r) => Poll::Ready(r),
                None => Poll::Ready(Err(StorageError::Io(io::Error::other(
                    "storage future polled after completion",
                )))),
            },
            Pending::Disk(f) => f.as_mut().poll(cx),
        }
    }
}

/// The result of [`Log::read`]: ready at once for tail-cache hits, else the disk read
/// in flight on the ring. Borrows nothing from the `Log` (it owns the segment's file
/// handle), so the caller may release its borrow before awaiting; a segment deleted
/// meanwhile stays readable through that handle. `!Send`, like the engine.
pub struct ReadFuture(Pending<ReadResult>);

impl ReadFuture {
    fn ready(r: Result<ReadResult, StorageError>) -> ReadFuture {
        ReadFuture(Pending::Ready(Some(r)))
    }

    /// True when the result is known without I/O (range errors, empty, tail cache).
    pub fn is_ready(&self) -> bool {
        self.0.is_ready()
    }
}

impl Future for ReadFuture {
    type Output = Result<ReadResult, StorageError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll_result(cx)
    }
}

/// A disk read planned on the shard: which bytes of which file may be read.
struct DiskPlan {
    file: Arc<File>,
    segment_base: i64,
    /// Index position at or before the batch holding the offset.
    start: u64,
    /// Everything in `[.., end)` was fully written when the read was planned.
    end: u64,
    /// The tail cache's first entries (as many as `max_bytes` can take), for a read that
    /// runs off the disk part of the segment the cache starts in.
    cache: Option<Vec<Bytes>>,
}

impl Log {
    /// Whole batches from the one containing `offset`, stopping before any batch whose
    /// base offset is `>= max_offset`, at most `max_bytes` — except that with `min_one`
    /// a first batch larger than `max_bytes` is returned whole (KIP-74). Empty at
    /// `log_end_offset` or `max_offset`; `OffsetOutOfRange` outside
    /// `[log_start_offset, log_end_offset]`. Reads stay within one segment on disk.
    ///
    /// Planned synchronously; disk bytes are read on the ring when the returned future
    /// is awaited (at most [`READ_BYTES_MAX`] plus read-ahead per read).
    pub fn read(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> ReadFuture {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return ReadFuture::ready(Err(StorageError::OffsetOutOfRange {
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            }));
        }
        let log_start_offset = self.log_start_offset;
        let result = move |records| ReadResult {
            records,
            log_start_offset,
        };
        if offset >= self.log_end_offset || offset >= max_offset {
            return ReadFuture::ready(Ok(result(Bytes::new())));
        }
        if let Some(front) = self.tail.front() {
            if offset >= front.base_offset {
                let first = self.tail.partition_point(|e| e.next_offset <= offset);
                let entries = self.tail.iter().skip(first).map(|e| &e.bytes);
                return ReadFuture::ready(
                    read_cache(entries, offset, max_offset, max_bytes, min_one).map(result),
                );
            }
        }
        let Some(plan) = self.plan_disk(offset, max_bytes) else {
            return ReadFuture::ready(Ok(result(Bytes::new())));
        };
        let io = self.io.clone();
        ReadFuture(Pending::Disk(Box::pin(async move {
            plan.run(&io, offset, max_offset, max_bytes, min_one)
                .await
                .map(result)
        })))
    }

    /// The segment to read `offset` from (skipping segments that end before it, which
    /// compaction can leave) and the part of it that is on disk.
    fn plan_disk(&self, offset: i64, max_bytes: usize) -> Option<DiskPlan> {
        let mut i = self.segment_index_for(offset);
        while let Some(seg) = self.segments.get(i) {
            let end = self.disk_end(seg);
            let in_cache = end < seg.size;
            // A segment compaction emptied has `next_offset == base_offset` and no
            // batch; one with batches holds a batch ending at or after any offset below
            // its `next_offset`.
            if in_cache || (seg.size > 0 && seg.next_offset > offset) {
                return Some(DiskPlan {
                    file: seg.log.clone(),
                    segment_base: seg.base_offset,
                    start: seg.lookup(offset).min(end),
                    end,
                    cache: in_cache.then(|| self.cache_front(max_bytes)),
                });
            }
            i += 1;
        }
        None
    }

    /// The tail cache's first entries while they hold fewer than `max_bytes` (and one
    /// more): all a read starting at the cache's front can return.
    fn cache_front(&self, max_bytes: usize) -> Vec<Bytes> {
        let mut taken = 0usize;
        let mut out = Vec::new();
        for e in &self.tail {
            if taken >= max_bytes && !out.is_empty() {
                break;
            }
            taken += e.bytes.len();
            out.push(e.bytes.clone());
        }
        out
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
}

impl DiskPlan {
    async fn run(
        self,
        io: &Rc<IoEngine>,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Bytes, StorageError> {
        let want = max_bytes.min(READ_BYTES_MAX);
        let mut w = Window {
            file: self.file.clone(),
            end: self.end,
            pos: self.start,
            buf: Bytes::new(),
        };
        let bad = |what: String| corrupt(format!("segment {}: {what}", self.segment_base));
        // Walk headers from the index position to the batch holding `offset`.
        let mut pos = self.start;
        let (pos, first_size) = loop {
            if pos >= self.end {
                return match &self.cache {
                    // The rest of this segment is in the tail cache.
                    Some(entries) => {
                        read_cache(entries.iter(), offset, max_offset, max_bytes, min_one)
                    }
                    None => Err(bad(format!("no batch holds offset {offset}"))),
                };
            }
            let ahead = if pos == self.start {
                want.saturating_add(READ_AHEAD_BYTES)
            } else {
                WALK_CHUNK_BYTES
            };
            if !w.ensure(io, pos, HEADER_SIZE, ahead).await? {
                return Err(bad(format!("truncated header at {pos}")));
            }
            let h = BatchHeader::parse(w.at(pos)).map_err(|e| bad(format!("{e} at {pos}")))?;
            let size = h.total_size();
            if pos + size as u64 > self.end {
                return Err(bad(format!("truncated batch at {pos}")));
            }
            if h.last_offset() >= offset {
                break (pos, size);
            }
            pos += size as u64;
        };
        let len = if first_size > max_bytes {
            if !min_one {
                return Ok(Bytes::new());
            }
            first_size
        } else {
            ((self.end - pos).min(want as u64) as usize).max(first_size)
        };
        if !w.ensure(io, pos, len, len).await? {
            return Err(bad(format!("file ends before {}", pos + len as u64)));
        }
        let data = w.slice(pos, len);
        let mut keep = 0usize;
        while keep + HEADER_SIZE <= len {
            let h = BatchHeader::parse(&data[keep..]).map_err(corrupt)?;
            if (keep > 0 && h.base_offset >= max_offset) || keep + h.total_size() > len {
                break;
            }
            keep += h.total_size();
        }
        Ok(data.slice(..keep))
    }
}

/// The bytes of one file read so far: `buf` holds `[pos, pos + buf.len())`.
struct Window {
    file: Arc<File>,
    end: u64,
    pos: u64,
    buf: Bytes,
}

impl Window {
    /// Makes the window cover `[at, at + need)`, reading up to `want` bytes from `at`
    /// (never past `end`) and keeping what it already holds of that range. False if
    /// `end` or the file's end comes first.
    async fn ensure(
        &mut self,
        io: &IoEngine,
        at: u64,
        need: usize,
        want: usize,
    ) -> io::Result<bool> {
        let need_end = at + need as u64;
        if need_end > self.end {
            return Ok(false);
        }
        if self.holds(at, need) {
            return Ok(true);
        }
        let held_end = self.pos + self.buf.len() as u64;
        let want_end = (at + want.max(need) as u64).min(self.end);
        let overlap = at >= self.pos && at < held_end;
        let read_from = if overlap { held_end } else { at };
        let more = io
            .read_at(
                self.file.clone(),
                read_from,
                (want_end - read_from) as usize,
            )
            .await?;
        self.buf = if overlap {
            let mut joined = BytesMut::with_capacity((want_end - at) as usize);
            joined.extend_from_slice(&self.buf[(at - self.pos) as usize..]);
            joined.extend_from_slice(&more);
            joined.freeze()
        } else {
            more
        };
        self.pos = at;
        Ok(need_end <= self.pos + self.buf.len() as u64)
    }

    /// True when the window covers `[at, at + len)`.
    fn holds(&self, at: u64, len: usize) -> bool {
        at >= self.pos && at + len as u64 <= self.pos + self.buf.len() as u64
    }

    /// The held bytes from `at` on (`at` must be held).
    fn at(&self, at: u64) -> &[u8] {
        &self.buf[(at - self.pos) as usize..]
    }

    fn slice(&self, at: u64, len: usize) -> Bytes {
        let from = (at - self.pos) as usize;
        self.buf.slice(from..from + len)
    }
}

/// Whole batches with last offset `>= offset` from consecutive tail-cache entries
/// (`read`'s rules for `max_offset`, `max_bytes` and `min_one`).
fn read_cache<'a>(
    entries: impl Iterator<Item = &'a Bytes>,
    offset: i64,
    max_offset: i64,
    max_bytes: usize,
    min_one: bool,
) -> Result<Bytes, StorageError> {
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    'entries: for bytes in entries {
        let mut at = 0usize;
        let mut run: Option<(usize, usize)> = None;
        while at < bytes.len() {
            let h = BatchHeader::parse(&bytes[at..]).map_err(corrupt)?;
            let size = h.total_size();
            if h.last_offset() >= offset {
                if h.base_offset >= max_offset
                    || (total + size > max_bytes && !(total == 0 && min_one))
                {
                    if let Some((s, end)) = run {
                        pieces.push(bytes.slice(s..end));
                    }
                    break 'entries;
                }
                total += size;
                run = Some((run.map_or(at, |r| r.0), at + size));
            }
            at += size;
        }
        if let Some((s, end)) = run {
            pieces.push(bytes.slice(s..end));
        }
    }
    Ok(concat(pieces))
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
