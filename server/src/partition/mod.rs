//! A partition on its owning shard: the log, the idempotent-producer state, the high
//! watermark and its replication state (`replica`): as leader it takes appends and
//! tracks its followers, as follower it takes the leader's batches as they are.
//!
//! Invariants:
//! - owned by one shard (`Rc`, never sent across threads);
//! - the high watermark only moves forward, and never past what every ISR member
//!   holds: with one replica it is the end of the contiguous prefix of the log whose
//!   writes completed; with more it is the minimum log end over the ISR, counting on
//!   each replica only what it has fdatasync'd (unless durable high watermarks are
//!   off: then what it has written, as Kafka does); consumers never see past it;
//! - only the leader appends with `append`; a follower only with `append_replicated`
//!   and `truncate_to`, driven by its fetcher;
//! - producer state is updated synchronously with the log append, before any await, so
//!   a retried batch arriving while the first is being written is seen as a duplicate.

pub mod compaction;
pub mod hw_checkpoint;
pub mod leader_epoch;
pub mod producer_state;
pub mod registry;
pub mod replica;
pub mod validate;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fjord_storage::batch::split_batches;
pub use fjord_storage::{BatchHeader, StorageError};
use fjord_storage::{IoEngine, Log, LogConfig, Recovered};
use tokio::sync::watch;
use uuid::Uuid;

use crate::metadata::{PartitionImage, TopicImage};
use producer_state::{BatchMeta, ProducerStateTable, Verdict};
use replica::{Replication, RoleChange};

/// Why an append was refused. The api layer maps these to Kafka error codes.
#[derive(Debug)]
pub enum AppendError {
    InvalidProducerEpoch,
    OutOfOrderSequence,
    /// This replica does not lead the partition (any more).
    NotLeader,
    /// Written, but the ISR fell under `min.insync.replicas` before the high
    /// watermark reached it.
    NotEnoughReplicasAfterAppend,
    /// Written, but not replicated to the ISR within the request's timeout.
    TimedOut,
    /// The log failed; the partition stops taking writes (KAFKA_STORAGE_ERROR).
    Storage(String),
}

/// Why a follower's fetch is refused, in Kafka's terms.
#[derive(Debug, PartialEq, Eq)]
pub enum FollowerFetchError {
    NotLeader,
    /// The follower names a newer leader epoch than this leader knows.
    UnknownLeaderEpoch,
    /// The follower names an older leader epoch.
    FencedLeaderEpoch,
    /// The fetch offset is past the log end, or before its start.
    OffsetOutOfRange,
}

/// An ISR change a leader proposes, with the epochs it was computed under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    /// Each member with the broker epoch its fetches carried (-1: none; this
    /// leader's own entry too, for the caller to fill in).
    pub isr: Vec<(i32, i64)>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// What the leader tells a follower besides records.
