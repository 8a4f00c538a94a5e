//! Replication on a 3-node cluster of real `fjord` processes (127.0.0.1–127.0.0.3),
//! topic with 3 replicas and `min.insync.replicas=2`: acks=all writes while the leader
//! of a partition is killed with SIGKILL and later restarted, another leader is shut
//! down cleanly (its leaderships move first), and every broker is killed at once. No
//! acknowledged record is lost or duplicated, the ISR shrinks and grows back, and once
//! writes stop every replica holds the same log bytes. A leader paused with SIGSTOP past
//! its session is replaced, and on return gives up what it could not replicate. A
//! follower fetch carrying an earlier registration's broker epoch is refused and
//! cannot rejoin the ISR. Every wait is bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{batch, create_topics, replicated_topic, wait_for, Cluster};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 3;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// One partition as Metadata shows it: (leader, in-sync replicas sorted, first replica).
type Seen = (i32, Vec<i32>, i32);

/// Each partition as `via` sees it.
fn partitions(cluster: &Cluster, via: i32) -> Option<BTreeMap<i32, Seen>> {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(TOPIC)))
        ]))
        .with_allow_auto_topic_creation(false);
    let m = cluster.client_of(via)?.try_request(12, &req)?;
    let t = m.topics.first()?;
    Some(
        t.partitions
            .iter()
            .map(|p| {
                let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
                isr.sort_unstable();
                let preferred = p.replica_nodes.first().map_or(-1, |b| b.0);
                (p.partition_index, (p.leader_id.0, isr, preferred))
            })
            .collect(),
    )
}

/// (leader, isr) of each partition as `via` sees it.
fn state(cluster: &Cluster, via: i32) -> Option<BTreeMap<i32, (i32, Vec<i32>)>> {
    let all = partitions(cluster, via)?;
    Some(
        all.into_iter()
            .map(|(p, (l, isr, _))| (p, (l, isr)))
            .collect(),
    )
}

/// (leader, first replica) of each partition as `via` sees it.
fn preferred_leaders(cluster: &Cluster, via: i32) -> Option<BTreeMap<i32, (i32, i32)>> {
    let all = partitions(cluster, via)?;
    Some(
        all.into_iter()
            .map(|(p, (l, _, first))| (p, (l, first)))
            .collect(),
    )
}

/// Waits until every partition has a leader and exactly `isr` in sync, as seen by `via`.
fn wait_isr(cluster: &Cluster, via: i32, isr: &[i32], limit: Duration) -> BTreeMap<i32, i32> {
    wait_for(limit, &format!("ISR {isr:?} everywhere"), || {
        let s = state(cluster, via)?;
        (s.len() == PARTITIONS as usize && s.values().all(|(l, i)| *l > 0 && i == isr))
            .then(|| s.iter().map(|(p, (l, _))| (*p, *l)).collect())
    })
}

/// Sends records one at a time with acks=all, following leader changes.
struct Writer {
    leaders: BTreeMap<i32, i32>,
    next: u64,
    /// value → (partition, offset) acknowledged.
    acked: BTreeMap<String, (i32, i64)>,
    /// Values whose outcome is unknown or failed (may or may not be in the log).
    uncertain: BTreeSet<String>,
    errors: BTreeMap<i16, usize>,
}

impl Writer {
    fn new(leaders: BTreeMap<i32, i32>) -> Writer {
        Writer {
            leaders,
            next: 0,
            acked: BTreeMap::new(),
            uncertain: BTreeSet::new(),
            errors: BTreeMap::new(),
        }
    }

