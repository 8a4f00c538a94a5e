//! Kafka's checks on produced records (its `LogValidator` for magic v2), applied to one
//! partition's records before they go to the partition's owner: exactly one batch, its
//! CRC-32C, size limits, the topic's timestamp rules, `min.insync.replicas` for
//! acks=all, keys on compacted topics, and recompression to the topic's
//! `compression.type`.
//!
//! Pure apart from the record codec it is given; runs on the connection's shard. Each
//! batch header is parsed once here, and travels with the batch to `Log::append`.

use bytes::{Bytes, BytesMut};
use fjord_storage::batch::{crc_is_valid, parse_headers};
use fjord_storage::{BatchHeader, RecordCodec};

use crate::configs::TopicSettings;

/// Why a partition's records are refused; the api layer maps each to Kafka's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// INVALID_RECORD: a request the record format forbids (no records, more than one
    /// batch, a bad record count, control or transactional batches from a client,
    /// keyless records on a compacted topic).
    Invalid(String),
    /// CORRUPT_MESSAGE: the bytes are not a valid batch (framing, CRC, codec).
    Corrupt(String),
    /// MESSAGE_TOO_LARGE: the batch exceeds `max.message.bytes`.
    TooLarge(String),
    /// RECORD_LIST_TOO_LARGE: the records exceed `segment.bytes`.
    ListTooLarge(String),
    /// INVALID_TIMESTAMP: a CreateTime outside the topic's allowed window.
    Timestamp(String),
    /// NOT_ENOUGH_REPLICAS: acks=all with fewer in-sync replicas than
    /// `min.insync.replicas`.
    NotEnoughReplicas(String),
}

/// Records ready for their owner: the batch (the request's own bytes, or a
/// recompressed copy) and its header, parsed from exactly those bytes.
#[derive(Debug)]
pub struct Validated {
    pub records: Records,
    pub header: BatchHeader,
}

/// A validated batch's bytes.
#[derive(Debug)]
pub enum Records {
    /// A slice of the request: storage gets it without a copy when it can.
    Slice(Bytes),
    /// Re-encoded here (recompression).
    Owned(BytesMut),
}

/// What a produce asks of the topic besides the records themselves.
pub struct Produce<'a> {
    pub settings: &'a TopicSettings,
    pub acks: i16,
    /// In-sync replicas of the partition now.
    pub isr: i64,
    /// Its replication factor: `min.insync.replicas` counts at most this many.
    pub replicas: i64,
    pub now_ms: i64,
}

/// Validates one partition's records and recompresses them if the topic asks for it.
pub fn validate(
    records: Option<&Bytes>,
    produce: &Produce<'_>,
    codec: &dyn RecordCodec,
) -> Result<Validated, RecordError> {
    let s = produce.settings;
    let records =
        records.ok_or_else(|| RecordError::Invalid("Produce request has no records".into()))?;
    let header = check_batch(records, s.max_message_bytes, s.segment_bytes)?;
    s.check_timestamps(header.base_timestamp, header.max_timestamp, produce.now_ms)
        .map_err(RecordError::Timestamp)?;
    let min_isr = s.min_insync_replicas.min(produce.replicas.max(1));
    if produce.acks == -1 && produce.isr < min_isr {
        return Err(RecordError::NotEnoughReplicas(format!(
            "The size of the current ISR {} is insufficient to satisfy the min.isr \
             requirement of {min_isr}",
            produce.isr
        )));
    }
    if s.cleanup_compact {
        let all_keyed = codec
            .records(records)
            .map_err(RecordError::Corrupt)?
            .iter()
            .all(|r| r.key.is_some());
        if !all_keyed {
            return Err(RecordError::Invalid(
                "Compacted topic cannot accept message without key".into(),
            ));
        }
    }
    match target_codec(&s.compression_type) {
        Some(codec_id) if codec_id != header.compression() => {
            let out = codec
                .recompress(records, codec_id)
                .map_err(RecordError::Corrupt)?;
            let header =
                BatchHeader::parse(&out).map_err(|e| RecordError::Corrupt(e.to_string()))?;
            Ok(Validated {
                records: Records::Owned(BytesMut::from(&out[..])),
                header,
            })
        }
        _ => Ok(Validated {
            records: Records::Slice(records.clone()),
            header,
        }),
    }
}

