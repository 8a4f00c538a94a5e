//! OffsetFetch (key 9), versions 1–9: one group (v1–7, all partitions from v2 with a
//! null topic list) or several groups at once (v8+), each read on its coordinator
//! shard. A partition without a commit answers offset -1, like Kafka.

use std::rc::Rc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::group::coordinator::offsets::FetchedOffsets;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let (code, fetched) = fetch(shard, g.group_id.0.to_string(), topics).await;
            let topics = fetched
                .into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, v)| {
                                    let (o, e, m) = fields(v);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(e)
                                        .with_metadata(Some(StrBytes::from_string(m)))
                                })
                                .collect(),
                        )
                })
                .collect();
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(code)
                    .with_topics(topics),
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    // v1 has no "all topics" form: a null list there means none.
    let topics = match req.topics {
        Some(ts) => Some(
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect(),
        ),
        None if version < 2 => Some(Vec::new()),
        None => None,
    };
    let (code, fetched) = fetch(shard, req.group_id.0.to_string(), topics).await;
    let topics = fetched
        .into_iter()
        .map(|(t, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(t)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, v)| {
                            let (o, e, m) = fields(v);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(e)
                                .with_metadata(Some(StrBytes::from_string(m)))
                                // v1 has no top-level error: it goes on each partition.
                                .with_error_code(if version < 2 { code } else { 0 })
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default()
        .with_error_code(code)
        .with_topics(topics)
}

fn fields(v: Option<crate::group::records::OffsetCommitValue>) -> (i64, i32, String) {
    match v {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}

/// One group's offsets, or its error with the requested partitions at -1.
async fn fetch(
    shard: &Rc<Shard>,
    group_id: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> (i16, FetchedOffsets) {
    let unknown = |topics: &Option<Vec<(String, Vec<i32>)>>| -> FetchedOffsets {
        topics
            .iter()
            .flatten()
            .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (*p, None)).collect()))
            .collect()
    };
    let (loc, owner) = match locate(shard, &group_id).await {
        Ok(l) => l,
        Err(code) => return (code, unknown(&topics)),
    };
    let asked = topics.clone();
    let result = shard
        .invoke_on(owner, move |s| async move {
            s.groups
                .fetch_offsets(loc, &group_id, topics)
                .await
                .map_err(group_code)
        })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code()));
    match result {
        Ok(f) => (0, f),
        Err(code) => {
            super::count_error("OffsetFetch", code);
            (code, unknown(&asked))
        }
    }
}
