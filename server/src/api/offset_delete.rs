//! OffsetDelete (key 47), version 0: removes committed offsets of partitions the group
//! is not consuming (tombstones in `__consumer_offsets`).

use std::rc::Rc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::ResponseError;

use super::find_coordinator::{group_code, locate};
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let image = shard.cluster.image();
    let mut early: Vec<(usize, i32, i16)> = Vec::new();
    let mut asked: Vec<(usize, String, i32)> = Vec::new();
    for (t, topic) in req.topics.iter().enumerate() {
        let name = topic.name.0.to_string();
        for p in &topic.partitions {
            let i = p.partition_index;
            match image.topic(&name) {
                Some(tp) if i >= 0 && (i as usize) < tp.partitions.len() => {
                    asked.push((t, name.clone(), i))
                }
                _ => early.push((t, i, ResponseError::UnknownTopicOrPartition.code())),
            }
        }
    }
    let group_id = req.group_id.0.to_string();
    let result = if group_id.is_empty() {
        Err(ResponseError::InvalidGroupId.code())
    } else {
        match locate(shard, &group_id).await {
            Err(code) => Err(code),
            Ok((loc, owner)) => {
                let parts: Vec<(String, i32)> =
                    asked.iter().map(|(_, n, p)| (n.clone(), *p)).collect();
                shard
                    .invoke_on(owner, move |s| async move {
                        s.groups
                            .delete_offsets(loc, &group_id, parts)
                            .await
                            .map_err(group_code)
                    })
                    .await
                    .unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code()))
            }
        }
    };
    let codes = match result {
        Err(code) => {
            super::count_error("OffsetDelete", code);
            return OffsetDeleteResponse::default().with_error_code(code);
        }
        Ok(codes) => codes,
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = req
        .topics
        .iter()
        .map(|t| OffsetDeleteResponseTopic::default().with_name(t.name.clone()))
        .collect();
    let answered = asked
        .iter()
        .zip(codes)
        .map(|((t, _, p), (_, _, error))| (*t, *p, error.map_or(0, group_code)));
    for (t, p, code) in early.into_iter().chain(answered) {
        super::count_error("OffsetDelete", code);
        topics[t].partitions.push(
            OffsetDeleteResponsePartition::default()
                .with_partition_index(p)
                .with_error_code(code),
        );
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
