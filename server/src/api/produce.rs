//! Produce (key 0), versions 3–13 (advertised from 0 like Kafka 4).
//!
//! Each partition's records are checked on the connection's shard
//! (`partition::validate`: one v2 batch, CRC-32C, size limits, topic rules), then
//! appended on the owning shard. acks=all waits for fdatasync; acks=1 for the write;
//! acks=0 gets no response.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::metadata::{ClusterImage, TopicImage};
use crate::partition::registry::Unavailable;
use crate::partition::validate::{self, RecordError, Records};
use crate::partition::{now_ms, AppendError, Appended, BatchHeader};
use crate::shard::Shard;
use crate::wire::frame::take_parts;
use crate::wire::records::KafkaRecords;

/// A partition's records after validation, ready for its owner.
struct Append<R = BytesMut> {
    topic_id: Uuid,
    index: i32,
    records: R,
    header: BatchHeader,
    log_append_time: Option<i64>,
    sync: bool,
    /// acks=all: how long to wait for the ISR after the append.
    replicate_wait: Option<std::time::Duration>,
}

/// Why one partition's records were refused: Kafka's code and message, and
/// (KIP-467) the records at fault, by index in the batch.
#[derive(Debug, PartialEq)]
struct Refused {
    code: i16,
    message: Option<String>,
    record_errors: Vec<(i32, String)>,
    /// With record errors, Kafka reports the partition's log start offset (-1
    /// otherwise); filled in from the partition's owner.
    log_start_offset: i64,
}

impl From<(i16, Option<String>)> for Refused {
    fn from((code, message): (i16, Option<String>)) -> Refused {
        Refused {
            code,
            message,
            record_errors: Vec::new(),
            log_start_offset: -1,
        }
    }
}

/// The outcome for one partition: why it was refused, or the append result.
type Outcome = Result<Appended, Refused>;

/// Kafka's code for refused records, with the message clients show.
fn record_error(e: RecordError) -> Refused {
    let (code, msg) = match e {
        RecordError::Records {
            errors,
            invalid_timestamp,
        } => {
            let code = if invalid_timestamp {
                ResponseError::InvalidTimestamp
            } else {
                ResponseError::InvalidRecord
            };
            return Refused {
                code: code.code(),
                message: Some(RecordError::records_message(&errors, invalid_timestamp)),
                record_errors: errors,
                log_start_offset: -1,
            };
        }
        RecordError::Invalid(m) => (ResponseError::InvalidRecord, m),
        RecordError::Corrupt(m) => (ResponseError::CorruptMessage, m),
        RecordError::TooLarge(m) => (ResponseError::MessageTooLarge, m),
        RecordError::ListTooLarge(m) => (ResponseError::RecordListTooLarge, m),
        RecordError::Timestamp(m) => (ResponseError::InvalidTimestamp, m),
        RecordError::NotEnoughReplicas(m) => (ResponseError::NotEnoughReplicas, m),
    };
    (code.code(), Some(msg)).into()
}

/// What one request partition needs besides its records.
struct Request<'a> {
    image: &'a ClusterImage,
    acks: i16,
    /// Position of the partition among all of the request's partitions.
    position: usize,
    now_ms: i64,
    sync: bool,
    timeout_ms: i32,
}

