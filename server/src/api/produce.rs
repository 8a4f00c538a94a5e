//! Produce (key 0), versions 3–13 (advertised from 0 like Kafka 4).
//!
//! Each partition's records are validated on the connection's shard (one v2 batch,
//! CRC-32C, size limits), then appended on the owning shard. acks=all waits for
//! fdatasync; acks=1 for the write; acks=0 gets no response.

use std::ops::Range;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use fjord_storage::batch::{crc_is_valid, split_batches};
use fjord_storage::BatchHeader;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::configs::TopicSettings;
use crate::partition::registry::Unavailable;
use crate::partition::{now_ms, AppendError, Appended};
use crate::shard::Shard;

/// A partition's records after validation, ready for its owner.
struct Append<R = BytesMut> {
    topic_id: Uuid,
    index: i32,
    records: R,
    header: BatchHeader,
    log_append_time: Option<i64>,
    sync: bool,
}

/// Validated records before they are made writable: a slice of the request frame, or
/// a recompressed copy.
enum Pending {
    Slice(Bytes),
    Owned(BytesMut),
}

/// Records copied already (Ok) or still a range of the request frame (Err).
type InFrame = Result<BytesMut, Range<usize>>;

/// See [`writable`]: the smallest share of a request frame one partition's records
/// must be to be taken out of it without a copy. 16 lets a request for 8 or fewer
/// partitions of equal batches share (its headers make each part a little under an
/// eighth) and bounds a tail cache's memory to 16 times its byte budget.
const SHARE_MIN: usize = 16;

/// Makes every append's records writable (storage patches offsets in place). When
/// nothing but these slices refers to the request frame any more (the connection
/// read it into an allocation of its own and the decoded request is gone), the frame
/// is split into the slices' disjoint ranges without copying; otherwise each slice
/// is copied.
fn writable(frame: Option<Bytes>, appends: Vec<(usize, Append<Pending>)>) -> Vec<(usize, Append)> {
    let copy = |b: &Bytes| BytesMut::from(&b[..]);
    let Some(frame) = frame else {
        return appends
            .into_iter()
            .map(|(slot, a)| {
                let a = a.map(|r| match r {
                    Pending::Slice(b) => copy(&b),
                    Pending::Owned(b) => b,
                });
                (slot, a)
            })
            .collect();
    };
    let (base, len) = (frame.as_ptr() as usize, frame.len());
    let in_frame = |b: &Bytes| {
        let start = (b.as_ptr() as usize).wrapping_sub(base);
        (start <= len && b.len() <= len - start).then(|| start..start + b.len())
    };
    // In-frame slices become their ranges (dropping those references to the frame).
    let appends: Vec<(usize, Append<InFrame>)> = appends
        .into_iter()
        .map(|(slot, a)| {
            let a = a.map(|r| match r {
                Pending::Owned(b) => Ok(b),
                Pending::Slice(b) => match in_frame(&b) {
                    Some(range) => Err(range),
                    None => Ok(copy(&b)),
                },
            });
            (slot, a)
        })
        .collect();
    let mut ranges: Vec<(usize, Range<usize>)> = appends
        .iter()
        .enumerate()
        .filter_map(|(i, (_, a))| a.records.clone().err().map(|r| (i, r)))
        .collect();
    ranges.sort_by_key(|(_, r)| r.start);
    let disjoint = ranges.windows(2).all(|w| w[0].1.end <= w[1].1.start);
    let mut parts: Vec<Option<BytesMut>> = (0..appends.len()).map(|_| None).collect();
    match frame.try_into_mut() {
        Ok(mut whole) if disjoint => {
            let mut consumed = 0;
            for (i, r) in ranges {
                let _ = whole.split_to(r.start - consumed);
                let part = whole.split_to(r.len());
                // A part keeps the whole frame's memory alive while it sits in a
                // partition's tail cache: only parts of at least 1/SHARE_MIN of the
                // frame are taken, so the cache's memory stays within SHARE_MIN times
                // its byte budget. Smaller ones are copied.
                parts[i] = Some(if part.len() * SHARE_MIN >= len {
                    part
                } else {
                    BytesMut::from(&part[..])
                });
                consumed = r.end;
            }
        }
        Ok(whole) => {
            for (i, r) in ranges {
                parts[i] = Some(BytesMut::from(&whole[r]));
            }
        }
        Err(frame) => {
            for (i, r) in ranges {
                parts[i] = Some(BytesMut::from(&frame[r]));
            }
        }
    }
    appends
        .into_iter()
        .zip(parts)
        .map(|((slot, a), part)| {
            let a = a.map(|r| r.unwrap_or_else(|_| part.unwrap_or_default()));
            (slot, a)
        })
        .collect()
}

