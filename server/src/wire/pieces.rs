//! Encoding a Fetch response into pieces: the records it carries go out as the `Bytes`
//! the log handed over (the connection writes all pieces with one vectored write)
//! instead of being copied into the response buffer — that copy was a fifth of the
//! broker's CPU while serving fetches.
//!
//! How: kafka-protocol writes a records field with `put_slice`; [`PieceBuf`] knows the
//! address and length of every records `Bytes` of the response, and when the encoder
//! writes exactly one of them it closes the current piece and appends that `Bytes`
//! as a piece of its own. Everything else is written into the current piece.

use std::collections::HashMap;
use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

/// Records shorter than this are copied: a piece of their own costs an iovec.
pub const SPLICE_MIN_BYTES: usize = 4096;

/// A `ByteBufMut` producing a list of pieces. Seeking back into a piece already
/// closed cannot be done; message encoding never does it (only record-batch encoding
/// seeks), and if it ever happens [`PieceBuf::finish`] says so and the caller encodes
/// into one buffer instead.
pub struct PieceBuf {
    pieces: Vec<Bytes>,
    cur: BytesMut,
    /// Bytes in `pieces`.
    closed: usize,
    /// (address, length) → the `Bytes` to hand out instead of copying that slice.
    splice: HashMap<(usize, usize), Bytes>,
    broken: bool,
    scratch: Vec<u8>,
}

impl PieceBuf {
    /// `capacity`: the bytes expected outside the spliced records.
    pub fn new(capacity: usize, splice: impl IntoIterator<Item = Bytes>) -> PieceBuf {
        PieceBuf {
            pieces: Vec::new(),
            cur: BytesMut::with_capacity(capacity),
            closed: 0,
            splice: splice
                .into_iter()
                .map(|b| ((b.as_ptr() as usize, b.len()), b))
                .collect(),
            broken: false,
            scratch: Vec::new(),
        }
    }

    fn close_current(&mut self) {
        if !self.cur.is_empty() {
            let piece = self.cur.split().freeze();
            self.closed += piece.len();
            self.pieces.push(piece);
        }
    }

    /// The pieces, in order; None if the encoder needed what pieces cannot do.
    pub fn finish(mut self) -> Option<Vec<Bytes>> {
        self.close_current();
        (!self.broken).then_some(self.pieces)
    }
}

// SAFETY: every method delegates to `cur`, a `BytesMut`, whose `BufMut` contract
// holds; `put_slice` only adds whole pieces before delegating.
unsafe impl BufMut for PieceBuf {
    fn remaining_mut(&self) -> usize {
        self.cur.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise about `cnt` is about `chunk_mut`, which is `cur`'s.
        unsafe { self.cur.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.cur.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= SPLICE_MIN_BYTES {
            if let Some(b) = self.splice.remove(&(src.as_ptr() as usize, src.len())) {
                self.close_current();
                self.closed += b.len();
                self.pieces.push(b);
                return;
            }
        }
        self.cur.extend_from_slice(src);
    }
}

impl ByteBufMut for PieceBuf {
    fn offset(&self) -> usize {
        self.closed + self.cur.len()
    }

    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.closed) {
            Some(o) => self.cur.resize(o, 0),
            None => self.broken = true,
        }
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let start = r.start.checked_sub(self.closed);
        let end = r.end.checked_sub(self.closed);
        match (start, end) {
            (Some(s), Some(e)) if s <= e && e <= self.cur.len() => &mut self.cur[s..e],
            _ => {
                self.broken = true;
                self.scratch.clear();
                self.scratch.resize(r.len(), 0);
                &mut self.scratch[..]
            }
        }
    }
}

/// A whole Fetch response frame (size prefix, header, body) as pieces, with records
/// of at least [`SPLICE_MIN_BYTES`] not copied. None: nothing worth splicing, or the
/// encoder did something pieces cannot do — encode into one buffer instead.
pub fn fetch_response_pieces(
    correlation_id: i32,
    version: i16,
    body: &FetchResponse,
) -> anyhow::Result<Option<Vec<Bytes>>> {
    let records: Vec<Bytes> = body
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.clone())
        .filter(|r| r.len() >= SPLICE_MIN_BYTES)
        .collect();
    if records.is_empty() {
        return Ok(None);
    }
    let header_version = ApiKey::Fetch.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let spliced: usize = records.iter().map(Bytes::len).sum();
    let mut buf = PieceBuf::new((4 + size).saturating_sub(spliced), records);
    buf.put_i32(i32::try_from(size)?);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf
        .finish()
        .filter(|p| p.iter().map(Bytes::len).sum::<usize>() == 4 + size))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    fn response(sizes: &[usize]) -> FetchResponse {
        let partitions = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(7)
                    .with_records(Some(Bytes::from(vec![i as u8 + 1; n])))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(partitions)])
    }

    #[test]
    fn pieces_are_the_single_buffer_encoding_with_records_shared() {
        for version in [4i16, 11, 12, 16] {
            let body = response(&[10_000, 100, 5_000]);
            let whole = crate::wire::encode_response(
                42,
                ApiKey::Fetch,
                version,
                &ResponseKind::Fetch(body.clone()),
            )
            .expect("encodes");
            let pieces = fetch_response_pieces(42, version, &body)
                .expect("encodes")
                .expect("worth splicing");
            let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
            assert_eq!(joined, whole.to_vec(), "version {version}");
            // The two large records went out as the very same memory.
            let large: Vec<&Bytes> = body.responses[0]
                .partitions
                .iter()
                .filter_map(|p| p.records.as_ref())
                .filter(|r| r.len() >= SPLICE_MIN_BYTES)
                .collect();
            for r in large {
                assert!(pieces.iter().any(|p| p.as_ptr() == r.as_ptr()));
            }
        }
    }

    #[test]
    fn small_records_are_not_spliced() {
        let body = response(&[100, 200]);
        assert!(fetch_response_pieces(1, 12, &body)
            .expect("encodes")
            .is_none());
    }

    #[test]
    fn seeking_into_a_closed_piece_is_reported() {
        let big = Bytes::from(vec![1u8; SPLICE_MIN_BYTES]);
        let mut buf = PieceBuf::new(16, [big.clone()]);
        buf.put_u8(9);
        buf.put_slice(&big);
        buf.put_u8(9);
        assert_eq!(buf.offset(), SPLICE_MIN_BYTES + 2);
        buf.seek(0);
        assert!(buf.finish().is_none());
    }
}
