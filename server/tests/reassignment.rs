//! Partition reassignment on a 3-node cluster of real `fjord` processes
//! (127.0.0.1–127.0.0.3): AlterPartitionReassignments moves a partition's leader to
//! another broker and grows another partition to three replicas while acks=all
//! writes go on; the replicas being added catch up, join the ISR, and the replicas
//! being removed leave and delete their logs. A move to a broker that is down stays
//! in progress (ListPartitionReassignments shows it) until it is cancelled; one held
//! back by `follower.replication.throttled.rate` finishes once the throttle goes. Bad
//! requests get Kafka's error codes. With `fjord.auto.rebalance.enable`, a fourth
//! broker that joins takes its ring share of the replicas under writes, and gives
//! them back when it is stopped and unregistered. Every wait is bounded.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{batch, create_topics, replicated_topic, wait_for, Cluster};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

const TOPIC: &str = "moving";

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// (leader, replicas, isr) of each partition as `via` sees it.
type Shown = BTreeMap<i32, (i32, Vec<i32>, Vec<i32>)>;

fn shown(cluster: &Cluster, via: i32) -> Option<Shown> {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(TOPIC)))
        ]))
        .with_allow_auto_topic_creation(false);
    let m = cluster.client_of(via)?.try_request(12, &req)?;
    let t = m.topics.first()?;
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    Some(
        t.partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    (p.leader_id.0, ids(&p.replica_nodes), ids(&p.isr_nodes)),
                )
            })
            .collect(),
    )
}

fn reassign(
    cluster: &Cluster,
    via: i32,
    version: i16,
    allow_rf_change: bool,
    moves: &[(&str, i32, Option<&[i32]>)],
) -> Vec<(String, i32, i16)> {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for (topic, partition, target) in moves {
        let p = ReassignablePartition::default()
            .with_partition_index(*partition)
            .with_replicas(target.map(|t| t.iter().map(|&b| BrokerId(b)).collect()));
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                ReassignableTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_allow_replication_factor_change(allow_rf_change)
        .with_topics(topics);
    let r = cluster
        .client_of(via)
        .and_then(|mut c| c.try_request(version, &req))
        .expect("AlterPartitionReassignments answer");
    assert_eq!(r.error_code, 0);
    r.responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// (partition, replicas, adding, removing) of one reassignment in progress.
type Listed = (i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// Every reassignment of the topic in progress.
fn listed(cluster: &Cluster, via: i32) -> Vec<Listed> {
    let r = cluster
        .client_of(via)
        .and_then(|mut c| c.try_request(0, &ListPartitionReassignmentsRequest::default()))
        .expect("ListPartitionReassignments answer");
    assert_eq!(r.error_code, 0);
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    r.topics
        .iter()
        .filter(|t| t.name.as_str() == TOPIC)
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect()
}

/// Sends one acks=all record to `partition` through its current leader; the offset
/// if acknowledged.
fn send(cluster: &Cluster, partition: i32, value: &str) -> Option<i64> {
    let leader = shown(cluster, 1)?.get(&partition)?.0;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(TOPIC))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch(
                    &[value.as_bytes()],
                    None,
                    Compression::None,
                )))])]);
    let r = cluster.client_of(leader)?.try_request(9, &req)?;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code == 0).then_some(p.base_offset)
}

/// Acknowledged records by partition: (offset, value).
type Acked = BTreeMap<i32, Vec<(i64, String)>>;

/// Writes until `count` more records (round-robin over `partitions`) are
/// acknowledged, within 30 s; `n` numbers the values.
fn write(cluster: &Cluster, acked: &mut Acked, n: &mut usize, partitions: i32, count: usize) {
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while done < count {
        assert!(Instant::now() < deadline, "writes stalled");
        let p = (*n % partitions as usize) as i32;
        let value = format!("v{n}");
        *n += 1;
        if let Some(offset) = send(cluster, p, &value) {
            acked.entry(p).or_default().push((offset, value));
            done += 1;
        }
    }
}

/// Waits until every partition's replicas are all in sync, then checks that every
/// acknowledged record is at its offset on the leader and that every replica holds
/// the leader's bytes. Returns the final state.
fn check_replicas(cluster: &Cluster, acked: &Acked) -> Shown {
    wait_for(Duration::from_secs(30), "every replica in sync", || {
        let s = shown(cluster, 1)?;
        s.values()
            .all(|(l, r, i)| {
                *l > 0 && {
                    let (mut r, mut i) = (r.clone(), i.clone());
                    r.sort_unstable();
                    i.sort_unstable();
                    r == i
                }
            })
            .then_some(())
    });
    let s = shown(cluster, 1).expect("metadata");
    for (p, records) in acked {
        let (leader, replicas, _) = &s[p];
        let read: BTreeMap<i64, String> = read_all(cluster, *leader, *p).into_iter().collect();
        for (offset, value) in records {
            assert_eq!(
                read.get(offset),
                Some(value),
                "partition {p} offset {offset}"
            );
        }
        let leader_bytes = wait_for(Duration::from_secs(10), "the leader's log", || {
            cluster.log_bytes(*leader, TOPIC, *p)
        });
        for r in replicas {
            wait_for(Duration::from_secs(10), "identical replica logs", || {
                (cluster.log_bytes(*r, TOPIC, *p).as_ref() == Some(&leader_bytes)).then_some(())
            });
        }
    }
    s
}

