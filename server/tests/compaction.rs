//! Log compaction against the real binary: the latest value per key survives with its
//! offset, tombstones go after delete.retention.ms, keyless records are refused, and
//! a kill -9 at any point loses nothing.

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::Broker;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::*;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One batch of (key, value) records stamped now.
fn keyed_batch(records: &[(Option<String>, Option<String>)]) -> Bytes {
    let ts = now_ms();
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: ts,
            key: k.clone().map(Bytes::from),
            value: v.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::Lz4,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode");
    buf.freeze()
}

fn produce(c: &mut common::Client, records: Bytes) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("cmp"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    c.request(9, &req).responses[0].partition_responses[0].error_code
}

/// Every record from offset 0: (offset, key, value).
fn read_all(c: &mut common::Client) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("cmp"))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let r = c.request(12, &req);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let mut buf = p.records.clone().unwrap_or_default();
        if buf.is_empty() {
            return out;
        }
        while !buf.is_empty() {
            let set = RecordBatchDecoder::decode(&mut buf).expect("decode");
            for r in set.records {
                offset = r.offset + 1;
                let key = String::from_utf8_lossy(&r.key.unwrap_or_default()).to_string();
                let value = r.value.map(|v| String::from_utf8_lossy(&v).to_string());
                out.push((r.offset, key, value));
            }
        }
    }
}

#[test]
fn compaction_keeps_latest_per_key_and_drops_tombstones() {
    let mut broker = Broker::start("compaction", &["log.cleaner.backoff.ms=200"]);
    let mut c = broker.client();
    let config = |k: &'static str, v: &'static str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str(k))
            .with_value(Some(StrBytes::from_static_str(v)))
    };
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("cmp"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![
            config("cleanup.policy", "compact"),
            config("segment.ms", "100"),
            config("min.cleanable.dirty.ratio", "0.01"),
            config("delete.retention.ms", "2000"),
        ])]);
    assert_eq!(c.request(7, &req).topics[0].error_code, 0);

    // Ten versions of 100 keys, one batch per version, rolling a segment each time.
    let keys = 100;
    for version in 0..10 {
        let recs: Vec<_> = (0..keys)
            .map(|k| (Some(format!("k{k}")), Some(format!("v{version}"))))
            .collect();
        assert_eq!(produce(&mut c, keyed_batch(&recs)), 0);
        std::thread::sleep(Duration::from_millis(120));
    }
    // Tombstones for the first ten keys, then one more batch so they leave the active segment.
    let tombstones: Vec<_> = (0..10).map(|k| (Some(format!("k{k}")), None)).collect();
    assert_eq!(produce(&mut c, keyed_batch(&tombstones)), 0);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(
        produce(
            &mut c,
            keyed_batch(&[(Some("last".into()), Some("x".into()))])
        ),
        0
    );
    assert_eq!(
        produce(&mut c, keyed_batch(&[(None, Some("keyless".into()))])),
        87,
        "INVALID_RECORD for a keyless record on a compacted topic"
    );
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(
        produce(
            &mut c,
            keyed_batch(&[(Some("roll".into()), Some("y".into()))])
        ),
        0
    );

    // Latest version of k10..k99 at their original offsets (900 + k), tombstones gone
    // once delete.retention.ms has passed.
    let expected: Vec<(i64, String, Option<String>)> = (10..keys)
        .map(|k| (900 + k as i64, format!("k{k}"), Some("v9".to_string())))
        .chain([(1010, "last".to_string(), Some("x".to_string()))])
        .chain([(1011, "roll".to_string(), Some("y".to_string()))])
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = read_all(&mut c);
    while seen != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        seen = read_all(&mut c);
    }
    assert_eq!(seen, expected);

    // kill -9 and restart: the compacted log reads the same and appends continue.
    broker.kill9();
    broker.spawn();
    let mut c = broker.client();
    assert_eq!(read_all(&mut c), expected);
    assert_eq!(
        produce(
            &mut c,
            keyed_batch(&[(Some("k50".into()), Some("v10".into()))])
        ),
        0
    );
    let after = read_all(&mut c);
    assert_eq!(after.last().map(|r| r.0), Some(1012));
}
