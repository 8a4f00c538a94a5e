//! Controller RPC: the messages between controller nodes, their framing, and the
//! client side openraft uses to reach its peers.
//!
//! Frame: `[len: u32 BE][payload: bincode]`, written with one `write_all` of one
//! buffer on a TCP_NODELAY socket (a frame split over two writes costs a delayed-ACK
//! round through Nagle's algorithm, ~178 ms per commit when tried). A length over
//! [`FRAME_BYTES_MAX`] closes the connection. Each connection carries one request at
//! a time: request frame, then response frame.
//!
//! Threads: everything here runs on the control-plane thread's runtime.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{now_ms, Node, NodeId, QuorumStatus, Response, TypeConfig};
use crate::metadata::{BrokerInfo, Command};

/// Upper bound on one frame (a snapshot chunk is far smaller).
pub const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Connecting to a peer gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A request from one controller node to another.
#[derive(serde::Serialize, serde::Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A command proposed on another node, for the leader to write.
    Propose(Command),
    /// A broker's heartbeat to the active controller: it is alive, at this address.
    Heartbeat(BrokerInfo),
    /// DescribeQuorum forwarded to the leader.
    DescribeQuorum,
}

/// The answer to a [`Request`], same variant.
#[derive(serde::Serialize, serde::Deserialize)]
pub enum Reply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Propose(Forwarded),
    Heartbeat(Forwarded),
    /// None: the receiver is not the leader.
    DescribeQuorum(Option<QuorumStatus>),
}

/// The outcome of a write handed to the leader.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Forwarded {
    /// Written at log index `index`; `result` is what applying it produced.
    Done { index: u64, result: Response },
    /// The receiver is not the leader; `leader` is its best knowledge of who is.
    NotLeader { leader: Option<(NodeId, Node)> },
    /// Raft refused the write (shutting down, storage failure).
    Failed(String),
}

/// Writes one frame in one write.
pub async fn write_frame<T: Serialize>(stream: &mut TcpStream, msg: &T) -> io::Result<()> {
    let size = bincode::serialized_size(msg).map_err(io::Error::other)? as usize;
    if size > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {size} bytes exceeds {FRAME_BYTES_MAX}"),
        ));
    }
    let mut buf = Vec::with_capacity(4 + size);
    buf.extend_from_slice(&(size as u32).to_be_bytes());
    bincode::serialize_into(&mut buf, msg).map_err(io::Error::other)?;
    stream.write_all(&buf).await
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub async fn read_frame<T: DeserializeOwned>(stream: &mut TcpStream) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds {FRAME_BYTES_MAX}"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    bincode::deserialize(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// When each follower last answered the leader's AppendEntries (heartbeats
/// included), and when it last held the leader's whole log: DescribeQuorum's
/// `LastFetchTimestamp` / `LastCaughtUpTimestamp`, wall-clock ms. Written by the
/// leader's replication clients ([`Peer`]) and its metrics watcher; a new term
/// starts it empty.
#[derive(Clone, Default)]
pub struct FetchStamps(Arc<Mutex<HashMap<NodeId, Stamp>>>);

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stamp {
    pub last_fetch_ms: Option<i64>,
    pub last_caught_up_ms: Option<i64>,
}

impl FetchStamps {
    fn fetched(&self, id: NodeId) {
        if let Ok(mut m) = self.0.lock() {
            let s = m.entry(id).or_default();
            s.last_fetch_ms = Some(now_ms().max(s.last_fetch_ms.unwrap_or(i64::MIN)));
        }
    }

    /// `id` holds the leader's whole log as of its last exchange.
    pub fn caught_up(&self, id: NodeId) {
        if let Ok(mut m) = self.0.lock() {
            let s = m.entry(id).or_default();
            s.last_caught_up_ms = s.last_fetch_ms.or(Some(now_ms()));
        }
    }

    pub fn get(&self, id: NodeId) -> Stamp {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(&id).copied())
            .unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

/// One peer's connection, opened on first use and dropped after any error.
pub struct Peer {
    target: NodeId,
    addr: String,
    conn: Option<TcpStream>,
    /// Set on openraft's replication clients: stamps each successful AppendEntries.
    stamps: Option<FetchStamps>,
}

/// Why a call failed: the peer could not be reached at all, or the exchange broke.
pub enum CallError {
    Unreachable(io::Error),
    Network(io::Error),
}

impl CallError {
    pub fn into_io(self) -> io::Error {
        match self {
            CallError::Unreachable(e) | CallError::Network(e) => e,
        }
    }
}

impl Peer {
    pub fn new(target: NodeId, addr: &str) -> Peer {
        Peer {
            target,
            addr: addr.to_string(),
            conn: None,
            stamps: None,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` and waits for its reply, within `ttl`.
    pub async fn call(&mut self, req: &Request, ttl: Duration) -> Result<Reply, CallError> {
        if self.conn.is_none() {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr))
                .await
                .map_err(|_| {
                    CallError::Unreachable(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connecting to {}", self.addr),
                    ))
                })?
                .map_err(CallError::Unreachable)?;
            stream.set_nodelay(true).map_err(CallError::Unreachable)?;
            self.conn = Some(stream);
        }
        let Some(stream) = self.conn.as_mut() else {
            return Err(CallError::Unreachable(io::Error::other("no connection")));
        };
        let exchange = async {
            write_frame(stream, req).await?;
            read_frame::<Reply>(stream)
                .await?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed"))
        };
        match tokio::time::timeout(ttl, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.conn = None;
                Err(CallError::Network(e))
            }
            Err(_) => {
                self.conn = None;
                Err(CallError::Network(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no reply from node {} within {ttl:?}", self.target),
                )))
            }
        }
    }

    async fn raft_call<E: std::error::Error>(
        &mut self,
        req: Request,
        option: &RPCOption,
    ) -> Result<Reply, RPCError<NodeId, Node, E>> {
        self.call(&req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
            })
    }
}

fn mismatch<E: std::error::Error>() -> RPCError<NodeId, Node, E> {
    RPCError::Network(NetworkError::new(&io::Error::new(
        io::ErrorKind::InvalidData,
        "reply of the wrong kind",
    )))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        match self.raft_call(Request::AppendEntries(rpc), &option).await? {
            Reply::AppendEntries(r) => {
                if let (Ok(AppendEntriesResponse::Success), Some(s)) = (&r, &self.stamps) {
                    s.fetched(self.target);
                }
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatch()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .raft_call(Request::InstallSnapshot(rpc), &option)
            .await?
        {
            Reply::InstallSnapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatch()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        match self.raft_call(Request::Vote(rpc), &option).await? {
            Reply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatch()),
        }
    }
}

/// Makes a [`Peer`] per replication target; openraft owns it on the control plane.
pub struct Network {
    pub stamps: FetchStamps,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Peer {
        let mut peer = Peer::new(target, &node.addr);
        peer.stamps = Some(self.stamps.clone());
        peer
    }
}
