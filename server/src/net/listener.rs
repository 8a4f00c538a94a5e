//! Listener sockets. Every shard binds the same address with SO_REUSEPORT, so the
//! kernel spreads connections over shards and a connection lives on one shard.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

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

/// The node's open client connections, counted against `max.connections`. Shared by
/// every shard's accept loop (one atomic counter; touched once per connection).
#[derive(Clone)]
pub struct Connections {
    open: Arc<AtomicI64>,
    max: i64,
}

impl Connections {
    pub fn new(max: i64) -> Connections {
        Connections {
            open: Arc::new(AtomicI64::new(0)),
            max,
        }
    }

    /// Counts a new connection; false if `max.connections` is reached.
    fn try_open(&self) -> bool {
        let n = self.open.fetch_add(1, Ordering::Relaxed);
        if n >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn close(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
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
                if !connections.try_open() {
                    tracing::warn!(%peer, "max.connections reached; closing new connection");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let (shard, connections) = (shard.clone(), connections.clone());
                tokio::task::spawn_local(async move {
                    super::connection::serve(shard, stream, peer).await;
                    connections.close();
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
