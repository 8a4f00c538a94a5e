//! Append side of `Log`: a leader's appends (offsets assigned), a follower's replicated
//! ones (offsets kept), one shared body, and rolling to a new segment with the
//! background task that makes the finished one durable.

use std::future::Future;
use std::io;

use bytes::BytesMut;
use tokio::sync::oneshot;

use super::{
    write_checkpoint_on, AppendFuture, AppendInfo, CacheEntry, Log, StorageError,
    RECOVERY_POINT_FILE,
};
use crate::batch::{self, BatchHeader};
use crate::segment::Segment;

/// How an append treats the header fields a broker owns.
#[derive(Clone, Copy)]
enum Stamp {
    /// A leader's append: offsets from `log_end_offset`, this leader epoch and, if
    /// given, LogAppendTime are written into the batches.
    Assign {
        leader_epoch: i32,
        log_append_time: Option<i64>,
    },
    /// A follower's append: the batches keep the leader's offsets and epochs; the bytes
    /// are stored as they are.
    Keep,
}

impl Log {
    /// Appends one or more complete v2 batches (already validated by the caller);
    /// `headers` are their parsed headers, in order (their sizes must add up to
    /// `records.len()`). Synchronously rolls if needed, assigns offsets, patches leader
    /// epoch (and LogAppendTime) in place once, updates indexes and the tail cache from
    /// the patched header copies and submits the write. The returned future resolves
    /// after the bytes are written — and fdatasync'd when `sync` (group commit) — never
    /// before an earlier append's future. `Busy` while a truncation's file work runs.
    pub fn append(
        &mut self,
        records: BytesMut,
        headers: &[BatchHeader],
        leader_epoch: i32,
        log_append_time: Option<i64>,
        sync: bool,
    ) -> Result<(AppendInfo, AppendFuture), StorageError> {
        self.check_append(&records, headers)?;
        let stamp = Stamp::Assign {
            leader_epoch,
            log_append_time,
        };
        self.append_batches(records, headers, self.log_end_offset, stamp, sync)
    }

    /// A follower's append of batches fetched from the leader: like [`Log::append`],
    /// but every batch keeps its base offset, leader epoch and timestamps; the bytes
    /// are stored unchanged. The first batch must start at or after `log_end_offset`
    /// and each next one at or after the previous one's next offset (gaps, which a
    /// compacted leader log has, are kept); otherwise `NonMonotonicOffset` and the log
    /// is unchanged. A roll starts the new segment at the first batch's base offset, as
    /// Kafka's does. `log_end_offset` becomes the last batch's next offset.
    pub fn append_replicated(
        &mut self,
        records: BytesMut,
        headers: &[BatchHeader],
        sync: bool,
    ) -> Result<(AppendInfo, AppendFuture), StorageError> {
        self.check_append(&records, headers)?;
        let mut expected = self.log_end_offset;
        for h in headers {
            if h.base_offset < expected {
                return Err(StorageError::NonMonotonicOffset {
                    expected_at_least: expected,
                    found: h.base_offset,
                });
            }
            expected = h
                .base_offset
                .checked_add(i64::from(h.last_offset_delta) + 1)
                .ok_or_else(|| StorageError::Corrupt("batch offsets overflow".into()))?;
        }
        let first_offset = headers[0].base_offset;
        if expected - 1 - first_offset > i64::from(i32::MAX) {
            return Err(StorageError::Corrupt(
                "append spans more offsets than a segment holds".into(),
            ));
        }
        self.append_batches(records, headers, first_offset, Stamp::Keep, sync)
    }

    /// The checks every append passes before anything changes.
    fn check_append(&self, records: &[u8], headers: &[BatchHeader]) -> Result<(), StorageError> {
        if let Some(e) = self.commit.failure() {
            return Err(StorageError::Io(e));
        }
        if self.commit.truncating.get() {
            return Err(StorageError::Busy("a truncation is being made durable"));
        }
        if headers.is_empty() {
            return Err(StorageError::Corrupt("append of no batches".into()));
        }
        let sizes: usize = headers.iter().map(BatchHeader::total_size).sum();
        if sizes != records.len() {
            return Err(StorageError::Corrupt(format!(
                "batch headers cover {sizes} bytes of a {}-byte append",
                records.len()
            )));
        }
        debug_assert!(
            batch::parse_headers(records).is_ok_and(|parsed| parsed == headers),
            "headers are the parsed batches of records"
        );
        Ok(())
    }

