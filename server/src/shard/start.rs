//! Starting shards: one pinned thread per core, its services built on that thread, the
//! loops that keep them current, and the caller's listener served there.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use fjord_storage::IoEngine;
use tokio::sync::{mpsc, watch};

use super::{Shard, Task, TASKS_QUEUED_MAX};
use crate::config::Config;
use crate::group::consumer::ConsumerLimits;
use crate::group::coordinator::Coordinator;
use crate::metadata::producer_ids::ProducerIds;
use crate::metadata::view::ClusterView;
use crate::metadata::MetadataHandle;
use crate::partition::registry::PartitionRegistry;
use crate::replica::ReplicaManager;
use crate::wire::records::KafkaRecords;

/// Serves a listener on a shard (the accept loop); given by `main`, so nothing below
/// `net/` needs to know about sockets.
pub type Serve = Arc<
    dyn Fn(Rc<Shard>, std::net::TcpListener) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync,
>;

/// Runs a shard's follower fetchers (their connections to leaders); given by `main`
/// like [`Serve`].
pub type Replicate = Arc<dyn Fn(Rc<Shard>) -> Pin<Box<dyn Future<Output = ()>>> + Send + Sync>;

/// What each shard thread needs to start.
pub struct ShardStart {
    pub config: Arc<Config>,
    pub metadata: MetadataHandle,
    pub listener: std::net::TcpListener,
    pub serve: Serve,
    pub replicate: Replicate,
    pub shutdown: watch::Receiver<bool>,
}

/// Starts one shard thread per `starts` entry; returns their join handles.
pub fn start(starts: Vec<ShardStart>) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let n = starts.len();
    let mut senders = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel::<Task>(TASKS_QUEUED_MAX);
        senders.push(tx);
        receivers.push(rx);
    }
    let peers = Arc::new(senders);
    let opens =
        Arc::new(tokio::sync::Semaphore::new(starts.first().map_or(1, |s| {
            s.config.num_recovery_threads_per_data_dir.max(1)
        })));
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::with_capacity(n);
    for (id, (start, rx)) in starts.into_iter().zip(receivers).enumerate() {
        let (peers, opens) = (peers.clone(), opens.clone());
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
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
                local.block_on(&rt, run(id, start, peers, rx, opens));
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Builds the shard's services, starts their loops, serves the listener and runs the
/// tasks other shards send until shutdown; then makes every partition durable.
async fn run(
    id: usize,
    start: ShardStart,
    peers: Arc<Vec<mpsc::Sender<Task>>>,
    mut rx: mpsc::Receiver<Task>,
    opens: Arc<tokio::sync::Semaphore>,
) {
    let io = match IoEngine::new(start.config.io_uring_entries) {
        Ok(io) => io,
        Err(e) => {
            tracing::error!(shard = id, error = %e, "cannot start the I/O engine");
            return;
        }
    };
    let config = start.config.clone();
    let mut image_rx = start.metadata.subscribe();
    image_rx.borrow_and_update();
    let cluster = ClusterView::new(config.clone(), start.metadata.clone());
    let partitions = PartitionRegistry::new(
        id,
        peers.len(),
        config.clone(),
        cluster.clone(),
        io,
        Arc::new(KafkaRecords),
        opens,
    );
    let groups = Coordinator::new(
        partitions.clone(),
        config.group_initial_rebalance_delay_ms,
        ConsumerLimits {
            session_timeout_ms: config.group_consumer_session_timeout_ms,
            heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms as i32,
            ..Default::default()
        },
    );
    let replicas = ReplicaManager::new(config.clone(), partitions.clone(), peers.len());
    let fetch_sessions = super::fetch_sessions::FetchSessions::new(
        config.fetch_session_cache_slots,
        id,
        peers.len(),
        config.max_partitions_per_request,
    );
    let shard = Rc::new(Shard {
        id,
        config: config.clone(),
        metadata: start.metadata.clone(),
        peers,
        producer_ids: ProducerIds::new(cluster.clone()),
        fetch_sessions: std::cell::RefCell::new(fetch_sessions),
        quotas: std::cell::RefCell::new(crate::quota::Sensors::new(crate::quota::Window::new(
            config.quota_window_num,
            config.quota_window_size_seconds,
        ))),
        cluster: cluster.clone(),
        partitions: partitions.clone(),
        groups: groups.clone(),
        replicas: replicas.clone(),
    });
    partitions.reconcile();
    partitions.spawn_maintenance();
    replicas.spawn_isr_checks();
    tokio::task::spawn_local((start.replicate)(shard.clone()));
    groups.spawn_expiry(
        config.offsets_retention_check_interval_ms,
        config.offsets_retention_ms,
    );

    // Follow the control plane's images.
    let (view, registry) = (cluster.clone(), partitions.clone());
    tokio::task::spawn_local(async move {
        while image_rx.changed().await.is_ok() {
            let image = image_rx.borrow_and_update().clone();
            view.update_image(image);
            registry.reconcile();
        }
    });

    tokio::task::spawn_local((start.serve)(shard.clone(), start.listener));

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
    partitions.flush_all().await;
    tracing::debug!(shard = id, "shard stopped");
}
