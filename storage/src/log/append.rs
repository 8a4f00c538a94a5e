//! Append side of `Log`: appends, and rolling to a new segment with the
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

impl Log {
    /// Appends one or more complete v2 batches (already validated by the caller);
    /// `headers` are their parsed headers, in order (their sizes must add up to
    /// `records.len()`). Synchronously rolls if needed, assigns offsets, patches leader
    /// epoch (and LogAppendTime) in place once, updates indexes and the tail cache from
    /// the patched header copies and submits the write. The returned future resolves
    /// after the bytes are written — and fdatasync'd when `sync` (group commit) — never
    /// before an earlier append's future.
    pub fn append(
        &mut self,
        mut records: BytesMut,
        headers: &[BatchHeader],
        leader_epoch: i32,
        log_append_time: Option<i64>,
        sync: bool,
    ) -> Result<(AppendInfo, AppendFuture), StorageError> {
        if let Some(e) = self.commit.failure() {
            return Err(StorageError::Io(e));
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
            batch::parse_headers(&records).is_ok_and(|parsed| parsed == headers),
            "headers are the parsed batches of records"
        );
        let mut count = 0i64;
        let mut max_timestamp = -1i64;
        for h in headers {
            count += i64::from(h.last_offset_delta) + 1;
            max_timestamp = max_timestamp.max(h.max_timestamp);
        }
        if let Some(now) = log_append_time {
            max_timestamp = now;
        }
        let first_offset = self.log_end_offset;
        let last_offset = first_offset + count - 1;
        self.maybe_roll(
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
            batch::assign(
                &mut records[at..at + size],
                &mut h,
                next,
                leader_epoch,
                log_append_time,
            );
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
        tokio::task::spawn_local(async move {
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
    fn maybe_roll(
        &mut self,
        bytes: u64,
        batches: usize,
        max_timestamp: i64,
        last_offset: i64,
    ) -> Result<(), StorageError> {
        let now = (self.clock)();
        let cfg = &self.config;
        let seg = self.active();
        if seg.size == 0 {
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
            || last_offset - seg.base_offset > i64::from(i32::MAX)
        {
            self.roll(now)?;
        }
        Ok(())
    }

    /// Starts a new active segment at `log_end_offset`; the finished one (log and
    /// indexes) is made durable in the background, then the recovery point moves past it.
    /// A failure there fails the log, like a failed group-commit sync.
    fn roll(&mut self, now: i64) -> Result<(), StorageError> {
        let new_base = self.log_end_offset;
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
        commit.background.set(commit.background.get() + 1);
        tokio::task::spawn_local(async move {
            let result = async {
                commit.wait_written(old_end).await?;
                io.sync(log, false).await?;
                io.write_at_and_sync(index, 0, index_bytes).await?;
                io.write_at_and_sync(time, 0, time_bytes).await?;
                io.sync(dir_file.clone(), true).await?;
                if let Some(prev) = prev_roll {
                    let _ = prev.await;
                }
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
