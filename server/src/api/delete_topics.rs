//! DeleteTopics (key 20), versions 1–6: by name, and by topic id from v6.

use std::rc::Rc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::create_topics::propose;
use crate::metadata::Command;
use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0–5 name topics in `topic_names`; v6 uses `topics` with a name or an id.
    let wanted: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let image = shard.cluster.image();
        let topic = match &name {
            Some(n) => image.topic(n.0.as_str()),
            None => image.topic_by_id(&id),
        };
        let mut result = DeletableTopicResult::default()
            .with_name(name.clone())
            .with_topic_id(id);
        match topic {
            Some(t) if t.is_internal() => {
                result.error_code = ResponseError::TopicDeletionDisabled.code();
            }
            Some(t) => {
                result.name = Some(TopicName(StrBytes::from_string(t.name.clone())));
                result.topic_id = t.id;
                if let Err(e) = propose(shard, Command::DeleteTopic { id: t.id }).await {
                    result.error_code = ResponseError::UnknownServerError.code();
                    result.error_message = Some(StrBytes::from_string(e.to_string()));
                }
            }
            None if name.is_some() => {
                result.error_code = ResponseError::UnknownTopicOrPartition.code();
                result.error_message = Some(StrBytes::from_static_str(
                    "This server does not host this topic-partition.",
                ));
            }
            None => {
                result.error_code = ResponseError::UnknownTopicId.code();
                result.error_message = Some(StrBytes::from_static_str(
                    "This server does not host this topic ID.",
                ));
            }
        }
        super::count_error("DeleteTopics", result.error_code);
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
