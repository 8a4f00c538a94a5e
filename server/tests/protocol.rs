//! Protocol-level tests against the real `fjord` binary over TCP.

mod common;

use common::{batch, Broker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create(c: &mut common::Client, topic: &str, partitions: i32) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    c.request(7, &req)
}

fn produce(
    c: &mut common::Client,
    topic: &str,
    partition: i32,
    records: bytes::Bytes,
    acks: i16,
) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let r = c.request(9, &req);
    let p = &r.responses[0].partition_responses[0];
    if p.error_code != 0 {
        eprintln!("produce error {}: {:?}", p.error_code, p.error_message);
    }
    (p.error_code, p.base_offset)
}

fn fetch(
    c: &mut common::Client,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> fetch_response::PartitionData {
    let req = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let mut r = c.request(12, &req);
    r.responses.remove(0).partitions.remove(0)
}

fn values(records: &Option<bytes::Bytes>) -> Vec<(i64, Vec<u8>)> {
    let mut buf = records.clone().unwrap_or_default();
    let mut out = Vec::new();
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf).expect("decode");
        for r in set.records {
            out.push((r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()));
        }
    }
    out
}

#[test]
fn api_versions_advertises_table_and_answers_unknown_version_with_v0() {
    let broker = Broker::start("apiversions", &[]);
    let mut c = broker.client();
    let r = c.request(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("it"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    assert_eq!(r.error_code, 0);
    let produce = r.api_keys.iter().find(|k| k.api_key == 0).expect("produce");
    assert_eq!((produce.min_version, produce.max_version), (0, 13));
    assert!(
        r.api_keys
            .iter()
            .all(|k| k.api_key != ApiKey::GetTelemetrySubscriptions as i16),
        "no unbuilt APIs"
    );
    for key in [
        ApiKey::ConsumerGroupHeartbeat,
        ApiKey::ConsumerGroupDescribe,
    ] {
        let k = r.api_keys.iter().find(|k| k.api_key == key as i16);
        assert_eq!(k.map(|k| (k.min_version, k.max_version)), Some((0, 1)));
    }

    // ApiVersions v99: v0 response with UNSUPPORTED_VERSION and our ranges.
    let mut raw = bytes::BytesMut::new();
    use bytes::BufMut;
    raw.put_i32(0);
    raw.put_i16(18);
    raw.put_i16(99);
    raw.put_i32(42);
    raw.put_i16(-1);
    raw.put_u8(0);
    let n = (raw.len() - 4) as i32;
    raw[..4].copy_from_slice(&n.to_be_bytes());
    c.send_raw(&raw);
    let frame = c.read_frame().expect("response");
    assert_eq!(&frame[..4], &42i32.to_be_bytes());
    assert_eq!(common::get_i16(&frame[4..]), 35);
}

#[test]
fn garbage_closes_the_connection_and_the_broker_keeps_serving() {
    let mut broker = Broker::start("garbage", &[]);
    let cases: Vec<Vec<u8>> = vec![
        0x7fff_ffffi32.to_be_bytes().to_vec(), // frame over socket.request.max.bytes
        (-3i32).to_be_bytes().to_vec(),        // negative size
        [&20i32.to_be_bytes()[..], &[0xAB; 20]].concat(), // random bytes
        [&10i32.to_be_bytes()[..], &9999i16.to_be_bytes(), &[0; 8]].concat(), // unknown API key
        [&10i32.to_be_bytes()[..], &1i16.to_be_bytes(), &[0; 8]].concat(), // Fetch v0: unsupported
        // Metadata v1 with an absurd topics array length.
        [
            &18i32.to_be_bytes()[..],
            &3i16.to_be_bytes(),
            &1i16.to_be_bytes(),
            &7i32.to_be_bytes(),
            &(-1i16).to_be_bytes(),
            &0x7fff_ffffi32.to_be_bytes(),
            &[0u8; 4],
        ]
        .concat(),
        // Metadata v12 (flexible) with an absurd compact array length.
        [
            &19i32.to_be_bytes()[..],
            &3i16.to_be_bytes(),
            &12i16.to_be_bytes(),
            &7i32.to_be_bytes(),
            &(-1i16).to_be_bytes(),
            &[0u8],
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
            &[0u8; 4],
        ]
        .concat(),
    ];
    for (i, bytes) in cases.iter().enumerate() {
        let mut c = broker.client();
        c.send_raw(bytes);
        assert!(
            c.closed_by_server(),
            "case {i}: connection should be closed"
        );
        assert!(broker.is_running(), "case {i}: broker died");
    }
    // A truncated frame followed by a hang-up.
    let mut c = broker.client();
    c.send_raw(&[0, 0, 0, 100, 0, 3]);
    drop(c);
    let mut c = broker.client();
    let r = c.request(1, &MetadataRequest::default().with_topics(Some(vec![])));
    assert_eq!(r.brokers.len(), 1);
}

#[test]
fn produce_fetch_list_offsets_and_restart() {
    let mut broker = Broker::start("produce", &["log.segment.bytes=1048576"]);
    let mut c = broker.client();
    let r = create(&mut c, "t1", 3);
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(
        create(&mut c, "t1", 3).topics[0].error_code,
        36,
        "TOPIC_ALREADY_EXISTS"
    );
    assert_eq!(
        create(&mut c, "bad/name", 1).topics[0].error_code,
        17,
        "INVALID_TOPIC_EXCEPTION"
    );

    let mut expected = Vec::new();
    for i in 0..20 {
        let vals: Vec<Vec<u8>> = (0..5)
            .map(|j| format!("v{}", i * 5 + j).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = vals.iter().map(|v| v.as_slice()).collect();
        let codec = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ][i % 5];
        let (err, base) = produce(
            &mut c,
            "t1",
            1,
            batch(&refs, None, codec),
            if i % 2 == 0 { -1 } else { 1 },
        );
        assert_eq!((err, base), (0, i as i64 * 5));
        expected.extend(
            vals.into_iter()
                .enumerate()
                .map(|(j, v)| ((i * 5 + j) as i64, v)),
        );
    }
    // Fetch everything, then from the middle of a batch: that whole batch comes back.
    let p = fetch(&mut c, "t1", 1, 0, 100);
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 100);
    assert_eq!(values(&p.records), expected);
    let p = fetch(&mut c, "t1", 1, 7, 100);
    assert_eq!(values(&p.records)[0].0, 5);
    assert_eq!(
        fetch(&mut c, "t1", 1, 101, 100).error_code,
        1,
        "OFFSET_OUT_OF_RANGE"
    );
    // Long poll at the end times out empty.
    let started = std::time::Instant::now();
    let p = fetch(&mut c, "t1", 1, 100, 300);
    assert!(values(&p.records).is_empty());
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));

    let lo = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("t1"))
            .with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(1)
                    .with_timestamp(-2),
                ListOffsetsPartition::default()
                    .with_partition_index(1)
                    .with_timestamp(-1),
            ])]);
    let r = c.request(7, &lo);
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        r.topics[0].partitions[1].error_code, 42,
        "duplicate partition is INVALID_REQUEST"
    );
    let by_time = |c: &mut common::Client, ts: i64| {
        let r = c.request(
            7,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name("t1"))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(1)
                        .with_timestamp(ts)])]),
        );
        r.topics[0].partitions[0].offset
    };
    // Versions before 4 carry no leader epoch; the answer must still encode (v1 and v3).
    for v in [1, 3] {
        let r = c.request(
            v,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(name("t1"))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(1)
                        .with_timestamp(-1)])]),
        );
        assert_eq!(
            (
                r.topics[0].partitions[0].error_code,
                r.topics[0].partitions[0].offset
            ),
            (0, 100)
        );
    }
    assert_eq!(by_time(&mut c, -2), 0);
    assert_eq!(by_time(&mut c, -1), 100);
    assert_eq!(
        by_time(&mut c, 1_700_000_000_003),
        3,
        "first record at or after the time"
    );
    assert_eq!(by_time(&mut c, 1_800_000_000_000), -1);

    // kill -9 and restart: everything acknowledged is still there.
    broker.kill9();
    broker.spawn();
    let mut c = broker.client();
    let p = fetch(&mut c, "t1", 1, 0, 100);
    assert_eq!(values(&p.records), expected);
    let (err, base) = produce(
        &mut c,
        "t1",
        1,
        batch(&[b"after"], None, Compression::None),
        -1,
    );
    assert_eq!((err, base), (0, 100));
    let m = c.request(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("t1")))
        ])),
    );
    assert_eq!(m.topics[0].partitions.len(), 3);
}

