//! Timestamp lookups of `Log` (ListOffsets by time and MAX_TIMESTAMP). Planned on the
//! shard from segment metadata and the sparse indexes; the batch-header walk reads the
//! disk through the engine, chunk by chunk, and then the tail-cache bytes it was handed.

use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{corrupt, Pending, Window, READ_AHEAD_BYTES, WALK_CHUNK_BYTES};
use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::io::IoEngine;
use crate::log::{Log, StorageError};

/// The result of [`Log::batch_for_timestamp`] and [`Log::batch_with_max_timestamp`]:
/// one whole batch, byte-exact as stored, or None. Ready at once when the walk needs
/// no disk (an empty log, or a walk within the tail cache); otherwise its reads go
/// through the shard's engine when awaited. Borrows nothing from the `Log`. `!Send`.
pub struct LookupFuture(Pending<Option<Bytes>>);

impl LookupFuture {
    fn ready(r: Result<Option<Bytes>, StorageError>) -> LookupFuture {
        LookupFuture(Pending::Ready(Some(r)))
    }

    /// True when the result is known without I/O.
    pub fn is_ready(&self) -> bool {
        self.0.is_ready()
    }
}

impl Future for LookupFuture {
    type Output = Result<Option<Bytes>, StorageError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.poll_result(cx)
    }
}

/// Positions `[start, end)` of one segment file, all fully written when planned.
struct Span {
    file: Arc<File>,
    segment_base: i64,
    start: u64,
    end: u64,
}

/// A walk over the batches ending at or after `offset`, in log order: the disk spans,
/// then the tail-cache entries (which follow the last span without a gap).
struct WalkPlan {
    offset: i64,
    /// The first starts at an offset-index position at or before `offset`'s batch.
    spans: Vec<Span>,
    cache: Vec<Bytes>,
}

/// What a walk does with a visited batch.
enum Step {
    Pass,
    /// Remember it as the answer unless a later batch is marked or taken.
    Mark,
    /// It is the answer: stop.
    Take,
}

/// A remembered batch: its bytes, or where to read them.
enum Found {
    Mem(Bytes),
    Disk {
        file: Arc<File>,
        segment_base: i64,
        pos: u64,
        size: usize,
    },
}

impl Log {
    /// The first batch (from the log start) whose max timestamp is `>= ts`, found via the
    /// time index of the first segment that can hold it.
    pub fn batch_for_timestamp(&self, ts: i64) -> LookupFuture {
        let Some(seg) = self
            .segments
            .iter()
            .find(|s| s.next_offset > self.log_start_offset && s.max_timestamp >= ts)
        else {
            return LookupFuture::ready(Ok(None));
        };
        let start = seg.time_lookup(ts).max(self.log_start_offset);
        self.plan_walk(start).start(self.io.clone(), move |h| {
            if h.max_timestamp >= ts {
                Step::Take
            } else {
                Step::Pass
            }
        })
    }

    /// The first batch holding the largest timestamp in the log, or None if empty.
    pub fn batch_with_max_timestamp(&self) -> LookupFuture {
        if self.log_start_offset >= self.log_end_offset {
            return LookupFuture::ready(Ok(None));
        }
        let mut best: Option<&crate::segment::Segment> = None;
        for s in self
            .segments
            .iter()
            .filter(|s| s.next_offset > self.log_start_offset && s.size > 0)
        {
            if best.is_none_or(|b| s.max_timestamp > b.max_timestamp) {
                best = Some(s);
            }
        }
        let Some(best) = best else {
            return LookupFuture::ready(Ok(None));
        };
        if best.offset_of_max_timestamp >= self.log_start_offset {
            let target = best.offset_of_max_timestamp;
            return self.plan_walk(target).start(self.io.clone(), move |h| {
                if h.last_offset() >= target {
                    Step::Take
                } else {
                    Step::Pass
                }
            });
        }
        // The segment's max lies below the log start: walk what remains, marking each
        // batch that raises the max; the last mark is the first batch holding it.
        let mut max: Option<i64> = None;
        self.plan_walk(self.log_start_offset)
            .start(self.io.clone(), move |h| {
                if max.is_none_or(|m| h.max_timestamp > m) {
                    max = Some(h.max_timestamp);
                    Step::Mark
                } else {
                    Step::Pass
                }
            })
    }

    /// What a walk from the batch containing `offset` to the log end reads: the disk
    /// part of each segment from the one holding `offset` up to the one the tail cache
    /// starts in, then the cache entries ending after `offset`.
    fn plan_walk(&self, offset: i64) -> WalkPlan {
        let cache_start = self.tail.front().map_or(i64::MAX, |e| e.base_offset);
        let mut spans = Vec::new();
        if offset < cache_start {
            let first = self.segment_index_for(offset);
            for (i, seg) in self.segments[first..].iter().enumerate() {
                let end = self.disk_end(seg);
                let start = if i == 0 { seg.lookup(offset) } else { 0 };
                if start < end {
                    spans.push(Span {
                        file: seg.log.clone(),
                        segment_base: seg.base_offset,
                        start,
                        end,
                    });
                }
                if end < seg.size {
                    break;
                }
            }
        }
        let cache = self
            .tail
            .iter()
            .filter(|e| e.next_offset > offset)
            .map(|e| e.bytes.clone())
            .collect();
        WalkPlan {
            offset,
            spans,
            cache,
        }
    }
}

