//! `PartitionRegistry`: the partitions one shard owns, and their life cycle — opening
//! (recovery), serving, going offline, being deleted — plus the shard's log
//! maintenance (retention and the log cleaner).
//!
//! Exists once per shard and lives on that shard's thread only (`!Send`); the other
//! services of the shard (the group coordinator, later the replica manager) reach
//! partitions through it, never by opening logs themselves.
//!
//! Invariants:
//! - a partition (topic id, index) is in the registry only on its owning shard
//!   (`placement::shards::shard_for`), and only while this node is one of its
//!   replicas; requests (produce, consume, groups) reach it only while it leads
//!   ([`PartitionRegistry::get`]), the replica manager in either role
//!   ([`PartitionRegistry::replica`]);
//! - every open partition's role is the one of the latest image the registry was
//!   reconciled with, so a role change is seen by every request after it;
//! - a partition is opened at most once at a time: while its recovery runs its slot
//!   is `Opening`, and requests wait for it (at most `open_wait`) instead of opening
//!   it again; the shard thread keeps serving every other partition meanwhile;
//! - a directory that belongs to another topic id, or whose log cannot be opened, is
//!   never deleted: its slot is `Offline` with the reason, and every request for it
//!   gets KAFKA_STORAGE_ERROR until an operator acts;
//! - data is removed only for a topic (or partition) the image no longer has, through
//!   the `-delete` rename.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use fjord_storage::{IoEngine, LogConfig, RecordCodec};
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use super::replica::RoleChange;
use super::{compaction, Partition, ReplicaSettings};
use crate::config::Config;
use crate::metadata::view::ClusterView;
use crate::metadata::TopicImage;
use crate::placement::shards::shard_for;

/// A partition key: (topic id, partition index).
pub type Key = (Uuid, i32);

/// Why a partition cannot serve a request on this shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No such topic or partition, or another broker leads it
    /// (UNKNOWN_TOPIC_OR_PARTITION).
    Unknown,
    /// Its log is still being recovered (retriable: NOT_LEADER_OR_FOLLOWER, or
    /// COORDINATOR_LOAD_IN_PROGRESS for a coordinator).
    Opening,
    /// Its log cannot be served (KAFKA_STORAGE_ERROR), with the reason.
    Offline(String),
    /// This node is a follower of the partition (NOT_LEADER_OR_FOLLOWER).
    NotLeader,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::Unknown => write!(f, "not served by this shard"),
            Unavailable::Opening => write!(f, "its log is being opened"),
            Unavailable::Offline(why) => write!(f, "offline: {why}"),
            Unavailable::NotLeader => write!(f, "this node follows it"),
        }
    }
}

enum Slot {
    Open(Rc<Partition>),
    /// Recovery is running; `done` is notified when the slot changes.
    Opening(Rc<Notify>),
    Offline(String),
    /// The disk was full when the partition was last opened or written: it is opened
    /// again (recovered from its files) at the first request after `retry_at`.
    Full {
        why: String,
        retry_at: tokio::time::Instant,
        /// True until the failed log has settled (no write of it is in flight), so the
        /// files are never reopened under a write of the old log.
        settling: Rc<Cell<bool>>,
    },
}

/// How long a partition whose disk is full waits between attempts to open it again.
const FULL_DISK_RETRY: Duration = Duration::from_millis(1000);

pub struct PartitionRegistry {
    shard: usize,
    shards: usize,
    config: Arc<Config>,
    view: Rc<ClusterView>,
    io: Rc<IoEngine>,
    /// Reads and writes records inside batches (compaction, internal topics).
    codec: Arc<dyn RecordCodec>,
    /// Partition logs of the whole node being opened at once, at most
    /// `num.recovery.threads.per.data.dir` (shared by every shard's registry): creating
    /// or recovering thousands of partitions uses that many blocking threads, not one
    /// each.
    opens: Arc<Semaphore>,
    /// How long a request waits for a partition being opened before it is answered
    /// with a retriable error (`fjord.partition.open.wait.ms`).
    open_wait: Duration,
    slots: RefCell<HashMap<Key, Slot>>,
    /// Notified whenever a partition is opened or its role changes (the replica
    /// manager's fetchers follow it).
    roles: Rc<Notify>,
}

impl PartitionRegistry {
    pub fn new(
        shard: usize,
        shards: usize,
        config: Arc<Config>,
        view: Rc<ClusterView>,
        io: Rc<IoEngine>,
        codec: Arc<dyn RecordCodec>,
        opens: Arc<Semaphore>,
    ) -> Rc<PartitionRegistry> {
        Rc::new(PartitionRegistry {
            shard,
            shards,
            codec,
            opens,
            open_wait: Duration::from_millis(config.partition_open_wait_ms),
            config,
            view,
            io,
            slots: RefCell::new(HashMap::new()),
            roles: Rc::new(Notify::new()),
        })
    }

