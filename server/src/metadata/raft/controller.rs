//! The controller: writes commands through Raft (forwarding them to the leader from
//! any other node), and keeps broker sessions: every broker heartbeats to the leader,
//! and the leader fences a broker whose session expires.
//!
//! Sessions live in the leader's memory only (as in KRaft): a new leader starts every
//! registered broker's session afresh, so a leader change never fences anyone by
//! itself. Registration and fencing are log entries (`RegisterBroker`,
//! `FenceBroker`), so every node's image agrees on who is live.
//!
//! Threads: one `Controller` per process, shared by the tasks of the control-plane
//! thread (proposals, the listener's connections, the heartbeat and fencing loops).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::sync::{mpsc, oneshot, watch};

use super::log_store::LogStore;
use super::network::{FetchStamps, Forwarded, Network, Peer, Reply, Request};
use super::state_machine::StateMachine;
use super::{now_ms, raft_config, Node, NodeId, Quorum, QuorumStatus, Raft, ReplicaStatus};
use crate::metadata::{Applied, BrokerInfo, ClusterImage, Command, CommandError};

/// A proposal gives up when no leader has accepted it for this long.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause before retrying a proposal while no leader is known.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// How often the leader looks for expired broker sessions.
const FENCE_CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// A forwarded call to the leader gives up after this long.
const FORWARD_TTL: Duration = Duration::from_secs(5);

pub type ProposeReply = oneshot::Sender<Result<(Applied, Arc<ClusterImage>), CommandError>>;
/// The answer to DescribeQuorum: None when no leader answered.
pub type QuorumReply = oneshot::Sender<Option<QuorumStatus>>;

/// The leader's view of broker sessions.
#[derive(Default)]
struct Sessions {
    /// The term these sessions were started in; a new term starts them afresh.
    term: Option<u64>,
    started: Option<Instant>,
    last_seen: HashMap<i32, Instant>,
}

pub struct Controller {
    pub raft: Raft,
    node_id: NodeId,
    image: watch::Receiver<Arc<ClusterImage>>,
    /// The connection used to forward writes to the leader.
    leader_peer: tokio::sync::Mutex<Option<Peer>>,
    /// Heartbeats' own connection to the leader, so that a forwarded write waiting on
    /// a slow or vanished leader never holds a heartbeat back past the session.
    heartbeat_peer: tokio::sync::Mutex<Option<Peer>>,
    /// DescribeQuorum's own connection to the leader.
    query_peer: tokio::sync::Mutex<Option<Peer>>,
    /// On the leader: when each follower last answered and last caught up.
    stamps: FetchStamps,
    sessions: Mutex<Sessions>,
    session_timeout: Duration,
    /// The Raft leader's node id, or -1; read by shards (DescribeCluster, Metadata).
    leader: Arc<AtomicI32>,
}

