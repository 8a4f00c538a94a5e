//! A 3-node cluster of real `fjord` processes on 127.0.0.1–127.0.0.3: placement
//! spreads leaders, requests route to leaders, the controller fails over, a killed
//! node rejoins with its data, and a full restart keeps topics, ids and offsets.
//! Every wait is bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{batch, wait_for, Client, Cluster};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create(c: &mut Client, topic: &str, partitions: i32) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
    c.request(7, &req).topics[0].error_code
}

fn metadata(c: &mut Client, topic: &str) -> MetadataResponse {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    c.request(12, &req)
}

/// Partition → leader, once every partition has a live leader.
fn leaders(c: &mut Client, topic: &str) -> BTreeMap<i32, i32> {
    let m = metadata(c, topic);
    m.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect()
}

fn produce(c: &mut Client, topic: &str, partition: i32, value: &[u8]) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch(&[value], None, Compression::None)))])]);
    let r = c.request(9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch(c: &mut Client, topic: &str, partition: i32, offset: i64) -> (i16, Vec<Vec<u8>>) {
    let req = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let mut r = c.request(12, &req);
    let p = r.responses.remove(0).partitions.remove(0);
    let mut buf = p.records.unwrap_or_default();
    let mut values = Vec::new();
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf).expect("decode");
        values.extend(
            set.records
                .into_iter()
                .map(|r| r.value.unwrap_or_default().to_vec()),
        );
    }
    (p.error_code, values)
}

/// Waits until node `via` lists exactly `live` brokers and knows a controller.
fn wait_brokers(cluster: &mut Cluster, via: u32, live: &[i32], limit: Duration) -> i32 {
    let mut c = cluster.node(via).client();
    let want: BTreeSet<i32> = live.iter().copied().collect();
    wait_for(limit, "the broker list", || {
        let m = c.request(12, &MetadataRequest::default().with_topics(Some(vec![])));
        let got: BTreeSet<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
        (got == want && m.controller_id.0 > 0).then_some(m.controller_id.0)
    })
}