/// Every record of `partition` read from `node`: (offset, value).
fn read_all(cluster: &Cluster, node: i32, partition: i32) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut c = cluster.client_of(node).expect("node listens");
    loop {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(TOPIC))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let mut r = c.request(11, &req);
        let p = r.responses.remove(0).partitions.remove(0);
        assert_eq!(p.error_code, 0, "fetch of partition {partition}");
        let mut buf = p.records.unwrap_or_default();
        if buf.is_empty() {
            return out;
        }
        while !buf.is_empty() {
            let set = RecordBatchDecoder::decode(&mut buf).expect("decode");
            for r in set.records {
                let v = String::from_utf8(r.value.unwrap_or_default().to_vec()).expect("utf8");
                out.push((r.offset, v));
                offset = r.offset + 1;
            }
        }
    }
}

/// IncrementalAlterConfigs of one resource (2 topic, 4 broker): (name, op, value)
/// with op 0 SET, 1 DELETE. Returns the resource's error code.
fn alter_configs(
    cluster: &Cluster,
    resource_type: i8,
    resource: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> i16 {
    let s = |v: &str| StrBytes::from_string(v.to_string());
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
    let r = cluster
        .client_of(1)
        .and_then(|mut c| c.try_request(1, &req))
        .expect("IncrementalAlterConfigs answer");
    r.responses[0].error_code
}

#[test]
fn reassignment_moves_and_grows_partitions_under_writes() {
    let mut cluster = Cluster::start(
        "reassignment",
        3,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500",
            "replica.fetch.backoff.ms=100",
            "replica.fetch.wait.max.ms=200",
            "auto.leader.rebalance.enable=false",
            // Small follower fetches, so a throttled catch-up takes many of them.
            "replica.fetch.max.bytes=4096",
        ],
    );
    let assignment = |p: i32, brokers: &[i32]| {
        CreatableReplicaAssignment::default()
            .with_partition_index(p)
            .with_broker_ids(brokers.iter().map(|&b| BrokerId(b)).collect())
    };
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![
                assignment(0, &[1, 2]),
                assignment(1, &[2, 3]),
                assignment(2, &[1, 2]),
            ])
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("min.insync.replicas"))
                .with_value(Some(StrBytes::from_static_str("2")))])]);
    create_topics(&cluster, &req);
    wait_for(Duration::from_secs(20), "every replica in sync", || {
        let s = shown(&cluster, 1)?;
        (s.len() == 3 && s.values().all(|(l, r, i)| *l > 0 && r == i)).then_some(())
    });

    let mut acked = Acked::new();
    let mut n = 0;
    let mut write = |cluster: &Cluster, count: usize| write(cluster, &mut acked, &mut n, 3, count);
    write(&cluster, 300);

    // Bad requests: an unknown broker, cancelling what is not moving, an unknown
    // topic, and (version 1) a replication factor change that is not allowed.
    let errors = reassign(
        &cluster,
        2,
        1,
        true,
        &[
            (TOPIC, 0, Some(&[1, 9])),
            (TOPIC, 1, None),
            ("nosuch", 0, Some(&[1])),
            (TOPIC, 7, Some(&[1])),
        ],
    );
    assert_eq!(
        errors.iter().map(|e| e.2).collect::<Vec<_>>(),
        [39, 85, 3, 3],
        "{errors:?}"
    );
    let refused = reassign(&cluster, 2, 1, false, &[(TOPIC, 0, Some(&[1, 2, 3]))]);
    assert_eq!(refused[0].2, 38, "{refused:?}");
    assert!(listed(&cluster, 3).is_empty());

    // A move to a broker that is down stays in progress, listed, until cancelled.
    cluster.node(3).kill9();
    wait_for(Duration::from_secs(15), "broker 3 fenced", || {
        let s = shown(&cluster, 1)?;
        (s[&1].2 == vec![2]).then_some(())
    });
    assert_eq!(
        reassign(&cluster, 1, 0, true, &[(TOPIC, 2, Some(&[1, 3]))])[0].2,
        0
    );
    // Asked through node 1; node 2 applies the committed command a moment later.
    let moving = wait_for(Duration::from_secs(5), "node 2 to list the move", || {
        let l = listed(&cluster, 2);
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(moving, [(2, vec![1, 3, 2], vec![3], vec![2])]);
    let s = shown(&cluster, 2).expect("metadata");
    assert_eq!(
        s[&2].1,
        vec![1, 3, 2],
        "Metadata lists every replica while moving"
    );
    assert_eq!(
        reassign(&cluster, 1, 0, true, &[(TOPIC, 2, None)])[0].2,
        0,
        "cancel"
    );
    assert!(listed(&cluster, 1).is_empty());
    assert_eq!(shown(&cluster, 1).expect("metadata")[&2].1, vec![1, 2]);
    cluster.node(3).spawn();
    cluster.node(3).wait_listening();
    wait_for(Duration::from_secs(30), "broker 3 back in sync", || {
        let s = shown(&cluster, 1)?;
        (s[&1].2 == vec![2, 3]).then_some(())
    });

    // Move partition 0's leadership off broker 1 ([1,2] → [3,2]) and grow partition
    // 1 to three replicas, while writing.
    let started = Instant::now();
    let moved = reassign(
        &cluster,
        1,
        1,
        true,
        &[(TOPIC, 0, Some(&[3, 2])), (TOPIC, 1, Some(&[2, 3, 1]))],
    );
    assert!(moved.iter().all(|m| m.2 == 0), "{moved:?}");
    let done = loop {
        write(&cluster, 10);
        let s = shown(&cluster, 1).expect("metadata");
        if s[&0].1 == vec![3, 2] && s[&1].1 == vec![2, 3, 1] && listed(&cluster, 2).is_empty() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "reassignment not done: {s:?} {:?}",
            listed(&cluster, 2)
        );
    };
    eprintln!("reassignment done after {:?}: {done:?}", started.elapsed());
    assert_eq!(
        done[&0].0, 3,
        "partition 0 is led from its new first replica"
    );
    assert_eq!(done[&0].2, vec![3, 2]);
    write(&cluster, 300);

    // Every acknowledged record is on the new replicas, in order; the old replica's
    // log is gone; every replica of a partition holds the same bytes.
    check_replicas(&cluster, &acked);
    wait_for(
        Duration::from_secs(10),
        "broker 1's old replica removed",
        || cluster.log_bytes(1, TOPIC, 0).is_none().then_some(()),
    );

    // A throttled catch-up: with follower.replication.throttled.rate at 1 byte/s
    // for every replica of the topic, broker 3 (added to partition 2) fetches once
    // and then waits; the move stays in progress until the throttle is removed.
    let rate = "follower.replication.throttled.rate";
    assert_eq!(alter_configs(&cluster, 4, "", &[(rate, 0, Some("1"))]), 0);
    let replicas = "follower.replication.throttled.replicas";
    assert_eq!(
        alter_configs(&cluster, 2, TOPIC, &[(replicas, 0, Some("*"))]),
        0
    );
    assert_eq!(
        reassign(&cluster, 1, 0, true, &[(TOPIC, 2, Some(&[1, 2, 3]))])[0].2,
        0
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(listed(&cluster, 1), [(2, vec![1, 2, 3], vec![3], vec![])]);
    let leader_log = cluster.log_bytes(1, TOPIC, 2).expect("leader log").len();
    let throttled = cluster.log_bytes(3, TOPIC, 2).map_or(0, |b| b.len());
    assert!(
        throttled <= 2 * 4096 && throttled < leader_log,
        "throttled replica has {throttled} of {leader_log} bytes"
    );
    assert_eq!(alter_configs(&cluster, 4, "", &[(rate, 1, None)]), 0);
    wait_for(
        Duration::from_secs(30),
        "the throttled move to finish",
        || listed(&cluster, 1).is_empty().then_some(()),
    );
    assert_eq!(shown(&cluster, 1).expect("metadata")[&2].2, vec![1, 2, 3]);
    wait_for(Duration::from_secs(10), "broker 3's copy", || {
        (cluster.log_bytes(3, TOPIC, 2).map(|b| b.len()) == Some(leader_log)).then_some(())
    });
}

#[test]
fn a_broker_that_joins_takes_its_share_of_replicas_under_writes() {
    const PARTITIONS: i32 = 12;
    // Four voters, three started: the topic is placed on brokers 1–3; broker 4
    // registers later and the ring rebalance moves about a quarter of the replicas
    // to it while acks=all writes go on.
    let mut cluster = Cluster::start_some(
        "ring-rebalance",
        4,
        3,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500",
            "replica.fetch.backoff.ms=100",
            "replica.fetch.wait.max.ms=200",
            "auto.leader.rebalance.enable=false",
            "fjord.auto.rebalance.enable=true",
            "fjord.auto.rebalance.check.interval.ms=500",
        ],
    );
    let req = replicated_topic(TOPIC, PARTITIONS);
    create_topics(&cluster, &req);
    let before = wait_for(Duration::from_secs(20), "every replica in sync", || {
        let s = shown(&cluster, 1)?;
        (s.len() == PARTITIONS as usize && s.values().all(|(l, r, i)| *l > 0 && r == i))
            .then_some(s)
    });
    let mut acked = Acked::new();
    let mut n = 0;
    write(&cluster, &mut acked, &mut n, PARTITIONS, 300);
    // Several check intervals later, nothing moved: the ring over the registered
    // brokers is where the topic was placed.
    std::thread::sleep(Duration::from_secs(2));
    assert!(listed(&cluster, 2).is_empty());
    let replicas = |s: &Shown| -> BTreeMap<i32, Vec<i32>> {
        s.iter().map(|(p, (_, r, _))| (*p, r.clone())).collect()
    };
    assert_eq!(
        replicas(&shown(&cluster, 1).expect("metadata")),
        replicas(&before)
    );

    let started = Instant::now();
    cluster.node(4).spawn();
    cluster.node(4).wait_listening();
    let after = loop {
        write(&cluster, &mut acked, &mut n, PARTITIONS, 20);
        let s = shown(&cluster, 1).expect("metadata");
        let on_4 = s.values().filter(|(_, r, _)| r.contains(&4)).count();
        let settled = s.values().all(|(_, r, _)| r.len() == 3);
        if on_4 > 0 && settled && listed(&cluster, 1).is_empty() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "ring rebalance not done: {s:?} {:?}",
            listed(&cluster, 2)
        );
    };
    eprintln!("broker 4 joined; moves done after {:?}", started.elapsed());
    write(&cluster, &mut acked, &mut n, PARTITIONS, 100);

    // The replicas are now the ring's placement over brokers 1–4 (whose movement the
    // placement tests bound at 1.25× the ideal share), the replication factor is
    // kept, every acknowledged record is on the new replicas and the replicas of a
    // partition hold identical bytes.
    let topic_id = {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name(TOPIC)))
            ]))
            .with_allow_auto_topic_creation(false);
        let m = cluster.client_of(1).expect("node 1").request(12, &req);
        m.topics[0].topic_id.as_u128()
    };
    let ring = fjord::placement::Ring::with_brokers(&[1, 2, 3, 4]);
    let expected = ring.assign(topic_id, &[], PARTITIONS as u32, 3);
    let mut added = 0;
    for (p, (_, r, _)) in &after {
        let mut got = r.clone();
        got.sort_unstable();
        let mut want = expected[*p as usize].clone();
        want.sort_unstable();
        assert_eq!(got, want, "partition {p}");
        added += r.iter().filter(|b| !before[p].1.contains(b)).count();
    }
    let ideal = (PARTITIONS * 3) as f64 / 4.0;
    eprintln!(
        "{added} of {} replicas moved ({:.2}× the ideal {ideal})",
        PARTITIONS * 3,
        added as f64 / ideal
    );
    let s = check_replicas(&cluster, &acked);
    for (p, (_, r, _)) in &s {
        for b in 1..=4 {
            if !r.contains(&b) {
                wait_for(Duration::from_secs(10), "a moved-away copy removed", || {
                    cluster.log_bytes(b, TOPIC, *p).is_none().then_some(())
                });
            }
        }
    }

    // Decommission: broker 4 stops and is unregistered (UnregisterBroker); the ring
    // over brokers 1–3 takes its replicas back while writes go on.
    let unregister = |cluster: &Cluster, id: i32| {
        let req = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        cluster
            .client_of(2)
            .expect("node 2")
            .request(0, &req)
            .error_code
    };
    assert_eq!(unregister(&cluster, 9), 102, "BROKER_ID_NOT_REGISTERED");
    cluster.node(4).kill9();
    assert_eq!(unregister(&cluster, 4), 0);
    let started = Instant::now();
    let back = loop {
        write(&cluster, &mut acked, &mut n, PARTITIONS, 20);
        let s = shown(&cluster, 1).expect("metadata");
        let settled = s.values().all(|(_, r, _)| r.len() == 3 && !r.contains(&4));
        if settled && listed(&cluster, 1).is_empty() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "decommission not done: {s:?} {:?}",
            listed(&cluster, 1)
        );
    };
    eprintln!("broker 4 decommissioned after {:?}", started.elapsed());
    let expected = fjord::placement::Ring::with_brokers(&[1, 2, 3]).assign(
        topic_id,
        &[],
        PARTITIONS as u32,
        3,
    );
    for (p, (_, r, _)) in &back {
        let mut got = r.clone();
        got.sort_unstable();
        let mut want = expected[*p as usize].clone();
        want.sort_unstable();
        assert_eq!(got, want, "partition {p} after decommission");
    }
    write(&cluster, &mut acked, &mut n, PARTITIONS, 100);
    check_replicas(&cluster, &acked);
}
