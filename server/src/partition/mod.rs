//! A partition on its owning shard: the log, the idempotent-producer state and the
//! high watermark. Replication (followers, ISR) will live here too.
//!
//! Invariants:
//! - owned by one shard (`Rc`, never sent across threads);
//! - the high watermark is the end of the contiguous prefix of the log whose writes
//!   completed (single replica); fetches never see past it;
//! - producer state is updated synchronously with the log append, before any await, so
//!   a retried batch arriving while the first is being written is seen as a duplicate.

pub mod compaction;
pub mod leader_epoch;
pub mod producer_state;
pub mod registry;
pub mod validate;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use fjord_storage::batch::split_batches;
pub use fjord_storage::{BatchHeader, StorageError};
use fjord_storage::{IoEngine, Log, LogConfig, Recovered};
use tokio::sync::watch;
use uuid::Uuid;

use crate::metadata::TopicImage;
use producer_state::{BatchMeta, ProducerStateTable, Verdict};

/// Why an append was refused. The api layer maps these to Kafka error codes.
#[derive(Debug)]
pub enum AppendError {
    InvalidProducerEpoch,
    OutOfOrderSequence,
    /// The log failed; the partition stops taking writes (KAFKA_STORAGE_ERROR).
    Storage(String),
}

/// The answer to a successful append.
#[derive(Clone, Copy, Debug)]
pub struct Appended {
    pub base_offset: i64,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Records read for a fetch, with the partition's offsets at that moment.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Owned by exactly one shard thread.
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    pub leader_epoch: i32,
    log: RefCell<Log>,
    producers: RefCell<ProducerStateTable>,
    high_watermark: watch::Sender<i64>,
    /// Set after a write or sync failed, with the error's kind: the log takes no more
    /// appends. A partition that failed for a full disk is reopened (recovered from
    /// its files) once space may have returned; any other failure keeps it offline
    /// until restart (a failed fsync is never retried as if the data were safe).
    failed: Cell<Option<std::io::ErrorKind>>,
    log_end_gauge: metrics::Gauge,
    /// First offset of each leader epoch (OffsetForLeaderEpoch, follower truncation).
    epochs: RefCell<leader_epoch::LeaderEpochCache>,
}

/// Kafka's `partition.metadata` file: lets a directory be matched to its topic id.
const PARTITION_METADATA: &str = "partition.metadata";

/// Why a partition's log could not be opened. Its data is left as it is.
#[derive(Debug)]
pub enum OpenError {
    /// The directory's `partition.metadata` names another topic id, or cannot be read
    /// as one (Kafka's InconsistentTopicIdException).
    InconsistentTopicId(String),
    Storage(StorageError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::InconsistentTopicId(m) => write!(f, "inconsistent topic id: {m}"),
            OpenError::Storage(e) => write!(f, "{e}"),
        }
    }
}

impl OpenError {
    /// The disk was full: opening may succeed once space returns.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, OpenError::Storage(StorageError::Io(e)) if e.kind() == std::io::ErrorKind::StorageFull)
    }
}

impl From<StorageError> for OpenError {
    fn from(e: StorageError) -> Self {
        OpenError::Storage(e)
    }
}

impl From<std::io::Error> for OpenError {
    fn from(e: std::io::Error) -> Self {
        OpenError::Storage(StorageError::Io(e))
    }
}

impl Partition {
    /// Opens (or creates) the partition's log: claims the directory, runs recovery and
    /// rebuilds the producer state from the batch headers in the log, all on the
    /// runtime's blocking pool, so the shard keeps serving meanwhile; then installs the
    /// log on this shard's I/O engine.
    pub async fn open(
        dir: PathBuf,
        topic: &TopicImage,
        index: i32,
        log_config: LogConfig,
        io: Rc<IoEngine>,
        leader_epoch: i32,
    ) -> Result<Rc<Partition>, OpenError> {
        let topic_id = topic.id;
        let recovered =
            tokio::task::spawn_blocking(move || recover(dir, &topic_id, log_config, leader_epoch))
                .await
                .map_err(|e| OpenError::Storage(StorageError::Io(std::io::Error::other(e))))??;
        let Recovery {
            log,
            producers,
            epochs,
        } = recovered;
        let log = Log::from_recovered(log, io);
        let hw = log.written_end_offset();
        let log_end_gauge = metrics::gauge!(
            "fjord_log_end_offset",
            "topic" => topic.name.clone(),
            "partition" => index.to_string()
        );
        log_end_gauge.set(hw as f64);
        Ok(Rc::new(Partition {
            topic: topic.name.clone(),
            topic_id: topic.id,
            index,
            leader_epoch,
            log: RefCell::new(log),
            producers: RefCell::new(producers),
            high_watermark: watch::channel(hw).0,
            failed: Cell::new(None),
            log_end_gauge,
            epochs: RefCell::new(epochs),
        }))
    }

