//! Admin APIs against the real `fjord` binary over TCP: configs that take effect at
//! once, CreatePartitions, DeleteRecords, DescribeLogDirs, DescribeProducers,
//! DescribeCluster, ElectLeaders, DescribeQuorum and ListConfigResources.

mod common;

use std::time::{Duration, Instant};

use common::{batch, Broker, Client};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn create(c: &mut Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )]);
    let r: CreateTopicsResponse = c.request(7, &req);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

fn produce(c: &mut Client, topic: &str, partition: i32, values: &[&[u8]], acks: i16) -> (i16, i64) {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch(values, None, Compression::None)))])]);
    let r: ProduceResponse = c.request(9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch(
    c: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
) -> fetch_response::PartitionData {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let mut r: FetchResponse = c.request(12, &req);
    r.responses.remove(0).partitions.remove(0)
}

fn describe(
    c: &mut Client,
    resource_type: i8,
    resource: &str,
) -> describe_configs_response::DescribeConfigsResult {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(resource))]);
    let mut r: DescribeConfigsResponse = c.request(4, &req);
    r.results.remove(0)
}

fn config<'a>(
    r: &'a describe_configs_response::DescribeConfigsResult,
    key: &str,
) -> &'a describe_configs_response::DescribeConfigsResourceResult {
    r.configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"))
}

/// IncrementalAlterConfigs with (key, op, value) on one resource; returns the code.
fn alter(
    c: &mut Client,
    resource_type: i8,
    resource: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(resource))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            ),
    ]);
    let r: IncrementalAlterConfigsResponse = c.request(1, &req);
    let x = &r.responses[0];
    (
        x.error_code,
        x.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// Retries `f` until it returns true (config changes reach every shard through the
/// image channel, a moment after the proposer's shard).
fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("condition not reached in 10 s");
}