#[test]
fn idempotent_producer_sequences() {
    let broker = Broker::start("idempotent", &[]);
    let mut c = broker.client();
    create(&mut c, "idem", 1);
    let r = c.request(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(r.error_code, 0);
    let pid = r.producer_id.0;
    let r2 = c.request(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_ne!(
        r2.producer_id.0, pid,
        "each idempotent producer gets its own id"
    );

    let b0 = batch(&[b"a", b"b"], Some((pid, 0, 0)), Compression::None);
    assert_eq!(produce(&mut c, "idem", 0, b0.clone(), -1), (0, 0));
    assert_eq!(
        produce(&mut c, "idem", 0, b0, -1),
        (0, 0),
        "duplicate answered with its original offset"
    );
    let gap = batch(&[b"c"], Some((pid, 0, 5)), Compression::None);
    assert_eq!(
        produce(&mut c, "idem", 0, gap, -1).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    let next = batch(&[b"c"], Some((pid, 0, 2)), Compression::None);
    assert_eq!(produce(&mut c, "idem", 0, next, -1), (0, 2));
    let bumped = batch(&[b"d"], Some((pid, 1, 0)), Compression::None);
    assert_eq!(produce(&mut c, "idem", 0, bumped, -1), (0, 3));
    let fenced = batch(&[b"e"], Some((pid, 0, 3)), Compression::None);
    assert_eq!(
        produce(&mut c, "idem", 0, fenced, -1).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    let p = fetch(&mut c, "idem", 0, 0, 0);
    assert_eq!(values(&p.records).len(), 4);
}

#[test]
fn log_append_time_topic_and_metrics_endpoint() {
    let metrics_port = common::free_port();
    let listener = format!("fjord.metrics.listener=127.0.0.1:{metrics_port}");
    let broker = Broker::start("logappend", &[&listener]);
    let mut c = broker.client();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("lat"))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("message.timestamp.type"))
                    .with_value(Some(StrBytes::from_static_str("LogAppendTime"))),
            ])]);
    let r = c.request(7, &req);
    assert_eq!(r.topics[0].error_code, 0);
    let bad = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("badcfg"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("soon")))])]);
    assert_eq!(
        c.request(7, &bad).topics[0].error_code,
        40,
        "INVALID_CONFIG"
    );

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("lat"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&[b"x", b"y"], None, Compression::None)))])]);
    let r = c.request(8, &req);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    assert!(
        p.log_append_time_ms >= before,
        "broker time, not the producer's"
    );
    let fetched = fetch(&mut c, "lat", 0, 0, 0);
    let mut buf = fetched.records.expect("records");
    let header = fjord_storage::BatchHeader::parse(&buf).expect("header");
    assert!(header.timestamp_type_log_append());
    assert_eq!(header.max_timestamp, p.log_append_time_ms);
    assert!(
        fjord_storage::batch::crc_is_valid(&buf),
        "CRC recomputed after the rewrite"
    );
    let set = RecordBatchDecoder::decode(&mut buf).expect("decode");
    let log_append = kafka_protocol::records::TimestampType::LogAppend;
    assert!(set.records.iter().all(|r| r.timestamp_type == log_append));

    // The Prometheus endpoint reports requests by API and the log end offset.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    assert!(
        text.contains("fjord_requests_total{api=\"Produce\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("fjord_log_end_offset{topic=\"lat\",partition=\"0\"} 2"),
        "{text}"
    );
    assert!(text.contains("fjord_request_latency_seconds"), "{text}");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    use bytes::BufMut;
    use kafka_protocol::protocol::Encodable;
    let broker = Broker::start("pipeline", &[]);
    let mut c = broker.client();
    create(&mut c, "pipe", 4);
    // 50 requests written back to back (a long-polling fetch among them), then read.
    let mut out = bytes::BytesMut::new();
    for i in 0..50i32 {
        let mut frame = bytes::BytesMut::new();
        frame.put_i32(0);
        let (key, version) = if i == 10 { (1i16, 12i16) } else { (3, 9) };
        RequestHeader::default()
            .with_request_api_key(key)
            .with_request_api_version(version)
            .with_correlation_id(1000 + i)
            .encode(&mut frame, 2)
            .expect("header");
        if i == 10 {
            FetchRequest::default()
                .with_max_wait_ms(300)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(name("pipe"))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)])])
                .encode(&mut frame, version)
                .expect("fetch");
        } else {
            MetadataRequest::default()
                .with_topics(None)
                .encode(&mut frame, version)
                .expect("metadata");
        }
        let n = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&frame);
    }
    c.send_raw(&out);
    for i in 0..50i32 {
        let frame = c.read_frame().expect("response");
        assert_eq!(
            &frame[..4],
            &(1000 + i).to_be_bytes(),
            "response {i} out of order"
        );
    }
}

