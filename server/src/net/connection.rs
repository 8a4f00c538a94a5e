//! One client connection, on the shard that accepted it.
//!
//! Invariants: requests are decoded in arrival order and may run concurrently (at most
//! `fjord.max.inflight.requests.per.connection` at once); responses are written in
//! request order, as Kafka requires. A frame that cannot be decoded closes the
//! connection after the responses before it are written.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api;
use crate::shard::Shard;
use crate::wire::{self, frame::missing_bytes, Decoded};

/// The buffer grows by at most this much per read: a frame up to this size is read
/// into space reserved once (no regrowth copies); a larger one grows in steps, so a
/// client declaring a huge frame gets memory only as its bytes arrive. The buffer
/// never grows past the current frame's declared size (itself bounded by
/// socket.request.max.bytes).
const READ_CHUNK_BYTES: usize = 1024 * 1024;

/// Serves one connection until the client closes it or sends an invalid frame.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = stream.into_split();
    let inflight = shard.config.max_inflight_requests_per_connection;
    let (tx, mut rx) = mpsc::channel::<JoinHandle<api::Reply>>(inflight);

    let writer = tokio::task::spawn_local(async move {
        while let Some(handle) = rx.recv().await {
            let Ok(response) = handle.await else {
                // A handler panicked: the response order is lost, close the connection.
                return;
            };
            match response {
                api::Reply::Send(bytes) => {
                    metrics::counter!("fjord_bytes_out_total").increment(bytes.len() as u64);
                    if wr.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                api::Reply::Nothing => {}
                api::Reply::Close => break,
            }
        }
        let _ = wr.shutdown().await;
    });

    let max = shard.config.socket_request_max_bytes as usize;
    let mut buf = BytesMut::with_capacity(8 * 1024);
    'conn: loop {
        // Read until one whole frame is buffered.
        loop {
            match missing_bytes(&buf, max) {
                Ok(0) => break,
                Ok(n) => {
                    buf.reserve(n.min(READ_CHUNK_BYTES));
                    match rd.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => break 'conn,
                        Ok(_) => {}
                    }
                }
                Err(e) => {
                    tracing::info!(%peer, error = %e, "closing connection: invalid frame");
                    break 'conn;
                }
            }
        }
        let frame = match wire::split_frame(&mut buf, max) {
            Ok(Some(f)) => f.freeze(),
            _ => break,
        };
        metrics::counter!("fjord_bytes_in_total").increment(frame.len() as u64 + 4);
        let decoded = match wire::decode_request(frame, api::accepted_versions) {
            Ok(d) => d,
            Err(e) => {
                metrics::counter!("fjord_requests_rejected_total").increment(1);
                tracing::info!(%peer, error = %e, "closing connection: undecodable request");
                break;
            }
        };
        let shard = shard.clone();
        let handle = tokio::task::spawn_local(async move {
            match decoded {
                Decoded::Request(req) => {
                    api::CLIENT_ADDR.scope(peer, api::handle(shard, *req)).await
                }
                Decoded::ApiVersionsUnsupported { correlation_id } => {
                    api::api_versions::unsupported_version_response(correlation_id)
                }
            }
        });
        if tx.send(handle).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
