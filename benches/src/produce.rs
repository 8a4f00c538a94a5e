//! The produce workload: one pre-encoded v2 record batch per partition, sent over and
//! over in identical Produce requests, pipelined up to `inflight` per connection.
//!
//! Per connection a writer task sends while it holds an in-flight permit and a reader
//! task reads responses in order (Kafka answers in request order), timing each one
//! from just before its send to its arrival. With a fixed rate (`rate_bytes_per_sec`)
//! the writer sends on a schedule and each latency is timed from the request's
//! scheduled send time, so a broker that falls behind is charged for the queueing it
//! causes (no coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};
use tokio::sync::{mpsc, Semaphore};

use crate::client::{connect, EncodedBody, Receiver, Sender};
use crate::cluster::{topic_name, TopicLayout, Versions};
use crate::stats::{ErrorTally, Latencies, ProduceReport};

/// Shape of the produce load.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// Size of each record's value; records have no key and no headers.
    pub record_bytes: usize,
    /// Records in each partition's batch.
    pub batch_records: usize,
    /// 1 (leader) or -1 (all in-sync replicas).
    pub acks: i16,
    pub duration: Duration,
    /// Unmeasured produce time before the measured phase (JIT warm-up for Kafka).
    pub warmup: Duration,
    pub connections: usize,
    /// Produce requests outstanding per connection, at most.
    pub inflight: usize,
    /// Record-value bytes per second over all connections; `None` = as fast as possible.
    pub rate_bytes_per_sec: Option<f64>,
    /// Stop after sending this many record-value bytes (over all connections).
    pub total_bytes: Option<u64>,
}

/// When the writer of one connection sends.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Time between two requests on this connection; `None` = whenever a permit frees.
    interval: Option<Duration>,
    /// Requests this connection sends at most.
    requests_max: u64,
}

/// What one connection measured.
#[derive(Default)]
struct ConnectionStats {
    requests: u64,
    /// Partition-batches acknowledged without error.
    batches_ok: u64,
    errors: ErrorTally,
    latencies: Latencies,
}

impl ConnectionStats {
    fn merge(&mut self, other: &ConnectionStats) {
        self.requests += other.requests;
        self.batches_ok += other.batches_ok;
        self.errors.merge(&other.errors);
        self.latencies.merge(&other.latencies);
    }
}

/// One leader broker: its address and the request carrying a batch for each of
/// the partitions it leads.
struct Leader {
    addr: String,
    body: EncodedBody,
    partitions: usize,
}

/// Runs the produce workload against every partition in `layout`: `connections`
/// connections to each leader broker, each sending that leader's partitions.
pub async fn run(
    layout: &TopicLayout,
    topic: &str,
    versions: &Versions,
    opts: &ProduceOptions,
) -> Result<ProduceReport> {
    ensure!(opts.acks == 1 || opts.acks == -1, "--acks must be 1 or -1");
    ensure!(
        opts.batch_records > 0 && opts.inflight > 0 && opts.connections > 0,
        "counts must be > 0"
    );
    let batch = encode_batch(opts.record_bytes, opts.batch_records)?;
    let mut leaders = Vec::with_capacity(layout.leaders.len());
    for (addr, partitions) in &layout.leaders {
        let request = ProduceRequest::default()
            .with_acks(opts.acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(
                    partitions
                        .iter()
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(*p)
                                .with_records(Some(batch.clone()))
                        })
                        .collect(),
                )]);
        leaders.push(Leader {
            addr: addr.clone(),
            body: EncodedBody::new(&request, versions.produce)?,
            partitions: partitions.len(),
        });
    }
    let partitions_total: usize = leaders.iter().map(|l| l.partitions).sum();
    ensure!(partitions_total > 0, "topic has no partition");
    eprintln!(
        "produce: Produce v{}, {} partitions on {} leader(s) {:?} x {} records x {} B per \
         batch ({} B batches), acks={}, {} connection(s) per leader x {} in flight, {:?}",
        versions.produce,
        partitions_total,
        leaders.len(),
        layout
            .leaders
            .iter()
            .map(|(addr, partitions)| format!("{addr}: {partitions:?}"))
            .collect::<Vec<_>>(),
        opts.batch_records,
        opts.record_bytes,
        batch.len(),
        opts.acks,
        opts.connections,
        opts.inflight,
        opts.duration
    );

    for leader in &leaders {
        wait_until_writable(&leader.addr, &leader.body, versions.produce).await?;
    }
    if !opts.warmup.is_zero() {
        let pace = Pace {
            interval: None,
            requests_max: u64::MAX,
        };
        let warm = drive_all(
            &leaders,
            1,
            versions.produce,
            opts.inflight,
            pace,
            opts.warmup,
        )
        .await?;
        eprintln!(
            "produce: warm-up sent {} requests, errors: {}",
            warm.requests,
            warm.errors.describe()
        );
    }

    // Each request carries one batch per partition of its leader and every connection
    // sends one request per interval, so each partition gets rate / partitions_total.
    let round_value_bytes =
        (partitions_total * opts.batch_records * opts.record_bytes).max(1) as f64;
    let connections = opts.connections as f64;
    let pace = Pace {
        interval: match opts.rate_bytes_per_sec {
            Some(rate) => {
                ensure!(rate > 0.0, "--rate-mib must be > 0");
                Some(Duration::from_secs_f64(
                    round_value_bytes * connections / rate,
                ))
            }
            None => None,
        },
        requests_max: opts.total_bytes.map_or(u64::MAX, |total| {
            (total as f64 / round_value_bytes / connections).ceil() as u64
        }),
    };
    let start = Instant::now();
    let mut total = drive_all(
        &leaders,
        opts.connections,
        versions.produce,
        opts.inflight,
        pace,
        opts.duration,
    )
    .await?;
    let elapsed = start.elapsed();
    let records = total.batches_ok * opts.batch_records as u64;
    let (p50_us, p99_us, p999_us) = total.latencies.percentiles_us();
    let report = ProduceReport {
        elapsed,
        records,
        value_bytes: records * opts.record_bytes as u64,
        requests: total.requests,
        errors: total.errors,
        p50_us,
        p99_us,
        p999_us,
    };
    if report.records == 0 {
        report.print();
        bail!("every produce failed: {}", report.errors.describe());
    }
    Ok(report)
}