    /// Kafka's OffsetForLeaderEpoch answer for `epoch`: (epoch, end offset).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs
            .borrow()
            .end_offset_for(epoch, self.log_end_offset())
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// A receiver that changes whenever the high watermark advances (`Send`, so a
    /// fetch on another shard can wait on it).
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.borrow().log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.borrow().log_end_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.borrow().size_bytes()
    }

    /// Appends one validated batch. `sync` asks for fdatasync before the append
    /// completes (acks=all).
    pub async fn append(
        self: Rc<Self>,
        records: BytesMut,
        header: BatchHeader,
        log_append_time: Option<i64>,
        sync: bool,
    ) -> Result<Appended, AppendError> {
        if self.failed.get().is_some() {
            return Err(AppendError::Storage(
                "partition is offline after a write error".into(),
            ));
        }
        let idempotent = header.producer_id >= 0;
        let last_seq = header.base_sequence.wrapping_add(header.last_offset_delta);
        if idempotent {
            let verdict = self.producers.borrow().check(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                last_seq,
            );
            match verdict {
                Verdict::Append => {}
                Verdict::Duplicate(meta) => return self.acknowledge_duplicate(meta).await,
                Verdict::InvalidEpoch => return Err(AppendError::InvalidProducerEpoch),
                Verdict::OutOfOrder => return Err(AppendError::OutOfOrderSequence),
            }
        }
        let appended = self.log.borrow_mut().append(
            records,
            std::slice::from_ref(&header),
            self.leader_epoch,
            log_append_time,
            sync,
        );
        let (info, done) = appended.map_err(|e| {
            let kind = match &e {
                StorageError::Io(io) => io.kind(),
                _ => std::io::ErrorKind::Other,
            };
            self.fail(kind, e.to_string())
        })?;
        if idempotent {
            self.producers.borrow_mut().record(
                header.producer_id,
                header.producer_epoch,
                batch_meta(&header, info.base_offset, info.log_append_time_ms),
            );
        }
        done.await.map_err(|e| self.fail(e.kind(), e.to_string()))?;
        self.advance_high_watermark();
        Ok(Appended {
            base_offset: info.base_offset,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: info.log_start_offset,
        })
    }

    /// A retried batch: answer with the original offsets once they are written.
    async fn acknowledge_duplicate(&self, meta: BatchMeta) -> Result<Appended, AppendError> {
        let mut hw = self.watch_high_watermark();
        if hw.wait_for(|hw| *hw > meta.last_offset).await.is_err() {
            return Err(AppendError::Storage("partition closed".into()));
        }
        Ok(Appended {
            base_offset: meta.base_offset,
            log_append_time_ms: meta.log_append_time_ms,
            log_start_offset: self.log_start_offset(),
        })
    }

    fn fail(&self, kind: std::io::ErrorKind, why: String) -> AppendError {
        if self.failed.get().is_none() {
            tracing::error!(topic = %self.topic, partition = self.index, error = %why, "write failed; partition offline");
            self.failed.set(Some(kind));
        }
        AppendError::Storage(why)
    }

    /// Whether a write or sync failed; `Some(true)` when for a full disk (the
    /// partition may be reopened once space returns).
    pub fn failed_for_full_disk(&self) -> Option<bool> {
        self.failed
            .get()
            .map(|k| k == std::io::ErrorKind::StorageFull)
    }

    /// Resolves once the log issues no more writes (after a failure, before the
    /// partition's files are reopened).
    pub fn settled(&self) -> impl std::future::Future<Output = ()> + 'static {
        self.log.borrow_mut().settled()
    }

    fn advance_high_watermark(&self) {
        let written = self.log.borrow().written_end_offset();
        let advanced = self.high_watermark.send_if_modified(|hw| {
            let moved = written > *hw;
            if moved {
                *hw = written;
            }
            moved
        });
        if advanced {
            self.log_end_gauge.set(written as f64);
        }
    }

    /// Whole batches from the one containing `offset`, up to the high watermark. Disk
    /// reads go through the shard's I/O engine; the log is not borrowed while they run.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one: bool,
    ) -> Result<Fetched, StorageError> {
        let hw = self.high_watermark();
        let read = {
            let log = self.log.borrow();
            if offset > hw && offset <= log.log_end_offset() {
                // Written but not yet complete: nothing to return yet.
                return Ok(Fetched {
                    records: Bytes::new(),
                    high_watermark: hw,
                    log_start_offset: log.log_start_offset(),
                });
            }
            log.read(offset, hw, max_bytes, min_one)
        };
        let r = read.await?;
        Ok(Fetched {
            records: r.records,
            high_watermark: hw,
            log_start_offset: r.log_start_offset,
        })
    }

    /// The first batch holding a timestamp >= `ts` (ListOffsets by time). Planned under
    /// a short borrow of the log; the disk reads are awaited without it.
    pub async fn batch_for_timestamp(&self, ts: i64) -> Result<Option<Bytes>, StorageError> {
        let lookup = self.log.borrow().batch_for_timestamp(ts);
        lookup.await
    }

    /// The batch holding the largest timestamp (ListOffsets MAX_TIMESTAMP), planned and
    /// awaited like [`Partition::batch_for_timestamp`].
    pub async fn batch_with_max_timestamp(&self) -> Result<Option<Bytes>, StorageError> {
        let lookup = self.log.borrow().batch_with_max_timestamp();
        lookup.await
    }

    /// Installs new storage settings (a config change); true when retention settings
    /// changed, so the caller can enforce them at once.
    pub fn set_log_config(&self, config: LogConfig) -> bool {
        let mut log = self.log.borrow_mut();
        let old = log.config();
        let retention_changed = old.retention_ms != config.retention_ms
            || old.retention_bytes != config.retention_bytes;
        log.set_config(config);
        retention_changed
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high watermark)
    /// and deletes segments wholly below it. Returns the new log start offset (Kafka's
    /// low watermark). Offsets beyond the high watermark are out of range.
    pub fn delete_records(&self, offset: i64) -> Result<i64, StorageError> {
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        let mut log = self.log.borrow_mut();
        if target < 0 || target > hw {
            return Err(StorageError::OffsetOutOfRange {
                log_start_offset: log.log_start_offset(),
                log_end_offset: hw,
            });
        }
        log.advance_log_start_offset(target)?;
        Ok(log.log_start_offset())
    }

    /// The idempotent producers this partition knows, for DescribeProducers.
    pub fn producers(&self) -> Vec<producer_state::ProducerSummary> {
        self.producers.borrow().summaries()
    }

    pub fn enforce_retention(&self) {
        let now = now_ms();
        match self.log.borrow_mut().enforce_retention(now) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(topic = %self.topic, partition = self.index, segments = n, "retention deleted segments")
            }
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "retention failed")
            }
        }
    }

    pub async fn flush(&self) -> std::io::Result<()> {
        let done = self.log.borrow().flush();
        done.await
    }

    /// Removes the partition's data (its topic was deleted).
    /// Removes the partition's data (its topic was deleted): the directory is renamed
    /// aside at once, and its files are removed on the blocking pool.
    pub fn delete(&self) {
        let dir = self.log.borrow().dir().to_path_buf();
        match rename_aside(&dir) {
            Ok(Some(aside)) => {
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = std::fs::remove_dir_all(&aside) {
                        tracing::warn!(dir = %aside.display(), error = %e, "cannot remove deleted partition");
                    }
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove deleted partition")
            }
        }
    }
}