    /// Notified whenever a partition opens or changes role on this shard.
    pub fn role_changes(&self) -> Rc<Notify> {
        self.roles.clone()
    }

    /// The open partition in whatever role this node has (the replica manager's
    /// access); never opens one.
    pub fn replica(&self, topic_id: &Uuid, index: i32) -> Option<Rc<Partition>> {
        match self.slots.borrow().get(&(*topic_id, index)) {
            Some(Slot::Open(p)) => Some(p.clone()),
            _ => None,
        }
    }

    /// How this node replicates `topic`'s partitions now.
    fn replica_settings(&self, topic: &TopicImage) -> ReplicaSettings {
        let s = self.view.topic_settings(&self.view.image(), topic);
        ReplicaSettings {
            me: self.config.node_id,
            min_insync: s.min_insync_replicas.clamp(1, i32::MAX as i64) as usize,
            durable_hw: self.config.replication_durable_high_watermark,
        }
    }

    /// Gives `p` its role in this shard's current image (after an ISR change).
    pub fn refresh_role(&self, p: &Partition) {
        let image = self.view.image();
        if let Some(topic) = image.topic_by_id(&p.topic_id) {
            self.install_role(p, topic);
        }
    }

    /// Gives an open partition its role in the image's state of it.
    fn install_role(&self, p: &Partition, topic: &TopicImage) {
        let Some(image) = topic.partitions.get(p.index as usize) else {
            return;
        };
        let min_insync = self.replica_settings(topic).min_insync;
        if p.update_role(image, min_insync) != RoleChange::None {
            self.roles.notify_waiters();
        }
    }

    pub fn view(&self) -> &Rc<ClusterView> {
        &self.view
    }

    /// The record codec for batches this shard writes or rewrites itself.
    pub fn codec(&self) -> &dyn RecordCodec {
        self.codec.as_ref()
    }

    /// Whether this shard owns partition `index` of topic `topic_id`.
    pub fn owns(&self, topic_id: &Uuid, index: i32) -> bool {
        shard_for(topic_id.as_u128(), index, self.shards) == self.shard
    }

    /// The partition if it is open now; starts opening it if this shard should serve
    /// it and nobody has yet. Never waits.
    pub fn get(self: &Rc<Self>, topic_id: &Uuid, index: i32) -> Result<Rc<Partition>, Unavailable> {
        debug_assert!(
            self.owns(topic_id, index),
            "partition used off its owner shard"
        );
        let key = (*topic_id, index);
        let full = match self.slots.borrow().get(&key) {
            Some(Slot::Open(p)) if p.failed_for_full_disk() == Some(true) => Some(p.clone()),
            Some(Slot::Open(p)) if !p.is_leader() => return Err(Unavailable::NotLeader),
            Some(Slot::Open(p)) => return Ok(p.clone()),
            Some(Slot::Opening(_)) => return Err(Unavailable::Opening),
            Some(Slot::Offline(why)) => return Err(Unavailable::Offline(why.clone())),
            Some(Slot::Full {
                why,
                retry_at,
                settling,
            }) if settling.get() || tokio::time::Instant::now() < *retry_at => {
                return Err(Unavailable::Offline(why.clone()))
            }
            Some(Slot::Full { .. }) | None => None,
        };
        if let Some(p) = full {
            // A write found the disk full: take the partition out and, once its log
            // is settled, open it again from its files (the failed writes' bytes are
            // truncated by recovery, producer state is rebuilt from what is there).
            let why = format!("{}-{index}: the disk is full", p.topic);
            let settling = Rc::new(Cell::new(true));
            self.slots.borrow_mut().insert(
                key,
                Slot::Full {
                    why: why.clone(),
                    retry_at: tokio::time::Instant::now() + FULL_DISK_RETRY,
                    settling: settling.clone(),
                },
            );
            let settled = p.settled();
            drop(p);
            tokio::task::spawn_local(async move {
                settled.await;
                settling.set(false);
            });
            return Err(Unavailable::Offline(why));
        }
        let mut image = self.view.image();
        if image.topic_by_id(topic_id).is_none() {
            self.view.refresh();
            image = self.view.image();
        }
        let Some(topic) = image.topic_by_id(topic_id) else {
            return Err(Unavailable::Unknown);
        };
        if !self.view.is_replica(topic, index) {
            return Err(Unavailable::Unknown);
        }
        self.start_open(topic, index);
        match self.slots.borrow().get(&key) {
            Some(Slot::Open(p)) if !p.is_leader() => Err(Unavailable::NotLeader),
            Some(Slot::Open(p)) => Ok(p.clone()),
            Some(Slot::Offline(why)) => Err(Unavailable::Offline(why.clone())),
            _ => Err(Unavailable::Opening),
        }
    }