    /// The body shared by both appends (checked by `check_append`): rolls if needed,
    /// stamps the batches as `stamp` says, updates the segment's indexes and the tail
    /// cache, submits the write. `first_offset` is the first batch's base offset once
    /// stamped (`log_end_offset` for `Stamp::Assign`).
    fn append_batches(
        &mut self,
        mut records: BytesMut,
        headers: &[BatchHeader],
        first_offset: i64,
        stamp: Stamp,
        sync: bool,
    ) -> Result<(AppendInfo, AppendFuture), StorageError> {
        debug_assert!(first_offset >= self.log_end_offset);
        let (assign, log_append_time) = match stamp {
            Stamp::Assign {
                leader_epoch,
                log_append_time,
            } => (Some(leader_epoch), log_append_time),
            Stamp::Keep => (None, None),
        };
        let mut next = first_offset;
        let mut max_timestamp = -1i64;
        for h in headers {
            let base = if assign.is_some() {
                next
            } else {
                h.base_offset
            };
            next = base + i64::from(h.last_offset_delta) + 1;
            max_timestamp = max_timestamp.max(h.max_timestamp);
        }
        if let Some(now) = log_append_time {
            max_timestamp = now;
        }
        let last_offset = next - 1;
        self.maybe_roll(
            first_offset,
            records.len() as u64,
            headers.len(),
            max_timestamp,
            last_offset,
        )?;
        if last_offset - self.active().base_offset > i64::from(i32::MAX) {
            return Err(StorageError::Corrupt(
                "append spans more offsets than a segment holds".into(),
            ));
        }

        let interval = self.config.index_interval_bytes;
        let seg_index = self.segments.len() - 1;
        let seg = &mut self.segments[seg_index];
        let position = seg.size;
        let mut next = first_offset;
        let mut info = AppendInfo {
            base_offset: first_offset,
            last_offset,
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: -1,
            log_append_time_ms: log_append_time.unwrap_or(-1),
            log_start_offset: self.log_start_offset,
        };
        let mut at = 0usize;
        for header in headers {
            let size = header.total_size();
            let mut h = *header;
            if let Some(leader_epoch) = assign {
                batch::assign(
                    &mut records[at..at + size],
                    &mut h,
                    next,
                    leader_epoch,
                    log_append_time,
                );
            }
            seg.on_batch(position + at as u64, &h, interval);
            if h.max_timestamp > info.max_timestamp {
                info.max_timestamp = h.max_timestamp;
                info.offset_of_max_timestamp = h.last_offset();
            }
            next = h.next_offset();
            at += size;
        }
        let bytes = records.freeze();
        let file = seg.log.clone();
        let segment_base = seg.base_offset;
        self.log_end_offset = next;
        self.tail_bytes += bytes.len();
        self.tail.push_back(CacheEntry {
            segment_base,
            position,
            base_offset: first_offset,
            next_offset: next,
            bytes: bytes.clone(),
        });
        self.evict_tail();

        debug_assert_eq!(at, bytes.len());
        debug_assert_eq!(next, last_offset + 1);
        let write = self.io.write_at(file, position, bytes);
        let fut = self.spawn_completion(write, next, sync);
        self.debug_check();
        Ok((info, fut))
    }

    /// [`Log::append`] for callers holding only bytes: parses the batch headers first.
    pub fn append_bytes(
        &mut self,
        records: BytesMut,
        leader_epoch: i32,
        log_append_time: Option<i64>,
        sync: bool,
    ) -> Result<(AppendInfo, AppendFuture), StorageError> {
        let headers =
            batch::parse_headers(&records).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        self.append(records, &headers, leader_epoch, log_append_time, sync)
    }

    /// Spawns the task that orders one append's completion after its predecessors'.
    fn spawn_completion(
        &mut self,
        write: impl Future<Output = io::Result<()>> + 'static,
        end: i64,
        sync: bool,
    ) -> AppendFuture {
        let (written_tx, written_rx) = oneshot::channel();
        let (resolved_tx, resolved_rx) = oneshot::channel();
        let (result_tx, result_rx) = oneshot::channel();
        let prev_written = self.last_written.replace(written_rx);
        let prev_resolved = self.last_resolved.replace(resolved_rx);
        let commit = self.commit.clone();
        let in_flight = commit.begin();
        tokio::task::spawn_local(async move {
            let _in_flight = in_flight;
            let written = write.await;
            if let Some(prev) = prev_written {
                let _ = prev.await;
            }
            match &written {
                Ok(()) => commit.mark_written(end),
                Err(e) => commit.fail(e),
            }
            let _ = written_tx.send(());
            let result = match (written, commit.failure()) {
                (Err(e), _) | (Ok(()), Some(e)) => Err(e),
                (Ok(()), None) if sync => commit.sync_to(end).await,
                (Ok(()), None) => Ok(()),
            };
            if let Some(prev) = prev_resolved {
                let _ = prev.await;
            }
            let _ = result_tx.send(result);
            let _ = resolved_tx.send(());
        });
        Box::pin(async move {
            result_rx
                .await
                .unwrap_or_else(|_| Err(io::Error::other("append completion task dropped")))
        })
    }

