//! Metadata: commands, the pure state machine over [`ClusterImage`], and the
//! control-plane thread that orders, persists and publishes them.
//!
//! Threads: the control plane runs on its own thread with a small tokio runtime: an
//! openraft node (see `raft`) whose state machine applies commands to the image.
//! Shards propose commands through a [`MetadataHandle`] (mpsc + oneshot reply;
//! DescribeQuorum queries the same way) and receive every new image through a
//! `watch` channel.

pub mod client_quotas;
pub mod command;
pub mod image;
pub mod image_format;
pub mod partition_change;
pub mod producer_ids;
pub mod raft;
pub mod reassignment;
pub mod rebalance;
pub mod topics;
pub mod view;

use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

pub use command::{Command, CommandError, ConfigResource};
pub use image::{Applied, BrokerInfo, ClusterImage, PartitionImage, TopicImage};
pub use raft::{Quorum, QuorumStatus, ReplicaStatus};

/// Proposals queued for the control plane at most; a proposer waits for room
/// (back-pressure), so a burst of metadata writes cannot grow memory without bound.
pub const PROPOSALS_QUEUED_MAX: usize = 1024;

type Reply = oneshot::Sender<Result<(Applied, Arc<ClusterImage>), CommandError>>;

/// A cheap, `Send` handle to the control plane. Cloned into every shard.
#[derive(Clone)]
pub struct MetadataHandle {
    tx: mpsc::Sender<(Command, Reply)>,
    queries: mpsc::Sender<raft::controller::QuorumReply>,
    image: watch::Receiver<Arc<ClusterImage>>,
    leader: Arc<AtomicI32>,
    /// Shared with the controller's heartbeat loop (see [`MetadataHandle::shut_down`]).
    stopping: Arc<std::sync::atomic::AtomicBool>,
    broker: i32,
    cluster: bool,
}

impl MetadataHandle {
    /// Proposes a command; resolves once it is committed by the controller quorum
    /// (forwarded to the Raft leader when this node is not it) and applied here, with
    /// the image that includes it.
    pub async fn propose(
        &self,
        cmd: Command,
    ) -> Result<(Applied, Arc<ClusterImage>), CommandError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((cmd, tx))
            .await
            .map_err(|_| CommandError::Storage("control plane stopped".into()))?;
        rx.await
            .map_err(|_| CommandError::Storage("control plane stopped".into()))?
    }

    /// The Raft quorum as its leader reports it (DescribeQuorum), asked of the leader
    /// from any node; None when no leader answers.
    pub async fn describe_quorum(&self) -> Option<QuorumStatus> {
        let (tx, rx) = oneshot::channel();
        self.queries.send(tx).await.ok()?;
        rx.await.ok().flatten()
    }

    /// A receiver of every published image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.image.clone()
    }

    /// The latest published image.
    pub fn current(&self) -> Arc<ClusterImage> {
        self.image.borrow().clone()
    }

    /// Controlled shutdown (in a cluster): this broker stops heartbeating and fences
    /// itself, so every partition it leads moves to another in-sync replica before
    /// it stops serving, and it leaves every ISR. Waits at most `limit`.
    pub async fn shut_down(&self, limit: std::time::Duration) {
        if !self.cluster {
            return;
        }
        self.stopping.store(true, Ordering::Relaxed);
        let fence = self.propose(Command::FenceBroker { id: self.broker });
        match tokio::time::timeout(limit, fence).await {
            Ok(Ok(_)) => tracing::info!("leaderships moved to other replicas"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "controlled shutdown: cannot fence this broker")
            }
            Err(_) => tracing::warn!("controlled shutdown: no controller answered in time"),
        }
    }

    /// The node id of the Raft leader (the active controller), if one is known.
    pub fn controller_id(&self) -> Option<i32> {
        Some(self.leader.load(Ordering::Relaxed)).filter(|&id| id >= 0)
    }
}

/// Opens the Raft log and state machine under `dir` (`<log.dirs>/__cluster_metadata`),
/// starts the control-plane thread, and returns once committed entries are applied.
/// A quorum without voters is this node alone: the same code path with one voter.
pub fn start(dir: &Path, quorum: Quorum) -> std::io::Result<MetadataHandle> {
    let stopping = quorum.stopping.clone();
    let broker = quorum.broker.id;
    let cluster = quorum.voters.len() > 1;
    let listener = match quorum.listen_addr() {
        Some(addr) => Some(std::net::TcpListener::bind(addr).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("binding the controller listener {addr}: {e}"),
            )
        })?),
        None => None,
    };
    let (image_tx, image_rx) = watch::channel(Arc::new(ClusterImage::default()));
    let (tx, rx) = mpsc::channel::<(Command, Reply)>(PROPOSALS_QUEUED_MAX);
    let (queries, queries_rx) = mpsc::channel(PROPOSALS_QUEUED_MAX);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    let leader = Arc::new(AtomicI32::new(-1));
    let dir = dir.to_path_buf();
    let thread_leader = leader.clone();
    std::thread::Builder::new()
        .name("fjord-control".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let started = raft::controller::Controller::start(
                    &dir,
                    &quorum,
                    image_tx,
                    listener,
                    thread_leader,
                )
                .await;
                match started {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c.run(rx, queries_rx).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
    ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("control plane exited during start-up"))??;
    let image = image_rx.borrow().clone();
    tracing::info!(
        applied_index = image.applied_index,
        topics = image.topics.len(),
        "metadata replayed"
    );
    Ok(MetadataHandle {
        tx,
        queries,
        image: image_rx,
        stopping,
        broker,
        cluster,
        leader,
    })
}
