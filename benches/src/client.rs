//! A minimal Kafka protocol client: size-framed requests over one TCP connection,
//! split into a [`Sender`] and a [`Receiver`] so requests can be pipelined while
//! responses are read, in order, on another task.
//!
//! Every request and response is encoded and decoded with the `kafka-protocol` crate;
//! nothing read from the network is trusted (sizes are bounded, correlation ids are
//! checked, decode failures are errors, never panics).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Largest response frame we accept; anything bigger is treated as a protocol error.
pub const RESPONSE_SIZE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// How long any single network step (connect, send a request, read a response) may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// `client.id` sent in every request header.
const CLIENT_ID: &str = "fjord-bench";

/// Opens a connection with `TCP_NODELAY` set and returns its two halves.
pub async fn connect(addr: &str) -> Result<(Sender, Receiver)> {
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connect to {addr} timed out"))?
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    Ok((
        Sender {
            write,
            correlation_id_next: 0,
        },
        Receiver {
            read,
            buf: BytesMut::new(),
        },
    ))
}

/// The writing half of a connection. Owns the correlation-id counter.
pub struct Sender {
    write: OwnedWriteHalf,
    correlation_id_next: i32,
}

/// The reading half of a connection; reuses one buffer for all frames.
pub struct Receiver {
    read: OwnedReadHalf,
    buf: BytesMut,
}

/// A request body encoded once, sendable many times with fresh headers.
#[derive(Clone)]
pub struct EncodedBody {
    api_key: i16,
    api_version: i16,
    header_version: i16,
    body: Bytes,
}

impl EncodedBody {
    /// Encodes `req` at `version`.
    pub fn new<R: Request>(req: &R, version: i16) -> Result<Self> {
        let mut body = BytesMut::with_capacity(req.compute_size(version)?);
        req.encode(&mut body, version)?;
        Ok(Self {
            api_key: R::KEY,
            api_version: version,
            header_version: R::header_version(version),
            body: body.freeze(),
        })
    }
}

impl Sender {
    /// Writes one request frame (size, header, body) and returns its correlation id.
    /// The header and the body go out in one vectored write.
    pub async fn send_encoded(&mut self, body: &EncodedBody) -> Result<i32> {
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = self.correlation_id_next.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(body.api_key)
            .with_request_api_version(body.api_version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let header_size = header.compute_size(body.header_version)?;
        let frame_size =
            i32::try_from(header_size + body.body.len()).context("request too large")?;
        let mut head = BytesMut::with_capacity(4 + header_size);
        head.put_i32(frame_size);
        header.encode(&mut head, body.header_version)?;
        let mut frame = head.freeze().chain(body.body.clone());
        tokio::time::timeout(IO_TIMEOUT, self.write.write_all_buf(&mut frame))
            .await
            .context("timed out sending a request")??;
        Ok(correlation_id)
    }

    /// Encodes and sends `req` at `version`; returns its correlation id.
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> Result<i32> {
        self.send_encoded(&EncodedBody::new(req, version)?).await
    }
}

impl Receiver {
    /// Reads the next response frame, checks it answers `correlation_id`, and decodes
    /// it as the response to request type `R` at `version`.
    pub async fn recv<R: Request>(
        &mut self,
        correlation_id: i32,
        version: i16,
    ) -> Result<R::Response> {
        self.recv_within::<R>(correlation_id, version, IO_TIMEOUT)
            .await
    }

    /// [`Receiver::recv`] waiting up to `timeout` instead of [`IO_TIMEOUT`] (for
    /// requests the broker may take long to answer, such as creating many partitions).
    pub async fn recv_within<R: Request>(
        &mut self,
        correlation_id: i32,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let mut frame = self.read_frame(timeout).await?;
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version)
            .with_context(|| format!("decode response header of api {}", R::KEY))?;
        ensure!(
            header.correlation_id == correlation_id,
            "api {}: expected correlation id {correlation_id}, got {}",
            R::KEY,
            header.correlation_id
        );
        let response = R::Response::decode(&mut frame, version)
            .with_context(|| format!("decode response of api {} v{version}", R::KEY))?;
        Ok(response)
    }

    /// Reads one size-prefixed frame, bounded in size and time.
    async fn read_frame(&mut self, timeout: Duration) -> Result<Bytes> {
        let read = async {
            let size = self.read.read_i32().await.context("read response size")?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= RESPONSE_SIZE_BYTES_MAX);
            let Some(size) = size else {
                bail!("invalid response size");
            };
            // `reserve` reclaims the previous frame's allocation once it is dropped.
            self.buf.reserve(size);
            self.buf.resize(size, 0);
            self.read
                .read_exact(&mut self.buf)
                .await
                .context("read response body")?;
            Ok(self.buf.split().freeze())
        };
        tokio::time::timeout(timeout, read)
            .await
            .context("timed out waiting for a response")?
    }
}

/// Sends one request and waits for its response (no pipelining).
pub async fn call<R: Request>(
    tx: &mut Sender,
    rx: &mut Receiver,
    req: &R,
    version: i16,
) -> Result<R::Response> {
    let correlation_id = tx.send(req, version).await?;
    rx.recv::<R>(correlation_id, version).await
}
