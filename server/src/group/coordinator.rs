//! The group coordinator on one shard: the groups and committed offsets of the
//! `__consumer_offsets` partitions this shard owns.
//!
//! Exists once per shard (a service of `Shard`), touched only on that shard's thread;
//! every method must be called on the shard owning the group's offsets partition
//! ([`Loc`]), which the api layer reaches with `invoke_on`. It reaches the offsets
//! partitions through the shard's partition registry.
//!
//! Invariants:
//! - a partition's groups are replayed from its log before any request touches them:
//!   `ensure_loaded` marks the partition `Loading` before its first await, and every
//!   other request for it waits until the load ends, so none interleaves with it;
//! - in-memory offsets change only after their record is durable, and a record never
//!   overwrites a newer one (`Committed::log_offset` orders them);
//! - parked JoinGroup/SyncGroup requests are oneshot senders in `waiters`, completed
//!   by the state machine's effects; deadlines run on tokio timers of this shard.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

use super::classic::{ClassicGroup, Effect, JoinResponse, Limits, SyncResponse, Waiter};
use super::consumer::{ConsumerGroup, ConsumerLimits};
use super::error::GroupError;
use super::records::{GroupMetadataValue, OffsetCommitValue, RecordKey};
use super::store;
use crate::partition::now_ms;
use crate::partition::registry::{PartitionRegistry, Unavailable};

mod admin;
pub mod consumer;
pub mod expiry;
pub mod offsets;
pub use admin::{GroupDescription, GroupSummary, MemberDescription};

/// Where a group lives: the offsets topic's id and the partition index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Loc {
    pub topic_id: Uuid,
    pub partition: i32,
}

/// A committed offset and the log offset of the record that committed it.
#[derive(Clone, Debug)]
pub struct Committed {
    pub value: OffsetCommitValue,
    log_offset: i64,
}

/// A group's state machine and its committed offsets, keyed by (topic, partition).
///
/// Classic and KIP-848 groups share one id namespace: `consumer` is Some once a
/// ConsumerGroupHeartbeat created the group, and while it has members the classic
/// `group` has none (JoinGroup gets INCONSISTENT_GROUP_PROTOCOL), and the other way
/// round (ConsumerGroupHeartbeat gets GROUP_ID_NOT_FOUND).
pub struct GroupEntry {
    pub group: ClassicGroup,
    pub consumer: Option<ConsumerGroup>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    loc: Loc,
}

#[derive(Default)]
struct Waiters {
    join: HashMap<Waiter, oneshot::Sender<JoinResponse>>,
    sync: HashMap<Waiter, oneshot::Sender<SyncResponse>>,
}

/// Whether an offsets partition's groups are in memory.
enum Load {
    /// A request is replaying the partition; the others wait for `done`.
    Loading(Rc<Notify>),
    /// Loaded while this node led the partition in this leader epoch: a later epoch
    /// (leadership moved away and back) loads it afresh, since another leader may
    /// have written to it meanwhile.
    Loaded(i32),
}

pub struct Coordinator {
    partitions: Rc<PartitionRegistry>,
    limits: Limits,
    consumer_limits: ConsumerLimits,
    loaded: RefCell<HashMap<Loc, Load>>,
    groups: RefCell<HashMap<String, GroupEntry>>,
    waiters: RefCell<Waiters>,
    next_waiter: Cell<Waiter>,
    /// Per group, the deadline a sleeping timer task will wake up for.
    armed: RefCell<HashMap<String, i64>>,
}

impl Coordinator {
    pub fn new(
        partitions: Rc<PartitionRegistry>,
        initial_rebalance_delay_ms: i64,
        consumer_limits: ConsumerLimits,
    ) -> Rc<Coordinator> {
        Rc::new(Coordinator {
            partitions,
            limits: Limits {
                initial_rebalance_delay_ms,
                ..Limits::default()
            },
            consumer_limits,
            loaded: RefCell::new(HashMap::new()),
            groups: RefCell::new(HashMap::new()),
            waiters: RefCell::new(Waiters::default()),
            next_waiter: Cell::new(1),
            armed: RefCell::new(HashMap::new()),
        })
    }

    /// Whether this shard owns the offsets partition `loc` and this node leads it.
    pub(super) fn serves(&self, loc: Loc) -> bool {
        let image = self.partitions.view().image();
        self.partitions.owns(&loc.topic_id, loc.partition)
            && image
                .topic_by_id(&loc.topic_id)
                .is_some_and(|t| self.partitions.view().leads(t, loc.partition))
    }