#[test]
fn configs_describe_alter_and_take_effect_at_once() {
    let broker = Broker::start("admin-configs", &["log.retention.bytes=123456789"]);
    let mut c = broker.client();
    create(&mut c, "cfg", 2, &[("retention.ms", "100000")]);

    let d = describe(&mut c, 2, "cfg");
    assert_eq!(d.error_code, 0);
    assert_eq!(d.configs.len(), 33);
    let ret = config(&d, "retention.ms");
    assert_eq!(
        (ret.value.as_ref().map(|v| v.as_str()), ret.config_source),
        (Some("100000"), 1)
    );
    let bytes = config(&d, "retention.bytes");
    assert_eq!(
        (
            bytes.value.as_ref().map(|v| v.as_str()),
            bytes.config_source
        ),
        (Some("123456789"), 4)
    );
    assert_eq!(bytes.synonyms[0].name.as_str(), "log.retention.bytes");
    let seg = config(&d, "segment.bytes");
    assert_eq!((seg.config_source, seg.config_type), (5, 3));
    assert!(seg.documentation.is_some());
    assert_eq!(describe(&mut c, 2, "missing").error_code, 3);

    // Bad input: INVALID_CONFIG naming the key; unknown ops are invalid requests.
    let (code, msg) = alter(&mut c, 2, "cfg", &[("segment.bytes", 0, Some("5"))]);
    assert_eq!(code, 40);
    assert!(msg.unwrap_or_default().contains("segment.bytes"));
    assert_eq!(alter(&mut c, 2, "cfg", &[("no.such", 0, Some("1"))]).0, 40);
    assert_eq!(
        alter(&mut c, 2, "cfg", &[("retention.ms", 2, Some("1"))]).0,
        40
    );

    // APPEND / SUBTRACT on a list; DELETE falls back to the default.
    assert_eq!(
        alter(&mut c, 2, "cfg", &[("cleanup.policy", 2, Some("compact"))]).0,
        0
    );
    let d = describe(&mut c, 2, "cfg");
    assert_eq!(
        config(&d, "cleanup.policy")
            .value
            .as_ref()
            .map(|v| v.as_str()),
        Some("delete,compact")
    );
    assert_eq!(
        alter(
            &mut c,
            2,
            "cfg",
            &[
                ("cleanup.policy", 3, Some("compact")),
                ("retention.ms", 1, None)
            ]
        )
        .0,
        0
    );
    let d = describe(&mut c, 2, "cfg");
    assert_eq!(
        config(&d, "cleanup.policy")
            .value
            .as_ref()
            .map(|v| v.as_str()),
        Some("delete")
    );
    assert_eq!(config(&d, "retention.ms").config_source, 5);

    // max.message.bytes lowered: MESSAGE_TOO_LARGE at once, on every partition's shard.
    let big = vec![7u8; 4000];
    assert_eq!(produce(&mut c, "cfg", 0, &[&big], 1).0, 0);
    assert_eq!(
        alter(&mut c, 2, "cfg", &[("max.message.bytes", 0, Some("1000"))]).0,
        0
    );
    for p in 0..2 {
        eventually(|| produce(&mut c, "cfg", p, &[&big], 1).0 == 10);
    }
    // A cluster-wide dynamic default applies where the topic has no override.
    create(&mut c, "cfg2", 1, &[]);
    assert_eq!(
        alter(&mut c, 4, "", &[("message.max.bytes", 0, Some("2000"))]).0,
        0
    );
    eventually(|| produce(&mut c, "cfg2", 0, &[&big], 1).0 == 10);
    let d = describe(&mut c, 2, "cfg2");
    assert_eq!(config(&d, "max.message.bytes").config_source, 3);
    // The cluster default: min.insync.replicas recorded at bootstrap, plus the change.
    let d = describe(&mut c, 4, "");
    assert_eq!(d.configs.len(), 2);
    assert_eq!(config(&d, "message.max.bytes").config_source, 3);
    let d = describe(&mut c, 4, "1");
    assert!(config(&d, "num.partitions").read_only);
    assert!(!config(&d, "message.max.bytes").read_only);
    assert_eq!(
        alter(&mut c, 4, "1", &[("num.partitions", 0, Some("3"))]).0,
        40
    );
    assert_eq!(describe(&mut c, 4, "7").error_code, 42);

    // min.insync.replicas counts at most the replication factor (Kafka's effective
    // minimum): 2 on a single replica still takes acks=all.
    assert_eq!(
        alter(&mut c, 2, "cfg2", &[("min.insync.replicas", 0, Some("2"))]).0,
        0
    );
    assert_eq!(produce(&mut c, "cfg2", 0, &[b"x"], -1).0, 0);
    assert_eq!(produce(&mut c, "cfg2", 0, &[b"x"], 1).0, 0);
    // Per broker it cannot be set while eligible leader replicas are on; the cluster
    // default cannot be removed.
    let (code, msg) = alter(&mut c, 4, "1", &[("min.insync.replicas", 0, Some("2"))]);
    assert_eq!(code, 40, "{msg:?}");
    assert_eq!(
        alter(&mut c, 4, "", &[("min.insync.replicas", 1, None)]).0,
        40
    );
}

#[test]
fn retention_change_applies_immediately() {
    let broker = Broker::start("admin-retention", &[]);
    let mut c = broker.client();
    // Kafka's smallest segment: 11 batches of 100 KB fill one and start a second.
    create(&mut c, "ret", 1, &[("segment.bytes", "1048576")]);
    let value = vec![1u8; 100_000];
    for _ in 0..11 {
        assert_eq!(produce(&mut c, "ret", 0, &[&value], -1).0, 0);
    }
    assert_eq!(fetch(&mut c, "ret", 0, 0).error_code, 0);
    // The batches' timestamps are from 2023: a one-hour retention expires all but the
    // active segment as soon as the change is applied.
    assert_eq!(
        alter(&mut c, 2, "ret", &[("retention.ms", 0, Some("3600000"))]).0,
        0
    );
    eventually(|| fetch(&mut c, "ret", 0, 10).log_start_offset > 0);
    assert_eq!(fetch(&mut c, "ret", 0, 0).error_code, 1);
}

