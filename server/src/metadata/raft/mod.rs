//! The control plane on openraft: the Raft type configuration, the quorum as
//! configured, and start-up of the controller on its own thread.
//!
//! Layout: `log_store` (entries, vote, committed id in one file), `state_machine`
//! (the `ClusterImage` and its snapshots), `network` (frames, messages, the client
//! openraft uses), `server` (the controller listener), `controller` (proposals,
//! forwarding to the leader, broker sessions).
//!
//! Threads: everything here runs on the `fjord-control` thread, in a current-thread
//! tokio runtime of its own. Shards talk to it only through `MetadataHandle`.

pub mod controller;
pub mod log_store;
pub mod network;
pub mod server;
pub mod state_machine;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Duration;

use crate::metadata::{Applied, BrokerInfo, Command, CommandError};

/// A controller node's id: Kafka's `node.id`.
pub type NodeId = u64;
/// A controller node as Raft knows it: its controller listener address.
pub type Node = openraft::BasicNode;
/// What applying one entry produced.
pub type Response = Result<Applied, CommandError>;

openraft::declare_raft_types!(
    /// Fjord's Raft: commands in, apply results out, snapshots as bytes.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type Raft = openraft::Raft<TypeConfig>;

/// The quorum and this node's part in it, from the KRaft-style configuration.
#[derive(Clone, Debug)]
pub struct Quorum {
    pub node_id: NodeId,
    /// Voter id → `host:port` of its controller listener. Empty: this node alone,
    /// a one-voter quorum (the same code path, no network traffic).
    pub voters: BTreeMap<NodeId, String>,
    /// Where this node's controller listener binds (the CONTROLLER listener); None:
    /// its address in `voters`, or no listener for a lone node.
    pub listen: Option<String>,
    /// This broker as clients should see it; it registers and heartbeats with it.
    pub broker: BrokerInfo,
    /// A broker that has not heartbeaten for this long is fenced
    /// (`broker.session.timeout.ms`).
    pub session_timeout: Duration,
    /// How often this broker heartbeats (`broker.heartbeat.interval.ms`).
    pub heartbeat_interval: Duration,
    /// Set when this broker shuts down: it stops heartbeating (so it is not registered
    /// again after it fenced itself).
    pub stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// This broker may lose bytes it counted towards high watermarks in a crash
    /// (`fjord.replication.durable.high.watermark=false`): each start is announced as
    /// an unclean shutdown (`Command::UncleanShutdown`), so it is no eligible leader
    /// replica until it is in sync again. False: each start fences the previous run.
    pub restarts_unclean: bool,
    /// `auto.leader.rebalance.enable`: how often the leader looks for partitions led
    /// away from their preferred replica, and the per-broker share (percent) above
    /// which it moves them back. None: never.
    pub leader_rebalance: Option<(Duration, u32)>,
    /// `fjord.auto.rebalance.enable`: how often the leader compares the replicas with
    /// the ring's placement, and the most partitions it reassigns per round. None: never.
    pub ring_rebalance: Option<(Duration, usize)>,
}

impl Quorum {
    /// The voters as Raft members; a lone node is its own only voter.
    pub fn members(&self) -> BTreeMap<NodeId, Node> {
        if self.voters.is_empty() {
            return [(self.node_id, Node::new(""))].into();
        }
        self.voters
            .iter()
            .map(|(id, addr)| (*id, Node::new(addr)))
            .collect()
    }

    /// Where this node's controller listener binds, if it has one.
    pub fn listen_addr(&self) -> Option<&str> {
        self.listen
            .as_deref()
            .or_else(|| self.voters.get(&self.node_id).map(String::as_str))
    }
}

/// openraft's timing. Elections within about a second of a leader's death keep a
/// metadata write (create topic) available again within a few seconds.
pub fn raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "fjord".into(),
        heartbeat_interval: 150,
        election_timeout_min: 600,
        election_timeout_max: 1200,
        install_snapshot_timeout: 2000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(5000),
        max_in_snapshot_log_to_keep: 1000,
        ..Default::default()
    }
}

/// The Raft quorum as its leader sees it, for DescribeQuorum: made by the leader
/// only (`Controller::quorum_status`), forwarded to other nodes as is.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuorumStatus {
    pub leader: NodeId,
    /// The Raft term: Kafka's leader epoch of `__cluster_metadata`.
    pub term: u64,
    /// One past the last committed log index (Kafka's exclusive high watermark); 0
    /// when nothing is committed yet.
    pub high_watermark: u64,
    /// Every voter, the leader among them, in id order.
    pub voters: Vec<ReplicaStatus>,
    /// Non-voting members (learners), in id order.
    pub observers: Vec<ReplicaStatus>,
}

/// One member's replication state, in Kafka's DescribeQuorum terms.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaStatus {
    pub id: NodeId,
    /// The member's controller listener, `host:port` ("" for a lone node).
    pub addr: String,
    /// One past its last log index known to match the leader's; None: unknown.
    pub log_end: Option<u64>,
    /// Wall-clock ms of its last successful AppendEntries exchange with the leader
    /// (now, for the leader itself); None: none in this term.
    pub last_fetch_ms: Option<i64>,
    /// Wall-clock ms when it was last known to hold the leader's whole log.
    pub last_caught_up_ms: Option<i64>,
}

/// Milliseconds since the Unix epoch, as Kafka's wall-clock timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The committed image as stored in `dir`, read without taking part in Raft: the
/// snapshot plus the committed entries after it. For offline tools (`fjord plan`).
pub fn read_image(dir: &std::path::Path) -> std::io::Result<crate::metadata::ClusterImage> {
    let (mut image, last) = state_machine::snapshot_image(dir)?;
    let (entries, committed) = log_store::read_committed_entries(dir)?;
    let after = last.map_or(0, |l| l.index + 1);
    let upto = committed.map_or(0, |c| c.index);
    for e in entries {
        let index = e.log_id.index;
        if index < after || index > upto {
            continue;
        }
        if let openraft::EntryPayload::Normal(cmd) = &e.payload {
            // A refused command leaves the image unchanged, as it did when applied.
            let _ = image.apply(index, cmd);
        }
        image.applied_index = index;
    }
    Ok(image)
}

#[cfg(test)]
mod tests;
