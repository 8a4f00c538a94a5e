//! The follower's side of Fetch (key 1): a follower's request to its leader and the
//! leader's answer, as plain values, coded through kafka-protocol. Pure.
//!
//! Followers speak the same Fetch every client speaks, at version [`VERSION`]: the
//! `ReplicaState` names the follower and its broker epoch, each partition carries
//! its current leader epoch and the epoch of its last batch (so the leader can say
//! where it diverges), and there is no fetch session (session id 0, epoch -1: a full fetch each time).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

/// The Fetch version followers send: v15 carries `ReplicaState`, v18 each partition's
/// high watermark on the follower.
pub const VERSION: i16 = 18;

/// One partition a follower asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionFetch {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The follower's log end: everything before it is written (and, with durable
    /// high watermarks, fdatasync'd) on the follower.
    pub fetch_offset: i64,
    pub current_leader_epoch: i32,
    /// The leader epoch of the follower's last batch (-1: none).
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub max_bytes: i32,
}

/// What the follower sends besides its partitions.
#[derive(Clone, Debug)]
pub struct FetchParams {
    pub replica_id: i32,
    /// The follower's registration epoch (KIP-903; -1: not registered yet).
    pub broker_epoch: i64,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
}

/// The leader's answer for one partition.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionFetched {
    pub topic_id: Uuid,
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// (epoch, end offset) where the follower's log diverges from the leader's.
    pub diverging: Option<(i32, i64)>,
    pub records: Bytes,
}

/// The request frame (size prefix included).
pub fn encode_request(
    correlation_id: i32,
    client_id: &str,
    params: &FetchParams,
    partitions: &[PartitionFetch],
) -> anyhow::Result<Bytes> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in partitions {
        let part = FetchPartition::default()
            .with_partition(p.partition)
            .with_current_leader_epoch(p.current_leader_epoch)
            .with_fetch_offset(p.fetch_offset)
            .with_last_fetched_epoch(p.last_fetched_epoch)
            .with_log_start_offset(p.log_start_offset)
            .with_partition_max_bytes(p.max_bytes)
            .with_high_watermark(p.high_watermark);
        match topics.last_mut() {
            Some(t) if t.topic_id == p.topic_id => t.partitions.push(part),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![part]),
            ),
        }
    }
    let req = FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(params.replica_id))
                .with_replica_epoch(params.broker_epoch),
        )
        .with_max_wait_ms(params.max_wait_ms)
        .with_min_bytes(params.min_bytes)
        .with_max_bytes(params.max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::with_capacity(256 + 40 * partitions.len());
    buf.put_i32(0);
    header.encode(&mut buf, ApiKey::Fetch.request_header_version(VERSION))?;
    req.encode(&mut buf, VERSION)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame (without its size prefix): its correlation id and each
/// partition's answer.
pub fn decode_response(mut frame: Bytes) -> anyhow::Result<(i32, Vec<PartitionFetched>)> {
    let header =
        ResponseHeader::decode(&mut frame, ApiKey::Fetch.response_header_version(VERSION))?;
    let resp = FetchResponse::decode(&mut frame, VERSION)?;
    if frame.has_remaining() {
        anyhow::bail!("{} bytes after the fetch response", frame.remaining());
    }
    if resp.error_code != 0 {
        anyhow::bail!("fetch refused with error {}", resp.error_code);
    }
    let mut out = Vec::new();
    for t in resp.responses {
        for p in t.partitions {
            let d = &p.diverging_epoch;
            out.push(PartitionFetched {
                topic_id: t.topic_id,
                partition: p.partition_index,
                error_code: p.error_code,
                high_watermark: p.high_watermark,
                log_start_offset: p.log_start_offset,
                diverging: (d.epoch >= 0 || d.end_offset >= 0).then_some((d.epoch, d.end_offset)),
                records: p.records.unwrap_or_default(),
            });
        }
    }
    Ok((header.correlation_id, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        EpochEndOffset, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::ResponseKind;

    #[test]
    fn requests_decode_as_the_server_reads_them_and_answers_round_trip() {
        let parts = vec![
            PartitionFetch {
                topic_id: Uuid::from_u128(7),
                partition: 0,
                fetch_offset: 42,
                current_leader_epoch: 3,
                last_fetched_epoch: 2,
                log_start_offset: 0,
                high_watermark: 40,
                max_bytes: 1 << 20,
            },
            PartitionFetch {
                topic_id: Uuid::from_u128(7),
                partition: 2,
                fetch_offset: 0,
                current_leader_epoch: 3,
                last_fetched_epoch: -1,
                log_start_offset: 0,
                high_watermark: 0,
                max_bytes: 1 << 20,
            },
        ];
        let params = FetchParams {
            replica_id: 2,
            broker_epoch: 31,
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 10 << 20,
        };
        let mut frame = encode_request(9, "fjord-replica-2", &params, &parts).expect("encode");
        let size = frame.get_i32() as usize;
        assert_eq!(size, frame.len());
        let decoded = crate::wire::decode_request(frame, |_| Some((0, VERSION))).expect("decode");
        let crate::wire::Decoded::Request(req) = decoded else {
            panic!("not a request");
        };
        let kafka_protocol::messages::RequestKind::Fetch(f) = req.body else {
            panic!("not a fetch");
        };
        assert_eq!(f.replica_state.replica_id.0, 2);
        assert_eq!(f.replica_state.replica_epoch, 31);
        assert_eq!(f.topics.len(), 1);
        assert_eq!(f.topics[0].partitions[0].last_fetched_epoch, 2);
        assert_eq!(f.topics[0].partitions[1].fetch_offset, 0);

        let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic_id(Uuid::from_u128(7))
            .with_partitions(vec![
                PartitionData::default()
                    .with_partition_index(0)
                    .with_high_watermark(40)
                    .with_diverging_epoch(
                        EpochEndOffset::default().with_epoch(2).with_end_offset(30),
                    )
                    .with_records(Some(Bytes::new())),
                PartitionData::default()
                    .with_partition_index(2)
                    .with_high_watermark(40)
                    .with_records(Some(Bytes::from_static(b"batches"))),
            ])]);
        let mut out =
            crate::wire::encode_response(9, ApiKey::Fetch, VERSION, &ResponseKind::Fetch(resp))
                .expect("encode")
                .freeze();
        out.advance(4);
        let (correlation, answers) = decode_response(out).expect("decode");
        assert_eq!(correlation, 9);
        assert_eq!(answers[0].diverging, Some((2, 30)));
        assert_eq!(answers[1].diverging, None);
        assert_eq!(&answers[1].records[..], b"batches");
    }
}