    fn send(&mut self, cluster: &Cluster, partition: i32) {
        let value = format!("p{partition}-{}", self.next);
        self.next += 1;
        let leader = self.leaders.get(&partition).copied().unwrap_or(1);
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
        let answer = cluster
            .client_of(leader)
            .and_then(|mut c| c.try_request(9, &req));
        match answer.map(|r| {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }) {
            Some((0, offset)) => {
                self.acked.insert(value, (partition, offset));
            }
            other => {
                *self.errors.entry(other.map_or(-1, |o| o.0)).or_default() += 1;
                self.uncertain.insert(value);
                self.refresh(cluster);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn refresh(&mut self, cluster: &Cluster) {
        for via in 1..=3 {
            if let Some(s) = state(cluster, via) {
                for (p, (l, _)) in s {
                    if l > 0 {
                        self.leaders.insert(p, l);
                    }
                }
                return;
            }
        }
    }

    /// Sends until `n` more records are acknowledged (bounded by `limit`).
    fn write(&mut self, cluster: &Cluster, n: usize, limit: Duration) {
        let target = self.acked.len() + n;
        let deadline = Instant::now() + limit;
        let mut p = 0;
        while self.acked.len() < target {
            assert!(
                Instant::now() < deadline,
                "only {} of {target} acknowledged; errors {:?}",
                self.acked.len(),
                self.errors
            );
            self.send(cluster, p);
            p = (p + 1) % PARTITIONS;
        }
    }
}

/// Every record of `partition` read from its leader: (offset, value).
fn read_all(cluster: &Cluster, leader: i32, partition: i32) -> Vec<(i64, String)> {
    // Leadership may still move back to the preferred replica (the imbalance check):
    // on NOT_LEADER_OR_FOLLOWER, read again from the leader the cluster names then.
    let mut at = leader;
    wait_for(
        Duration::from_secs(30),
        &format!("all of partition {partition} from its leader"),
        || {
            let read = read_from(cluster, at, partition);
            if read.is_none() {
                std::thread::sleep(Duration::from_millis(200));
                if let Some(l) = state(cluster, 1)
                    .and_then(|s| s.get(&partition).map(|(l, _)| *l))
                    .filter(|l| *l > 0)
                {
                    at = l;
                }
            }
            read
        },
    )
}

/// Like [`read_all`] from `leader`; None if it does not lead the partition.
fn read_from(cluster: &Cluster, leader: i32, partition: i32) -> Option<Vec<(i64, String)>> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut c = cluster.client_of(leader).expect("leader listens");
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
        if p.error_code == 6 {
            return None;
        }
        assert_eq!(p.error_code, 0, "fetch of partition {partition}");
        let mut buf = p.records.unwrap_or_default();
        if buf.is_empty() {
            assert_eq!(offset, p.high_watermark, "read up to the high watermark");
            return Some(out);
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

/// Creates the topic (3 replicas, `min.insync.replicas=2`) and waits until every
/// replica is in sync; the leaders by partition.
fn create_topic(cluster: &Cluster) -> BTreeMap<i32, i32> {
    let req = replicated_topic(TOPIC, PARTITIONS);
    create_topics(cluster, &req);
    // Every node must have applied the topic: a broker that has not answers
    // UNKNOWN_TOPIC_OR_PARTITION rather than naming the leader.
    for via in [2, 3] {
        wait_isr(cluster, via, &[1, 2, 3], Duration::from_secs(20));
    }
    wait_isr(cluster, 1, &[1, 2, 3], Duration::from_secs(20))
}

/// Every acknowledged record is in its partition at its offset, nothing twice,
/// nothing never sent.
fn check_acknowledged(cluster: &Cluster, w: &Writer) {
    let mut seen: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    for p in 0..PARTITIONS {
        let records = read_all(cluster, w.leaders[&p], p);
        for (offset, value) in records {
            assert!(
                w.acked.contains_key(&value) || w.uncertain.contains(&value),
                "partition {p} offset {offset}: {value} was never sent"
            );
            if let Some(first) = seen.insert(value.clone(), (p, offset)) {
                panic!("{value} at {first:?} and at ({p}, {offset})");
            }
        }
    }
    let lost: Vec<_> = w
        .acked
        .iter()
        .filter(|(v, at)| seen.get(*v) != Some(at))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost or moved: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    eprintln!(
        "{} acknowledged, {} uncertain, all acknowledged present",
        w.acked.len(),
        w.uncertain.len()
    );
}

/// With writes stopped, the replicas converge on identical (non-empty) log bytes.
fn wait_identical_logs(cluster: &Cluster) {
    for p in 0..PARTITIONS {
        let logs = wait_for(Duration::from_secs(20), "identical replica logs", || {
            let logs: Vec<Vec<u8>> = (1..=3)
                .map(|n| cluster.log_bytes(n, TOPIC, p).unwrap_or_default())
                .collect();
            (logs[0] == logs[1] && logs[1] == logs[2]).then_some(logs)
        });
        assert!(!logs[0].is_empty());
    }
}

#[test]
fn acks_all_survives_leader_kill_and_replicas_converge() {
    let started = Instant::now();
    let mut cluster = Cluster::start(
        "replication",
        3,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500",
            "replica.lag.time.max.ms=3000",
            "replica.fetch.backoff.ms=100",
            "replica.fetch.wait.max.ms=200",
            "leader.imbalance.check.interval.seconds=1",
        ],
    );
    let leaders = create_topic(&cluster);
    eprintln!(
        "topic up with leaders {leaders:?} after {:?}",
        started.elapsed()
    );

    // A follower refuses a write and names the leader (KIP-951), with its endpoint.
    let leader = leaders[&0];
    let follower = leader % 3 + 1;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(TOPIC))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&[b"x"], None, Compression::None)))])]);
    let r = cluster
        .client_of(follower)
        .and_then(|mut c| c.try_request(10, &req))
        .expect("produce answer");
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.current_leader.leader_id.0),
        (6, leader),
        "{p:?}"
    );
    assert_eq!(
        r.node_endpoints
            .iter()
            .map(|n| n.node_id.0)
            .collect::<Vec<_>>(),
        [leader]
    );

    let mut w = Writer::new(leaders);
    w.write(&cluster, 300, Duration::from_secs(30));

    // Kill the leader of partition 0 while writing: a survivor takes over, the ISR
    // shrinks to the two survivors, and acks=all writes go on.
    let victim = w.leaders[&0];
    cluster.node(victim as u32).kill9();
    let killed = Instant::now();
    w.write(&cluster, 300, Duration::from_secs(60));
    eprintln!(
        "leader {victim} killed; 300 more acknowledged after {:?}, errors {:?}",
        killed.elapsed(),
        w.errors
    );
    let survivors: Vec<i32> = (1..=3).filter(|&n| n != victim).collect();
    let via = survivors[0];
    let after = state(&cluster, via).expect("metadata");
    assert!(
        after
            .values()
            .all(|(l, isr)| *l != victim && isr == &survivors),
        "state after the kill: {after:?}"
    );

    // The killed broker restarts, catches up and rejoins the ISR of every partition.
    cluster.node(victim as u32).spawn();
    cluster.node(victim as u32).wait_listening();
    let rejoined = Instant::now();
    w.write(&cluster, 300, Duration::from_secs(60));
    w.leaders = wait_isr(&cluster, via, &[1, 2, 3], Duration::from_secs(30));
    eprintln!(
        "broker {victim} back in every ISR after {:?}",
        rejoined.elapsed()
    );
    // Leadership goes back to the preferred replicas (auto.leader.rebalance.enable).
    w.leaders = wait_for(Duration::from_secs(15), "preferred leaders", || {
        let leaders = preferred_leaders(&cluster, via)?;
        leaders
            .values()
            .all(|(l, preferred)| l == preferred)
            .then(|| leaders.iter().map(|(p, (l, _))| (*p, *l)).collect())
    });
    assert!(w.leaders.values().any(|&l| l == victim), "{:?}", w.leaders);

    // Controlled shutdown (SIGTERM) of the leader of partition 1: its leaderships move
    // before it stops, writes go on, and it rejoins after a restart.
    let stopped = w.leaders[&1];
    cluster.node(stopped as u32).stop();
    let moved = state(&cluster, stopped % 3 + 1).expect("metadata");
    assert!(
        moved
            .values()
            .all(|(l, isr)| *l != stopped && !isr.contains(&stopped)),
        "state after the controlled shutdown of {stopped}: {moved:?}"
    );
    w.refresh(&cluster);
    let errors_before: usize = w.errors.values().sum();
    w.write(&cluster, 300, Duration::from_secs(60));
    let errors_after: usize = w.errors.values().sum();
    eprintln!(
        "broker {stopped} shut down; 300 more acknowledged with {} errors",
        errors_after - errors_before
    );
    cluster.node(stopped as u32).spawn();
    cluster.node(stopped as u32).wait_listening();
    w.leaders = wait_isr(
        &cluster,
        stopped % 3 + 1,
        &[1, 2, 3],
        Duration::from_secs(30),
    );

    // Every broker killed at once, then restarted: what was acknowledged is there.
    w.write(&cluster, 100, Duration::from_secs(30));
    for n in 1..=3 {
        cluster.node(n).kill9();
    }
    for n in 1..=3 {
        cluster.node(n).spawn();
    }
    for n in 1..=3 {
        cluster.node(n).wait_listening();
    }
    w.leaders = wait_isr(&cluster, 1, &[1, 2, 3], Duration::from_secs(60));
    w.write(&cluster, 30, Duration::from_secs(60));
    eprintln!("all brokers killed and restarted; writes go on");

    check_acknowledged(&cluster, &w);
    wait_identical_logs(&cluster);
    eprintln!("whole test took {:?}", started.elapsed());
}