    /// Forgets the groups of `loc` (loaded under an earlier leader epoch).
    fn unload(&self, loc: Loc) {
        if !matches!(self.loaded.borrow().get(&loc), Some(Load::Loaded(_))) {
            return;
        }
        self.loaded.borrow_mut().remove(&loc);
        let gone: Vec<String> = self
            .groups
            .borrow()
            .iter()
            .filter(|(_, g)| g.loc == loc)
            .map(|(id, _)| id.clone())
            .collect();
        let mut groups = self.groups.borrow_mut();
        let mut armed = self.armed.borrow_mut();
        for id in &gone {
            groups.remove(id);
            armed.remove(id);
        }
        if !gone.is_empty() {
            tracing::info!(
                partition = loc.partition,
                groups = gone.len(),
                "unloaded groups of an earlier leader epoch"
            );
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Replays `loc`'s log into memory the first time the partition is used; a
    /// request arriving during the replay waits for it. Err:
    /// `CoordinatorLoadInProgress` while the partition's log is still being
    /// recovered, `CoordinatorNotAvailable` when it cannot be read.
    pub async fn ensure_loaded(self: &Rc<Self>, loc: Loc) -> Result<(), GroupError> {
        loop {
            let epoch = self
                .partitions
                .replica(&loc.topic_id, loc.partition)
                .filter(|p| p.is_leader())
                .map(|p| p.leader_epoch());
            let waiting = match self.loaded.borrow().get(&loc) {
                Some(Load::Loaded(e)) if Some(*e) == epoch => return Ok(()),
                Some(Load::Loaded(_)) => None,
                Some(Load::Loading(done)) => Some(done.clone()),
                None => None,
            };
            if waiting.is_none() {
                self.unload(loc);
            }
            let Some(done) = waiting else { break };
            let changed = done.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if matches!(self.loaded.borrow().get(&loc), Some(Load::Loading(_))) {
                changed.await;
            }
        }
        let done = Rc::new(Notify::new());
        self.loaded
            .borrow_mut()
            .insert(loc, Load::Loading(done.clone()));
        // Ends the load (as failed, unless marked Loaded) even if this future is dropped.
        let guard = LoadGuard(self, loc, done);
        let now = now_ms();
        let limits = self.limits;
        let mut groups: HashMap<String, GroupEntry> = HashMap::new();
        let result = store::load(
            &self.partitions,
            &loc.topic_id,
            loc.partition,
            &mut |offset, k, v| {
                replay(&mut groups, loc, limits, now, offset, &k, v.as_deref());
            },
        )
        .await;
        if let Err(e) = result {
            tracing::warn!(partition = loc.partition, error = %e, "cannot load __consumer_offsets yet");
            return Err(match e {
                Unavailable::Opening => GroupError::CoordinatorLoadInProgress,
                _ => GroupError::CoordinatorNotAvailable,
            });
        }
        let ids: Vec<String> = groups.keys().cloned().collect();
        tracing::info!(
            partition = loc.partition,
            groups = ids.len(),
            "loaded groups"
        );
        self.groups.borrow_mut().extend(groups);
        let epoch = self
            .partitions
            .replica(&loc.topic_id, loc.partition)
            .map_or(-1, |p| p.leader_epoch());
        self.loaded.borrow_mut().insert(loc, Load::Loaded(epoch));
        drop(guard);
        for id in ids {
            self.arm(&id);
        }
        Ok(())
    }

    /// Runs `f` on the group's entry, if it exists.
    pub fn with_group<R>(&self, group_id: &str, f: impl FnOnce(&mut GroupEntry) -> R) -> Option<R> {
        self.groups.borrow_mut().get_mut(group_id).map(f)
    }

    /// Runs `f` on the group, creating an empty one at `loc` if needed.
    fn with_group_or_create<R>(
        &self,
        group_id: &str,
        loc: Loc,
        f: impl FnOnce(&mut GroupEntry) -> R,
    ) -> R {
        let mut groups = self.groups.borrow_mut();
        let entry = groups
            .entry(group_id.to_string())
            .or_insert_with(|| GroupEntry {
                group: ClassicGroup::new(group_id, self.limits),
                consumer: None,
                offsets: BTreeMap::new(),
                loc,
            });
        f(entry)
    }

    fn remove_group(&self, group_id: &str) {
        self.groups.borrow_mut().remove(group_id);
    }

    fn new_waiter(&self) -> Waiter {
        let w = self.next_waiter.get();
        self.next_waiter.set(w + 1);
        w
    }

    /// JoinGroup on the owner shard. The caller checked the group id and session
    /// timeout; a missing group is created only for a member without an id.
    pub async fn join(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
        req: super::classic::JoinRequest,
    ) -> JoinResponse {
        let c = self;
        if let Err(e) = c.ensure_loaded(loc).await {
            return JoinResponse::error(e, &req.member_id);
        }
        let exists = c.groups.borrow().contains_key(group_id);
        if !exists && !req.member_id.is_empty() {
            return JoinResponse::error(GroupError::UnknownMemberId, &req.member_id);
        }
        if let Err(e) = c.claim_for_classic(group_id) {
            return JoinResponse::error(e, &req.member_id);
        }
        let member_id = req.member_id.clone();
        let waiter = c.new_waiter();
        let (tx, rx) = oneshot::channel();
        c.waiters.borrow_mut().join.insert(waiter, tx);
        c.with_group_or_create(group_id, loc, |e| e.group.join(req, waiter, now_ms()));
        c.drain(group_id);
        rx.await.unwrap_or_else(|_| {
            JoinResponse::error(GroupError::CoordinatorNotAvailable, &member_id)
        })
    }

    /// SyncGroup on the owner shard.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResponse {
        let c = self;
        if let Err(e) = c.ensure_loaded(loc).await {
            return SyncResponse::error(e);
        }
        let waiter = c.new_waiter();
        let (tx, rx) = oneshot::channel();
        c.waiters.borrow_mut().sync.insert(waiter, tx);
        let found = c.with_group(group_id, |e| {
            e.group.sync(
                member_id,
                instance_id,
                generation_id,
                protocol_type,
                protocol_name,
                assignments,
                waiter,
                now_ms(),
            )
        });
        if found.is_none() {
            c.waiters.borrow_mut().sync.remove(&waiter);
            return SyncResponse::error(GroupError::UnknownMemberId);
        }
        c.drain(group_id);
        rx.await
            .unwrap_or_else(|_| SyncResponse::error(GroupError::CoordinatorNotAvailable))
    }

    /// Heartbeat on the owner shard.
    pub async fn heartbeat(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        let c = self;
        c.ensure_loaded(loc).await?;
        let result = c.with_group(group_id, |e| {
            e.group
                .heartbeat(member_id, instance_id, generation_id, now_ms())
        });
        c.drain(group_id);
        result.unwrap_or(Err(GroupError::UnknownMemberId))
    }

    /// LeaveGroup on the owner shard: one result per (member id, instance id).
    pub async fn leave(
        self: &Rc<Self>,
        loc: Loc,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let c = self;
        c.ensure_loaded(loc).await?;
        let results = c.with_group(group_id, |e| {
            members
                .iter()
                .map(|(m, i)| e.group.leave(m, i.as_deref(), now_ms()))
                .collect::<Vec<_>>()
        });
        c.drain(group_id);
        results.ok_or(GroupError::UnknownMemberId)
    }

    /// Hands the group's queued effects out: answers parked requests, starts writes,
    /// and arms the group's next deadline.
    fn drain(self: &Rc<Self>, group_id: &str) {
        let Some((effects, loc)) = self.with_group(group_id, |e| (e.group.take_effects(), e.loc))
        else {
            return;
        };
        for effect in effects {
            match effect {
                Effect::Join(w, r) => {
                    if let Some(tx) = self.waiters.borrow_mut().join.remove(&w) {
                        let _ = tx.send(r);
                    }
                }
                Effect::Sync(w, r) => {
                    if let Some(tx) = self.waiters.borrow_mut().sync.remove(&w) {
                        let _ = tx.send(r);
                    }
                }
                Effect::WriteAssignment { generation, value } => {
                    let c = self.clone();
                    let gid = group_id.to_string();
                    tokio::task::spawn_local(async move {
                        let ok = write_group(&c.partitions, loc, &gid, &value).await;
                        c.with_group(&gid, |e| {
                            e.group.assignment_written(generation, &value, ok, now_ms())
                        });
                        c.drain(&gid);
                    });
                }
                Effect::WriteGroup(value) => {
                    let c = self.clone();
                    let gid = group_id.to_string();
                    tokio::task::spawn_local(async move {
                        write_group(&c.partitions, loc, &gid, &value).await;
                    });
                }
            }
        }
        self.arm(group_id);
    }

    /// Makes sure a timer task wakes up by the group's next deadline.
    fn arm(self: &Rc<Self>, group_id: &str) {
        let next = self.with_group(group_id, |e| {
            let consumer = e.consumer.as_ref().and_then(|g| g.next_deadline());
            e.group.next_deadline().into_iter().chain(consumer).min()
        });
        let Some(Some(deadline)) = next else {
            return;
        };
        {
            let mut armed = self.armed.borrow_mut();
            if armed.get(group_id).is_some_and(|a| *a <= deadline) {
                return;
            }
            armed.insert(group_id.to_string(), deadline);
        }
        let c = self.clone();
        let gid = group_id.to_string();
        tokio::task::spawn_local(async move {
            let wait_ms = (deadline - now_ms()).max(1) as u64;
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            {
                let mut armed = c.armed.borrow_mut();
                if armed.get(&gid) == Some(&deadline) {
                    armed.remove(&gid);
                }
            }
            c.with_group(&gid, |e| {
                let now = now_ms();
                e.group.tick(now);
                if let Some(g) = e.consumer.as_mut() {
                    g.tick(now);
                }
            });
            c.drain(&gid);
        });
    }
}

/// Ends a load: unless it reached `Loaded`, the partition is unloaded again (the next
/// request retries); waiters wake either way.
struct LoadGuard<'a>(&'a Coordinator, Loc, Rc<Notify>);

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        let mut loaded = self.0.loaded.borrow_mut();
        if matches!(loaded.get(&self.1), Some(Load::Loading(_))) {
            loaded.remove(&self.1);
        }
        drop(loaded);
        self.2.notify_waiters();
    }
}