/// Checks one request partition and validates its records, on the connection's shard.
fn prepare(
    shard: &Shard,
    r: &Request<'_>,
    topic: Option<&TopicImage>,
    by_id: bool,
    part: &PartitionProduceData,
) -> Result<Append<Records>, Refused> {
    let code = |e: ResponseError| Refused::from((e.code(), None));
    if r.position >= shard.config.max_partitions_per_request {
        return Err((
            ResponseError::PolicyViolation.code(),
            Some("Too many partitions in one request".into()),
        )
            .into());
    }
    if !matches!(r.acks, -1..=1) {
        return Err(code(ResponseError::InvalidRequiredAcks));
    }
    let tp = match topic {
        Some(tp) => tp,
        None if by_id => return Err(code(ResponseError::UnknownTopicId)),
        None => return Err(code(ResponseError::UnknownTopicOrPartition)),
    };
    if part.index < 0 || part.index as usize >= tp.partitions.len() {
        return Err(code(ResponseError::UnknownTopicOrPartition));
    }
    if !shard.cluster.leads(tp, part.index) {
        return Err(code(ResponseError::NotLeaderOrFollower));
    }
    // The topic's effective configs: overrides, dynamic, static, default.
    let settings = shard.cluster.topic_settings(r.image, tp);
    let produce = validate::Produce {
        topic: tp.name.as_str(),
        index: part.index,
        settings: &settings,
        acks: r.acks,
        isr: tp.partitions[part.index as usize].isr.len() as i64,
        replicas: tp.partitions[part.index as usize].replicas.len() as i64,
        now_ms: r.now_ms,
    };
    let v =
        validate::validate(part.records.as_ref(), &produce, &KafkaRecords).map_err(record_error)?;
    Ok(Append {
        topic_id: tp.id,
        index: part.index,
        records: v.records,
        header: v.header,
        log_append_time: settings.log_append_time.then_some(r.now_ms),
        sync: r.sync || settings.flush_messages == 1,
        replicate_wait: (r.acks == -1)
            .then(|| std::time::Duration::from_millis(r.timeout_ms.max(0) as u64)),
    })
}

/// Makes every append's records writable (storage patches offsets in place), taking
/// slices out of the request frame without a copy where it can.
fn writable(frame: Option<Bytes>, appends: Vec<(usize, Append<Records>)>) -> Vec<(usize, Append)> {
    let slices: Vec<Bytes> = appends
        .iter()
        .filter_map(|(_, a)| match &a.records {
            Records::Slice(b) => Some(b.clone()),
            Records::Owned(_) => None,
        })
        .collect();
    // Only the slices above may refer to the frame now.
    let appends: Vec<(usize, Append<Option<BytesMut>>)> = appends
        .into_iter()
        .map(|(slot, a)| {
            let a = a.map(|r| match r {
                Records::Slice(_) => None,
                Records::Owned(b) => Some(b),
            });
            (slot, a)
        })
        .collect();
    let mut parts = take_parts(frame, slices).into_iter();
    appends
        .into_iter()
        .map(|(slot, a)| {
            let a = a.map(|r| r.unwrap_or_else(|| parts.next().unwrap_or_default()));
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
            replicate_wait: self.replicate_wait,
        }
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
    let mut r = Request {
        image: &image,
        acks,
        position: 0,
        now_ms: now_ms(),
        sync: acks == -1 || shard.config.log_flush_interval_messages == 1,
        timeout_ms: req.timeout_ms,
    };
    // One outcome per request partition, in request order; appends name their slot.
    let mut outcomes: Vec<Option<Outcome>> = Vec::new();
    let mut appends: Vec<(usize, Append<Records>)> = Vec::new();
    // Refusals naming records, which report the partition's log start offset.
    let mut need_start: Vec<(usize, (usize, Uuid, i32))> = Vec::new();
    for topic in &req.topic_data {
        let found = if version >= 13 {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.name.0.as_str())
        };
        for part in &topic.partition_data {
            r.position = outcomes.len();
            match prepare(shard, &r, found.map(|t| &**t), version >= 13, part) {
                Ok(a) => {
                    appends.push((outcomes.len(), a));
                    outcomes.push(None);
                }
                Err(e) => {
                    if let (false, Some(t)) = (e.record_errors.is_empty(), found) {
                        let slot = outcomes.len();
                        need_start.push((shard.owner(&t.id, part.index), (slot, t.id, part.index)));
                    }
                    outcomes.push(Some(Err(e)));
                }
            }
        }
    }

    // What the response needs of the request, owned; then the request goes, so that
    // the records can leave the frame without a copy.
    let mut responses: Vec<(TopicProduceResponse, Vec<i32>)> = req
        .topic_data
        .iter()
        .map(|t| {
            let response = TopicProduceResponse::default()
                .with_name(TopicName(StrBytes::from_string(t.name.0.to_string())))
                .with_topic_id(t.topic_id);
            (response, t.partition_data.iter().map(|p| p.index).collect())
        })
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
                    Err((ResponseError::NotLeaderOrFollower.code(), None).into()),
                )
            },
        )
        .await;
    for (slot, outcome) in results {
        if let Some(s) = outcomes.get_mut(slot) {
            *s = Some(outcome);
        }
    }
    if !need_start.is_empty() {
        let starts = shard
            .scatter(
                need_start,
                |s: Rc<Shard>, (slot, id, index): (usize, Uuid, i32)| async move {
                    let start = match s.partitions.ready(&id, index).await {
                        Ok(p) => p.log_start_offset(),
                        Err(_) => -1,
                    };
                    (slot, start)
                },
                || (usize::MAX, -1),
            )
            .await;
        for (slot, start) in starts {
            if let Some(Some(Err(e))) = outcomes.get_mut(slot) {
                e.log_start_offset = start;
            }
        }
    }
    if acks == 0 {
        return None;
    }
    let mut outcomes = outcomes.into_iter();
    for (response, indexes) in &mut responses {
        for &index in indexes.iter() {
            let outcome = outcomes.next().flatten();
            response
                .partition_responses
                .push(partition_response(index, outcome));
        }
    }
    let mut topics: Vec<TopicProduceResponse> = responses.into_iter().map(|(t, _)| t).collect();
    let node_endpoints = if version >= 10 {
        point_to_leaders(&shard.cluster.image(), &mut topics, version >= 13)
    } else {
        Vec::new()
    };
    Some(
        ProduceResponse::default()
            .with_responses(topics)
            .with_node_endpoints(node_endpoints),
    )
}