#[test]
fn acks_zero_validate_only_delete_by_name_and_id() {
    let mut broker = Broker::start("admin-basics", &[]);
    let mut c = broker.client();
    // validate_only creates nothing.
    let req = CreateTopicsRequest::default()
        .with_validate_only(true)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name("v"))
            .with_num_partitions(2)
            .with_replication_factor(1)]);
    let r = c.request(7, &req);
    assert_eq!((r.topics[0].error_code, r.topics[0].num_partitions), (0, 2));
    let m = c.request(
        12,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("v")))
            ])),
    );
    assert_eq!(m.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let r = create(&mut c, "rf", 1);
    assert_eq!(r.topics[0].error_code, 0);
    let too_many = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("rf3"))
        .with_num_partitions(1)
        .with_replication_factor(3)]);
    assert_eq!(
        c.request(7, &too_many).topics[0].error_code,
        38,
        "INVALID_REPLICATION_FACTOR"
    );

    // acks=0: no response; the next request's answer comes straight back.
    let req = ProduceRequest::default()
        .with_acks(0)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("rf"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(
                    &[b"fire", b"forget"],
                    None,
                    Compression::None,
                )))])]);
    {
        use bytes::BufMut;
        use kafka_protocol::protocol::Encodable;
        let mut frame = bytes::BytesMut::new();
        frame.put_i32(0);
        RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(9)
            .with_correlation_id(77)
            .encode(&mut frame, 2)
            .expect("header");
        req.encode(&mut frame, 9).expect("produce");
        let n = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&n.to_be_bytes());
        c.send_raw(&frame);
    }
    let mut got = Vec::new();
    for _ in 0..50 {
        got = values(&fetch(&mut c, "rf", 0, 0, 100).records);
        if got.len() == 2 {
            break;
        }
    }
    assert_eq!(got, vec![(0, b"fire".to_vec()), (1, b"forget".to_vec())]);

    // Delete by name (v5), then by id (v6).
    let d = c.request(
        5,
        &DeleteTopicsRequest::default().with_topic_names(vec![name("rf"), name("nope")]),
    );
    assert_eq!(d.responses[0].error_code, 0);
    assert_eq!(d.responses[1].error_code, 3);
    let id = create(&mut c, "byid", 1).topics[0].topic_id;
    let d = c.request(
        6,
        &DeleteTopicsRequest::default().with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_topic_id(id),
        ]),
    );
    assert_eq!(d.responses[0].error_code, 0);
    let m = c.request(12, &MetadataRequest::default().with_topics(None));
    assert!(m.topics.is_empty(), "{:?}", m.topics);
    assert!(
        !broker.dir.join("rf-0").exists(),
        "deleted topic's data is removed"
    );

    // Directories renamed aside are removed in the background, and at start-up those a
    // previous run left behind.
    let leftovers = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with("-delete"))
                    .count()
            })
            .unwrap_or(0)
    };
    let gone = |dir: &std::path::Path| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while leftovers(dir) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        leftovers(dir) == 0
    };
    assert!(gone(&broker.dir));
    broker.stop();
    let left = broker.dir.join("old-0.0123456789abcdef-delete");
    std::fs::create_dir_all(&left).expect("mkdir");
    std::fs::write(left.join("00000000000000000000.log"), b"old").expect("write");
    broker.spawn();
    assert!(gone(&broker.dir), "a leftover of an earlier run is removed");
}