    fn evict_tail(&mut self) {
        let written = self.commit.written_end();
        while self.tail_bytes > self.config.tail_cache_bytes {
            match self.tail.front() {
                Some(e) if e.next_offset <= written => {
                    self.tail_bytes -= e.bytes.len();
                    self.tail.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Kafka's `shouldRoll`: size, `segment.ms`, full index, relative offset overflow.
    /// The new segment starts at `first_offset`, the append's first base offset (Kafka's
    /// roll offset); an empty segment is rolled only when the append's offsets do not
    /// fit it and do fit one starting at `first_offset`.
    fn maybe_roll(
        &mut self,
        first_offset: i64,
        bytes: u64,
        batches: usize,
        max_timestamp: i64,
        last_offset: i64,
    ) -> Result<(), StorageError> {
        let now = (self.clock)();
        let cfg = &self.config;
        let seg = self.active();
        let overflow = last_offset - seg.base_offset > i64::from(i32::MAX);
        if seg.size == 0 {
            if overflow && first_offset > seg.base_offset {
                self.roll(first_offset, now)?;
            }
            return Ok(());
        }
        let segment_bytes = cfg.segment_bytes.min(i32::MAX as u64);
        let waited_ms = match seg.rolling_base_timestamp {
            Some(first) if first >= 0 && max_timestamp >= 0 => max_timestamp - first,
            _ => now - seg.created_ms,
        };
        if seg.size + bytes > segment_bytes
            || waited_ms > cfg.segment_ms
            || seg.index_full(cfg.segment_index_bytes, batches)
            || overflow
        {
            self.roll(first_offset, now)?;
        }
        Ok(())
    }

    /// Starts a new active segment at `new_base` (>= `log_end_offset`, above the
    /// active segment's base); the finished one (log and indexes) is made durable in the
    /// background, then `synced_end` and the recovery point move past it. A failure
    /// there fails the log, like a failed group-commit sync. A truncation after the
    /// roll waits for this task before touching any file, and stops it from moving
    /// `synced_end` or the recovery point.
    fn roll(&mut self, new_base: i64, now: i64) -> Result<(), StorageError> {
        debug_assert!(new_base >= self.log_end_offset && new_base > self.active().base_offset);
        let new = Segment::create(&self.dir, new_base, now)?;
        let old_index = self.segments.len() - 1;
        let old = &mut self.segments[old_index];
        old.seal_time_index();
        let [index_bytes, time_bytes] = old.index_bytes();
        let (log, index, time, old_end) = (
            old.log.clone(),
            old.index_file.clone(),
            old.time_file.clone(),
            old.next_offset,
        );
        self.commit.add_file(old_end, new.log.clone());
        self.segments.push(new);

        let (done_tx, done_rx) = oneshot::channel::<()>();
        let prev_roll = self.last_roll_done.replace(done_rx);
        let (commit, io, dir, dir_file) = (
            self.commit.clone(),
            self.io.clone(),
            self.dir.clone(),
            self.dir_file.clone(),
        );
        let generation = commit.generation();
        commit.background.set(commit.background.get() + 1);
        tokio::task::spawn_local(async move {
            let result = async {
                // After a truncation (which needs every write done) the files are
                // untouched until this task ends: finishing the old work is harmless.
                commit.wait_written_in(generation, old_end).await?;
                io.sync(log, false).await?;
                io.write_at_and_sync(index, 0, index_bytes).await?;
                io.write_at_and_sync(time, 0, time_bytes).await?;
                io.sync(dir_file.clone(), true).await?;
                if let Some(prev) = prev_roll {
                    let _ = prev.await;
                }
                if commit.generation() != generation {
                    // Truncated since the roll: the truncation writes the recovery
                    // point after this task, and synced_end must not pass its end.
                    return Ok(());
                }
                commit.mark_synced(generation, old_end);
                write_checkpoint_on(&io, &dir, dir_file, RECOVERY_POINT_FILE, new_base).await
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(dir = %dir.display(), error = %e, "making a rolled segment durable failed");
                // A later fdatasync of the same file could succeed after the kernel
                // dropped the dirty pages: the log never trusts that file again.
                commit.fail(&e);
            }
            let _ = done_tx.send(());
            commit
                .background
                .set(commit.background.get().saturating_sub(1));
            commit.notify();
        });
        Ok(())
    }
}
