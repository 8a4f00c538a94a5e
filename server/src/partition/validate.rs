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
    /// Some records of the batch are refused (KIP-467): each (index in the batch,
    /// why), in batch order. INVALID_TIMESTAMP if any is for its timestamp, else
    /// INVALID_RECORD (keyless records on a compacted topic), as Kafka's
    /// `LogValidator` answers; the whole batch is refused either way.
    Records {
        errors: Vec<(i32, String)>,
        invalid_timestamp: bool,
    },
}

impl RecordError {
    /// The partition's error message Kafka sends with [`RecordError::Records`] (its
    /// `processRecordErrors`).
    pub fn records_message(errors: &[(i32, String)], invalid_timestamp: bool) -> String {
        if invalid_timestamp {
            return "One or more records have been rejected due to invalid timestamp".into();
        }
        let shown: Vec<String> = errors
            .iter()
            .take(3)
            .map(|(i, m)| format!("RecordError(batchIndex={i}, message='{m}')"))
            .collect();
        format!(
            "One or more records have been rejected due to {} record errors in total, and \
             only showing the first three errors at most: [{}]",
            errors.len(),
            shown.join(", ")
        )
    }
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
    /// The partition's topic and index, for messages.
    pub topic: &'a str,
    pub index: i32,
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
    let min_isr = s.min_insync_replicas.min(produce.replicas.max(1));
    if produce.acks == -1 && produce.isr < min_isr {
        return Err(RecordError::NotEnoughReplicas(format!(
            "The size of the current ISR {} is insufficient to satisfy the min.isr \
             requirement of {min_isr}",
            produce.isr
        )));
    }
    // Record by record only where a record can be at fault: keys on a compacted
    // topic; timestamps when `message.timestamp.before.max.ms` bounds them (a record
    // may be older than the batch's first), or when the batch's first or largest is
    // out of range. (The after-bound is checked on the batch's largest timestamp, as
    // its header states it.)
    let batch_timestamps =
        s.check_timestamps(header.base_timestamp, header.max_timestamp, produce.now_ms);
    let old_bounded = !s.log_append_time && s.timestamp_before_max_ms < i64::MAX;
    if s.cleanup_compact || old_bounded || batch_timestamps.is_err() {
        let decoded = codec.records(records).map_err(RecordError::Corrupt)?;
        let (errors, invalid_timestamp) = record_errors(&decoded, produce);
        if !errors.is_empty() {
            return Err(RecordError::Records {
                errors,
                invalid_timestamp,
            });
        }
        // The header claims a timestamp no record has: refused as it stands.
        batch_timestamps.map_err(RecordError::Timestamp)?;
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

/// Kafka's `LogValidator.validateRecord` over each record: on a compacted topic it
/// needs a key; with CreateTime its timestamp must lie within
/// `message.timestamp.before.max.ms` before and `message.timestamp.after.max.ms`
/// after now. A record gets at most one error, its key's first. Returns the errors
/// and whether any is for a timestamp.
fn record_errors(
    records: &[fjord_storage::RecordInfo],
    produce: &Produce<'_>,
) -> (Vec<(i32, String)>, bool) {
    let s = produce.settings;
    let now = produce.now_ms;
    let mut errors = Vec::new();
    let mut invalid_timestamp = false;
    for (i, r) in records.iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        if s.cleanup_compact && r.key.is_none() {
            errors.push((
                index,
                format!(
                    "Compacted topic cannot accept message without key in topic partition {}-{}",
                    produce.topic, produce.index
                ),
            ));
            continue;
        }
        if s.log_append_time || r.timestamp < 0 {
            continue;
        }
        if s.check_timestamps(r.timestamp, r.timestamp, now).is_err() {
            invalid_timestamp = true;
            let (lo, hi) = s.timestamp_window(now);
            errors.push((
                index,
                format!(
                    "Timestamp {} of message with offset {} is out of range. The timestamp \
                     should be within [{lo}, {hi}]",
                    r.timestamp, r.offset
                ),
            ));
        }
    }
    (errors, invalid_timestamp)
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

    /// Kafka's `validateRecord`: a keyless record on a compacted topic, timestamps
    /// out of the topic's window, each by index; a record's key error first.
    #[test]
    fn record_errors_name_each_bad_record() {
        use crate::configs::Layers;
        use std::collections::BTreeMap;
        let empty = BTreeMap::new();
        let layers = Layers {
            dynamic_broker: None,
            dynamic_default: None,
            static_props: &empty,
        };
        let overrides: BTreeMap<String, String> = [
            ("cleanup.policy", "compact"),
            ("message.timestamp.before.max.ms", "1000"),
            ("message.timestamp.after.max.ms", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings = TopicSettings::resolve(&overrides, &layers);
        let now = 1_000_000;
        let produce = Produce {
            topic: "t",
            index: 3,
            settings: &settings,
            acks: 1,
            isr: 1,
            replicas: 1,
            now_ms: now,
        };
        let record =
            |offset: i64, timestamp: i64, key: Option<&'static [u8]>| fjord_storage::RecordInfo {
                offset,
                timestamp,
                key: key.map(Bytes::from_static),
                value: None,
            };
        let records = [
            record(0, now, Some(b"k")),
            record(1, now - 5000, None),
            record(2, now + 5000, Some(b"k")),
            record(3, -1, Some(b"k")),
        ];
        let (errors, invalid_timestamp) = record_errors(&records, &produce);
        assert!(invalid_timestamp);
        assert_eq!(
            errors,
            vec![
                (
                    1,
                    "Compacted topic cannot accept message without key in topic partition t-3"
                        .to_string()
                ),
                (
                    2,
                    "Timestamp 1005000 of message with offset 2 is out of range. The timestamp \
                     should be within [999000, 1001000]"
                        .to_string()
                ),
            ]
        );
        let (errors, invalid_timestamp) = record_errors(&records[..1], &produce);
        assert!(errors.is_empty() && !invalid_timestamp);
    }
}
