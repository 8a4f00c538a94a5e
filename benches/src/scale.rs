//! Many partitions: time to create one topic with N partitions (CreateTopics until
//! Metadata shows a leader for every one), then the latency of Metadata requests
//! naming that topic, sent one after another on one connection.

use std::time::{Duration, Instant};

use anyhow::Result;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::MetadataRequest;

use crate::client::{call, connect};
use crate::cluster::{self, topic_name, Versions};
use crate::stats::Latencies;

/// Creates `topic` with `partitions` partitions and measures Metadata `requests` times.
pub async fn run(
    bootstrap: &str,
    versions: &Versions,
    topic: &str,
    partitions: i32,
    requests: usize,
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    cluster::create_topic(bootstrap, versions, topic, partitions, timeout).await?;
    let created = start.elapsed();
    cluster::wait_for_topic(bootstrap, versions, topic, partitions, false, timeout).await?;
    let ready = start.elapsed();
    println!(
        "partitions: {partitions} created in {:.0} ms (CreateTopics answered after {:.0} ms)",
        ready.as_secs_f64() * 1e3,
        created.as_secs_f64() * 1e3
    );

    let (mut tx, mut rx) = connect(bootstrap).await?;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
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
        "RESULT partitions count={partitions} create_ms={:.0} create_answer_ms={:.0} metadata_p50_us={p50} metadata_p99_us={p99}",
        ready.as_secs_f64() * 1e3,
        created.as_secs_f64() * 1e3
    );
    Ok(())
}