/// Sends `sig` to process `pid` (a cluster node).
fn signal(pid: u32, sig: i32) {
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(pid as i32, sig) };
}

#[test]
fn a_paused_leader_is_replaced_and_gives_up_its_unreplicated_writes() {
    let mut cluster = Cluster::start(
        "paused-leader",
        3,
        &[
            "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500",
            "replica.lag.time.max.ms=3000",
            "replica.fetch.backoff.ms=100",
            "replica.fetch.wait.max.ms=200",
            "auto.leader.rebalance.enable=false",
        ],
    );
    let leaders = create_topic(&cluster);
    let mut w = Writer::new(leaders);
    w.write(&cluster, 200, Duration::from_secs(30));

    // SIGSTOP the leader of partition 0 until the others have fenced and replaced it
    // while it could not tell (a session timeout, plus a Raft election when it was also
    // the active controller). A write it receives meanwhile is read when it resumes,
    // still believing it leads; it cannot acknowledge it (no follower fetches from it
    // any more), and its copy of it is truncated when it follows again.
    let victim = w.leaders[&0];
    let pid = cluster
        .node(victim as u32)
        .child
        .as_ref()
        .expect("running")
        .id();
    signal(pid, libc::SIGSTOP);
    let paused = Instant::now();
    w.write(&cluster, 200, Duration::from_secs(60));
    let survivors: Vec<i32> = (1..=3).filter(|&n| n != victim).collect();
    wait_for(
        Duration::from_secs(30),
        "a paused broker to lose every leadership",
        || {
            let after = state(&cluster, survivors[0])?;
            after.values().all(|(l, _)| *l != victim).then_some(())
        },
    );
    signal(pid, libc::SIGCONT);
    eprintln!(
        "leader {victim} paused for {:?}; 200 more acknowledged meanwhile, errors {:?}",
        paused.elapsed(),
        w.errors
    );

    // Back, it catches up and rejoins every ISR; writes go on.
    w.leaders = wait_isr(&cluster, survivors[0], &[1, 2, 3], Duration::from_secs(30));
    w.write(&cluster, 100, Duration::from_secs(30));

    check_acknowledged(&cluster, &w);
    wait_identical_logs(&cluster);
}

