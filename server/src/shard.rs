//! Shards: one pinned OS thread per core, each running a tokio current-thread runtime.
//!
//! Invariants:
//! - partition (topic id, index) is owned by shard `shard_for(topic_id, index, n)`;
//!   only that shard's thread touches its [`Partition`] (log, producer state);
//! - a shard opens only partitions whose leader in the image is this node; requests
//!   for a partition led by another broker are answered NOT_LEADER_OR_FOLLOWER by
//!   the api layer ([`Shard::leads`]) before they reach a shard;
//! - work for a partition owned elsewhere goes through [`Shard::invoke_on`];
//! - each shard holds the latest `Arc<ClusterImage>`, refreshed from the control
//!   plane's watch channel, and reads it without locking.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use fjord_storage::{IoEngine, LogConfig};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::config::Config;
use crate::configs::{Layers, TopicSettings};
use crate::metadata::{ClusterImage, Command, MetadataHandle, TopicImage};
use crate::partition::Partition;

/// Work sent to another shard: runs on that shard's thread.
pub type Task = Box<dyn FnOnce(Rc<Shard>) + Send>;

/// The target shard has stopped (only during shutdown).
#[derive(Debug)]
pub struct ShardGone;

/// Producer ids are taken from the metadata log in blocks of this size.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Jump consistent hash (Lamping & Veach): maps `key` to one of `buckets` so that
/// growing the number of buckets moves only 1/n of the keys.
pub fn jump_hash(mut key: u64, buckets: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

/// The shard that owns a partition.
pub fn shard_for(topic_id: &Uuid, partition: i32, shards: usize) -> usize {
    let (hi, lo) = topic_id.as_u64_pair();
    let key = hi ^ lo.rotate_left(17) ^ (partition as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    jump_hash(key, shards)
}

/// A shard's state. Exists once per shard and lives on that shard's thread only.
pub struct Shard {
    pub id: usize,
    pub config: Arc<Config>,
    pub metadata: MetadataHandle,
    peers: Arc<Vec<mpsc::UnboundedSender<Task>>>,
    image: RefCell<Arc<ClusterImage>>,
    partitions: RefCell<HashMap<(Uuid, i32), Rc<Partition>>>,
    io: Rc<IoEngine>,
    /// Producer ids `[next, end)` still free in this shard's block.
    producer_ids: Cell<(i64, i64)>,
    connections: Arc<std::sync::atomic::AtomicI64>,
    /// The groups and offsets of the `__consumer_offsets` partitions this shard owns.
    pub groups: crate::group::coordinator::Coordinator,
    /// Resolved topic settings by topic id, valid for the image whose
    /// `applied_index` is the first field (an image's index names its content).
    settings: RefCell<(u64, HashMap<Uuid, Rc<TopicSettings>>)>,
}

impl Shard {
    pub fn count(&self) -> usize {
        self.peers.len()
    }

    /// The current cluster image.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.image.borrow().clone()
    }

    /// Installs a newer image (from the control plane or a proposal's reply).
    pub fn update_image(&self, image: Arc<ClusterImage>) {
        let mut cur = self.image.borrow_mut();
        if image.applied_index > cur.applied_index {
            *cur = image;
        }
    }

    /// Whether this node leads partition `index` of `topic` (and so serves it).
    pub fn leads(&self, topic: &TopicImage, index: i32) -> bool {
        usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .is_some_and(|p| p.leader == self.config.node_id)
    }

    /// The shard owning a partition.
    pub fn owner(&self, topic_id: &Uuid, partition: i32) -> usize {
        shard_for(topic_id, partition, self.count())
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
                me.invoke_on(owner, move |s| async move {
                    let running: Vec<_> = batch
                        .into_iter()
                        .map(|(i, item)| (i, tokio::task::spawn_local(work(s.clone(), item))))
                        .collect();
                    let mut out = Vec::with_capacity(running.len());
                    for (i, h) in running {
                        out.push((i, h.await.ok()));
                    }
                    out
                })
                .await
                .unwrap_or_default()
            }));
        }
        let mut results: Vec<Option<R>> = (0..n).map(|_| None).collect();
        for h in handles {
            for (i, r) in h.await.unwrap_or_default() {
                results[i] = r;
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(&gone))
            .collect()
    }

    /// The local partition, opening its log on first use. Must be called on the
    /// owning shard. None if the topic or partition does not exist or another broker
    /// leads it.
    pub fn partition(&self, topic_id: &Uuid, index: i32) -> Result<Option<Rc<Partition>>, String> {
        if let Some(p) = self.partitions.borrow().get(&(*topic_id, index)) {
            return Ok(Some(p.clone()));
        }
        let mut image = self.image();
        if image.topic_by_id(topic_id).is_none() {
            // The request may have been routed with a newer image than this shard's.
            self.update_image(self.metadata.current());
            image = self.image();
        }
        let Some(topic) = image.topic_by_id(topic_id) else {
            return Ok(None);
        };
        if !self.leads(topic, index) {
            return Ok(None);
        }
        let p = self.open_partition(topic, index)?;
        self.partitions
            .borrow_mut()
            .insert((*topic_id, index), p.clone());
        Ok(Some(p))
    }

    fn open_partition(&self, topic: &TopicImage, index: i32) -> Result<Rc<Partition>, String> {
        let dir = self.partition_dir(&topic.name, index);
        let epoch = topic.partitions[index as usize].leader_epoch;
        Partition::open(
            dir,
            topic,
            index,
            self.log_config(topic),
            self.io.clone(),
            epoch,
        )
        .map_err(|e| format!("{}-{}: {e}", topic.name, index))
    }

    pub fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.log_dirs.join(format!("{topic}-{index}"))
    }

    /// The effective settings of a topic in `image`: topic overrides, then dynamic
    /// broker configs, then static ones, then Kafka's defaults (see `configs`).
    /// Resolved once per topic and image (Produce asks for every partition).
    pub fn topic_settings(&self, image: &ClusterImage, topic: &TopicImage) -> Rc<TopicSettings> {
        let mut cache = self.settings.borrow_mut();
        if cache.0 != image.applied_index {
            *cache = (image.applied_index, HashMap::new());
        }
        cache
            .1
            .entry(topic.id)
            .or_insert_with(|| {
                Rc::new(TopicSettings::resolve(
                    &topic.configs,
                    &self.config_layers(image),
                ))
            })
            .clone()
    }

    /// The broker-level config layers of `image` as seen by this node.
    pub fn config_layers<'a>(&'a self, image: &'a ClusterImage) -> Layers<'a> {
        Layers {
            dynamic_broker: image.broker_configs.get(&self.config.node_id.to_string()),
            dynamic_default: image.broker_configs.get(""),
            static_props: &self.config.properties,
        }
    }

    /// Storage settings for a topic, from its effective settings. Without
    /// `cleanup.policy=delete`, time and size retention do not apply.
    pub fn log_config(&self, topic: &TopicImage) -> LogConfig {
        let s = self.topic_settings(&self.image(), topic);
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

    /// Runs a cleaning round on every local partition whose topic is compacted.
    pub async fn clean_compacted_partitions(&self) {
        for p in self.all_partitions() {
            let image = self.image();
            let Some(topic) = image.topic_by_id(&p.topic_id) else {
                continue;
            };
            let settings = self.topic_settings(&image, topic);
            if !settings.cleanup_compact {
                continue;
            }
            let config = crate::partition::compaction::compaction_config(&settings);
            if let Err(e) = p.clean(&config).await {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "cleaning failed");
            }
        }
    }

    /// Takes one producer id, fetching a new block from the metadata log when needed.
    pub async fn next_producer_id(&self) -> Result<i64, String> {
        let (next, end) = self.producer_ids.get();
        if next < end {
            self.producer_ids.set((next + 1, end));
            return Ok(next);
        }
        let (applied, image) = self
            .metadata
            .propose(Command::AllocateProducerIds {
                count: PRODUCER_ID_BLOCK,
            })
            .await
            .map_err(|e| e.to_string())?;
        self.update_image(image);
        match applied {
            crate::metadata::Applied::ProducerIds { start, count } => {
                self.producer_ids.set((start + 1, start + count));
                Ok(start)
            }
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Counts a new connection; false if `max.connections` is reached.
    pub fn try_open_connection(&self) -> bool {
        use std::sync::atomic::Ordering;
        let n = self.connections.fetch_add(1, Ordering::Relaxed);
        if n >= self.config.max_connections {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn close_connection(&self) {
        self.connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Applies a new image: drops partitions of deleted topics (removing their data)
    /// and opens every partition this shard owns, so recovery runs before serving.
    fn reconcile(&self) {
        let image = self.image();
        let gone: Vec<_> = self
            .partitions
            .borrow()
            .keys()
            .filter(|(id, i)| {
                image
                    .topic_by_id(id)
                    .map(|t| *i as usize >= t.partitions.len())
                    .unwrap_or(true)
            })
            .copied()
            .collect();
        for key in gone {
            if let Some(p) = self.partitions.borrow_mut().remove(&key) {
                p.delete();
            }
        }
        for topic in image.topics.values() {
            let log_config = self.log_config(topic);
            for index in 0..topic.partitions.len() as i32 {
                if self.owner(&topic.id, index) == self.id && self.leads(topic, index) {
                    match self.partition(&topic.id, index) {
                        // Config changes take effect at once; a retention change is
                        // enforced at once too.
                        Ok(Some(p)) => {
                            if p.set_log_config(log_config.clone()) {
                                p.enforce_retention();
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::error!(error = %e, "cannot open partition"),
                    }
                }
            }
        }
    }

    fn all_partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions.borrow().values().cloned().collect()
    }
}

/// What each shard thread needs to start.
pub struct ShardStart {
    pub config: Arc<Config>,
    pub metadata: MetadataHandle,
    pub listener: std::net::TcpListener,
    pub shutdown: watch::Receiver<bool>,
}

/// Starts `n` shard threads, one per listener; returns their join handles.
pub fn start(starts: Vec<ShardStart>) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let n = starts.len();
    let mut senders = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::unbounded_channel::<Task>();
        senders.push(tx);
        receivers.push(rx);
    }
    let peers = Arc::new(senders);
    let connections = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::with_capacity(n);
    for (id, (start, rx)) in starts.into_iter().zip(receivers).enumerate() {
        let peers = peers.clone();
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let connections = connections.clone();
        let handle = std::thread::Builder::new()
            .name(format!("fjord-shard-{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(shard = id, error = %e, "cannot build runtime");
                        return;
                    }
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, run(id, start, peers, rx, connections));
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

async fn run(
    id: usize,
    start: ShardStart,
    peers: Arc<Vec<mpsc::UnboundedSender<Task>>>,
    mut rx: mpsc::UnboundedReceiver<Task>,
    connections: Arc<std::sync::atomic::AtomicI64>,
) {
    let io = match IoEngine::new(start.config.io_uring_entries) {
        Ok(io) => io,
        Err(e) => {
            tracing::error!(shard = id, error = %e, "cannot start the I/O engine");
            return;
        }
    };
    let mut image_rx = start.metadata.subscribe();
    let image = image_rx.borrow_and_update().clone();
    let shard = Rc::new(Shard {
        id,
        config: start.config.clone(),
        metadata: start.metadata.clone(),
        peers,
        image: RefCell::new(image),
        partitions: RefCell::new(HashMap::new()),
        io,
        producer_ids: Cell::new((0, 0)),
        connections,
        groups: crate::group::coordinator::Coordinator::new(
            start.config.group_initial_rebalance_delay_ms,
            crate::group::consumer::ConsumerLimits {
                session_timeout_ms: start.config.group_consumer_session_timeout_ms,
                heartbeat_interval_ms: start.config.group_consumer_heartbeat_interval_ms as i32,
                ..Default::default()
            },
        ),
        settings: RefCell::new((u64::MAX, HashMap::new())),
    });
    shard.reconcile();

    // Follow the control plane's images.
    let s = shard.clone();
    tokio::task::spawn_local(async move {
        while image_rx.changed().await.is_ok() {
            let image = image_rx.borrow_and_update().clone();
            s.update_image(image);
            s.reconcile();
        }
    });

    // Retention, on Kafka's schedule.
    let s = shard.clone();
    tokio::task::spawn_local(async move {
        let period = Duration::from_millis(s.config.log_retention_check_interval_ms as u64);
        loop {
            tokio::time::sleep(period).await;
            for p in s.all_partitions() {
                p.enforce_retention();
            }
        }
    });

    // The log cleaner: compacted partitions, one round at a time per shard.
    let s = shard.clone();
    tokio::task::spawn_local(async move {
        let period = Duration::from_millis(s.config.log_cleaner_backoff_ms as u64);
        loop {
            tokio::time::sleep(period).await;
            s.clean_compacted_partitions().await;
        }
    });

    // Offsets retention, on Kafka's schedule.
    let s = shard.clone();
    tokio::task::spawn_local(async move {
        let period = Duration::from_millis(s.config.offsets_retention_check_interval_ms as u64);
        loop {
            tokio::time::sleep(period).await;
            let retention_ms = s.config.offsets_retention_ms;
            crate::group::coordinator::Coordinator::expire_offsets(&s, retention_ms).await;
        }
    });

    tokio::task::spawn_local(crate::net::listener::accept_loop(
        shard.clone(),
        start.listener,
    ));

    let mut shutdown = start.shutdown;
    loop {
        tokio::select! {
            task = rx.recv() => match task {
                Some(task) => task(shard.clone()),
                None => break,
            },
            _ = shutdown.changed() => break,
        }
    }
    for p in shard.all_partitions() {
        if let Err(e) = p.flush().await {
            tracing::error!(error = %e, "flush at shutdown failed");
        }
    }
    tracing::debug!(shard = id, "shard stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_hash_is_stable_and_moves_little() {
        let keys: Vec<u64> = (0..10_000u64)
            .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let mut moved = 0;
        for &k in &keys {
            let a = jump_hash(k, 4);
            let b = jump_hash(k, 5);
            assert!(a < 4 && b < 5);
            assert_eq!(a, jump_hash(k, 4));
            if a != b {
                moved += 1;
                assert_eq!(b, 4, "keys only move to the new bucket");
            }
        }
        assert!(moved > 1500 && moved < 2500, "about 1/5 moves: {moved}");
        assert_eq!(jump_hash(42, 1), 0);
    }
}
