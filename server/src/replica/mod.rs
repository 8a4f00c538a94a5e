//! `ReplicaManager`: one shard's side of replication, beside the partition registry.
//! As leader it proposes the ISR changes its partitions' followers call for (Kafka's
//! AlterPartition, through the controller); as follower it says what to fetch from
//! each leader and applies the leader's answers (append, truncate, start afresh).
//! The network loop that carries the fetches is `net::replica_fetcher`. Replicas
//! listed in a topic's `*.replication.throttled.replicas` are held to the broker's
//! throttled rates (`throttle`), each shard at its share.
//!
//! Exists once per shard and lives on that shard's thread only (`!Send`); it reaches
//! partitions through the registry.
//!
//! Invariants:
//! - at most one ISR change per partition is in flight, and each is a
//!   compare-and-swap on the epochs it was computed under;
//! - a follower partition is fetched by one fetcher at a time (the one for its
//!   leader), which awaits each answer's appends before it fetches again, so the
//!   fetch offset it sends is written (and synced, with durable high watermarks).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use crate::config::Config;
use crate::metadata::Command;
use crate::partition::registry::PartitionRegistry;
use crate::partition::Partition;
use crate::wire::replica_fetch::{PartitionFetch, PartitionFetched};
use throttle::Throttle;

/// How long a leader waits after a refused ISR change before it proposes another.
const ALTER_RETRY: Duration = Duration::from_millis(500);

pub mod throttle;

pub struct ReplicaManager {
    config: Arc<Config>,
    partitions: Rc<PartitionRegistry>,
    /// The node's shard count: each shard throttles at its share of the rates.
    shards: usize,
    leader_throttle: RefCell<Throttle>,
    follower_throttle: RefCell<Throttle>,
}

/// A replication throttle that applies to one replica, at this shard's share of
/// the rate.
pub struct Throttled<'a> {
    throttle: &'a RefCell<Throttle>,
    rate: i64,
}

impl Throttled<'_> {
    /// Whether throttled bytes may go now.
    pub fn allows(&self) -> bool {
        self.throttle.borrow_mut().allows(self.rate, Instant::now())
    }

    /// Charges `bytes` that went.
    pub fn charge(&self, bytes: usize) {
        self.throttle.borrow_mut().charge(bytes);
    }
}

/// Which side of replication a throttle limits.
#[derive(Clone, Copy)]
enum Side {
    Leader,
    Follower,
}

/// What one leader's answer did, for the fetcher's pacing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Partitions that took records or truncated.
    pub progressed: usize,
    /// Partitions the leader refused (not leader, fenced epoch, storage): the fetcher
    /// backs off before it asks again.
    pub refused: usize,
}

impl ReplicaManager {
    pub fn new(
        config: Arc<Config>,
        partitions: Rc<PartitionRegistry>,
        shards: usize,
    ) -> Rc<ReplicaManager> {
        let now = Instant::now();
        Rc::new(ReplicaManager {
            config,
            partitions,
            shards: shards.max(1),
            leader_throttle: RefCell::new(Throttle::new(now)),
            follower_throttle: RefCell::new(Throttle::new(now)),
        })
    }

    /// Whether `side`'s throttle covers `p`'s replica on this node (the topic's
    /// `*.replication.throttled.replicas`). As in Kafka, only replicas out of the ISR
    /// are throttled: the one fetching (`follower`) on the leader, this one on a
    /// follower.
    fn throttled(&self, p: &Partition, side: Side, follower: i32) -> bool {
        if p.in_isr(follower) {
            return false;
        }
        let view = self.partitions.view();
        let image = view.image();
        let Some(topic) = image.topic_by_id(&p.topic_id) else {
            return false;
        };
        let settings = view.topic_settings(&image, topic);
        let list = match side {
            Side::Leader => &settings.leader_throttled,
            Side::Follower => &settings.follower_throttled,
        };
        list.covers(p.index, self.config.node_id)
    }