    /// The partition, waiting (at most `open_wait`) for it if it is being opened.
    pub async fn ready(
        self: &Rc<Self>,
        topic_id: &Uuid,
        index: i32,
    ) -> Result<Rc<Partition>, Unavailable> {
        // The common case, an open partition, reads no clock.
        match self.get(topic_id, index) {
            Err(Unavailable::Opening) => {}
            other => return other,
        }
        let deadline = tokio::time::Instant::now() + self.open_wait;
        let key = (*topic_id, index);
        loop {
            match self.get(topic_id, index) {
                Err(Unavailable::Opening) => {}
                other => return other,
            }
            let done = match self.slots.borrow().get(&key) {
                Some(Slot::Opening(done)) => done.clone(),
                _ => continue,
            };
            let changed = done.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !matches!(self.slots.borrow().get(&key), Some(Slot::Opening(_))) {
                continue;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Unavailable::Opening);
            }
        }
    }

    /// Every open partition.
    pub fn open_partitions(&self) -> Vec<Rc<Partition>> {
        self.slots
            .borrow()
            .values()
            .filter_map(|s| match s {
                Slot::Open(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.log_dirs.join(format!("{topic}-{index}"))
    }

    /// Storage settings for a topic, from its effective settings. Without
    /// `cleanup.policy=delete`, time and size retention do not apply.
    pub fn log_config(&self, topic: &TopicImage) -> LogConfig {
        let s = self.view.topic_settings(&self.view.image(), topic);
        LogConfig {
            segment_bytes: s.segment_bytes.max(0) as u64,
            segment_ms: s.segment_ms,
            retention_ms: if s.cleanup_delete { s.retention_ms } else { -1 },
            retention_bytes: if s.cleanup_delete {
                s.retention_bytes
            } else {
                -1
            },
            index_interval_bytes: s.index_interval_bytes.clamp(0, u32::MAX as i64) as u32,
            segment_index_bytes: s.segment_index_bytes.clamp(4, u32::MAX as i64) as u32,
            tail_cache_bytes: self.config.tail_cache_bytes,
            file_delete_delay_ms: s.file_delete_delay_ms,
        }
    }

    /// Marks the partition `Opening` and recovers its log in a task of its own; the
    /// slot becomes `Open` or `Offline` when recovery ends.
    fn start_open(self: &Rc<Self>, topic: &TopicImage, index: i32) {
        let key = (topic.id, index);
        let done = Rc::new(Notify::new());
        self.slots
            .borrow_mut()
            .insert(key, Slot::Opening(done.clone()));
        let dir = self.partition_dir(&topic.name, index);
        let replica = self.replica_settings(topic);
        let log_config = self.log_config(topic);
        let (me, topic) = (self.clone(), topic.clone());
        tokio::task::spawn_local(async move {
            let opened = match me.opens.clone().acquire_owned().await {
                Ok(_permit) => {
                    Partition::open(dir, &topic, index, log_config, me.io.clone(), replica).await
                }
                Err(_) => Err(super::OpenError::Storage(super::StorageError::Io(
                    std::io::Error::other("partition opening stopped"),
                ))),
            };
            let slot = match opened {
                Ok(p) => Slot::Open(p),
                Err(e) if e.is_disk_full() => {
                    let why = format!("{}-{index}: {e}", topic.name);
                    tracing::error!(error = %why, "partition offline until space returns");
                    Slot::Full {
                        why,
                        retry_at: tokio::time::Instant::now() + FULL_DISK_RETRY,
                        settling: Rc::new(Cell::new(false)),
                    }
                }
                Err(e) => {
                    let why = format!("{}-{index}: {e}", topic.name);
                    tracing::error!(error = %why, "partition offline: cannot open its log");
                    Slot::Offline(why)
                }
            };
            me.slots.borrow_mut().insert(key, slot);
            done.notify_waiters();
            // The image may have moved on while the log was recovered.
            me.reconcile_one(key);
            me.roles.notify_waiters();
        });
    }

    /// [`reconcile`](Self::reconcile) for one partition that has just been opened:
    /// removed if its topic (or the partition) is gone, given its current settings
    /// otherwise. O(1), so opening many partitions costs no pass over the image each.
    fn reconcile_one(self: &Rc<Self>, key: Key) {
        let image = self.view.image();
        let topic = image
            .topic_by_id(&key.0)
            .filter(|t| key.1 >= 0 && (key.1 as usize) < t.partitions.len());
        let open = match self.slots.borrow().get(&key) {
            Some(Slot::Open(p)) => p.clone(),
            _ => return,
        };
        match topic {
            None => {
                self.slots.borrow_mut().remove(&key);
                open.delete();
            }
            Some(t) if !self.view.is_replica(t, key.1) => self.retire(key, &open, t),
            Some(t) => {
                if open.set_log_config(self.log_config(t)) {
                    open.enforce_retention();
                }
                self.install_role(&open, t);
            }
        }
    }

    /// Takes down a replica that a reassignment moved off this node: it gives up its
    /// role first (acks=all waiters on it are answered NOT_LEADER_OR_FOLLOWER), then
    /// leaves the registry, and its data goes through the `-delete` rename, as
    /// Kafka deletes a replica it no longer hosts.
    fn retire(&self, key: Key, p: &Rc<Partition>, topic: &TopicImage) {
        self.install_role(p, topic);
        self.slots.borrow_mut().remove(&key);
        tracing::info!(topic = %p.topic, partition = p.index, "no longer a replica here: removing its log");
        p.delete();
    }

    /// Applies the current image: removes partitions of deleted topics (their data
    /// goes through the `-delete` rename), installs changed settings and roles, and
    /// starts opening every partition this shard owns and this node replicates.
    pub fn reconcile(self: &Rc<Self>) {
        let image = self.view.image();
        let gone: Vec<Key> = self
            .slots
            .borrow()
            .iter()
            .filter(|(_, slot)| !matches!(slot, Slot::Opening(_)))
            .map(|(key, _)| *key)
            .filter(|(id, i)| {
                image
                    .topic_by_id(id)
                    .map(|t| *i as usize >= t.partitions.len())
                    .unwrap_or(true)
            })
            .collect();
        for key in gone {
            if let Some(Slot::Open(p)) = self.slots.borrow_mut().remove(&key) {
                p.delete();
            }
        }
        // Replicas a completed reassignment took off this node.
        let retired: Vec<(Key, Rc<Partition>)> = self
            .slots
            .borrow()
            .iter()
            .filter_map(|(key, slot)| match slot {
                Slot::Open(p) => Some((*key, p.clone())),
                _ => None,
            })
            .filter(|((id, i), _)| {
                image
                    .topic_by_id(id)
                    .is_some_and(|t| !self.view.is_replica(t, *i))
            })
            .collect();
        for (key, p) in retired {
            if let Some(t) = image.topic_by_id(&key.0) {
                self.retire(key, &p, t);
            }
        }
        for topic in image.topics.values() {
            let log_config = self.log_config(topic);
            for index in 0..topic.partitions.len() as i32 {
                if !self.owns(&topic.id, index) || !self.view.is_replica(topic, index) {
                    continue;
                }
                let open = match self.slots.borrow().get(&(topic.id, index)) {
                    Some(Slot::Open(p)) => Some(p.clone()),
                    Some(_) => continue,
                    None => None,
                };
                match open {
                    // Config changes take effect at once; a retention change is
                    // enforced at once too.
                    Some(p) => {
                        if p.set_log_config(log_config.clone()) {
                            p.enforce_retention();
                        }
                        self.install_role(&p, topic);
                    }
                    None => self.start_open(topic, index),
                }
            }
        }
    }

    /// Runs a cleaning round on every open partition whose topic is compacted.
    pub async fn clean_compacted_partitions(&self) {
        for p in self.open_partitions() {
            let image = self.view.image();
            let Some(topic) = image.topic_by_id(&p.topic_id) else {
                continue;
            };
            let settings = self.view.topic_settings(&image, topic);
            if !settings.cleanup_compact {
                continue;
            }
            let config = compaction::compaction_config(&settings);
            if let Err(e) = p.clean(&config, self.codec.clone()).await {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "cleaning failed");
            }
        }
    }

    /// Starts the shard's log maintenance: retention every
    /// `log.retention.check.interval.ms`, the log cleaner every `log.cleaner.backoff.ms`
    /// (one round at a time per shard), high-watermark checkpoints every
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub fn spawn_maintenance(self: &Rc<Self>) {
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let period = Duration::from_millis(
                me.config.replica_high_watermark_checkpoint_interval_ms as u64,
            );
            loop {
                tokio::time::sleep(period).await;
                for p in me.open_partitions() {
                    p.checkpoint_high_watermark().await;
                }
            }
        });
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let period = Duration::from_millis(me.config.log_retention_check_interval_ms as u64);
            loop {
                tokio::time::sleep(period).await;
                for p in me.open_partitions() {
                    p.enforce_retention();
                }
            }
        });
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let period = Duration::from_millis(me.config.log_cleaner_backoff_ms as u64);
            loop {
                tokio::time::sleep(period).await;
                me.clean_compacted_partitions().await;
            }
        });
    }

    /// Makes every open partition durable, its high watermark checkpointed (clean
    /// shutdown).
    pub async fn flush_all(&self) {
        for p in self.open_partitions() {
            if let Err(e) = p.flush().await {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "flush at shutdown failed");
            }
            p.checkpoint_high_watermark().await;
        }
    }
}