/// What opening a partition reads from disk, off the shard.
struct Recovery {
    log: Recovered,
    producers: ProducerStateTable,
    epochs: leader_epoch::LeaderEpochCache,
}

/// The blocking part of [`Partition::open`]: runs on the blocking pool. Records
/// `leader_epoch` as starting at the log end in the leader-epoch checkpoint.
fn recover(
    dir: PathBuf,
    topic_id: &Uuid,
    log_config: LogConfig,
    leader_epoch: i32,
) -> Result<Recovery, OpenError> {
    claim_directory(&dir, topic_id)?;
    let log = Log::recover(dir.clone(), log_config)?;
    if log.truncated_bytes() > 0 {
        tracing::warn!(dir = %dir.display(), truncated = log.truncated_bytes(), "recovery truncated the log tail");
    }
    let mut producers = ProducerStateTable::default();
    log.scan_headers(log.log_start_offset(), &mut |h: &BatchHeader| {
        if h.producer_id >= 0 && !h.is_control() {
            producers.record(
                h.producer_id,
                h.producer_epoch,
                batch_meta(h, h.base_offset, -1),
            );
        }
    })?;
    let mut epochs = leader_epoch::LeaderEpochCache::open(&dir);
    epochs.assign(leader_epoch, log.log_end_offset())?;
    Ok(Recovery {
        log,
        producers,
        epochs,
    })
}