    /// `side`'s throttle, if it applies to `p`'s replica of `follower`.
    fn throttle(&self, p: &Partition, side: Side, follower: i32) -> Option<Throttled<'_>> {
        if !self.throttled(p, side, follower) {
            return None;
        }
        let (name, throttle) = match side {
            Side::Leader => ("leader.replication.throttled.rate", &self.leader_throttle),
            Side::Follower => (
                "follower.replication.throttled.rate",
                &self.follower_throttle,
            ),
        };
        let rate = self.partitions.view().broker_long(name, i64::MAX) / self.shards as i64;
        Some(Throttled { throttle, rate })
    }

    /// On the leader: the throttle on what `p` sends `follower`, if any.
    pub fn leader_throttle(&self, p: &Partition, follower: i32) -> Option<Throttled<'_>> {
        self.throttle(p, Side::Leader, follower)
    }

    /// Whether partitions here follow `leader` (throttled or not).
    pub fn follows(&self, leader: i32) -> bool {
        self.partitions
            .open_partitions()
            .iter()
            .any(|p| !p.is_leader() && p.leader() == leader)
    }

    fn lag_max(&self) -> Duration {
        Duration::from_millis(self.config.replica_lag_time_max_ms.max(1) as u64)
    }

    /// On the leader: proposes the ISR change `p`'s followers call for, if any.
    pub fn maybe_alter_isr(self: &Rc<Self>, p: &Rc<Partition>) {
        // Only a live (registered, unfenced) broker may join, as Kafka checks before
        // it proposes: the controller would refuse the others anyway.
        // (Asked of the image only for a follower about to join: this runs at every
        // follower fetch.)
        // KIP-903: and only fetching in its current registration's epoch, -1 (none
        // sent) passing as in Kafka.
        let eligible = |b: i32, fetched: i64| {
            self.partitions
                .view()
                .image()
                .alive_broker_epoch(b)
                .is_some_and(|e| fetched == -1 || fetched == e)
        };
        let Some(crate::partition::IsrProposal {
            mut isr,
            leader_epoch,
            partition_epoch,
        }) = p.take_isr_change(self.lag_max(), &eligible)
        else {
            return;
        };
        // This leader names itself with its own registration's epoch, as Kafka's does.
        let node = self.config.node_id;
        let own = self
            .partitions
            .view()
            .image()
            .broker_epochs
            .get(&node)
            .copied();
        for (b, epoch) in isr.iter_mut() {
            if *b == node {
                *epoch = own.unwrap_or(-1);
            }
        }
        let cmd = Command::AlterPartitionWithEpochs {
            id: p.topic_id,
            partition: p.index,
            broker: node,
            leader_epoch,
            partition_epoch,
            isr: isr.clone(),
        };
        let (me, p) = (self.clone(), p.clone());
        tokio::task::spawn_local(async move {
            let view = me.partitions.view().clone();
            match view.metadata().propose(cmd).await {
                Ok((_, image)) => {
                    tracing::info!(topic = %p.topic, partition = p.index, ?isr, "ISR changed");
                    view.update_image(image);
                    me.partitions.refresh_role(&p);
                }
                Err(e) => {
                    tracing::info!(topic = %p.topic, partition = p.index, ?isr, error = %e, "ISR change refused");
                    view.refresh();
                    me.partitions.refresh_role(&p);
                    // Not again at every fetch: a broker that cannot join yet (not
                    // registered again) fetches many times a second.
                    tokio::time::sleep(ALTER_RETRY).await;
                }
            }
            p.isr_change_done();
        });
    }

    /// Checks every partition this shard leads for followers to drop from (or add
    /// to) the ISR, every half `replica.lag.time.max.ms` (as Kafka).
    pub fn spawn_isr_checks(self: &Rc<Self>) {
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let period = (me.lag_max() / 2).max(Duration::from_millis(50));
            loop {
                tokio::time::sleep(period).await;
                for p in me.partitions.open_partitions() {
                    if p.is_leader() && p.is_replicated() {
                        me.maybe_alter_isr(&p);
                    }
                }
            }
        });
    }

    /// The leaders this shard's partitions follow now.
    pub fn leaders(&self) -> BTreeSet<i32> {
        self.partitions
            .open_partitions()
            .iter()
            .filter(|p| !p.is_leader() && p.leader() >= 0)
            .map(|p| p.leader())
            .collect()
    }

    /// The partitions to fetch from `leader` now, each from its log end.
    pub fn plan(&self, leader: i32) -> Vec<(Rc<Partition>, PartitionFetch)> {
        let max_bytes = self
            .config
            .replica_fetch_max_bytes
            .clamp(0, i32::MAX as i64) as i32;
        let mut out: Vec<(Rc<Partition>, PartitionFetch)> = self
            .partitions
            .open_partitions()
            .into_iter()
            .filter(|p| {
                !p.is_leader() && p.leader() == leader && p.failed_for_full_disk().is_none()
            })
            // A throttled replica waits while the follower's rate is exceeded.
            .filter(|p| {
                self.throttle(p, Side::Follower, self.config.node_id)
                    .is_none_or(|t| t.allows())
            })
            .map(|p| {
                let f = PartitionFetch {
                    topic_id: p.topic_id,
                    partition: p.index,
                    fetch_offset: p.log_end_offset(),
                    current_leader_epoch: p.leader_epoch(),
                    last_fetched_epoch: p.latest_epoch(),
                    log_start_offset: p.log_start_offset(),
                    high_watermark: p.high_watermark(),
                    max_bytes,
                };
                (p, f)
            })
            .collect();
        out.sort_by_key(|(_, f)| (f.topic_id, f.partition));
        out
    }

    /// Applies the leader's answers to the partitions they were asked for (`asked`,
    /// as [`ReplicaManager::plan`] gave them): appends run concurrently, and this
    /// resolves when every one is written (and synced).
    pub async fn apply(
        &self,
        asked: &[(Rc<Partition>, PartitionFetch)],
        answers: Vec<PartitionFetched>,
    ) -> Applied {
        let by_key: BTreeMap<(uuid::Uuid, i32), &(Rc<Partition>, PartitionFetch)> = asked
            .iter()
            .map(|a| ((a.1.topic_id, a.1.partition), a))
            .collect();
        let mut applied = Applied::default();
        let mut appends = Vec::new();
        for answer in answers {
            let Some((p, asked)) = by_key.get(&(answer.topic_id, answer.partition)).copied() else {
                continue;
            };
            // The partition may have changed role, or its log moved, while the fetch
            // was out: an answer for another log end is dropped.
            if p.is_leader()
                || p.log_end_offset() != asked.fetch_offset
                || p.leader_epoch() != asked.current_leader_epoch
            {
                continue;
            }
            match answer.error_code {
                0 => {}
                code if code == ResponseError::OffsetOutOfRange.code() => {
                    if answer.log_start_offset > p.log_end_offset() {
                        tracing::info!(topic = %p.topic, partition = p.index, start = answer.log_start_offset, "follower behind the leader's log start: starting afresh");
                        match p.truncate_fully_and_start_at(answer.log_start_offset).await {
                            Ok(()) => applied.progressed += 1,
                            Err(e) => {
                                tracing::error!(topic = %p.topic, partition = p.index, error = ?e, "cannot start the follower log afresh");
                                applied.refused += 1;
                            }
                        }
                    } else {
                        applied.refused += 1;
                    }
                    continue;
                }
                code => {
                    tracing::debug!(topic = %p.topic, partition = p.index, code, "leader refused the follower fetch");
                    applied.refused += 1;
                    continue;
                }
            }
            if let Some((epoch, end)) = answer.diverging {
                let target = p.divergence_target(epoch, end);
                match p.truncate_to(target).await {
                    Ok(()) => applied.progressed += 1,
                    Err(e) => {
                        tracing::error!(topic = %p.topic, partition = p.index, error = ?e, "cannot truncate the follower log");
                        applied.refused += 1;
                    }
                }
                continue;
            }
            if !answer.records.is_empty() {
                applied.progressed += 1;
                if let Some(t) = self.throttle(p, Side::Follower, self.config.node_id) {
                    t.charge(answer.records.len());
                }
            }
            let p = p.clone();
            let records = bytes::BytesMut::from(&answer.records[..]);
            appends.push(tokio::task::spawn_local(async move {
                let result = p.append_replicated(records, answer.high_watermark).await;
                if let Err(e) = &result {
                    tracing::error!(topic = %p.topic, partition = p.index, error = ?e, "follower append failed");
                }
                result.is_ok()
            }));
        }
        for a in appends {
            if !a.await.unwrap_or(false) {
                applied.refused += 1;
            }
        }
        applied
    }
}