#[test]
fn producer_state_and_max_timestamp_survive_restart() {
    let mut broker = Broker::start("pstate", &[]);
    let mut c = broker.client();
    create(&mut c, "ps", 1);
    let pid = c
        .request(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .producer_id
        .0;
    let b0 = batch(&[b"a", b"b", b"c"], Some((pid, 0, 0)), Compression::Lz4);
    assert_eq!(produce(&mut c, "ps", 0, b0.clone(), -1), (0, 0));
    broker.kill9();
    broker.spawn();
    let mut c = broker.client();
    assert_eq!(
        produce(&mut c, "ps", 0, b0, -1),
        (0, 0),
        "a retry after restart is still a duplicate"
    );
    let gap = batch(&[b"d"], Some((pid, 0, 9)), Compression::None);
    assert_eq!(produce(&mut c, "ps", 0, gap, -1).0, 45);
    let lo = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name("ps"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-3)])]);
    let r = c.request(7, &lo);
    let p = &r.topics[0].partitions[0];
    assert_eq!(
        (p.error_code, p.offset, p.timestamp),
        (0, 2, 1_700_000_000_002)
    );
}

#[test]
fn bad_configuration_stops_start_up_naming_the_key() {
    for (arg, key) in [
        ("no.such.key=1", "no.such.key"),
        ("num.partitions=zero", "num.partitions"),
        (
            "log.retention.hour=5",
            "log.retention.hour: unknown configuration key; did you mean log.retention.hours?",
        ),
        ("num.io.threads=0", "num.io.threads"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fjord"))
            .args([
                "--override",
                arg,
                "--override",
                "log.dirs=/nonexistent/never-created",
            ])
            .output()
            .expect("run fjord");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn topic_compression_type_recompresses() {
    let broker = Broker::start("recompress", &[]);
    let mut c = broker.client();
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("zs"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("compression.type"))
            .with_value(Some(StrBytes::from_static_str("zstd")))])]);
    assert_eq!(c.request(7, &req).topics[0].error_code, 0);
    let vals: Vec<&[u8]> = vec![b"a", b"bb", b"ccc"];
    assert_eq!(
        produce(&mut c, "zs", 0, batch(&vals, None, Compression::Gzip), -1),
        (0, 0)
    );
    assert_eq!(
        produce(&mut c, "zs", 0, batch(&vals, None, Compression::Zstd), -1),
        (0, 3)
    );
    let p = fetch(&mut c, "zs", 0, 0, 0);
    let records = p.records.clone().expect("records");
    let ranges = fjord_storage::batch::split_batches(&records).expect("batches");
    assert_eq!(ranges.len(), 2);
    for r in ranges {
        let h = fjord_storage::BatchHeader::parse(&records[r]).expect("header");
        assert_eq!(h.compression(), 4, "stored as zstd");
    }
    let got: Vec<Vec<u8>> = values(&p.records).into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        got,
        vec![
            b"a".to_vec(),
            b"bb".to_vec(),
            b"ccc".to_vec(),
            b"a".to_vec(),
            b"bb".to_vec(),
            b"ccc".to_vec()
        ]
    );
}

