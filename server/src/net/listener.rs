//! Listener sockets. Every shard binds the same address with SO_REUSEPORT, so the
//! kernel spreads connections over shards and a connection lives on one shard.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use socket2::{Domain, Protocol, Socket, Type};

use crate::shard::Shard;

/// Binds one non-blocking listening socket with SO_REUSEPORT (called once per shard,
/// on the main thread, so a bind error stops start-up). `send_buffer` and
/// `receive_buffer` (`socket.send.buffer.bytes`, `socket.receive.buffer.bytes`; -1 keeps
/// the kernel's default) are set on the listening socket, which every accepted
/// connection inherits them from (Linux); the receive buffer so before `listen`, as
/// the TCP window scale is fixed at the handshake.
pub fn bind_reuseport(
    addr: SocketAddr,
    send_buffer: i32,
    receive_buffer: i32,
) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if send_buffer >= 0 {
        socket.set_send_buffer_size(send_buffer as usize)?;
    }
    if receive_buffer >= 0 {
        socket.set_recv_buffer_size(receive_buffer as usize)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Fails with "address in use" when another socket listens on `addr`. SO_REUSEPORT
/// would let the shards share a port another process listens on; Kafka refuses to
/// start then, and so does Fjord. Binds without listening (SO_REUSEADDR, as every
/// listener, so connections of an earlier run in TIME_WAIT do not count), so no client
/// can connect to this probe and then lose the connection when it closes.
pub fn ensure_port_free(addr: SocketAddr) -> std::io::Result<()> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())
}

/// The node's open client connections, counted against `max.connections` and
/// `max.connections.per.ip` (with its overrides). Shared by every shard's accept loop:
/// one atomic counter, and a map of counts per address only when a per-address limit
/// is set; each is touched once when a connection opens and once when it closes.
#[derive(Clone)]
pub struct Connections {
    open: Arc<AtomicI64>,
    max: i64,
    per_ip: Option<Arc<PerIp>>,
}

/// Limits and counts per address.
struct PerIp {
    default: i64,
    overrides: HashMap<IpAddr, i64>,
    open: Mutex<HashMap<IpAddr, i64>>,
}

/// Why a connection was refused.
#[derive(Debug, PartialEq)]
enum Refused {
    Total,
    PerIp(i64),
}

impl Connections {
    pub fn new(config: &crate::config::Config) -> Connections {
        let overrides: HashMap<IpAddr, i64> = config
            .max_connections_per_ip_overrides
            .iter()
            .copied()
            .collect();
        let limited = config.max_connections_per_ip < i32::MAX as i64 || !overrides.is_empty();
        Connections {
            open: Arc::new(AtomicI64::new(0)),
            max: config.max_connections,
            per_ip: limited.then(|| {
                Arc::new(PerIp {
                    default: config.max_connections_per_ip,
                    overrides,
                    open: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// Counts a new connection from `ip`, or says which limit it would pass.
    fn try_open(&self, ip: IpAddr) -> Result<(), Refused> {
        let n = self.open.fetch_add(1, Ordering::Relaxed);
        if n >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::Total);
        }
        if let Some(p) = &self.per_ip {
            let limit = p.overrides.get(&ip).copied().unwrap_or(p.default);
            let mut open = p.open.lock().unwrap_or_else(|e| e.into_inner());
            let count = open.entry(ip).or_insert(0);
            if *count >= limit {
                if *count == 0 {
                    open.remove(&ip);
                }
                drop(open);
                self.open.fetch_sub(1, Ordering::Relaxed);
                return Err(Refused::PerIp(limit));
            }
            *count += 1;
        }
        Ok(())
    }

    fn close(&self, ip: IpAddr) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(p) = &self.per_ip {
            let mut open = p.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = open.get_mut(&ip) {
                *count -= 1;
                if *count <= 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

/// Accepts connections on this shard until the listener fails or the shard stops.
/// Runs on the shard's thread.
pub async fn accept_loop(
    shard: Rc<Shard>,
    listener: std::net::TcpListener,
    connections: Connections,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(shard = shard.id, error = %e, "cannot register listener");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                match connections.try_open(peer.ip()) {
                    Ok(()) => {}
                    Err(Refused::Total) => {
                        tracing::warn!(%peer, "max.connections reached; closing new connection");
                        continue;
                    }
                    Err(Refused::PerIp(limit)) => {
                        metrics::counter!("fjord_connections_refused_per_ip_total").increment(1);
                        tracing::info!(%peer, limit, "too many connections from this address \
                            (max.connections.per.ip); closing new connection");
                        continue;
                    }
                }
                let _ = stream.set_nodelay(true);
                let (shard, connections) = (shard.clone(), connections.clone());
                tokio::task::spawn_local(async move {
                    super::connection::serve(shard, stream, peer).await;
                    connections.close(peer.ip());
                });
            }
            Err(e) => {
                // Out of file descriptors and similar: back off briefly, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The socket address for the client listener.
pub fn client_addr(
    config: &crate::config::Config,
) -> Result<SocketAddr, crate::config::ConfigError> {
    config.client_listener().bind_addr()
}
