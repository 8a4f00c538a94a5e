//! One client connection, on the shard that accepted it.
//!
//! Invariants: requests are decoded in arrival order and may run concurrently (at most
//! `fjord.max.inflight.requests.per.connection` at once); responses are written in
//! request order, as Kafka requires. A frame that cannot be decoded closes the
//! connection after the responses before it are written. A client over a quota has
//! its connection muted for the throttle time: no request read after that response
//! is started before the time is up (requests already running finish). A connection
//! with no request for `connections.max.idle.ms` is closed.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api;
use crate::shard::Shard;
use crate::wire::{self, frame::missing_bytes, Decoded};

/// Reads into the shared buffer take at most this much beyond the current frame's
/// missing bytes, so that a batch of small pipelined requests costs one read, while a
/// large frame is not pulled in whole behind them.
const SMALL_READ_BYTES: usize = 16 * 1024;

/// A frame larger than `SMALL_READ_BYTES` and at most this size is read into an
/// allocation of its own, reserved at once: no regrowth copies, and Produce can then
/// take its records out of the frame without copying them (see `api::produce`).
/// Larger frames grow the shared buffer by this much per read, so a client declaring
/// a huge frame gets memory only as its bytes arrive; no buffer grows past the current
/// frame's declared size (itself bounded by socket.request.max.bytes).
const OWN_FRAME_BYTES_MAX: usize = 2 * 1024 * 1024;

/// The next whole frame (without its size prefix), None at end of stream or on an
/// invalid frame (the connection closes).
async fn next_frame(
    rd: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max: usize,
    peer: SocketAddr,
) -> Option<BytesMut> {
    loop {
        let missing = match missing_bytes(buf, max) {
            Ok(0) => return wire::split_frame(buf, max).ok().flatten(),
            Ok(n) => n,
            Err(e) => {
                tracing::info!(%peer, error = %e, "closing connection: invalid frame");
                return None;
            }
        };
        let size = buf.len() + missing - 4;
        if buf.len() >= 4 && size > SMALL_READ_BYTES && size <= OWN_FRAME_BYTES_MAX {
            // Only this frame's beginning is buffered (reads never go further).
            let mut frame = BytesMut::with_capacity(size);
            frame.extend_from_slice(&buf[4..]);
            buf.clear();
            while frame.len() < size {
                let want = size - frame.len();
                match rd.read_buf(&mut (&mut frame).limit(want)).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
            return Some(frame);
        }
        let step = missing.clamp(SMALL_READ_BYTES, OWN_FRAME_BYTES_MAX);
        buf.reserve(step);
        match rd.read_buf(&mut (&mut *buf).limit(step)).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The most pieces handed to one `writev`.
const IOVECS_MAX: usize = 64;

/// Writes `pieces` in order, as few vectored writes as the socket allows.
async fn write_pieces(wr: &mut OwnedWriteHalf, mut pieces: Vec<Bytes>) -> std::io::Result<()> {
    if let [one] = pieces.as_slice() {
        return wr.write_all(one).await;
    }
    let mut first = 0;
    while first < pieces.len() {
        let mut written = {
            let slices: Vec<IoSlice<'_>> = pieces[first..]
                .iter()
                .take(IOVECS_MAX)
                .map(|p| IoSlice::new(p))
                .collect();
            wr.write_vectored(&slices).await?
        };
        if written == 0 && pieces[first..].iter().any(|p| !p.is_empty()) {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while first < pieces.len() && written >= pieces[first].len() {
            written -= pieces[first].len();
            first += 1;
        }
        if written > 0 {
            pieces[first].advance(written);
        }
    }
    Ok(())
}

/// Waits until the client sends more; false once it has sent nothing for `idle`
/// since the connection's last activity (a request read or answered) while no request
/// of it runs (`connections.max.idle.ms`). Only called between frames, so giving up
/// loses no bytes.
async fn request_within(rd: &OwnedReadHalf, idle: Duration, state: &Activity) -> bool {
    loop {
        let left = idle.saturating_sub(state.last.get().elapsed());
        let wait = left.max(Duration::from_millis(1));
        if tokio::time::timeout(wait, rd.readable()).await.is_ok() {
            return true;
        }
        if state.pending.get() == 0 && state.last.get().elapsed() >= idle {
            return false;
        }
        if state.pending.get() > 0 {
            state.last.set(std::time::Instant::now());
        }
    }
}

/// What the reader and writer of one connection share about its activity.
struct Activity {
    /// Requests read and not yet answered: a connection waiting on one is not idle.
    pending: Cell<usize>,
    /// When a request was last read or answered.
    last: Cell<std::time::Instant>,
}

/// Serves one connection until the client closes it or sends an invalid frame.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr) {
    let (mut rd, mut wr) = stream.into_split();
    let inflight = shard.config.max_inflight_requests_per_connection;
    let (tx, mut rx) = mpsc::channel::<JoinHandle<api::Reply>>(inflight);
    // Until when a throttled client's connection is muted (client quotas): the writer
    // sets it as it sends a throttled response; the reader starts no request before it.
    let muted: Rc<Cell<Option<tokio::time::Instant>>> = Rc::new(Cell::new(None));
    let muted_by_writer = muted.clone();
    let activity = Rc::new(Activity {
        pending: Cell::new(0),
        last: Cell::new(std::time::Instant::now()),
    });
    let answered = activity.clone();

    let writer = tokio::task::spawn_local(async move {
        while let Some(handle) = rx.recv().await {
            let response = handle.await;
            answered
                .pending
                .set(answered.pending.get().saturating_sub(1));
            answered.last.set(std::time::Instant::now());
            let response = match response {
                Ok(response) => response,
                Err(e) => {
                    // A handler panicked: the response order is lost, close the connection.
                    tracing::error!(%peer, error = %e, "request handler failed; closing the connection");
                    return;
                }
            };
            let pieces = match response {
                api::Reply::Send(pieces) => pieces,
                api::Reply::Nothing => continue,
                api::Reply::Close => break,
                api::Reply::Throttled {
                    pieces,
                    ms,
                    at_once,
                } => {
                    let until = tokio::time::Instant::now() + Duration::from_millis(ms);
                    muted_by_writer.set(muted_by_writer.get().max(Some(until)));
                    if !at_once {
                        tokio::time::sleep_until(until).await;
                    }
                    match pieces {
                        Some(pieces) => pieces,
                        None => continue,
                    }
                }
            };
            let len: usize = pieces.iter().map(Bytes::len).sum();
            metrics::counter!("fjord_bytes_out_total").increment(len as u64);
            if write_pieces(&mut wr, pieces).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });

    let max = shard.config.socket_request_max_bytes as usize;
    let idle = u64::try_from(shard.config.connections_max_idle_ms)
        .ok()
        .map(Duration::from_millis);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        if let Some(idle) = idle {
            if buf.is_empty() && !request_within(&rd, idle, &activity).await {
                tracing::debug!(%peer, "closing connection: idle for connections.max.idle.ms");
                break;
            }
        }
        let Some(frame) = next_frame(&mut rd, &mut buf, max, peer).await else {
            break;
        };
        if let Some(until) = muted.get() {
            tokio::time::sleep_until(until).await;
        }
        let frame = frame.freeze();
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
        activity.pending.set(activity.pending.get() + 1);
        activity.last.set(std::time::Instant::now());
        if tx.send(handle).await.is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