/// Produces `value` to every partition through its leader, checks a non-leader
/// refuses, and returns the offsets.
fn produce_everywhere(
    cluster: &mut Cluster,
    topic: &str,
    partitions: usize,
    value: &[u8],
) -> BTreeMap<i32, i64> {
    // Node 1 may apply the topic's metadata a moment after the node that was asked.
    let map = wait_for(Duration::from_secs(5), "node 1's leaders", || {
        let m = leaders(&mut cluster.node(1).client(), topic);
        (m.len() == partitions && m.values().all(|&l| l > 0)).then_some(m)
    });
    let mut offsets = BTreeMap::new();
    for (&p, &leader) in &map {
        // The leader itself may apply the image a moment later than node 1: retry
        // NOT_LEADER_OR_FOLLOWER for a bounded time, as clients do.
        let mut c = cluster.node(leader as u32).client();
        let deadline = Instant::now() + Duration::from_secs(5);
        let (code, offset) = loop {
            let (code, offset) = produce(&mut c, topic, p, value);
            if code != NOT_LEADER_OR_FOLLOWER || Instant::now() >= deadline {
                break (code, offset);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(code, 0, "partition {p} on its leader {leader}");
        offsets.insert(p, offset);
        let other = leader as u32 % 3 + 1;
        let (code, _) = produce(&mut cluster.node(other).client(), topic, p, value);
        assert_eq!(
            code, NOT_LEADER_OR_FOLLOWER,
            "partition {p} on node {other}"
        );
    }
    offsets
}

#[test]
fn three_node_cluster_places_routes_fails_over_and_restarts() {
    let started = Instant::now();
    let mut cluster = Cluster::start(
        "main",
        3,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500",
        ],
    );
    let controller = wait_brokers(&mut cluster, 1, &[1, 2, 3], Duration::from_secs(20));
    eprintln!(
        "cluster up, controller {controller}, in {:?}",
        started.elapsed()
    );

    // A 12-partition topic created through node 2 spreads its leaders over all three.
    assert_eq!(create(&mut cluster.node(2).client(), "spread", 12), 0);
    let map = wait_for(Duration::from_secs(5), "leaders of 'spread'", || {
        let m = leaders(&mut cluster.node(3).client(), "spread");
        (m.len() == 12 && m.values().all(|&l| l > 0)).then_some(m)
    });
    let spread: BTreeSet<i32> = map.values().copied().collect();
    assert_eq!(spread, [1, 2, 3].into(), "leaders {map:?}");

    // Produce and fetch on every partition through its leader.
    let first = produce_everywhere(&mut cluster, "spread", 12, b"one");
    for (&p, &leader) in &map {
        let (code, values) = fetch(
            &mut cluster.node(leader as u32).client(),
            "spread",
            p,
            first[&p],
        );
        assert_eq!((code, values), (0, vec![b"one".to_vec()]), "partition {p}");
    }

    // Kill the Raft leader: a new topic can be created within 5 s through a survivor.
    let victim = controller as u32;
    let survivor = victim % 3 + 1;
    cluster.node(victim).kill9();
    let killed = Instant::now();
    let mut c = cluster.node(survivor).client();
    wait_for(Duration::from_secs(5), "a create after failover", || {
        (create(&mut c, "after-failover", 3) == 0).then_some(())
    });
    eprintln!(
        "controller {victim} killed; create succeeded after {:?}",
        killed.elapsed()
    );

    // Partitions on live brokers keep serving; the killed broker is fenced.
    let live: Vec<i32> = (1..=3).filter(|&i| i != controller).collect();
    wait_brokers(&mut cluster, survivor, &live, Duration::from_secs(10));
    for (&p, &leader) in &map {
        if leader != controller {
            let (code, _) = produce(
                &mut cluster.node(leader as u32).client(),
                "spread",
                p,
                b"two",
            );
            assert_eq!(code, 0, "partition {p} on live broker {leader}");
        }
    }

    // The killed node rejoins after a restart, with its data.
    cluster.node(victim).spawn();
    cluster.node(victim).wait_listening();
    wait_brokers(&mut cluster, survivor, &[1, 2, 3], Duration::from_secs(15));
    for (&p, &leader) in &map {
        if leader == controller {
            let (code, values) = fetch(&mut cluster.node(victim).client(), "spread", p, first[&p]);
            assert_eq!((code, values), (0, vec![b"one".to_vec()]), "partition {p}");
        }
    }
    let ids = |cluster: &mut Cluster| {
        let m = metadata(&mut cluster.node(1).client(), "spread");
        (m.topics[0].topic_id, m.topics[0].partitions.len())
    };
    let before = ids(&mut cluster);

    // Restart the whole cluster: topics, ids and offsets are still there.
    for n in 1..=3 {
        cluster.node(n).stop();
    }
    for n in 1..=3 {
        cluster.node(n).spawn();
    }
    for n in 1..=3 {
        cluster.node(n).wait_listening();
    }
    wait_brokers(&mut cluster, 1, &[1, 2, 3], Duration::from_secs(20));
    assert_eq!(ids(&mut cluster), before);
    let m = metadata(&mut cluster.node(2).client(), "after-failover");
    assert_eq!(
        (m.topics[0].error_code, m.topics[0].partitions.len()),
        (0, 3)
    );
    let next = produce_everywhere(&mut cluster, "spread", 12, b"three");
    for (&p, &leader) in &map {
        let expect = if leader == controller { 1 } else { 2 };
        assert_eq!(
            next[&p],
            first[&p] + expect,
            "partition {p} kept its offsets"
        );
    }

    // The plan for adding broker 4, computed from node 1's committed metadata.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg("plan")
        .arg("--override")
        .arg(format!("log.dirs={}", cluster.node(1).dir.display()))
        .arg("--brokers")
        .arg("1,2,3,4")
        .output()
        .expect("fjord plan");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("brokers now [1, 2, 3]"), "{text}");
    assert!(text.contains("-> [4]"), "{text}");
    assert!(
        text.lines().any(|l| l.ends_with("replica(s) move")),
        "{text}"
    );
    eprintln!("{text}");
    eprintln!("whole test took {:?}", started.elapsed());
}