/// Opens `connections` connections to every leader, drives them all for `duration`
/// and adds up what they measured.
async fn drive_all(
    leaders: &[Leader],
    connections: usize,
    version: i16,
    inflight: usize,
    pace: Pace,
    duration: Duration,
) -> Result<ConnectionStats> {
    let mut conns = Vec::with_capacity(leaders.len() * connections);
    for leader in leaders {
        for _ in 0..connections {
            conns.push((leader, connect(&leader.addr).await?));
        }
    }
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(leader, (tx, rx))| {
            let body = leader.body.clone();
            let partitions = leader.partitions;
            tokio::spawn(async move {
                drive(tx, rx, body, version, partitions, inflight, pace, deadline).await
            })
        })
        .collect();
    let mut total = ConnectionStats::default();
    for task in tasks {
        total.merge(&task.await.context("produce task panicked")??);
    }
    Ok(total)
}

/// Sends the request until one response accepts every partition (at most 30 s).
/// A new topic's leader can answer NOT_LEADER_OR_FOLLOWER for a moment after
/// Metadata already names it (Apache Kafka does), which must not count as load.
pub async fn wait_until_writable(addr: &str, body: &EncodedBody, version: i16) -> Result<()> {
    let (mut tx, mut rx) = connect(addr).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let correlation_id = tx.send_encoded(body).await?;
        let response = rx.recv::<ProduceRequest>(correlation_id, version).await?;
        let mut errors = ErrorTally::default();
        for p in response
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
        {
            errors.add(p.error_code);
        }
        if errors.total() == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "partitions still refuse writes after 30 s: {}",
                errors.describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Drives one connection until `deadline` (or `pace.requests_max` requests), then
/// waits for the outstanding responses.
#[allow(clippy::too_many_arguments)]
async fn drive(
    mut tx: Sender,
    mut rx: Receiver,
    body: EncodedBody,
    version: i16,
    partitions: usize,
    inflight: usize,
    pace: Pace,
    deadline: Instant,
) -> Result<ConnectionStats> {
    let permits = Arc::new(Semaphore::new(inflight));
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<(i32, Instant)>();

    let writer_permits = permits.clone();
    let writer = tokio::spawn(async move {
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < pace.requests_max {
            let scheduled = pace.interval.map(|i| start + i.mul_f64(sent as f64));
            if let Some(at) = scheduled {
                tokio::time::sleep_until(at.into()).await;
            }
            if Instant::now() >= deadline {
                break;
            }
            // A closed semaphore means the reader gave up; stop sending.
            let Ok(permit) = writer_permits.acquire().await else {
                break;
            };
            permit.forget();
            sent += 1;
            let sent_at = scheduled.unwrap_or_else(Instant::now);
            let correlation_id = tx.send_encoded(&body).await?;
            if sent_tx.send((correlation_id, sent_at)).is_err() {
                break;
            }
        }
        anyhow::Ok(())
    });

    let read = async {
        let mut stats = ConnectionStats::default();
        while let Some((correlation_id, sent_at)) = sent_rx.recv().await {
            let response = rx.recv::<ProduceRequest>(correlation_id, version).await?;
            stats.latencies.record(sent_at.elapsed());
            stats.requests += 1;
            permits.add_permits(1);
            let mut answered = 0;
            for topic in &response.responses {
                for p in &topic.partition_responses {
                    answered += 1;
                    if p.error_code == 0 {
                        stats.batches_ok += 1;
                    } else {
                        stats.errors.add(p.error_code);
                    }
                }
            }
            ensure!(
                answered == partitions,
                "Produce response answers {answered} partitions, request had {partitions}"
            );
        }
        Ok(stats)
    };
    let result = read.await;
    permits.close();
    let written = writer.await.context("produce writer panicked")?;
    let stats = result?;
    written?;
    Ok(stats)
}

/// Encodes one uncompressed v2 batch of `count` records whose values are
/// `record_bytes` long, with no producer id (not idempotent) and a current timestamp.
pub fn encode_batch(record_bytes: usize, count: usize) -> Result<Bytes> {
    let value = Bytes::from(
        (0..record_bytes)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch only while offset - sequence is
            // constant; this yields base sequence -1 (NO_SEQUENCE) for the batch.
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options)?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn batch_is_one_v2_batch_without_producer() -> Result<()> {
        let batch = encode_batch(1024, 16)?;
        let infos = RecordBatchDecoder::decode_batch_info(&mut batch.clone())?;
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].record_count, 16);
        assert_eq!(infos[0].base_sequence, -1);
        assert_eq!(infos[0].producer_id, -1);
        assert_eq!(infos[0].compression, Compression::None);
        let scan = crate::fetch::scan_batches(&batch)?;
        assert_eq!(
            (scan.records, scan.bytes, scan.next_offset),
            (16, batch.len() as u64, Some(16))
        );
        Ok(())
    }
}