impl<R> Append<R> {
    fn map<S>(self, f: impl FnOnce(R) -> S) -> Append<S> {
        Append {
            topic_id: self.topic_id,
            index: self.index,
            records: f(self.records),
            header: self.header,
            log_append_time: self.log_append_time,
            sync: self.sync,
        }
    }
}

/// The outcome for one partition: an error code with message, or the append result.
type Outcome = Result<Appended, (i16, Option<String>)>;

/// Validates one partition's records as Kafka's LogValidator does for magic v2.
fn validate(
    records: &Option<Bytes>,
    max_message_bytes: i64,
    segment_bytes: i64,
) -> Result<BatchHeader, (i16, String)> {
    let invalid = |why: &str| (ResponseError::InvalidRecord.code(), why.to_string());
    let Some(records) = records else {
        return Err(invalid("Produce request has no records"));
    };
    if records.len() as i64 > segment_bytes {
        return Err((
            ResponseError::RecordListTooLarge.code(),
            format!(
                "Record set of {} bytes exceeds segment.bytes {segment_bytes}",
                records.len()
            ),
        ));
    }
    let corrupt = |why: String| (ResponseError::CorruptMessage.code(), why);
    let ranges = split_batches(records).map_err(|e| corrupt(format!("{e:?}")))?;
    if ranges.len() != 1 {
        return Err(invalid(
            "Produce requests with version 3+ must contain exactly one record batch per partition",
        ));
    }
    let batch = &records[ranges[0].clone()];
    let header = BatchHeader::parse(batch).map_err(|e| corrupt(format!("{e:?}")))?;
    if batch.len() as i64 > max_message_bytes {
        return Err((
            ResponseError::MessageTooLarge.code(),
            format!(
                "The batch of {} bytes exceeds max.message.bytes {max_message_bytes}",
                batch.len()
            ),
        ));
    }
    if !crc_is_valid(batch) {
        return Err(corrupt("Record batch failed its CRC-32C check".into()));
    }
    if header.records_count != header.last_offset_delta + 1 {
        return Err(invalid(
            "Record count and last offset delta of the batch disagree",
        ));
    }
    if header.is_control() {
        return Err(invalid("Clients may not write control records"));
    }
    if header.is_transactional() {
        return Err(invalid("Transactional batches are not supported yet"));
    }
    Ok(header)
}

/// The topic's own rules: Kafka's CreateTime timestamp bounds (checked on the batch's
/// first and max timestamps) and `min.insync.replicas` for acks=all.
fn check_topic_rules(
    settings: &TopicSettings,
    header: &BatchHeader,
    acks: i16,
    isr: i64,
    now: i64,
) -> Result<BatchHeader, (i16, String)> {
    settings
        .check_timestamps(header.base_timestamp, header.max_timestamp, now)
        .map_err(|m| (ResponseError::InvalidTimestamp.code(), m))?;
    if acks == -1 && isr < settings.min_insync_replicas {
        return Err((
            ResponseError::NotEnoughReplicas.code(),
            format!(
                "The size of the current ISR {isr} is insufficient to satisfy the min.isr \
                 requirement of {}",
                settings.min_insync_replicas
            ),
        ));
    }
    Ok(*header)
}