impl Controller {
    /// Opens the log and the state machine in `dir`, starts Raft, initializes the
    /// quorum on first start, and starts the listener and background loops.
    pub async fn start(
        dir: &Path,
        quorum: &Quorum,
        publish: watch::Sender<Arc<ClusterImage>>,
        listener: Option<std::net::TcpListener>,
        leader: Arc<AtomicI32>,
    ) -> io::Result<Arc<Controller>> {
        let image = publish.subscribe();
        let log = LogStore::open(dir)?;
        let sm = StateMachine::open(dir, publish)?;
        let config = raft_config().validate().map_err(io::Error::other)?;
        let stamps = FetchStamps::default();
        let network = Network {
            stamps: stamps.clone(),
        };
        let raft = Raft::new(quorum.node_id, Arc::new(config), network, log, sm)
            .await
            .map_err(io::Error::other)?;
        let controller = Arc::new(Controller {
            raft,
            node_id: quorum.node_id,
            image,
            leader_peer: tokio::sync::Mutex::new(None),
            heartbeat_peer: tokio::sync::Mutex::new(None),
            query_peer: tokio::sync::Mutex::new(None),
            stamps,
            sessions: Mutex::new(Sessions::default()),
            session_timeout: quorum.session_timeout,
            leader,
        });
        if let Some(l) = listener {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            tokio::spawn(super::server::serve(l, controller.clone()));
        }
        let initialized = controller
            .raft
            .is_initialized()
            .await
            .map_err(io::Error::other)?;
        if !initialized {
            // Every voter initializes with the same members; Raft accepts the first
            // and later ones are refused harmlessly.
            if let Err(e) = controller.raft.initialize(quorum.members()).await {
                tracing::info!(error = %e, "controller quorum already initialized");
            }
        }
        tokio::spawn(controller.clone().follow_leader());
        if let Some((every, percent)) = quorum.leader_rebalance {
            tokio::spawn(controller.clone().rebalance_loop(every, percent));
        }
        if let Some((every, max)) = quorum.ring_rebalance {
            tokio::spawn(controller.clone().ring_rebalance_loop(every, max));
        }
        tokio::spawn(controller.clone().fence_loop());
        let restart = (quorum.voters.len() > 1).then_some(if quorum.restarts_unclean {
            Command::UncleanShutdown {
                id: quorum.broker.id,
            }
        } else {
            Command::FenceBroker {
                id: quorum.broker.id,
            }
        });
        tokio::spawn(controller.clone().heartbeat_loop(
            quorum.broker.clone(),
            quorum.heartbeat_interval,
            restart,
            quorum.stopping.clone(),
        ));
        Ok(controller)
    }