/// KIP-951: a partition answered NOT_LEADER_OR_FOLLOWER names its current leader and
/// epoch, and the response carries those leaders' endpoints, so the client re-routes
/// without a Metadata round trip.
fn point_to_leaders(
    image: &ClusterImage,
    topics: &mut [TopicProduceResponse],
    by_id: bool,
) -> Vec<NodeEndpoint> {
    let mut leaders = std::collections::BTreeSet::new();
    for t in topics.iter_mut() {
        let topic = if by_id {
            image.topic_by_id(&t.topic_id)
        } else {
            image.topic(t.name.0.as_str())
        };
        for p in &mut t.partition_responses {
            if p.error_code != ResponseError::NotLeaderOrFollower.code() {
                continue;
            }
            let named =
                super::route::current_leader(image, topic.map(|t| &**t), p.index, &mut leaders);
            if let Some((id, epoch)) = named {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(id))
                    .with_leader_epoch(epoch);
            }
        }
    }
    super::route::endpoints(image, &leaders)
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect()
}

fn partition_response(index: i32, outcome: Option<Outcome>) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1);
    match outcome.unwrap_or(Err((ResponseError::UnknownServerError.code(), None).into())) {
        Ok(a) => {
            r.base_offset = a.base_offset;
            r.log_append_time_ms = a.log_append_time_ms;
            r.log_start_offset = a.log_start_offset;
        }
        Err(e) => {
            r.error_code = e.code;
            r.log_start_offset = e.log_start_offset;
            r.error_message = e.message.map(StrBytes::from_string);
            r.record_errors = e
                .record_errors
                .into_iter()
                .map(|(i, m)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(i)
                        .with_batch_index_error_message(Some(StrBytes::from_string(m)))
                })
                .collect();
            super::count_error("Produce", e.code);
        }
    }
    r
}

