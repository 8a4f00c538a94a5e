//! Request decode/encode cost with the kafka-protocol crate, as the broker pays it:
//! a Produce request of 8 partitions x 16 records x 1 KiB, and a Fetch request and
//! response of 8 partitions (1 MiB of records each in the response).

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const PRODUCE_VERSION: i16 = 11;
const FETCH_VERSION: i16 = 12;
const PARTITIONS: i32 = 8;

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("bench"))
}

/// A valid v2 batch of `count` uncompressed records with `value_bytes`-byte values.
fn batch(value_bytes: usize, count: usize) -> Bytes {
    let value = vec![7u8; value_bytes];
    let values: Vec<&[u8]> = (0..count).map(|_| value.as_slice()).collect();
    fjord_storage::testing::build_batch(1_700_000_000_000, &values).freeze()
}

fn encode<T: Encodable>(msg: &T, version: i16) -> Bytes {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version).expect("encodable");
    buf.freeze()
}

fn produce(c: &mut Criterion) {
    let records = batch(1024, 16);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(
                (0..PARTITIONS)
                    .map(|p| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(records.clone()))
                    })
                    .collect(),
            )]);
    let wire = encode(&request, PRODUCE_VERSION);
    let mut g = c.benchmark_group("produce_request");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("decode_v11_8x16x1KiB", |b| {
        b.iter(|| {
            let mut buf = wire.clone();
            black_box(ProduceRequest::decode(&mut buf, PRODUCE_VERSION).expect("decodes"))
        })
    });
    g.bench_function("encode_v11_8x16x1KiB", |b| {
        let mut buf = BytesMut::with_capacity(wire.len());
        b.iter(|| {
            buf.clear();
            request.encode(&mut buf, PRODUCE_VERSION).expect("encodes");
            black_box(buf.len())
        })
    });
    g.finish();
}

fn fetch(c: &mut Criterion) {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(8 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic())
            .with_partitions(
                (0..PARTITIONS)
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(1_000_000)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]);
    let request_wire = encode(&request, FETCH_VERSION);
    let one = batch(1024, 16);
    let mut chunk = BytesMut::new();
    while chunk.len() + one.len() <= 1 << 20 {
        chunk.extend_from_slice(&one);
    }
    let chunk = chunk.freeze();
    let response = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(topic())
        .with_partitions(
            (0..PARTITIONS)
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p)
                        .with_high_watermark(2_000_000)
                        .with_last_stable_offset(2_000_000)
                        .with_records(Some(chunk.clone()))
                })
                .collect(),
        )]);
    let response_len = encode(&response, FETCH_VERSION).len();

    let mut g = c.benchmark_group("fetch");
    g.bench_function("request_decode_v12_8_partitions", |b| {
        b.iter(|| {
            let mut buf = request_wire.clone();
            black_box(FetchRequest::decode(&mut buf, FETCH_VERSION).expect("decodes"))
        })
    });
    g.throughput(Throughput::Bytes(response_len as u64));
    g.bench_function("response_encode_v12_8x1MiB", |b| {
        let mut buf = BytesMut::with_capacity(response_len);
        b.iter(|| {
            buf.clear();
            response.encode(&mut buf, FETCH_VERSION).expect("encodes");
            black_box(buf.len())
        })
    });
    g.finish();
}

criterion_group!(benches, produce, fetch);
criterion_main!(benches);