/// (leader, ISR, ELR, last known ELR), the lists sorted.
type Eligibility = (i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// Partition 0 as DescribeTopicPartitions shows it through `via`.
fn eligibility(cluster: &Cluster, via: i32) -> Option<Eligibility> {
    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![TopicRequest::default().with_name(name(TOPIC))])
        .with_response_partition_limit(10);
    let r: DescribeTopicPartitionsResponse = cluster.client_of(via)?.try_request(0, &req)?;
    let p = r.topics.first()?.partitions.first()?;
    let sorted = |v: &[BrokerId]| {
        let mut v: Vec<i32> = v.iter().map(|b| b.0).collect();
        v.sort_unstable();
        v
    };
    Some((
        p.leader_id.0,
        sorted(&p.isr_nodes),
        sorted(p.eligible_leader_replicas.as_deref().unwrap_or_default()),
        sorted(p.last_known_elr.as_deref().unwrap_or_default()),
    ))
}

/// Creates `TOPIC` with one partition on brokers 1 and 2 and the topic config
/// `key=value`, and waits until both replicas are in sync.
fn create_on_1_and_2(cluster: &Cluster, key: &'static str, value: &'static str) {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
    };
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(1), BrokerId(2)])])
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(key))
                .with_value(Some(StrBytes::from_static_str(value)))])]);
    create_topics(cluster, &req);
    wait_for(Duration::from_secs(30), "both replicas in sync", || {
        (eligibility(cluster, 5)? == (1, vec![1, 2], vec![], vec![])).then_some(())
    });
}