/// Runs on the partition's owner shard.
async fn append_on_owner(shard: &Rc<Shard>, a: Append) -> Outcome {
    let partition = match shard.partitions.ready(&a.topic_id, a.index).await {
        Ok(p) => p,
        Err(Unavailable::Offline(why)) => {
            return Err((ResponseError::KafkaStorageError.code(), Some(why)).into())
        }
        Err(u) => return Err((super::route::unavailable_code(&u), None).into()),
    };
    let last_offset_delta = i64::from(a.header.last_offset_delta);
    let appended = partition
        .clone()
        .append(a.records, a.header, a.log_append_time, a.sync)
        .await
        .map_err(|e| Refused::from(append_error(e)))?;
    if let Some(wait) = a.replicate_wait.filter(|_| partition.is_replicated()) {
        partition
            .wait_replicated(appended.base_offset + last_offset_delta, wait)
            .await
            .map_err(|e| Refused::from(append_error(e)))?;
    }
    Ok(appended)
}

/// Kafka's code for a refused or unfinished append.
fn append_error(e: AppendError) -> (i16, Option<String>) {
    match e {
        AppendError::InvalidProducerEpoch => (ResponseError::InvalidProducerEpoch.code(), None),
        AppendError::OutOfOrderSequence => (ResponseError::OutOfOrderSequenceNumber.code(), None),
        AppendError::NotLeader => (ResponseError::NotLeaderOrFollower.code(), None),
        AppendError::NotEnoughReplicasAfterAppend => (
            ResponseError::NotEnoughReplicasAfterAppend.code(),
            Some("The ISR fell under min.insync.replicas before the write was replicated".into()),
        ),
        AppendError::TimedOut => (ResponseError::RequestTimedOut.code(), None),
        AppendError::Storage(m) => (ResponseError::KafkaStorageError.code(), Some(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_errors_map_to_kafka_codes() {
        let code = |e| record_error(e).code;
        assert_eq!(code(RecordError::Invalid(String::new())), 87);
        assert_eq!(code(RecordError::Corrupt(String::new())), 2);
        assert_eq!(code(RecordError::TooLarge(String::new())), 10);
        assert_eq!(code(RecordError::ListTooLarge(String::new())), 18);
        assert_eq!(code(RecordError::Timestamp(String::new())), 32);
        assert_eq!(code(RecordError::NotEnoughReplicas(String::new())), 19);
        let keyless = RecordError::Records {
            errors: vec![(1, "no key".into())],
            invalid_timestamp: false,
        };
        assert_eq!(
            record_error(keyless),
            Refused {
                code: 87,
                message: Some(
                    "One or more records have been rejected due to 1 record errors in total, \
                     and only showing the first three errors at most: \
                     [RecordError(batchIndex=1, message='no key')]"
                        .into()
                ),
                record_errors: vec![(1, "no key".into())],
                log_start_offset: -1,
            }
        );
        let late = RecordError::Records {
            errors: vec![(0, "old".into()), (2, "no key".into())],
            invalid_timestamp: true,
        };
        let r = record_error(late);
        assert_eq!(r.code, 32);
        assert_eq!(
            r.message.as_deref(),
            Some("One or more records have been rejected due to invalid timestamp")
        );
    }

    #[test]
    fn writable_keeps_owned_records_and_slot_order() {
        let frame = Bytes::from((0u8..100).collect::<Vec<u8>>());
        let header = BatchHeader::parse(&fjord_storage::testing::build_batch(1000, &[b"a"]))
            .expect("a valid batch");
        let append = |records| Append {
            topic_id: Uuid::nil(),
            index: 0,
            records,
            header,
            log_append_time: None,
            sync: false,
            replicate_wait: None,
        };
        let out = writable(
            Some(frame.clone()),
            vec![
                (0, append(Records::Slice(frame.slice(60..80)))),
                (
                    1,
                    append(Records::Owned(BytesMut::from(&b"recompressed"[..]))),
                ),
                (2, append(Records::Slice(frame.slice(10..30)))),
            ],
        );
        assert_eq!(out.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(&out[0].1.records[..], &(60u8..80).collect::<Vec<u8>>()[..]);
        assert_eq!(&out[1].1.records[..], b"recompressed");
        assert_eq!(&out[2].1.records[..], &(10u8..30).collect::<Vec<u8>>()[..]);
    }
}