/// The topic's `compression.type` when it is not `producer`: the batch re-encoded
/// with that codec (records, producer fields and timestamps unchanged), as Kafka's
/// LogValidator does; None when the batch already uses it.
fn recompress(
    records: &Option<Bytes>,
    compression_type: &str,
    header: &BatchHeader,
) -> Result<Option<(BytesMut, BatchHeader)>, String> {
    let (target, code) = match compression_type {
        "uncompressed" => (Compression::None, 0),
        "gzip" => (Compression::Gzip, 1),
        "snappy" => (Compression::Snappy, 2),
        "lz4" => (Compression::Lz4, 3),
        "zstd" => (Compression::Zstd, 4),
        _ => return Ok(None),
    };
    let Some(records) = records.as_ref().filter(|_| header.compression() != code) else {
        return Ok(None);
    };
    let mut buf = records.clone();
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| e.to_string())?;
    let mut out = BytesMut::with_capacity(records.len());
    let options = RecordEncodeOptions {
        version: 2,
        compression: target,
    };
    RecordBatchEncoder::encode(&mut out, &set.records, &options).map_err(|e| e.to_string())?;
    let header = BatchHeader::parse(&out).map_err(|e| e.to_string())?;
    Ok(Some((out, header)))
}

/// Compacted topics refuse records without a key, as Kafka does.
fn check_keys(
    settings: &TopicSettings,
    records: &Option<Bytes>,
    header: BatchHeader,
) -> Result<BatchHeader, (i16, String)> {
    let Some(records) = records.as_ref().filter(|_| settings.cleanup_compact) else {
        return Ok(header);
    };
    match crate::partition::compaction::all_records_keyed(records) {
        Ok(true) => Ok(header),
        Ok(false) => Err((
            ResponseError::InvalidRecord.code(),
            "Compacted topic cannot accept message without key".into(),
        )),
        Err(e) => Err((ResponseError::CorruptMessage.code(), e)),
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: ProduceRequest,
    frame: Option<Bytes>,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let image = shard.cluster.image();
    let now = now_ms();
    let sync = acks == -1 || shard.config.log_flush_interval_messages == 1;
    // Per request partition: either an early outcome or an append for its owner.
    let mut slots: Vec<(usize, usize, Option<Outcome>)> = Vec::new();
    let mut appends: Vec<(usize, Append<Pending>)> = Vec::new();
    let mut total = 0usize;
    for (t, topic) in req.topic_data.iter().enumerate() {
        let found = if version >= 13 {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.name.0.as_str())
        };
        for (p, part) in topic.partition_data.iter().enumerate() {
            total += 1;
            let early: Option<Outcome> = if total > shard.config.max_partitions_per_request {
                Some(Err((
                    ResponseError::PolicyViolation.code(),
                    Some("Too many partitions in one request".into()),
                )))
            } else if !matches!(acks, -1..=1) {
                Some(Err((ResponseError::InvalidRequiredAcks.code(), None)))
            } else {
                match found {
                    None if version >= 13 => {
                        Some(Err((ResponseError::UnknownTopicId.code(), None)))
                    }
                    None => Some(Err((ResponseError::UnknownTopicOrPartition.code(), None))),
                    Some(tp) if part.index < 0 || part.index as usize >= tp.partitions.len() => {
                        Some(Err((ResponseError::UnknownTopicOrPartition.code(), None)))
                    }
                    Some(tp) if !shard.cluster.leads(tp, part.index) => {
                        Some(Err((ResponseError::NotLeaderOrFollower.code(), None)))
                    }
                    Some(tp) => {
                        // The topic's effective configs: overrides, dynamic, static, default.
                        let settings = shard.cluster.topic_settings(&image, tp);
                        let isr = tp.partitions[part.index as usize].isr.len() as i64;
                        match validate(
                            &part.records,
                            settings.max_message_bytes,
                            settings.segment_bytes,
                        )
                        .and_then(|h| check_topic_rules(&settings, &h, acks, isr, now))
                        .and_then(|h| check_keys(&settings, &part.records, h))
                        {
                            Err((code, msg)) => Some(Err((code, Some(msg)))),
                            Ok(header) => {
                                let mut header = header;
                                let records = match recompress(
                                    &part.records,
                                    &settings.compression_type,
                                    &header,
                                ) {
                                    Ok(Some((recompressed, h))) => {
                                        header = h;
                                        Pending::Owned(recompressed)
                                    }
                                    Ok(None) => {
                                        Pending::Slice(part.records.clone().unwrap_or_default())
                                    }
                                    Err(e) => {
                                        let code = ResponseError::CorruptMessage.code();
                                        slots.push((t, p, Some(Err((code, Some(e))))));
                                        continue;
                                    }
                                };
                                let log_append = settings.log_append_time;
                                let sync = sync || settings.flush_messages == 1;
                                appends.push((
                                    slots.len(),
                                    Append {
                                        topic_id: tp.id,
                                        index: part.index,
                                        records,
                                        header,
                                        log_append_time: log_append.then_some(now),
                                        sync,
                                    },
                                ));
                                None
                            }
                        }
                    }
                }
            };
            slots.push((t, p, early));
        }
    }

    // What the response needs of the request, owned; then the request goes, so that
    // the records can leave the frame without a copy.
    let mut responses: Vec<TopicProduceResponse> = req
        .topic_data
        .iter()
        .map(|t| {
            TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_string(t.name.0.to_string())))
                .with_topic_id(t.topic_id)
        })
        .collect();
    let indexes: Vec<Vec<i32>> = req
        .topic_data
        .iter()
        .map(|t| t.partition_data.iter().map(|p| p.index).collect())
        .collect();
    drop(req);
    let routed: Vec<(usize, (usize, Append))> = writable(frame, appends)
        .into_iter()
        .map(|(slot, a)| (shard.owner(&a.topic_id, a.index), (slot, a)))
        .collect();
    let results = shard
        .scatter(
            routed,
            |s: Rc<Shard>, (slot, a): (usize, Append)| async move {
                (slot, append_on_owner(&s, a).await)
            },
            || {
                (
                    usize::MAX,
                    Err((ResponseError::NotLeaderOrFollower.code(), None)),
                )
            },
        )
        .await;
    for (slot, outcome) in results {
        if let Some(s) = slots.get_mut(slot) {
            s.2 = Some(outcome);
        }
    }
    if acks == 0 {
        return None;
    }

    for (t, p, outcome) in slots {
        let index = indexes[t][p];
        let mut r = PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1);
        match outcome.unwrap_or(Err((ResponseError::UnknownServerError.code(), None))) {
            Ok(a) => {
                r.base_offset = a.base_offset;
                r.log_append_time_ms = a.log_append_time_ms;
                r.log_start_offset = a.log_start_offset;
            }
            Err((code, msg)) => {
                r.error_code = code;
                r.error_message = msg.map(StrBytes::from_string);
                super::count_error("Produce", code);
            }
        }
        responses[t].partition_responses.push(r);
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// Runs on the partition's owner shard.
async fn append_on_owner(shard: &Rc<Shard>, a: Append) -> Outcome {
    let partition = match shard.partitions.ready(&a.topic_id, a.index).await {
        Ok(p) => p,
        Err(Unavailable::Offline(why)) => {
            return Err((ResponseError::KafkaStorageError.code(), Some(why)))
        }
        Err(u) => return Err((super::route::unavailable_code(&u), None)),
    };
    partition
        .append(a.records, a.header, a.log_append_time, a.sync)
        .await
        .map_err(|e| match e {
            AppendError::InvalidProducerEpoch => (ResponseError::InvalidProducerEpoch.code(), None),
            AppendError::OutOfOrderSequence => {
                (ResponseError::OutOfOrderSequenceNumber.code(), None)
            }
            AppendError::Storage(m) => (ResponseError::KafkaStorageError.code(), Some(m)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(records: Pending) -> Append<Pending> {
        Append {
            topic_id: Uuid::nil(),
            index: 0,
            records,
            header: BatchHeader::parse(&batch(1)).expect("a valid batch"),
            log_append_time: None,
            sync: false,
        }
    }

    #[test]
    fn writable_splits_an_unshared_frame_without_copying() {
        let frame = Bytes::from((0u8..100).collect::<Vec<u8>>());
        let (a, b) = (frame.slice(60..80), frame.slice(10..30));
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let owned = BytesMut::from(&b"recompressed"[..]);
        let appends = vec![
            (0, pending(Pending::Slice(a))),
            (1, pending(Pending::Owned(owned))),
            (2, pending(Pending::Slice(b))),
        ];
        let out = writable(Some(frame), appends);
        assert_eq!(out.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(&out[0].1.records[..], &(60u8..80).collect::<Vec<u8>>()[..]);
        assert_eq!(&out[1].1.records[..], b"recompressed");
        assert_eq!(&out[2].1.records[..], &(10u8..30).collect::<Vec<u8>>()[..]);
        assert_eq!(
            out[0].1.records.as_ptr(),
            pa,
            "taken out of the frame, not copied"
        );
        assert_eq!(out[2].1.records.as_ptr(), pb);
    }

    #[test]
    fn writable_copies_when_the_frame_is_still_shared() {
        let frame = Bytes::from((0u8..100).collect::<Vec<u8>>());
        let elsewhere = frame.clone(); // e.g. a header field still pointing into it
        let a = frame.slice(5..9);
        let pa = a.as_ptr();
        let out = writable(Some(frame), vec![(0, pending(Pending::Slice(a)))]);
        assert_eq!(&out[0].1.records[..], &[5u8, 6, 7, 8]);
        assert_ne!(out[0].1.records.as_ptr(), pa);
        assert_eq!(elsewhere.len(), 100);
        // Overlapping slices (impossible from a decoder) and no frame: copies.
        let frame = Bytes::from(vec![7u8; 10]);
        let (x, y) = (frame.slice(0..6), frame.slice(4..10));
        let appends = vec![
            (0, pending(Pending::Slice(x))),
            (1, pending(Pending::Slice(y))),
        ];
        let out = writable(Some(frame), appends);
        assert_eq!((out[0].1.records.len(), out[1].1.records.len()), (6, 6));
        let out = writable(
            None,
            vec![(3, pending(Pending::Slice(Bytes::from_static(b"abc"))))],
        );
        assert_eq!((out[0].0, &out[0].1.records[..]), (3, &b"abc"[..]));
    }

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
    fn validation_maps_to_kafka_codes() {
        let good = Bytes::from(batch(3));
        assert!(validate(&Some(good.clone()), 1 << 20, 1 << 30).is_ok());
        let code = |r: Result<BatchHeader, (i16, String)>| r.err().map(|e| e.0);
        assert_eq!(code(validate(&None, 1 << 20, 1 << 30)), Some(87));
        assert_eq!(code(validate(&Some(good.clone()), 10, 1 << 30)), Some(10));
        assert_eq!(code(validate(&Some(good.clone()), 1 << 20, 10)), Some(18));
        let mut bad = batch(3);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            code(validate(&Some(Bytes::from(bad)), 1 << 20, 1 << 30)),
            Some(2)
        );
        let two = [batch(1), batch(1)].concat();
        assert_eq!(
            code(validate(&Some(Bytes::from(two)), 1 << 20, 1 << 30)),
            Some(87)
        );
        assert_eq!(
            code(validate(&Some(good.slice(..30)), 1 << 20, 1 << 30)),
            Some(2)
        );
    }
}