#[test]
fn create_partitions_delete_records_and_describe() {
    let broker = Broker::start("admin-partitions", &[]);
    let mut c = broker.client();
    create(&mut c, "grow", 1, &[]);
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    let grow = |count: i32, validate_only: bool| {
        CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_validate_only(validate_only)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name("grow"))
                .with_count(count)
                .with_assignments(None)])
    };
    let r: CreatePartitionsResponse = c.request(3, &grow(3, true));
    assert_eq!(r.results[0].error_code, 0);
    let r: CreatePartitionsResponse = c.request(3, &grow(3, false));
    assert_eq!(r.results[0].error_code, 0);
    let r: CreatePartitionsResponse = c.request(3, &grow(2, false));
    assert_eq!(r.results[0].error_code, 37);
    for p in 0..3 {
        eventually(|| produce(&mut c, "grow", p, &[b"one", b"two"], -1) == (0, 0));
    }

    // DeleteRecords moves the low watermark; fetches below it are out of range.
    for _ in 0..3 {
        produce(&mut c, "grow", 0, &[b"v"], -1);
    }
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    let del = |offset: i64| {
        DeleteRecordsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name("grow"))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(offset)])])
    };
    let r: DeleteRecordsResponse = c.request(2, &del(3));
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (0, 3));
    assert_eq!(fetch(&mut c, "grow", 0, 1).error_code, 1);
    let f = fetch(&mut c, "grow", 0, 3);
    assert_eq!((f.error_code, f.log_start_offset), (0, 3));
    let r: DeleteRecordsResponse = c.request(2, &del(99));
    assert_eq!(r.topics[0].partitions[0].error_code, 1);
    let r: DeleteRecordsResponse = c.request(2, &del(-1));
    assert_eq!(r.topics[0].partitions[0].low_watermark, 5);

    // DescribeLogDirs: one directory, every partition with its size.
    let r: DescribeLogDirsResponse =
        c.request(4, &DescribeLogDirsRequest::default().with_topics(None));
    assert_eq!(r.results.len(), 1);
    let dir = &r.results[0];
    assert!(dir.total_bytes > 0 && dir.usable_bytes > 0);
    let t = dir
        .topics
        .iter()
        .find(|t| t.name.0.as_str() == "grow")
        .expect("grow listed");
    assert_eq!(t.partitions.len(), 3);
    assert!(t.partitions.iter().all(|p| p.partition_size > 0));

    // DescribeCluster and ElectLeaders.
    let r: DescribeClusterResponse =
        c.request(1, &DescribeClusterRequest::default().with_endpoint_type(1));
    assert_eq!(
        (r.error_code, r.brokers.len(), r.controller_id.0),
        (0, 1, 1)
    );
    let r: DescribeClusterResponse =
        c.request(1, &DescribeClusterRequest::default().with_endpoint_type(2));
    assert_eq!(r.error_code, 114);
    let r: ElectLeadersResponse = c.request(
        2,
        &ElectLeadersRequest::default().with_topic_partitions(None),
    );
    let grow_result = r
        .replica_election_results
        .iter()
        .find(|t| t.topic.0.as_str() == "grow")
        .expect("grow");
    assert_eq!(grow_result.partition_result.len(), 3);
    assert!(grow_result
        .partition_result
        .iter()
        .all(|p| p.error_code == 84));
}