/// Persists a group record; false if the write failed.
async fn write_group(
    partitions: &Rc<PartitionRegistry>,
    loc: Loc,
    group_id: &str,
    value: &GroupMetadataValue,
) -> bool {
    let key = RecordKey::GroupMetadata {
        group: group_id.to_string(),
    }
    .encode();
    match store::append(
        partitions,
        &loc.topic_id,
        loc.partition,
        vec![(key, Some(value.encode()))],
    )
    .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(group = group_id, error = %e, "cannot write group metadata");
            false
        }
    }
}

/// Applies one `__consumer_offsets` record to the groups being loaded.
fn replay(
    groups: &mut HashMap<String, GroupEntry>,
    loc: Loc,
    limits: Limits,
    now: i64,
    offset: i64,
    key: &[u8],
    value: Option<&[u8]>,
) {
    let new_entry = |group: &str| GroupEntry {
        group: ClassicGroup::new(group, limits),
        consumer: None,
        offsets: BTreeMap::new(),
        loc,
    };
    match RecordKey::decode(key) {
        Ok(RecordKey::OffsetCommit {
            group,
            topic,
            partition,
        }) => match value.map(OffsetCommitValue::decode) {
            Some(Ok(v)) => {
                let entry = groups
                    .entry(group.clone())
                    .or_insert_with(|| new_entry(&group));
                entry.offsets.insert(
                    (topic, partition),
                    Committed {
                        value: v,
                        log_offset: offset,
                    },
                );
            }
            Some(Err(e)) => tracing::warn!(offset, ?e, "skipping a malformed offset commit"),
            None => {
                if let Some(entry) = groups.get_mut(&group) {
                    entry.offsets.remove(&(topic, partition));
                    if entry.offsets.is_empty()
                        && entry.group.is_empty()
                        && entry.group.generation() == 0
                    {
                        groups.remove(&group);
                    }
                }
            }
        },
        Ok(RecordKey::GroupMetadata { group }) => match value.map(GroupMetadataValue::decode) {
            Some(Ok(v)) => {
                let entry = groups
                    .entry(group.clone())
                    .or_insert_with(|| new_entry(&group));
                entry.group = ClassicGroup::from_record(&group, &v, limits, now);
            }
            Some(Err(e)) => tracing::warn!(offset, ?e, "skipping a malformed group record"),
            None => {
                let keep = groups.get(&group).is_some_and(|e| !e.offsets.is_empty());
                if keep {
                    if let Some(entry) = groups.get_mut(&group) {
                        entry.group = ClassicGroup::new(&group, limits);
                    }
                } else {
                    groups.remove(&group);
                }
            }
        },
        Ok(RecordKey::Other(_)) => {}
        Err(e) => tracing::warn!(offset, ?e, "skipping a malformed record key"),
    }
}