#[derive(Clone, Copy, Debug)]
pub struct FollowerView {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Records may be read up to here.
    pub read_end: i64,
    /// The follower's log diverges: truncate to `end_offset` of `epoch` first.
    pub diverging: Option<(i32, i64)>,
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
    log: RefCell<Log>,
    producers: RefCell<ProducerStateTable>,
    high_watermark: watch::Sender<i64>,
    /// The high watermark in the partition's checkpoint file (-1: none written).
    checkpointed_hw: Cell<i64>,
    /// The end of the written log: followers long-poll on it.
    written_end: watch::Sender<i64>,
    /// Role, epochs, ISR and (as leader) the followers' progress.
    repl: RefCell<Replication>,
    /// Bumped at every change of `repl` from the image, so that waits for the high
    /// watermark see leadership lost and the ISR shrinking.
    role_changes: watch::Sender<u64>,
    /// A replica counts towards the high watermark only what it has fdatasync'd
    /// (`fjord.replication.durable.high.watermark`).
    durable_hw: bool,
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
        replica: ReplicaSettings,
    ) -> Result<Rc<Partition>, OpenError> {
        let topic_id = topic.id;
        let image = topic
            .partitions
            .get(index as usize)
            .cloned()
            .unwrap_or_else(|| PartitionImage::new(vec![replica.me]));
        let lead_epoch = (image.leader == replica.me).then_some(image.leader_epoch);
        let recovered =
            tokio::task::spawn_blocking(move || recover(dir, &topic_id, log_config, lead_epoch))
                .await
                .map_err(|e| OpenError::Storage(StorageError::Io(std::io::Error::other(e))))??;
        let Recovery {
            log,
            producers,
            epochs,
            hw_checkpoint,
        } = recovered;
        let log = Log::from_recovered(log, io);
        let hw = log.written_end_offset();
        let log_end_gauge = metrics::gauge!(
            "fjord_log_end_offset",
            "topic" => topic.name.clone(),
            "partition" => index.to_string()
        );
        log_end_gauge.set(hw as f64);
        let repl = Replication::new(replica.me, &image, replica.min_insync, Instant::now());
        // A replicated partition starts from its high-watermark checkpoint (a lower
        // bound of what was committed; nothing without one), at most its log end, and
        // moves up as the ISR is heard from (as leader) or as the leader says (as
        // follower).
        let hw = if repl.is_replicated() {
            hw_checkpoint
                .unwrap_or(0)
                .clamp(log.log_start_offset(), hw.max(log.log_start_offset()))
        } else {
            hw
        };
        let written = log.written_end_offset();
        Ok(Rc::new(Partition {
            topic: topic.name.clone(),
            topic_id: topic.id,
            index,
            log: RefCell::new(log),
            producers: RefCell::new(producers),
            high_watermark: watch::channel(hw).0,
            checkpointed_hw: Cell::new(hw_checkpoint.unwrap_or(-1)),
            written_end: watch::channel(written).0,
            repl: RefCell::new(repl),
            role_changes: watch::channel(0).0,
            durable_hw: replica.durable_hw,
            failed: Cell::new(None),
            log_end_gauge,
            epochs: RefCell::new(epochs),
        }))
    }

    /// The current leader epoch, as this replica knows it.
    pub fn leader_epoch(&self) -> i32 {
        self.repl.borrow().leader_epoch
    }

    pub fn is_leader(&self) -> bool {
        self.repl.borrow().is_leader()
    }

    /// The leader this replica follows (itself when leading; -1 when none).
    pub fn leader(&self) -> i32 {
        self.repl.borrow().leader
    }

    /// The ISR as this replica knows it.
    pub fn isr(&self) -> Vec<i32> {
        self.repl.borrow().isr.clone()
    }

    /// Whether `broker` is in the ISR as this replica knows it.
    pub fn in_isr(&self, broker: i32) -> bool {
        self.repl.borrow().isr.contains(&broker)
    }

    /// Followers and the offset each last fetched from (-1: not yet in this epoch).
    pub fn follower_ends(&self) -> Vec<(i32, i64)> {
        self.repl.borrow().follower_ends()
    }

    /// The latest leader epoch in this replica's log (-1: none): a follower's
    /// `LastFetchedEpoch`.
    pub fn latest_epoch(&self) -> i32 {
        self.epochs.borrow().latest_epoch().unwrap_or(-1)
    }

    /// Installs this partition's state from a newer image: a new leader epoch starts
    /// at the log end in the leader-epoch checkpoint when this replica leads it.
    pub fn update_role(&self, image: &PartitionImage, min_insync: usize) -> RoleChange {
        let change = {
            let mut r = self.repl.borrow_mut();
            // Kafka's effective minimum: at most the replication factor.
            r.min_insync = min_insync.min(image.replicas.len().max(1));
            r.update(image, Instant::now())
        };
        if change == RoleChange::BecameLeader {
            let end = self.log_end_offset();
            if let Err(e) = self.epochs.borrow_mut().assign(image.leader_epoch, end) {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot write the leader-epoch checkpoint");
            }
            tracing::info!(topic = %self.topic, partition = self.index, epoch = image.leader_epoch, log_end = end, "leading");
        }
        if change != RoleChange::None {
            self.role_changes.send_modify(|n| *n += 1);
            self.advance_high_watermark();
        }
        change
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
        let (leader_epoch, replicated) = {
            let r = self.repl.borrow();
            if !r.is_leader() {
                return Err(AppendError::NotLeader);
            }
            (r.leader_epoch, r.is_replicated())
        };
        // With durable high watermarks a replicated partition's leader counts only
        // synced bytes, so every append is group-committed.
        let sync = sync || (replicated && self.durable_hw);
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
            leader_epoch,
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
    /// (Once written here: an acks=all caller then waits for the ISR as for any
    /// append.)
    async fn acknowledge_duplicate(&self, meta: BatchMeta) -> Result<Appended, AppendError> {
        let mut written = self.watch_written_end();
        if written
            .wait_for(|end| *end > meta.last_offset)
            .await
            .is_err()
        {
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

    /// Moves the high watermark as far as the replication state allows (leader), and
    /// publishes the written end to long-polling followers.
    fn advance_high_watermark(&self) {
        let (written, synced) = {
            let log = self.log.borrow();
            (log.written_end_offset(), log.synced_end_offset())
        };
        self.written_end.send_if_modified(|w| {
            let moved = *w != written;
            *w = written;
            moved
        });
        let bound = {
            let r = self.repl.borrow();
            if !r.is_leader() {
                None
            } else if !r.is_replicated() {
                Some(written)
            } else {
                r.high_watermark_bound(if self.durable_hw { synced } else { written })
            }
        };
        if let Some(bound) = bound {
            self.raise_high_watermark(bound);
        }
    }

    fn raise_high_watermark(&self, to: i64) {
        let advanced = self.high_watermark.send_if_modified(|hw| {
            let moved = to > *hw;
            if moved {
                *hw = to;
            }
            moved
        });
        if advanced {
            self.log_end_gauge.set(to as f64);
            if self.is_leader() {
                // Followers long-poll on the written end: wake them, so the answer to a
                // fetch parked before the high watermark moved tells them at once (an
                // eligible leader replica must know every committed offset).
                self.written_end.send_modify(|_| {});
            }
        }
    }

    /// acks=all: waits until the high watermark passes `last_offset` (the ISR holds
    /// the batch), this replica stops leading, the ISR falls under
    /// `min.insync.replicas`, or `timeout` passes.
    pub async fn wait_replicated(
        &self,
        last_offset: i64,
        timeout: Duration,
    ) -> Result<(), AppendError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut hw = self.high_watermark.subscribe();
        let mut roles = self.role_changes.subscribe();
        loop {
            if *hw.borrow_and_update() > last_offset {
                return Ok(());
            }
            {
                roles.borrow_and_update();
                let r = self.repl.borrow();
                if !r.is_leader() {
                    return Err(AppendError::NotLeader);
                }
                if r.isr.len() < r.min_insync {
                    return Err(AppendError::NotEnoughReplicasAfterAppend);
                }
            }
            tokio::select! {
                changed = hw.changed() => if changed.is_err() { return Err(AppendError::NotLeader) },
                changed = roles.changed() => if changed.is_err() { return Err(AppendError::NotLeader) },
                _ = tokio::time::sleep_until(deadline) => return Err(AppendError::TimedOut),
            }
        }
    }

    /// Whether an acks=all append must wait for followers (more than one replica).
    pub fn is_replicated(&self) -> bool {
        self.repl.borrow().is_replicated()
    }

    /// A receiver that changes whenever the written end moves, and on the leader
    /// whenever the high watermark does (followers long-poll on it).
    pub fn watch_written_end(&self) -> watch::Receiver<i64> {
        self.written_end.subscribe()
    }

    /// On the leader: checks follower `replica`'s fetch from `offset` (its log end)
    /// and records its progress, advancing the high watermark. `last_fetched_epoch`
    /// is the epoch of the follower's last batch: where the leader's log of that
    /// epoch ends before `offset`, the follower is told to truncate (`diverging`) and
    /// its offset does not count.
    pub fn serve_follower(
        &self,
        replica: i32,
        broker_epoch: i64,
        offset: i64,
        current_leader_epoch: i32,
        last_fetched_epoch: i32,
    ) -> Result<FollowerView, FollowerFetchError> {
        {
            let r = self.repl.borrow();
            if !r.is_leader() {
                return Err(FollowerFetchError::NotLeader);
            }
            if current_leader_epoch > r.leader_epoch {
                return Err(FollowerFetchError::UnknownLeaderEpoch);
            }
            if current_leader_epoch >= 0 && current_leader_epoch < r.leader_epoch {
                return Err(FollowerFetchError::FencedLeaderEpoch);
            }
            if !r.replicas.contains(&replica) || replica == r.me {
                return Err(FollowerFetchError::NotLeader);
            }
        }
        let (start, end, written) = {
            let log = self.log.borrow();
            (
                log.log_start_offset(),
                log.log_end_offset(),
                log.written_end_offset(),
            )
        };
        if last_fetched_epoch >= 0 {
            let (epoch, epoch_end) = self.end_offset_for_epoch(last_fetched_epoch);
            if epoch < last_fetched_epoch || epoch_end < offset {
                return Ok(FollowerView {
                    high_watermark: self.high_watermark(),
                    log_start_offset: start,
                    read_end: written,
                    diverging: Some((epoch, epoch_end)),
                });
            }
        }
        if offset > end || offset < start {
            return Err(FollowerFetchError::OffsetOutOfRange);
        }
        self.repl
            .borrow_mut()
            .record_fetch(replica, broker_epoch, offset, end, Instant::now());
        self.advance_high_watermark();
        Ok(FollowerView {
            high_watermark: self.high_watermark(),
            log_start_offset: start,
            read_end: written,
            diverging: None,
        })
    }

    /// On the leader: the ISR change its followers' progress calls for, marking it
    /// in flight; None if none is due.
    /// The caller proposes it and then calls [`Partition::isr_change_done`].
    pub fn take_isr_change(
        &self,
        lag_max: Duration,
        may_join: &dyn Fn(i32, i64) -> bool,
    ) -> Option<IsrProposal> {
        let hw = self.high_watermark();
        let mut r = self.repl.borrow_mut();
        let epoch_start = self
            .epochs
            .borrow()
            .start_of_latest(r.leader_epoch)
            .unwrap_or(0);
        let isr = r.wanted_isr(hw, epoch_start, lag_max, Instant::now(), may_join)?;
        let isr = isr
            .into_iter()
            .map(|b| (b, r.fetched_broker_epoch(b)))
            .collect();
        r.alter_in_flight = true;
        Some(IsrProposal {
            isr,
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
        })
    }

    pub fn isr_change_done(&self) {
        self.repl.borrow_mut().alter_in_flight = false;
    }

    /// Whole batches from `offset` up to the written end, for a follower.
    pub async fn read_for_follower(
        &self,
        offset: i64,
        read_end: i64,
        max_bytes: usize,
    ) -> Result<Bytes, StorageError> {
        if offset >= read_end {
            return Ok(Bytes::new());
        }
        let read = self.log.borrow().read(offset, read_end, max_bytes, true);
        Ok(read.await?.records)
    }

    /// On a follower: appends batches fetched from the leader, as they are (offsets
    /// and leader epochs kept), then takes the leader's high watermark (bounded by
    /// what is written here). Resolves once written — and fdatasync'd with durable
    /// high watermarks — so the next fetch offset reports only that.
    pub async fn append_replicated(
        &self,
        records: BytesMut,
        leader_hw: i64,
    ) -> Result<(), AppendError> {
        if self.failed.get().is_some() {
            return Err(AppendError::Storage(
                "partition is offline after a write error".into(),
            ));
        }
        if self.is_leader() {
            return Err(AppendError::NotLeader);
        }
        if records.is_empty() {
            self.follow_high_watermark(leader_hw);
            return Ok(());
        }
        let headers = fjord_storage::batch::parse_headers(&records)
            .map_err(|e| AppendError::Storage(format!("leader sent a bad batch: {e}")))?;
        let appended = self
            .log
            .borrow_mut()
            .append_replicated(records, &headers, self.durable_hw);
        let (_, done) = appended.map_err(|e| {
            let kind = match &e {
                StorageError::Io(io) => io.kind(),
                _ => std::io::ErrorKind::Other,
            };
            self.fail(kind, e.to_string())
        })?;
        {
            let mut producers = self.producers.borrow_mut();
            let mut epochs = self.epochs.borrow_mut();
            for h in &headers {
                if h.producer_id >= 0 && !h.is_control() {
                    producers.record(
                        h.producer_id,
                        h.producer_epoch,
                        batch_meta(h, h.base_offset, -1),
                    );
                }
                if epochs
                    .latest_epoch()
                    .is_none_or(|e| h.partition_leader_epoch > e)
                {
                    if let Err(e) = epochs.assign(h.partition_leader_epoch, h.base_offset) {
                        tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot write the leader-epoch checkpoint");
                    }
                }
            }
        }
        done.await.map_err(|e| self.fail(e.kind(), e.to_string()))?;
        self.advance_high_watermark();
        self.follow_high_watermark(leader_hw);
        Ok(())
    }

    /// On a follower: the leader's high watermark, bounded by this replica's log.
    fn follow_high_watermark(&self, leader_hw: i64) {
        if self.is_leader() {
            return;
        }
        let end = self.log.borrow().written_end_offset();
        self.raise_high_watermark(leader_hw.min(end));
    }

    /// On a follower told that its log diverges after `end` of leader epoch `epoch`:
    /// where to truncate (Kafka's rules). With the epoch unknown here, to the end of
    /// the closest earlier epoch this log has, so the next fetch checks again from
    /// there; with nothing known, to the high watermark.
    pub fn divergence_target(&self, epoch: i32, end: i64) -> i64 {
        let log_end = self.log_end_offset();
        if end < 0 {
            return self.high_watermark();
        }
        if epoch < 0 {
            return end.min(log_end);
        }
        match self.end_offset_for_epoch(epoch) {
            (-1, _) => self.high_watermark(),
            (mine, my_end) if mine != epoch => my_end.min(log_end),
            (_, my_end) => end.min(my_end).min(log_end),
        }
    }

    /// On a follower: removes the records at and after `offset` (they diverge from
    /// the leader's log). Never below the high watermark: committed records are
    /// on every ISR member, the leader included.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), AppendError> {
        let offset = offset.max(self.high_watermark());
        let result = self.log.borrow_mut().truncate_to(offset);
        let durable = result.map_err(|e| AppendError::Storage(e.to_string()))?;
        let end = self.log_end_offset();
        self.producers.borrow_mut().truncate(end);
        if let Err(e) = self.epochs.borrow_mut().truncate_from_end(end) {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot write the leader-epoch checkpoint");
        }
        tracing::info!(topic = %self.topic, partition = self.index, log_end = end, "truncated to the leader's log");
        self.advance_high_watermark();
        durable
            .await
            .map_err(|e| self.fail(e.kind(), e.to_string()))
    }

    /// On a follower whose log ends before the leader's log start: starts empty there.
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), AppendError> {
        let result = self.log.borrow_mut().truncate_fully_and_start_at(offset);
        let durable = result.map_err(|e| AppendError::Storage(e.to_string()))?;
        *self.producers.borrow_mut() = ProducerStateTable::default();
        if let Err(e) = self.epochs.borrow_mut().clear() {
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot write the leader-epoch checkpoint");
        }
        self.high_watermark.send_modify(|hw| *hw = offset);
        self.advance_high_watermark();
        durable
            .await
            .map_err(|e| self.fail(e.kind(), e.to_string()))
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

    /// Writes the high-watermark checkpoint of a replicated partition whose high
    /// watermark moved since the last one. A failure is logged; the next round
    /// tries again.
    pub async fn checkpoint_high_watermark(&self) {
        if !self.repl.borrow().is_replicated() {
            return;
        }
        let hw = self.high_watermark();
        if self.checkpointed_hw.get() == hw {
            return;
        }
        let dir = self.log.borrow().dir().to_path_buf();
        match tokio::task::spawn_blocking(move || hw_checkpoint::write(&dir, hw)).await {
            Ok(Ok(())) => self.checkpointed_hw.set(hw),
            Ok(Err(e)) => {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot write the high-watermark checkpoint")
            }
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "high-watermark checkpoint task failed")
            }
        }
    }

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