/// KIP-966 with SIGKILL, on 5 nodes (the metadata quorum outlives two): a partition on
/// brokers 1 and 2 with `min.insync.replicas=2`. Broker 2 is killed: eligible. Broker 1
/// is killed: no leader, both eligible. Broker 2 restarts: with durable high
/// watermarks (the default) it counted only what it had fsynced, so, unlike Kafka after
/// an unclean shutdown, it stays eligible and leads with every acknowledged record (up
/// to its high-watermark checkpoint, `replica.high.watermark.checkpoint.interval.ms`).
#[test]
fn an_eligible_replica_killed_with_sigkill_leads_with_every_acknowledged_record() {
    let mut cluster = Cluster::start(
        "elr-kill",
        5,
        &[
            "broker.session.timeout.ms=2000",
            "replica.high.watermark.checkpoint.interval.ms=100",
        ],
    );
    create_on_1_and_2(&cluster, "min.insync.replicas", "2");
    let limit = Duration::from_secs(30);
    let values: Vec<String> = (0..20).map(|i| format!("elr-{i}")).collect();
    for v in &values {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(TOPIC))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(
                        &[v.as_bytes()],
                        None,
                        Compression::None,
                    )))])]);
        let r = cluster.client_of(1).expect("leader").request(9, &req);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "{v}");
    }
    // A replica restarted after SIGKILL serves up to its last high-watermark
    // checkpoint: let one be written.
    std::thread::sleep(Duration::from_millis(500));
    cluster.node(2).kill9();
    wait_for(limit, "broker 2 eligible", || {
        (eligibility(&cluster, 5)? == (1, vec![1], vec![2], vec![])).then_some(())
    });
    cluster.node(1).kill9();
    wait_for(limit, "both eligible, no leader", || {
        (eligibility(&cluster, 5)? == (-1, vec![], vec![1, 2], vec![1])).then_some(())
    });
    cluster.node(2).spawn();
    cluster.node(2).wait_listening();
    wait_for(limit, "broker 2 leading as an eligible replica", || {
        (eligibility(&cluster, 5)? == (2, vec![2], vec![1], vec![])).then_some(())
    });
    let read: Vec<String> = read_all(&cluster, 2, 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        read, values,
        "every acknowledged record, from the eligible replica"
    );
}

/// `unclean.leader.election.enable=true` on 5 nodes: a partition on brokers 1 and 2
/// (min ISR 1). Broker 2 is killed (the ISR still meets the minimum: not eligible),
/// then broker 1 (eligible, as the last in sync). Broker 2 restarts: neither in sync
/// nor eligible, it is elected uncleanly at once and leads alone; with the topic config
/// false it would not be.
#[test]
fn unclean_leader_election_enable_elects_an_out_of_sync_replica() {
    let mut cluster = Cluster::start("unclean", 5, &["broker.session.timeout.ms=2000"]);
    create_on_1_and_2(&cluster, "unclean.leader.election.enable", "false");
    let limit = Duration::from_secs(30);
    cluster.node(2).kill9();
    wait_for(limit, "broker 2 out of the ISR, not eligible", || {
        (eligibility(&cluster, 5)? == (1, vec![1], vec![], vec![])).then_some(())
    });
    cluster.node(1).kill9();
    wait_for(limit, "broker 1 eligible, no leader", || {
        (eligibility(&cluster, 5)? == (-1, vec![], vec![1], vec![1])).then_some(())
    });
    cluster.node(2).spawn();
    cluster.node(2).wait_listening();
    wait_for(limit, "broker 2 registered again", || {
        let m: MetadataResponse = cluster
            .client_of(5)?
            .try_request(12, &MetadataRequest::default().with_topics(Some(vec![])))?;
        m.brokers.iter().any(|b| b.node_id.0 == 2).then_some(())
    });
    // With the topic's config false, broker 2 does not lead...
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        eligibility(&cluster, 5),
        Some((-1, vec![], vec![1], vec![1])),
        "no unclean election while unclean.leader.election.enable=false"
    );
    // ...and turning it on elects it.
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource::default(
        )
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_static_str(TOPIC))
        .with_configs(vec![
            kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("unclean.leader.election.enable"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("true"))),
        ]),
    ]);
    let r: IncrementalAlterConfigsResponse =
        cluster.client_of(5).expect("node 5").request(1, &alter);
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    wait_for(limit, "broker 2 elected uncleanly", || {
        (eligibility(&cluster, 5)? == (2, vec![2], vec![], vec![])).then_some(())
    });
}

