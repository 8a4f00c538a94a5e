//! Retention side of `Log`: deleting whole segments and moving the log start offset.

use super::{write_checkpoint, Log, StorageError, LOG_START_OFFSET_FILE};
use crate::segment::Segment;

impl Log {
    /// Deletes whole non-active segments, oldest first, while their largest timestamp
    /// is older than `retention.ms` or the log exceeds `retention.bytes` without them
    /// (Kafka's rules), and segments wholly below the log start offset. Only fully
    /// written segments go. Advances the log start offset; returns segments deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        let cfg = self.config.clone();
        let mut deleted = 0;
        let mut excess_bytes = if cfg.retention_bytes >= 0 {
            self.size_bytes() as i64 - cfg.retention_bytes
        } else {
            i64::MIN
        };
        while self.segments.len() > 1 {
            let seg = &self.segments[0];
            let next_base = self.segments[1].base_offset;
            let expired =
                cfg.retention_ms >= 0 && now_ms - seg.largest_timestamp() > cfg.retention_ms;
            let oversize =
                cfg.retention_bytes >= 0 && excess_bytes.saturating_sub(seg.size as i64) >= 0;
            let below_start = next_base <= self.log_start_offset;
            if !(expired || oversize || below_start) || seg.next_offset > self.commit.written_end()
            {
                break;
            }
            excess_bytes = excess_bytes.saturating_sub(seg.size as i64);
            self.delete_oldest_segment()?;
            deleted += 1;
        }
        if deleted > 0 {
            let first_base = self.segments[0].base_offset;
            if first_base > self.log_start_offset {
                self.log_start_offset = first_base;
                write_checkpoint(&self.dir, LOG_START_OFFSET_FILE, first_base)?;
            }
            tracing::info!(dir = %self.dir.display(), deleted, log_start_offset = self.log_start_offset, "retention deleted segments");
        }
        self.debug_check();
        Ok(deleted)
    }

    /// Moves the log start offset forward (DeleteRecords) and deletes the segments
    /// wholly below it. Moving backwards is a no-op; beyond the log end is an error.
    pub fn advance_log_start_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = offset;
        write_checkpoint(&self.dir, LOG_START_OFFSET_FILE, offset)?;
        while self.segments.len() > 1
            && self.segments[1].base_offset <= offset
            && self.segments[0].next_offset <= self.commit.written_end()
        {
            self.delete_oldest_segment()?;
        }
        self.debug_check();
        Ok(())
    }

    fn delete_oldest_segment(&mut self) -> Result<(), StorageError> {
        let seg = self.segments.remove(0);
        self.commit.remove_file(&seg.log);
        while let Some(e) = self.tail.front() {
            if e.segment_base != seg.base_offset || e.next_offset > self.commit.written_end() {
                break;
            }
            self.tail_bytes -= e.bytes.len();
            self.tail.pop_front();
        }
        Segment::delete_files(&self.dir, seg.base_offset)?;
        Ok(())
    }
}
