//! DeleteRecords (key 21), versions 0–2: moves each partition's log start offset
//! forward (storage's `advance_log_start_offset`, checkpointed, whole segments below it
//! deleted). Runs on each partition's owning shard. Afterwards fetches below the new
//! start get OFFSET_OUT_OF_RANGE and ListOffsets(earliest) answers it.

use std::rc::Rc;

use fjord_storage::StorageError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let image = shard.image();
    // (topic slot, partition slot) → result; routed work for known partitions.
    let mut topics: Vec<DeleteRecordsTopicResult> = Vec::with_capacity(req.topics.len());
    let mut work = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let found = image.topic(t.name.0.as_str());
        let mut result = DeleteRecordsTopicResult::default().with_name(t.name.clone());
        for (pi, p) in t.partitions.iter().enumerate() {
            let mut r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            match found {
                Some(topic)
                    if p.partition_index >= 0
                        && (p.partition_index as usize) < topic.partitions.len() =>
                {
                    let owner = shard.owner(&topic.id, p.partition_index);
                    work.push((owner, (ti, pi, topic.id, p.partition_index, p.offset)));
                }
                _ => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
            }
            result.partitions.push(r);
        }
        topics.push(result);
    }
    let done = shard
        .scatter(
            work,
            |s: Rc<Shard>, (ti, pi, id, index, offset): (usize, usize, Uuid, i32, i64)| async move {
                (ti, pi, delete_on_owner(&s, id, index, offset))
            },
            || {
                (
                    usize::MAX,
                    0,
                    Err(ResponseError::NotLeaderOrFollower.code()),
                )
            },
        )
        .await;
    for (ti, pi, outcome) in done {
        let Some(r) = topics.get_mut(ti).and_then(|t| t.partitions.get_mut(pi)) else {
            continue;
        };
        match outcome {
            Ok(low) => r.low_watermark = low,
            Err(code) => r.error_code = code,
        }
    }
    for t in &topics {
        for p in &t.partitions {
            super::count_error("DeleteRecords", p.error_code);
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Runs on the partition's owner shard; returns the new low watermark.
fn delete_on_owner(shard: &Shard, id: Uuid, index: i32, offset: i64) -> Result<i64, i16> {
    let partition = match shard.partition(&id, index) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(ResponseError::UnknownTopicOrPartition.code()),
        Err(_) => return Err(ResponseError::KafkaStorageError.code()),
    };
    partition.delete_records(offset).map_err(|e| match e {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        other => {
            tracing::error!(topic = %partition.topic, partition = index, error = %other, "DeleteRecords failed");
            ResponseError::KafkaStorageError.code()
        }
    })
}