#[test]
fn describe_producers_reports_the_idempotent_producer() {
    let broker = Broker::start("admin-producers", &[]);
    let mut c = broker.client();
    create(&mut c, "idem", 1, &[]);
    let init = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut pid: InitProducerIdResponse = c.request(4, &init);
    eventually(|| {
        pid = c.request(4, &init);
        pid.error_code == 0
    });
    let producer = (pid.producer_id.0, pid.producer_epoch, 0);
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("idem"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(
                    &[b"a", b"b", b"c"],
                    Some(producer),
                    Compression::None,
                )))])]);
    let r: ProduceResponse = c.request(9, &req);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(name("idem"))
        .with_partition_indexes(vec![0, 5])]);
    let r: DescribeProducersResponse = c.request(0, &req);
    let parts = &r.topics[0].partitions;
    assert_eq!(parts[0].error_code, 0);
    let p = &parts[0].active_producers[0];
    assert_eq!(
        (p.producer_id.0, p.last_sequence, p.coordinator_epoch),
        (pid.producer_id.0, 2, -1)
    );
    assert_eq!(p.last_timestamp, 1_700_000_000_002);
    assert_eq!(parts[1].error_code, 3);
}

#[test]
fn describe_quorum_of_a_lone_node_and_of_another_partition() {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    let broker = Broker::start("admin-quorum", &[]);
    let mut c = broker.client();
    create(&mut c, "quorum-writes", 1, &[]);
    let ask = |topic: &str, partition: i32| {
        DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(name(topic))
            .with_partitions(vec![
                PartitionData::default().with_partition_index(partition)
            ])])
    };
    for v in 0..=2 {
        let r: DescribeQuorumResponse = c.request(v, &ask("__cluster_metadata", 0));
        assert_eq!(r.error_code, 0);
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.leader_id.0), (0, 1), "v{v}");
        assert!(p.leader_epoch >= 1 && p.high_watermark > 0, "v{v}: {p:?}");
        assert_eq!(p.current_voters.len(), 1);
        let me = &p.current_voters[0];
        assert_eq!((me.replica_id.0, me.log_end_offset), (1, p.high_watermark));
        if v >= 1 {
            assert!(me.last_fetch_timestamp > 0 && me.last_caught_up_timestamp > 0);
        }
        assert_eq!(r.nodes.len(), if v >= 2 { 1 } else { 0 });
    }
    // Any other partition: UNKNOWN_TOPIC_OR_PARTITION per partition, as Kafka's Raft client.
    for (topic, partition) in [("__cluster_metadata", 1), ("quorum-writes", 0)] {
        let r: DescribeQuorumResponse = c.request(2, &ask(topic, partition));
        assert_eq!(r.error_code, 0);
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.partition_index, p.error_code), (partition, 3));
    }
}

#[test]
fn list_config_resources_names_brokers_and_topics() {
    let broker = Broker::start("admin-list-config-resources", &[]);
    let mut c = broker.client();
    create(&mut c, "listed", 1, &[]);
    let ask = |types: Vec<i8>| ListConfigResourcesRequest::default().with_resource_types(types);
    let rows = |r: &ListConfigResourcesResponse| -> Vec<(i8, String)> {
        r.config_resources
            .iter()
            .map(|c| (c.resource_type, c.resource_name.to_string()))
            .collect()
    };
    // v1, every type: the broker, then every topic (in Kafka's type order).
    let r: ListConfigResourcesResponse = c.request(1, &ask(vec![]));
    assert_eq!(r.error_code, 0);
    let all = rows(&r);
    assert_eq!(all.first(), Some(&(4, "1".to_string())), "{all:?}");
    assert!(all.contains(&(2, "listed".to_string())), "{all:?}");
    // Only topics, asked twice: each once.
    let r: ListConfigResourcesResponse = c.request(1, &ask(vec![2, 2]));
    assert_eq!(rows(&r), all[1..].to_vec());
    // v0 is client metrics only, of which Fjord keeps none.
    let r: ListConfigResourcesResponse = c.request(0, &ask(vec![]));
    assert_eq!((r.error_code, r.config_resources.len()), (0, 0));
    // A type Kafka does not define fails the whole request.
    let r: ListConfigResourcesResponse = c.request(1, &ask(vec![2, 64]));
    assert_eq!((r.error_code, r.config_resources.len()), (35, 0));
}