/// The codec id `compression.type` asks for; None for `producer` (keep the batch's).
fn target_codec(compression_type: &str) -> Option<u8> {
    match compression_type {
        "uncompressed" => Some(0),
        "gzip" => Some(1),
        "snappy" => Some(2),
        "lz4" => Some(3),
        "zstd" => Some(4),
        _ => None,
    }
}

/// The batch-level checks: exactly one v2 batch, within the size limits, with a valid
/// CRC and record count, written by a client (not a control or transactional batch).
fn check_batch(
    records: &Bytes,
    max_message_bytes: i64,
    segment_bytes: i64,
) -> Result<BatchHeader, RecordError> {
    if records.len() as i64 > segment_bytes {
        return Err(RecordError::ListTooLarge(format!(
            "Record set of {} bytes exceeds segment.bytes {segment_bytes}",
            records.len()
        )));
    }
    let corrupt = |e: &dyn std::fmt::Debug| RecordError::Corrupt(format!("{e:?}"));
    // One walk over the bytes: each batch's header, parsed once.
    let headers = parse_headers(records).map_err(|e| corrupt(&e))?;
    let [header] = headers[..] else {
        return Err(RecordError::Invalid(
            "Produce requests with version 3+ must contain exactly one record batch per partition"
                .into(),
        ));
    };
    let batch = &records[..];
    if batch.len() as i64 > max_message_bytes {
        return Err(RecordError::TooLarge(format!(
            "The batch of {} bytes exceeds max.message.bytes {max_message_bytes}",
            batch.len()
        )));
    }
    if !crc_is_valid(batch) {
        return Err(RecordError::Corrupt(
            "Record batch failed its CRC-32C check".into(),
        ));
    }
    if header.records_count != header.last_offset_delta + 1 {
        return Err(RecordError::Invalid(
            "Record count and last offset delta of the batch disagree".into(),
        ));
    }
    if header.is_control() {
        return Err(RecordError::Invalid(
            "Clients may not write control records".into(),
        ));
    }
    if header.is_transactional() {
        return Err(RecordError::Invalid(
            "Transactional batches are not supported yet".into(),
        ));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid v2 batch with `n` empty records.
    fn batch(n: i32) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..n {
            // length, attributes, timestamp delta, offset delta (zig-zag varints), key -1, value -1, headers 0
            let body = [0u8, 0, (i as u8) << 1, 1, 1, 0];
            records.push((body.len() as u8) << 1);
            records.extend_from_slice(&body);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((49 + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(n - 1).to_be_bytes());
        b.extend_from_slice(&1000i64.to_be_bytes());
        b.extend_from_slice(&1000i64.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&n.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn batch_checks_name_kafkas_errors() {
        let good = Bytes::from(batch(3));
        assert!(check_batch(&good, 1 << 20, 1 << 30).is_ok());
        assert!(matches!(
            check_batch(&good, 10, 1 << 30),
            Err(RecordError::TooLarge(_))
        ));
        assert!(matches!(
            check_batch(&good, 1 << 20, 10),
            Err(RecordError::ListTooLarge(_))
        ));
        let mut bad = batch(3);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            check_batch(&Bytes::from(bad), 1 << 20, 1 << 30),
            Err(RecordError::Corrupt(_))
        ));
        let two = Bytes::from([batch(1), batch(1)].concat());
        assert!(matches!(
            check_batch(&two, 1 << 20, 1 << 30),
            Err(RecordError::Invalid(_))
        ));
        assert!(matches!(
            check_batch(&good.slice(..30), 1 << 20, 1 << 30),
            Err(RecordError::Corrupt(_))
        ));
    }

    #[test]
    fn compression_types_name_codecs() {
        assert_eq!(target_codec("producer"), None);
        assert_eq!(target_codec("uncompressed"), Some(0));
        assert_eq!(target_codec("zstd"), Some(4));
    }
}
