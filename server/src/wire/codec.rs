//! Request decoding and response encoding through kafka-protocol.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
    /// Produce only: the whole frame the body was decoded from (its records are
    /// slices of it), so that the handler can take them out without copying once the
    /// rest of the request is dropped. The header holds no slice of it.
    pub frame: Option<Bytes>,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// What a frame decoded to.
#[derive(Debug)]
pub enum Decoded {
    Request(Box<Request>),
    /// ApiVersions at a version we do not speak: Kafka answers with v0 and
    /// UNSUPPORTED_VERSION so the client can retry with one we do.
    ApiVersionsUnsupported {
        correlation_id: i32,
    },
}

/// Why a frame could not be decoded; the connection is closed.
#[derive(Debug)]
pub enum DecodeError {
    UnknownApiKey(i16),
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
    },
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::UnknownApiKey(k) => write!(f, "unknown api key {k}"),
            DecodeError::UnsupportedVersion { api_key, version } => {
                write!(f, "unsupported version {version} of {api_key:?}")
            }
            DecodeError::Malformed {
                api_key,
                version,
                reason,
            } => {
                write!(f, "malformed {api_key:?} v{version}: {reason}")
            }
        }
    }
}

/// Decodes one frame. `accepted(key)` gives the versions we can decode and serve.
pub fn decode_request(
    mut frame: Bytes,
    accepted: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Result<Decoded, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::UnknownApiKey(-1));
    }
    let key = (&frame[0..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let correlation_id = (&frame[4..8]).get_i32();
    let api_key = ApiKey::try_from(key).map_err(|_| DecodeError::UnknownApiKey(key))?;
    let Some((min, max)) = accepted(api_key) else {
        return Err(DecodeError::UnknownApiKey(key));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions && version > max {
            return Ok(Decoded::ApiVersionsUnsupported { correlation_id });
        }
        return Err(DecodeError::UnsupportedVersion { api_key, version });
    }
    let malformed = |e: anyhow::Error| DecodeError::Malformed {
        api_key,
        version,
        reason: e.to_string(),
    };
    let whole = (api_key == ApiKey::Produce).then(|| frame.clone());
    let mut header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(malformed)?;
    // Owned copies: the header outlives the body in the handler.
    header.client_id = header
        .client_id
        .map(|c| StrBytes::from_string(c.as_str().to_string()));
    header.unknown_tagged_fields.clear();
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(malformed)?;
    Ok(Decoded::Request(Box::new(Request {
        api_key,
        header,
        body,
        frame: whole,
    })))
}

/// Encodes a response with its header and 4-byte size prefix.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> anyhow::Result<BytesMut> {
    // ApiVersions responses always use header v0 (KIP-511).
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    // One allocation of the exact size: a fetch response can be many MiB.
    let size = 4 + header.compute_size(header_version)? + body_size_hint(body, version);
    let mut buf = BytesMut::with_capacity(size);
    buf.put_i32(0);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Encodes a response as the pieces of one frame, written with one vectored write: a
/// Fetch response keeps its records as they are (see `pieces`); anything else is one
/// buffer.
pub fn encode_response_pieces(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> anyhow::Result<Vec<Bytes>> {
    if let ResponseKind::Fetch(f) = body {
        if let Some(pieces) = super::pieces::fetch_response_pieces(correlation_id, version, f)? {
            return Ok(pieces);
        }
    }
    Ok(vec![encode_response(
        correlation_id,
        api_key,
        version,
        body,
    )?
    .freeze()])
}

/// The encoded size of large responses (fetches carry records), a small guess for the
/// rest; the buffer still grows if a guess is short.
fn body_size_hint(body: &ResponseKind, version: i16) -> usize {
    match body {
        ResponseKind::Fetch(f) => f.compute_size(version).unwrap_or(0),
        _ => 256,
    }
}