/// How this node replicates the partitions it opens.
#[derive(Clone, Copy, Debug)]
pub struct ReplicaSettings {
    /// This broker's id.
    pub me: i32,
    /// The topic's `min.insync.replicas`.
    pub min_insync: usize,
    /// `fjord.replication.durable.high.watermark`.
    pub durable_hw: bool,
}

/// What opening a partition reads from disk, off the shard.
struct Recovery {
    log: Recovered,
    producers: ProducerStateTable,
    epochs: leader_epoch::LeaderEpochCache,
    hw_checkpoint: Option<i64>,
}

/// The blocking part of [`Partition::open`]: runs on the blocking pool. Records
/// `lead_epoch` (when this replica leads) as starting at the log end in the
/// leader-epoch checkpoint.
fn recover(
    dir: PathBuf,
    topic_id: &Uuid,
    log_config: LogConfig,
    lead_epoch: Option<i32>,
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
    if let Some(epoch) = lead_epoch {
        epochs.assign(epoch, log.log_end_offset())?;
    }
    Ok(Recovery {
        log,
        producers,
        epochs,
        hw_checkpoint: hw_checkpoint::read(&dir),
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
    // Durable before the partition takes writes: without it a power cut can leave an
    // empty file, and the partition's data unservable until an operator steps in.
    fjord_storage::replace_file(dir, PARTITION_METADATA, expected.as_bytes())?;
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