#[test]
fn offset_for_leader_epoch_reads_the_epoch_cache() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let broker = Broker::start("epochs", &[]);
    let mut c = broker.client();
    create(&mut c, "ep", 1);
    assert_eq!(
        produce(
            &mut c,
            "ep",
            0,
            batch(&[b"a", b"b"], None, Compression::None),
            -1
        ),
        (0, 0)
    );
    let ask = |c: &mut common::Client, current: i32, epoch: i32| {
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(name("ep"))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(epoch)])]);
        let r = c.request(4, &req);
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    assert_eq!(
        ask(&mut c, 0, 0),
        (0, 0, 2),
        "the latest epoch ends at the log end"
    );
    assert_eq!(ask(&mut c, -1, 3), (0, -1, -1), "a future epoch is unknown");
    assert_eq!(ask(&mut c, 5, 0).0, 75, "UNKNOWN_LEADER_EPOCH");
    let text =
        std::fs::read_to_string(broker.dir.join("ep-0/leader-epoch-checkpoint")).expect("file");
    assert_eq!(text, "0\n1\n0 0\n", "Kafka's checkpoint format");
}

#[test]
fn a_typo_in_kafkas_shipped_server_properties_is_refused_with_a_suggestion() {
    let dir = std::env::temp_dir().join(format!("fjord-typo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let shipped = include_str!("data/kafka-4.1-server.properties");
    let path = dir.join("server.properties");
    let typo = shipped.replace("num.network.threads=3", "num.netwrk.threads=3");
    assert_ne!(typo, shipped, "the shipped file sets num.network.threads");
    std::fs::write(&path, typo).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run fjord");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "num.netwrk.threads: unknown configuration key; did you mean num.network.threads?"
        ),
        "{err}"
    );
}