impl WalkPlan {
    /// Walks with `step` deciding per batch; ready at once when no disk is involved.
    fn start(
        self,
        io: Rc<IoEngine>,
        mut step: impl FnMut(&BatchHeader) -> Step + 'static,
    ) -> LookupFuture {
        if self.spans.is_empty() {
            let mut found = None;
            // The cache walk only ever records `Found::Mem`.
            let r =
                walk_cache(&self.cache, self.offset, &mut step, &mut found).map(|_| match found {
                    Some(Found::Mem(b)) => Some(b),
                    _ => None,
                });
            return LookupFuture::ready(r);
        }
        LookupFuture(Pending::Disk(Box::pin(async move {
            self.run(&io, &mut step).await
        })))
    }

    async fn run(
        self,
        io: &IoEngine,
        step: &mut dyn FnMut(&BatchHeader) -> Step,
    ) -> Result<Option<Bytes>, StorageError> {
        let mut found = None;
        let mut taken = false;
        for (i, span) in self.spans.iter().enumerate() {
            let first_read = if i == 0 {
                READ_AHEAD_BYTES
            } else {
                WALK_CHUNK_BYTES
            };
            if walk_span(io, span, self.offset, first_read, step, &mut found).await? {
                taken = true;
                break;
            }
        }
        if !taken {
            walk_cache(&self.cache, self.offset, step, &mut found)?;
        }
        match found {
            None => Ok(None),
            Some(Found::Mem(b)) => Ok(Some(b)),
            Some(Found::Disk {
                file,
                segment_base,
                pos,
                size,
            }) => {
                let b = io.read_at(file, pos, size).await?;
                if b.len() < size {
                    return Err(corrupt(format!(
                        "segment {segment_base}: file ends before {}",
                        pos + size as u64
                    )));
                }
                Ok(Some(b))
            }
        }
    }
}

/// Walks the batches of one span (in memory, chunk by chunk through the engine),
/// passing those ending at or after `offset` to `step`. True when one was taken.
async fn walk_span(
    io: &IoEngine,
    span: &Span,
    offset: i64,
    first_read: usize,
    step: &mut dyn FnMut(&BatchHeader) -> Step,
    found: &mut Option<Found>,
) -> Result<bool, StorageError> {
    let bad = |what: String| corrupt(format!("segment {}: {what}", span.segment_base));
    let mut w = Window {
        file: span.file.clone(),
        end: span.end,
        pos: span.start,
        buf: Bytes::new(),
    };
    let mut pos = span.start;
    let mut chunk = first_read;
    while pos < span.end {
        if !w.ensure(io, pos, HEADER_SIZE, chunk).await? {
            return Err(bad(format!("truncated header at {pos}")));
        }
        chunk = WALK_CHUNK_BYTES;
        let h = BatchHeader::parse(w.at(pos)).map_err(|e| bad(format!("{e} at {pos}")))?;
        let size = h.total_size();
        if pos + size as u64 > span.end {
            return Err(bad(format!("truncated batch at {pos}")));
        }
        if h.last_offset() >= offset {
            match step(&h) {
                Step::Pass => {}
                Step::Mark if w.holds(pos, size) => *found = Some(Found::Mem(w.slice(pos, size))),
                Step::Mark => {
                    *found = Some(Found::Disk {
                        file: span.file.clone(),
                        segment_base: span.segment_base,
                        pos,
                        size,
                    })
                }
                Step::Take => {
                    if !w.ensure(io, pos, size, size).await? {
                        return Err(bad(format!("file ends before {}", pos + size as u64)));
                    }
                    *found = Some(Found::Mem(w.slice(pos, size)));
                    return Ok(true);
                }
            }
        }
        pos += size as u64;
    }
    Ok(false)
}

/// [`walk_span`] over tail-cache entries. True when a batch was taken.
fn walk_cache(
    entries: &[Bytes],
    offset: i64,
    step: &mut dyn FnMut(&BatchHeader) -> Step,
    found: &mut Option<Found>,
) -> Result<bool, StorageError> {
    for bytes in entries {
        let mut at = 0usize;
        while at < bytes.len() {
            let h = BatchHeader::parse(&bytes[at..]).map_err(corrupt)?;
            let size = h.total_size();
            if at + size > bytes.len() {
                return Err(corrupt(format!("cached batch at {at} overruns its append")));
            }
            if h.last_offset() >= offset {
                match step(&h) {
                    Step::Pass => {}
                    Step::Mark => *found = Some(Found::Mem(bytes.slice(at..at + size))),
                    Step::Take => {
                        *found = Some(Found::Mem(bytes.slice(at..at + size)));
                        return Ok(true);
                    }
                }
            }
            at += size;
        }
    }
    Ok(false)
}
