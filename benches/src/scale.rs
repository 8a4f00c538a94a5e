//! Many partitions: time to create N partitions spread over `topics` topics
//! (CreateTopics until Metadata shows a leader for every one), then the latency of
//! Metadata requests naming those topics, sent one after another on one connection.
//! Several topics because Kafka's KRaft controller refuses one operation of more
//! than 10,000 records ("excessively large batch operation"), and a topic of 10,000
//! partitions is one.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::MetadataRequest;

use crate::client::{call, connect};
use crate::cluster::{self, topic_name, NewTopic, Versions};
use crate::stats::Latencies;

/// Creates `topics` topics named `<topic>-<i>` (one topic: `<topic>` itself) holding
/// `partitions` partitions in all, and measures Metadata `requests` times.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    bootstrap: &str,
    versions: &Versions,
    topic: &str,
    partitions: i32,
    spec: &NewTopic,
    topics: i32,
    requests: usize,
    timeout: Duration,
) -> Result<()> {
    ensure!(
        topics > 0 && partitions >= topics,
        "need at least one partition per topic"
    );
    let names: Vec<String> = if topics == 1 {
        vec![topic.to_owned()]
    } else {
        (0..topics).map(|i| format!("{topic}-{i}")).collect()
    };
    let each = |i: i32| partitions / topics + i32::from(i < partitions % topics);
    let start = Instant::now();
    for (i, name) in (0..).zip(&names) {
        cluster::create_topic(bootstrap, versions, name, each(i), spec, timeout).await?;
    }
    let created = start.elapsed();
    for (i, name) in (0..).zip(&names) {
        cluster::wait_for_topic(bootstrap, versions, name, each(i), false, timeout).await?;
    }
    let ready = start.elapsed();
    println!(
        "partitions: {partitions} in {topics} topic(s) created in {:.0} ms (CreateTopics answered after {:.0} ms)",
        ready.as_secs_f64() * 1e3,
        created.as_secs_f64() * 1e3
    );

    let (mut tx, mut rx) = connect(bootstrap).await?;
    let req = MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(false);
    let mut latencies = Latencies::default();
    for _ in 0..requests {
        let sent = Instant::now();
        call(&mut tx, &mut rx, &req, versions.metadata).await?;
        latencies.record(sent.elapsed());
    }
    let (p50, p99, _) = latencies.percentiles_us();
    println!("metadata ({partitions} partitions, {requests} requests): p50 {p50} us, p99 {p99} us");
    println!(
        "RESULT partitions count={partitions} topics={topics} create_ms={:.0} create_answer_ms={:.0} metadata_p50_us={p50} metadata_p99_us={p99}",
        ready.as_secs_f64() * 1e3,
        created.as_secs_f64() * 1e3
    );
    Ok(())
}