    /// Serves proposals and DescribeQuorum queries from the shards until the handle
    /// is dropped.
    pub async fn run(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<(Command, ProposeReply)>,
        mut queries: mpsc::Receiver<QuorumReply>,
    ) {
        loop {
            tokio::select! {
                p = rx.recv() => {
                    let Some((cmd, reply)) = p else { return };
                    let c = self.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(c.propose(cmd).await);
                    });
                }
                Some(reply) = queries.recv() => {
                    let c = self.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(c.describe_quorum().await);
                    });
                }
            }
        }
    }

    /// DescribeQuorum from any node: the leader's [`QuorumStatus`], asked of the
    /// leader when this node does not lead. None when no leader answers.
    pub async fn describe_quorum(&self) -> Option<QuorumStatus> {
        match self.known_leader() {
            Some((id, _)) if id == self.node_id => self.quorum_status().await,
            Some((_, node)) => match self
                .call_leader(
                    &self.query_peer,
                    &node,
                    &Request::DescribeQuorum,
                    FORWARD_TTL,
                )
                .await
            {
                Ok(Reply::DescribeQuorum(s)) => s,
                _ => None,
            },
            None => None,
        }
    }

    /// On the leader: the quorum as it replicates to it; None on any other node.
    pub async fn quorum_status(&self) -> Option<QuorumStatus> {
        if !self.is_leader() {
            return None;
        }
        let committed = self.raft.with_raft_state(|st| st.committed).await.ok()?;
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return None;
        }
        let end = m.last_log_index.map_or(0, |i| i + 1);
        let matched = m.replication.clone().unwrap_or_default();
        let membership = m.membership_config.membership();
        let now = now_ms();
        let row = |id: NodeId| {
            let addr = membership
                .get_node(&id)
                .map_or_else(String::new, |n| n.addr.clone());
            if id == self.node_id {
                return ReplicaStatus {
                    id,
                    addr,
                    log_end: Some(end),
                    last_fetch_ms: Some(now),
                    last_caught_up_ms: Some(now),
                };
            }
            let log_end = matched.get(&id).copied().flatten().map(|l| l.index + 1);
            if log_end == Some(end) {
                self.stamps.caught_up(id);
            }
            let stamp = self.stamps.get(id);
            ReplicaStatus {
                id,
                addr,
                log_end,
                last_fetch_ms: stamp.last_fetch_ms,
                last_caught_up_ms: stamp.last_caught_up_ms,
            }
        };
        Some(QuorumStatus {
            leader: self.node_id,
            term: m.current_term,
            high_watermark: committed.map_or(0, |c| c.index + 1),
            voters: membership.voter_ids().map(row).collect(),
            observers: membership.learner_ids().map(row).collect(),
        })
    }

    /// Writes `cmd` through the leader (this node or another) and waits until this
    /// node has applied it; returns the result and the image that includes it.
    pub async fn propose(
        &self,
        cmd: Command,
    ) -> Result<(Applied, Arc<ClusterImage>), CommandError> {
        let deadline = Instant::now() + PROPOSE_TIMEOUT;
        loop {
            let outcome = match self.write_local(cmd.clone()).await {
                Forwarded::NotLeader {
                    leader: Some((id, node)),
                } if id != self.node_id => self
                    .forward(
                        &self.leader_peer,
                        &node,
                        &Request::Propose(cmd.clone()),
                        FORWARD_TTL,
                    )
                    .await
                    .unwrap_or(Forwarded::NotLeader { leader: None }),
                other => other,
            };
            match outcome {
                Forwarded::Done { index, result } => {
                    let image = self.wait_applied(index, deadline).await?;
                    return result.map(|a| (a, image));
                }
                Forwarded::Failed(m) => return Err(CommandError::Storage(m)),
                Forwarded::NotLeader { .. } => {}
            }
            if Instant::now() >= deadline {
                return Err(CommandError::Storage(format!(
                    "no controller leader accepted the write within {PROPOSE_TIMEOUT:?}"
                )));
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// Writes `cmd` if this node leads; otherwise says who does.
    pub async fn write_local(&self, cmd: Command) -> Forwarded {
        match self.raft.client_write(cmd).await {
            Ok(r) => Forwarded::Done {
                index: r.log_id.index,
                result: r.data,
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Forwarded::NotLeader {
                    leader: f.leader_id.zip(f.leader_node),
                }
            }
            Err(e) => Forwarded::Failed(e.to_string()),
        }
    }

    /// Sends a write to the leader at `node` (see [`Controller::call_leader`]).
    async fn forward(
        &self,
        peer: &tokio::sync::Mutex<Option<Peer>>,
        node: &Node,
        req: &Request,
        ttl: Duration,
    ) -> io::Result<Forwarded> {
        match self.call_leader(peer, node, req, ttl).await? {
            Reply::Propose(f) | Reply::Heartbeat(f) => Ok(f),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "reply of the wrong kind",
            )),
        }
    }

    /// Sends a request to the leader at `node` over `peer`'s connection (opened again
    /// when the leader moved), waiting at most `ttl` for the reply.
    async fn call_leader(
        &self,
        peer: &tokio::sync::Mutex<Option<Peer>>,
        node: &Node,
        req: &Request,
        ttl: Duration,
    ) -> io::Result<Reply> {
        let mut peer = peer.lock().await;
        if peer.as_ref().map(Peer::addr) != Some(node.addr.as_str()) {
            *peer = Some(Peer::new(0, &node.addr));
        }
        let Some(p) = peer.as_mut() else {
            return Err(io::Error::other("no leader connection"));
        };
        p.call(req, ttl).await.map_err(|e| e.into_io())
    }

    /// Waits until this node's image includes log index `index`.
    async fn wait_applied(
        &self,
        index: u64,
        deadline: Instant,
    ) -> Result<Arc<ClusterImage>, CommandError> {
        let mut rx = self.image.clone();
        let wait = rx.wait_for(|img| img.applied_index >= index);
        let out = match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(Ok(img)) => Ok(Arc::clone(&img)),
            Ok(Err(_)) => Err(CommandError::Storage("control plane stopped".into())),
            Err(_) => Err(CommandError::Storage(format!(
                "log index {index} was written but not applied here in time"
            ))),
        };
        out
    }

    /// The leader as this node knows it: (id, node), if any.
    fn known_leader(&self) -> Option<(NodeId, Node)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node))
    }

    fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
    }

    /// On the leader: a broker is alive. Registers it (unfencing it) when its
    /// address changed or it was fenced.
    pub async fn on_heartbeat(&self, broker: BrokerInfo) -> Forwarded {
        if !self.is_leader() {
            return Forwarded::NotLeader {
                leader: self.known_leader(),
            };
        }
        if let Ok(mut s) = self.sessions.lock() {
            s.last_seen.insert(broker.id, Instant::now());
        }
        let image = self.image.borrow().clone();
        if image.brokers.get(&broker.id) != Some(&broker) || image.fenced.contains(&broker.id) {
            return self.write_local(Command::RegisterBroker(broker)).await;
        }
        Forwarded::Done {
            index: image.applied_index,
            result: Ok(Applied::Done),
        }
    }

    /// Heartbeats this broker to the leader, forever. In a cluster it first writes
    /// `restart` (fencing the previous run of this broker, or announcing its unclean
    /// shutdown), so partitions it led move to another in-sync replica (or, where it
    /// is the only one, are led again in a new leader epoch): followers that copied
    /// more of the old run's log than it kept are told to truncate by the new epoch.
    /// A lone node has no followers and writes nothing.
    async fn heartbeat_loop(
        self: Arc<Self>,
        me: BrokerInfo,
        interval: Duration,
        restart: Option<Command>,
        stopping: Arc<std::sync::atomic::AtomicBool>,
    ) {
        // A heartbeat sent to a leader that has since stopped (paused, partitioned,
        // replaced) must give up quickly: waiting longer than an interval could let
        // the new leader's session for this broker run out while it waits.
        let heartbeat_ttl = interval.max(Duration::from_millis(100));
        if let Some(restart) = restart {
            loop {
                match self.propose(restart.clone()).await {
                    Ok(_) | Err(CommandError::Invalid(_)) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot fence this broker's previous run yet");
                        tokio::time::sleep(interval.min(Duration::from_millis(200))).await;
                    }
                }
            }
        }
        loop {
            if stopping.load(Ordering::Relaxed) {
                return;
            }
            let sent = match self.known_leader() {
                Some((id, _)) if id == self.node_id => Some(self.on_heartbeat(me.clone()).await),
                Some((_, node)) => self
                    .forward(
                        &self.heartbeat_peer,
                        &node,
                        &Request::Heartbeat(me.clone()),
                        heartbeat_ttl,
                    )
                    .await
                    .ok(),
                None => None,
            };
            // Until the first heartbeat lands, retry quickly so a new node shows up.
            let registered = self.image.borrow().is_live(me.id);
            let pause = match sent {
                Some(Forwarded::Done { .. }) if registered => interval,
                _ => interval.min(Duration::from_millis(200)),
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// On the leader: fences brokers whose session expired.
    async fn fence_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(FENCE_CHECK_INTERVAL).await;
            let term = self.raft.metrics().borrow().current_term;
            let leading = self.is_leader();
            let image = self.image.borrow().clone();
            let now = Instant::now();
            let expired: Vec<i32> = {
                let Ok(mut s) = self.sessions.lock() else {
                    continue;
                };
                if !leading {
                    *s = Sessions::default();
                    continue;
                }
                if s.term != Some(term) {
                    *s = Sessions {
                        term: Some(term),
                        started: Some(now),
                        last_seen: HashMap::new(),
                    };
                }
                let started = s.started.unwrap_or(now);
                image
                    .live_brokers()
                    .map(|b| b.id)
                    .filter(|id| {
                        let last = s.last_seen.get(id).copied().unwrap_or(started);
                        now.duration_since(last) > self.session_timeout
                    })
                    .collect()
            };
            for id in expired {
                tracing::warn!(broker = id, "broker session expired: fencing it");
                if let Forwarded::Failed(e) = self.write_local(Command::FenceBroker { id }).await {
                    tracing::error!(broker = id, error = %e, "cannot fence broker");
                }
            }
        }
    }

    /// On the leader: every `every`, reassigns up to `max` partitions whose replicas
    /// differ from the ring's placement over the registered brokers
    /// (`metadata::rebalance`). Followers of the moves catch up and the controller
    /// completes each one through the ISR, as for AlterPartitionReassignments.
    async fn ring_rebalance_loop(self: Arc<Self>, every: Duration, max: usize) {
        self.leader_rounds(every, "moving replicas to the ring's placement", |image| {
            let moves = crate::metadata::rebalance::ring_moves(image, max);
            (!moves.is_empty()).then(|| Command::AlterReassignments {
                partitions: moves
                    .into_iter()
                    .map(|(id, p, to)| (id, p, Some(to)))
                    .collect(),
            })
        })
        .await
    }

    /// On the leader: every `every`, moves leadership back to preferred replicas
    /// (Kafka's auto leader rebalance) for each broker whose preferred partitions are
    /// led elsewhere more than `percent` percent of the time.
    async fn rebalance_loop(self: Arc<Self>, every: Duration, percent: u32) {
        self.leader_rounds(
            every,
            "moving leaders back to preferred replicas",
            |image| {
                let partitions = imbalanced(image, percent);
                (!partitions.is_empty()).then_some(Command::ElectLeaders {
                    unclean: false,
                    partitions,
                })
            },
        )
        .await
    }

    /// Every `every`, while this node leads: writes the command `plan` makes of the
    /// image, if any. An image that planned nothing is not planned again until it
    /// changes.
    async fn leader_rounds(
        &self,
        every: Duration,
        what: &str,
        plan: impl Fn(&ClusterImage) -> Option<Command>,
    ) {
        let mut settled_at = None;
        loop {
            tokio::time::sleep(every).await;
            if !self.is_leader() {
                continue;
            }
            let image = self.image.borrow().clone();
            if settled_at == Some(image.applied_index) {
                continue;
            }
            let Some(cmd) = plan(&image) else {
                settled_at = Some(image.applied_index);
                continue;
            };
            tracing::info!("{what}");
            match self.write_local(cmd).await {
                Forwarded::Done {
                    result: Ok(Applied::Reassignments(o)),
                    ..
                } if o.iter().any(Result::is_err) => {
                    tracing::warn!(outcomes = ?o, "{what}: some refused");
                }
                Forwarded::Done { result: Err(e), .. } => {
                    tracing::warn!(error = %e, "{what}: refused")
                }
                Forwarded::Failed(e) => tracing::warn!(error = %e, "{what}: not written"),
                Forwarded::Done { .. } | Forwarded::NotLeader { .. } => {}
            }
        }
    }

    /// Mirrors the Raft leader's id into the shared atomic shards read; on the
    /// leader, stamps each follower whose replication reached the leader's log end
    /// (a new term starts the stamps afresh).
    async fn follow_leader(self: Arc<Self>) {
        let mut m = self.raft.metrics();
        let mut term = None;
        loop {
            let (leader, current_term, end, replication) = {
                let now = m.borrow_and_update();
                (
                    now.current_leader,
                    now.current_term,
                    now.last_log_index,
                    now.replication.clone(),
                )
            };
            self.leader.store(
                leader.map_or(-1, |l| l.min(i32::MAX as u64) as i32),
                Ordering::Relaxed,
            );
            if term != Some(current_term) {
                term = Some(current_term);
                self.stamps.clear();
            }
            for (id, matched) in replication.iter().flatten() {
                if *id != self.node_id && matched.map(|l| l.index) == end {
                    self.stamps.caught_up(*id);
                }
            }
            if m.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The partitions a preferred-leader election would move back, for each broker whose
/// share of preferred partitions led elsewhere exceeds `percent`: only those whose
/// preferred replica is live and in sync. Pure.
pub fn imbalanced(image: &ClusterImage, percent: u32) -> Vec<(uuid::Uuid, i32)> {
    let mut preferred: HashMap<i32, (usize, Vec<(uuid::Uuid, i32)>)> = HashMap::new();
    for t in image.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let Some(&first) = p.replicas.first() else {
                continue;
            };
            let entry = preferred.entry(first).or_default();
            entry.0 += 1;
            if p.leader != first && p.isr.contains(&first) && image.is_live(first) {
                entry.1.push((t.id, i as i32));
            }
        }
    }
    let mut out: Vec<(uuid::Uuid, i32)> = preferred
        .into_values()
        .filter(|(total, away)| away.len() * 100 > *total * percent as usize)
        .flat_map(|(_, away)| away)
        .collect();
    out.sort();
    out
}