/// One follower Fetch (v18) of partition 0 of `TOPIC` from broker 1 as if sent by
/// broker 3 in registration epoch `broker_epoch`, from `offset` in `leader_epoch`;
/// the partition's error code.
fn fetch_as_broker_3(
    cluster: &Cluster,
    topic_id: uuid::Uuid,
    leader_epoch: i32,
    offset: i64,
    broker_epoch: i64,
) -> Option<i16> {
    use kafka_protocol::messages::fetch_request::ReplicaState;
    let req = FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(3))
                .with_replica_epoch(broker_epoch),
        )
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(leader_epoch)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(leader_epoch)
                .with_high_watermark(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = cluster.client_of(1)?.try_request(18, &req)?;
    Some(r.responses.first()?.partitions.first()?.error_code)
}

/// KIP-903 broker epochs, with real processes: broker 3 of a partition on brokers
/// 1–3 is paused (SIGSTOP) until it leaves the ISR, while its session (60 s) keeps it
/// registered. A follower fetch in its name that reaches the log end but carries the
/// epoch of an earlier registration — a request from a previous run of the broker,
/// one that may have lost its log since — is answered NOT_LEADER_OR_FOLLOWER and
/// does not bring it back into the ISR. The same fetch without an epoch (-1, what
/// followers that predate KIP-903 send) does, as in Kafka.
#[test]
fn a_fetch_from_an_earlier_registration_cannot_rejoin_the_isr() {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    let mut cluster = Cluster::start(
        "broker-epochs",
        3,
        &[
            "broker.session.timeout.ms=60000",
            "broker.heartbeat.interval.ms=500",
            "replica.lag.time.max.ms=2000",
            "replica.fetch.wait.max.ms=200",
            "auto.leader.rebalance.enable=false",
        ],
    );
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)])])]);
    create_topics(&cluster, &req);
    let limit = Duration::from_secs(30);
    let isr = |cluster: &Cluster| eligibility(cluster, 1).map(|e| (e.0, e.1));
    wait_for(limit, "all three in sync", || {
        (isr(&cluster)? == (1, vec![1, 2, 3])).then_some(())
    });
    let mut leader = cluster.client_of(1).expect("broker 1");
    const RECORDS: i64 = 20;
    for i in 0..RECORDS {
        let value = format!("r{i}");
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(TOPIC))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(
                        &[value.as_bytes()],
                        None,
                        Compression::None,
                    )))])]);
        let r = leader.request(9, &req);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let m: MetadataResponse = leader.request(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(TOPIC)))
        ])),
    );
    let (topic_id, leader_epoch) = (m.topics[0].topic_id, m.topics[0].partitions[0].leader_epoch);

    let pid = cluster.node(3).child.as_ref().expect("running").id();
    signal(pid, libc::SIGSTOP);
    wait_for(limit, "paused broker 3 out of the ISR", || {
        (isr(&cluster)? == (1, vec![1, 2])).then_some(())
    });
    // Registration epochs are log indexes, so 0 precedes every registration.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(
            fetch_as_broker_3(&cluster, topic_id, leader_epoch, RECORDS, 0),
            Some(6),
            "NOT_LEADER_OR_FOLLOWER for a fetch from an earlier registration"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        isr(&cluster),
        Some((1, vec![1, 2])),
        "a fetch from an earlier registration must not rejoin the ISR"
    );
    wait_for(limit, "a fetch without an epoch to rejoin the ISR", || {
        assert_eq!(
            fetch_as_broker_3(&cluster, topic_id, leader_epoch, RECORDS, -1),
            Some(0)
        );
        (isr(&cluster)? == (1, vec![1, 2, 3])).then_some(())
    });
    signal(pid, libc::SIGCONT);
}
