//! DeleteRecords (key 21), versions 0–2: moves each partition's log start offset
//! forward (storage's `advance_log_start_offset`, checkpointed, whole segments below it
//! deleted). Runs on each partition's owning shard. Afterwards fetches below the new
//! start get OFFSET_OUT_OF_RANGE and ListOffsets(earliest) answers it.

use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use crate::partition::{Partition, StorageError};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let image = shard.cluster.image();
    let mut topics: Vec<DeleteRecordsTopicResult> = Vec::with_capacity(req.topics.len());
    let mut targets = Vec::new();
    for t in &req.topics {
        let found = image.topic(t.name.0.as_str());
        topics.push(DeleteRecordsTopicResult::default().with_name(t.name.clone()));
        for p in &t.partitions {
            targets.push(match found {
                Some(topic)
                    if p.partition_index >= 0
                        && (p.partition_index as usize) < topic.partitions.len() =>
                {
                    Ok((topic.id, p.partition_index, p.offset))
                }
                _ => Err(ResponseError::UnknownTopicOrPartition.code()),
            });
        }
    }
    let mut answers = super::route::on_owners(shard, targets, delete_on_owner)
        .await
        .into_iter();
    for (t, result) in req.topics.iter().zip(topics.iter_mut()) {
        for (p, answer) in t.partitions.iter().zip(answers.by_ref()) {
            let mut r = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            match answer {
                Ok(low) => r.low_watermark = low,
                Err(code) => r.error_code = code,
            }
            result.partitions.push(r);
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
fn delete_on_owner(partition: &Partition, offset: i64) -> Result<i64, i16> {
    partition.delete_records(offset).map_err(|e| match e {
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        other => {
            tracing::error!(topic = %partition.topic, partition = partition.index, error = %other, "DeleteRecords failed");
            ResponseError::KafkaStorageError.code()
        }
    })
}
