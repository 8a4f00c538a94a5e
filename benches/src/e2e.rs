//! End-to-end latency at a fixed rate: one connection produces pre-encoded batches to
//! partition 0 on a schedule while another long-polls Fetch from offset 0 of the same
//! (fresh) partition. A batch's latency runs from its scheduled send time to the
//! moment a Fetch response carrying it arrives.
//!
//! On one connection and one partition the broker appends batches in send order, so
//! the batch at base offset `base + o` is the `o / batch_records`-th one sent (`base`
//! is the high watermark once the partition accepted a first, unmeasured batch); its
//! scheduled time is looked up by that index. Any produce error breaks that mapping,
//! so the run fails on the first one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use tokio::sync::mpsc;

use crate::client::{connect, EncodedBody};
use crate::cluster::{topic_name, TopicLayout, Versions};
use crate::fetch::{for_each_batch, send_at};
use crate::produce::{encode_batch, wait_until_writable};
use crate::stats::Latencies;

/// Shape of the end-to-end load.
#[derive(Debug, Clone)]
pub struct E2eOptions {
    pub record_bytes: usize,
    pub batch_records: usize,
    pub acks: i16,
    /// Record-value bytes per second.
    pub rate_bytes_per_sec: f64,
    pub duration: Duration,
    /// Batches scheduled in the first `warmup` are not counted.
    pub warmup: Duration,
}

/// How long the consumer keeps reading after the last send.
const DRAIN: Duration = Duration::from_secs(10);

/// Runs the workload on the first partition of `topic`, which nobody else writes.
pub async fn run(
    layout: &TopicLayout,
    topic: &str,
    versions: &Versions,
    opts: &E2eOptions,
) -> Result<()> {
    ensure!(
        opts.rate_bytes_per_sec > 0.0 && opts.batch_records > 0,
        "rate and batch size must be > 0"
    );
    let (leader, partitions) = layout.single_leader()?;
    let partition = *partitions.first().context("topic has no partition")?;
    let batch = encode_batch(opts.record_bytes, opts.batch_records)?;
    let request = ProduceRequest::default()
        .with_acks(opts.acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let body = EncodedBody::new(&request, versions.produce)?;
    wait_until_writable(leader, &body, versions.produce).await?;
    let interval = Duration::from_secs_f64(
        (opts.batch_records * opts.record_bytes) as f64 / opts.rate_bytes_per_sec,
    );
    eprintln!(
        "e2e: 1 partition, {} records x {} B per batch, acks={}, one batch every {:?}, {:?}",
        opts.batch_records, opts.record_bytes, opts.acks, interval, opts.duration
    );

    // Scheduled send time of every batch, by send index. Filled before each send.
    let scheduled: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (mut ptx, mut prx) = connect(leader).await?;
    let (mut ftx, mut frx) = connect(leader).await?;
    let base = {
        let correlation_id = send_at(&mut ftx, topic, versions.fetch, partition, 0, 1).await?;
        let response = frx
            .recv::<FetchRequest>(correlation_id, versions.fetch)
            .await?;
        response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .context("Fetch response lacks the partition")?
            .high_watermark
    };

    let start = Instant::now();
    let end = start + opts.duration;
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<i32>();
    let writer_scheduled = scheduled.clone();
    let writer = tokio::spawn(async move {
        let mut i = 0u32;
        loop {
            let at = start + interval * i;
            if at >= end {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
            writer_scheduled
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push(at);
            let correlation_id = ptx.send_encoded(&body).await?;
            if sent_tx.send(correlation_id).is_err() {
                break;
            }
            i += 1;
        }
        anyhow::Ok(())
    });
    let version = versions.produce;
    let acker = tokio::spawn(async move {
        while let Some(correlation_id) = sent_rx.recv().await {
            let response = prx.recv::<ProduceRequest>(correlation_id, version).await?;
            for p in response
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
            {
                if let Some(err) = p.error_code.err() {
                    bail!("produce failed: {err:?}");
                }
            }
        }
        anyhow::Ok(())
    });

    let batch_records = opts.batch_records as i64;
    let counted_from = start + opts.warmup;
    let mut latencies = Latencies::default();
    let mut offset = base;
    let mut seen = 0usize;
    loop {
        let sent = scheduled
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .len();
        let writer_done = writer.is_finished();
        if writer_done && seen >= sent {
            break;
        }
        if Instant::now() > end + DRAIN {
            // A broker that cannot keep up with the rate: report what arrived, and how
            // much did not, rather than nothing.
            eprintln!("e2e: consumer saw {seen} of {sent} batches {DRAIN:?} after the last send");
            break;
        }
        let correlation_id = send_at(
            &mut ftx,
            topic,
            versions.fetch,
            partition,
            offset,
            1024 * 1024,
        )
        .await?;
        let response = frx
            .recv::<FetchRequest>(correlation_id, versions.fetch)
            .await?;
        let arrived = Instant::now();
        let data = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .context("Fetch response lacks the partition")?;
        if let Some(err) = data.error_code.err() {
            bail!("fetch failed: {err:?}");
        }
        let times = scheduled.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut bad = None;
        for_each_batch(data.records.as_deref().unwrap_or_default(), |b| {
            let index =
                usize::try_from((b.base_offset - base) / batch_records).unwrap_or(usize::MAX);
            match times.get(index) {
                Some(at) => {
                    if *at >= counted_from {
                        latencies.record(arrived.saturating_duration_since(*at));
                    }
                    seen += 1;
                }
                None => bad = Some(b.base_offset),
            }
            offset = b.next_offset;
        })?;
        drop(times);
        if let Some(o) = bad {
            bail!("fetched a batch at offset {o} that was never sent (topic not fresh?)");
        }
    }
    let sent = scheduled
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .len();
    let unseen = sent.saturating_sub(seen);
    if unseen == 0 {
        writer.await.context("e2e writer panicked")??;
        acker.await.context("e2e acker panicked")??;
    } else {
        writer.abort();
        acker.abort();
    }
    let (p50, p99, p999) = latencies.percentiles_us();
    println!(
        "e2e latency: {seen} batches, p50 {p50} us, p99 {p99} us, p99.9 {p999} us; \
         {unseen} never arrived"
    );
    println!(
        "RESULT e2e batches={seen} unseen={unseen} p50_us={p50} p99_us={p99} p999_us={p999} rate_mib={:.1}",
        opts.rate_bytes_per_sec / (1024.0 * 1024.0)
    );
    Ok(())
}
