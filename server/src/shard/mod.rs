//! Shards: one pinned OS thread per core, each running a tokio current-thread runtime,
//! and the small per-core context that ties a shard's services together.
//!
//! A [`Shard`] owns routing — which shard owns a partition ([`Shard::owner`]), running
//! work there ([`Shard::invoke_on`], [`Shard::scatter`]) — and holds the shard's
//! services side by side, each owning one concern on this core:
//! - `cluster`: this shard's view of the cluster image and topic settings;
//! - `partitions`: the partitions this shard owns (open, recovery, maintenance);
//! - `groups`: the group coordinator of the `__consumer_offsets` partitions it owns;
//! - `producer_ids`: the producer-id allocator;
//! - `quotas`: the client quota sensors homed on this shard.
//!
//! Services reach each other only through what they were given at start-up (the
//! coordinator holds the partition registry), never through `Shard`.
//!
//! Invariants:
//! - partition (topic id, index) is owned by shard `shard_for(topic_id, index, n)`;
//!   only that shard's thread touches its `Partition` (log, producer state);
//! - a shard opens only partitions whose leader in the image is this node; requests
//!   for a partition led by another broker are answered NOT_LEADER_OR_FOLLOWER by the
//!   api layer before they reach a shard;
//! - work for a partition owned elsewhere goes through [`Shard::invoke_on`]; at most
//!   [`TASKS_QUEUED_MAX`] tasks wait in a shard's queue, and a sender waits for room;
//! - each shard holds the latest `Arc<ClusterImage>`, refreshed from the control
//!   plane's watch channel, and reads it without locking.

pub mod fetch_sessions;
mod start;

use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::config::Config;
use crate::group::coordinator::Coordinator;
use crate::metadata::producer_ids::ProducerIds;
use crate::metadata::view::ClusterView;
use crate::metadata::MetadataHandle;
use crate::partition::registry::PartitionRegistry;
use crate::placement::shards::shard_for;
use crate::replica::ReplicaManager;

pub use start::{start, Replicate, Serve, ShardStart};

/// Work sent to another shard: runs on that shard's thread.
pub type Task = Box<dyn FnOnce(Rc<Shard>) + Send>;

/// Tasks queued for one shard at most; `invoke_on` waits for room when it is full
/// (back-pressure). A shard's loop only spawns what it receives, so the queue drains
/// however busy the shard is.
pub const TASKS_QUEUED_MAX: usize = 4096;

/// The target shard has stopped (only during shutdown).
#[derive(Debug)]
pub struct ShardGone;

/// A shard's context and services. Exists once per shard and lives on that shard's
/// thread only.
pub struct Shard {
    pub id: usize,
    pub config: Arc<Config>,
    pub metadata: MetadataHandle,
    peers: Arc<Vec<mpsc::Sender<Task>>>,
    pub cluster: Rc<ClusterView>,
    pub partitions: Rc<PartitionRegistry>,
    pub groups: Rc<Coordinator>,
    pub replicas: Rc<ReplicaManager>,
    pub producer_ids: ProducerIds,
    /// This shard's consumer fetch sessions (KIP-227), for the connections it serves.
    pub fetch_sessions: std::cell::RefCell<fetch_sessions::FetchSessions>,
    /// The client quota sensors whose home is this shard (`api::throttle`).
    pub quotas: std::cell::RefCell<crate::quota::Sensors>,
}

impl Shard {
    pub fn count(&self) -> usize {
        self.peers.len()
    }

    /// The shard owning a partition.
    pub fn owner(&self, topic_id: &Uuid, partition: i32) -> usize {
        shard_for(topic_id.as_u128(), partition, self.count())
    }

    /// Runs `f` on shard `target` and returns its result. Runs inline when `target`
    /// is this shard.
    pub async fn invoke_on<F, Fut, R>(self: &Rc<Self>, target: usize, f: F) -> Result<R, ShardGone>
    where
        F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        if target == self.id {
            return Ok(f(self.clone()).await);
        }
        let (tx, rx) = oneshot::channel();
        let task: Task = Box::new(move |shard| {
            tokio::task::spawn_local(async move {
                let _ = tx.send(f(shard).await);
            });
        });
        self.peers
            .get(target)
            .ok_or(ShardGone)?
            .send(task)
            .await
            .map_err(|_| ShardGone)?;
        rx.await.map_err(|_| ShardGone)
    }

    /// Runs `work(item)` on the shard that owns each item, all shards and items
    /// concurrently, and returns the results in input order. `gone` stands in for
    /// the result of an item whose shard has stopped.
    pub async fn scatter<T, R, F, Fut>(
        self: &Rc<Self>,
        items: Vec<(usize, T)>,
        work: F,
        gone: impl Fn() -> R,
    ) -> Vec<R>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(Rc<Shard>, T) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let results = self
            .scatter_by_shard(items, move |s, batch| {
                let work = work.clone();
                async move {
                    let running: Vec<_> = batch
                        .into_iter()
                        .map(|(i, item)| (i, tokio::task::spawn_local(work(s.clone(), item))))
                        .collect();
                    let mut out = Vec::with_capacity(running.len());
                    for (i, h) in running {
                        if let Ok(r) = h.await {
                            out.push((i, r));
                        }
                    }
                    out
                }
            })
            .await;
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(&gone))
            .collect()
    }

    /// Hands each shard the items it owns in one call, `work(shard, [(position,
    /// item)])`, all shards concurrently; `work` answers `(position, result)` pairs.
    /// Returns the results by input position: None where no result came back (the
    /// shard stopped, or `work` left the item out).
    pub async fn scatter_by_shard<T, R, F, Fut>(
        self: &Rc<Self>,
        items: Vec<(usize, T)>,
        work: F,
    ) -> Vec<Option<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(Rc<Shard>, Vec<(usize, T)>) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = Vec<(usize, R)>> + 'static,
    {
        let n = items.len();
        let mut by_shard: HashMap<usize, Vec<(usize, T)>> = HashMap::new();
        for (i, (owner, item)) in items.into_iter().enumerate() {
            by_shard.entry(owner).or_default().push((i, item));
        }
        let mut handles = Vec::with_capacity(by_shard.len());
        for (owner, batch) in by_shard {
            let work = work.clone();
            let me = self.clone();
            handles.push(tokio::task::spawn_local(async move {
                me.invoke_on(owner, move |s| work(s, batch))
                    .await
                    .unwrap_or_default()
            }));
        }
        let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
        for h in handles {
            for (i, r) in h.await.unwrap_or_default() {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(r);
                }
            }
        }
        results
    }
}
