//! ListOffsets (key 2), versions 1–10: earliest, latest, max timestamp, and the first
//! offset whose timestamp is at or after a given time. Runs on the shard that received
//! the request; each partition is looked up on its owner shard.

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::route;
use crate::partition::Partition;
use crate::shard::Shard;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// (error code, timestamp, offset, leader epoch)
type Answer = (i16, i64, i64, i32);

/// A request partition: (topic position, partition, (topic id, timestamp) or an error code).
type Slot = (usize, i32, Result<(Uuid, i64), i16>);

/// Finds (timestamp, offset) of the first record in `batch` matching `pick`.
fn find_record(
    batch: bytes::Bytes,
    pick: impl Fn(&[(i64, i64)]) -> Option<(i64, i64)>,
) -> Option<(i64, i64)> {
    let mut buf = batch;
    let set = RecordBatchDecoder::decode(&mut buf).ok()?;
    let records: Vec<(i64, i64)> = set
        .records
        .iter()
        .map(|r| (r.timestamp, r.offset))
        .collect();
    pick(&records)
}

/// Answers one partition on its owner shard; lookups by time await their disk reads.
async fn lookup(p: &Partition, version: i16, ts: i64) -> Answer {
    // Leader epochs are in the response from v4; earlier versions must leave it unset.
    let epoch = if version >= 4 { p.leader_epoch() } else { -1 };
    let none = (0, -1, -1, -1);
    match ts {
        LATEST => (0, -1, p.high_watermark(), epoch),
        EARLIEST | EARLIEST_LOCAL => (0, -1, p.log_start_offset(), epoch),
        LATEST_TIERED if version >= 9 => none,
        MAX_TIMESTAMP if version >= 7 => match p.batch_with_max_timestamp().await {
            Ok(Some(batch)) => find_record(batch, |rs| {
                let max = rs.iter().map(|r| r.0).max()?;
                rs.iter().find(|r| r.0 == max).copied()
            })
            .map(|(t, o)| (0, t, o, epoch))
            .unwrap_or(none),
            Ok(None) => none,
            Err(_) => (ResponseError::KafkaStorageError.code(), -1, -1, -1),
        },
        t if t >= 0 => match p.batch_for_timestamp(t).await {
            Ok(Some(batch)) => find_record(batch, |rs| rs.iter().find(|r| r.0 >= t).copied())
                .filter(|(_, o)| *o < p.high_watermark())
                .map(|(ts, o)| (0, ts, o, epoch))
                .unwrap_or(none),
            Ok(None) => none,
            Err(_) => (ResponseError::KafkaStorageError.code(), -1, -1, -1),
        },
        _ => (ResponseError::UnsupportedVersion.code(), -1, -1, -1),
    }
}

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let image = shard.cluster.image();
    let mut slots: Vec<Slot> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let found = image.topic(topic.name.0.as_str());
        for p in &topic.partitions {
            let slot = match found {
                _ if !seen.insert((topic.name.0.to_string(), p.partition_index)) => {
                    Err(ResponseError::InvalidRequest.code())
                }
                Some(tp)
                    if p.partition_index >= 0
                        && (p.partition_index as usize) < tp.partitions.len()
                        && !shard.cluster.leads(tp, p.partition_index) =>
                {
                    Err(ResponseError::NotLeaderOrFollower.code())
                }
                Some(tp)
                    if p.partition_index >= 0
                        && (p.partition_index as usize) < tp.partitions.len() =>
                {
                    Ok((tp.id, p.timestamp))
                }
                _ => Err(ResponseError::UnknownTopicOrPartition.code()),
            };
            slots.push((t, p.partition_index, slot));
        }
    }
    let targets = slots
        .iter()
        .map(|(_, index, s)| s.map(|(id, ts)| (id, *index, ts)))
        .collect();
    let answers = route::on_owners_async(shard, targets, move |p, ts| async move {
        Ok(lookup(&p, version, ts).await)
    })
    .await;
    let mut topics: Vec<ListOffsetsTopicResponse> = req
        .topics
        .iter()
        .map(|t| ListOffsetsTopicResponse::default().with_name(t.name.clone()))
        .collect();
    for ((t, index, _), answer) in slots.into_iter().zip(answers) {
        let (code, ts, offset, epoch) = answer.unwrap_or_else(|code| (code, -1, -1, -1));
        super::count_error("ListOffsets", code);
        topics[t].partitions.push(
            ListOffsetsPartitionResponse::default()
                .with_partition_index(index)
                .with_error_code(code)
                .with_timestamp(ts)
                .with_offset(offset)
                .with_leader_epoch(epoch),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