fn batch_meta(h: &BatchHeader, base_offset: i64, log_append_time_ms: i64) -> BatchMeta {
    BatchMeta {
        first_seq: h.base_sequence,
        last_seq: h.base_sequence.wrapping_add(h.last_offset_delta),
        base_offset,
        last_offset: base_offset + h.last_offset_delta as i64,
        log_append_time_ms,
        max_timestamp: if log_append_time_ms >= 0 {
            log_append_time_ms
        } else {
            h.max_timestamp
        },
    }
}

/// Keeps whole batches of fetched `records` within `budget` bytes (at least the first batch
/// when `min_one`).
pub fn trim_to_budget(records: &Bytes, budget: usize, min_one: bool) -> Bytes {
    if records.len() <= budget {
        return records.clone();
    }
    let Ok(ranges) = split_batches(records) else {
        return Bytes::new();
    };
    let mut end = 0;
    for r in ranges {
        if r.end > budget && !(min_one && end == 0) {
            break;
        }
        end = r.end;
    }
    records.slice(..end)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Kafka prints topic ids as URL-safe base64 without padding.
pub fn topic_id_string(id: &Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Makes sure `dir` belongs to topic `id`, writing its `partition.metadata` file if it
/// has none. A file naming another topic id, or one that cannot be read as Kafka's
/// format, is an error and the directory is left untouched: its data may be the only
/// copy, and an operator decides (Kafka takes the log directory offline).
fn claim_directory(dir: &std::path::Path, id: &Uuid) -> Result<(), OpenError> {
    let meta_path = dir.join(PARTITION_METADATA);
    let expected = format!("version: 0\ntopic_id: {}\n", topic_id_string(id));
    match std::fs::read(&meta_path) {
        Ok(text) if text == expected.as_bytes() => return Ok(()),
        Ok(text) => {
            let found = String::from_utf8_lossy(&text);
            return Err(OpenError::InconsistentTopicId(format!(
                "{} holds {:?}, expected topic id {}; the data is kept, move the directory \
                 aside or restore the file to serve this partition",
                meta_path.display(),
                found.trim_end(),
                topic_id_string(id)
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{PARTITION_METADATA}.tmp"));
    std::fs::write(&tmp, expected)?;
    std::fs::rename(&tmp, &meta_path)?;
    Ok(())
}

/// Removes, on a thread of its own, the directories of deleted partitions that a
/// previous run renamed aside but did not finish removing (Kafka's `-delete` suffix).
pub fn remove_leftover_deletions(log_dirs: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(log_dirs) else {
        return;
    };
    let leftovers: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with("-delete"))
        .map(|e| e.path())
        .collect();
    if leftovers.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("fjord-delete".into())
        .spawn(move || {
            for dir in leftovers {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove deleted partition");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start removing deleted partitions");
    }
}

/// Renames a deleted partition's directory aside (Kafka's `-delete` suffix), so a new
/// topic of the same name starts empty; None if there was no directory.
fn rename_aside(dir: &std::path::Path) -> std::io::Result<Option<PathBuf>> {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}-delete", Uuid::new_v4().simple()));
    let aside = dir.with_file_name(name);
    match std::fs::rename(dir, &aside) {
        Ok(()) => Ok(Some(aside)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn topic_ids_print_like_kafka() {
        // Kafka: Uuid(0, 1).toString() == "AAAAAAAAAAAAAAAAAAAAAQ"
        assert_eq!(
            topic_id_string(&Uuid::from_u128(1)),
            "AAAAAAAAAAAAAAAAAAAAAQ"
        );
        assert_eq!(
            topic_id_string(&Uuid::from_u128(u128::MAX)),
            "_____________________w"
        );
    }
}

#[cfg(test)]
mod trim_tests {
    use super::*;

    fn fake_batches(sizes: &[usize]) -> Bytes {
        let mut out = Vec::new();
        for &s in sizes {
            let mut b = vec![0u8; s];
            b[8..12].copy_from_slice(&((s - 12) as i32).to_be_bytes());
            b[16] = 2;
            out.extend_from_slice(&b);
        }
        Bytes::from(out)
    }

    #[test]
    fn trims_to_whole_batches() {
        let r = fake_batches(&[100, 100, 100]);
        assert_eq!(trim_to_budget(&r, 1000, false).len(), 300);
        assert_eq!(trim_to_budget(&r, 250, false).len(), 200);
        assert_eq!(trim_to_budget(&r, 50, false).len(), 0);
        assert_eq!(trim_to_budget(&r, 50, true).len(), 100);
    }
}
