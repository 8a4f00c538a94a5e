//! The fetch workload: read every partition from its start to its high watermark,
//! then start over, until the duration is up.
//!
//! One Fetch request per partition is outstanding at a time (the next offset is only
//! known from the previous answer); all partitions share one connection and their
//! requests are pipelined on it. Records are counted from the v2 batch headers
//! without decoding the records.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest};

use crate::client::{connect, Sender};
use crate::cluster::{topic_name, TopicLayout, Versions};
use crate::stats::{ErrorTally, FetchReport};

/// Shape of the fetch load.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub duration: Duration,
    /// `partition_max_bytes` and the request's `max_bytes`.
    pub max_bytes: i32,
}

/// Bytes of a v2 record batch header; `records_count` is its last field.
const BATCH_HEADER_BYTES: usize = 61;
/// How long the broker may hold a fetch with no data (only empty partitions wait).
const MAX_WAIT_MS: i32 = 500;

/// Read position of one partition.
struct Cursor {
    partition: i32,
    offset: i64,
    /// False once the partition is known to be empty (or unreadable).
    active: bool,
}

/// Runs the fetch workload against every partition in `layout`.
pub async fn run(
    layout: &TopicLayout,
    topic: &str,
    versions: &Versions,
    opts: &FetchOptions,
) -> Result<FetchReport> {
    ensure!(opts.max_bytes > 0, "--max-bytes must be > 0");
    eprintln!(
        "fetch: Fetch v{}, {} partitions, max {} B per fetch, {:?}",
        versions.fetch,
        layout.partitions.len(),
        opts.max_bytes,
        opts.duration
    );
    let (mut tx, mut rx) = connect(&layout.leader_addr).await?;
    let mut cursors: Vec<Cursor> = layout
        .partitions
        .iter()
        .map(|p| Cursor {
            partition: *p,
            offset: 0,
            active: true,
        })
        .collect();
    let mut report = FetchReport {
        elapsed: Duration::ZERO,
        records: 0,
        batch_bytes: 0,
        requests: 0,
        errors: ErrorTally::default(),
    };

    let start = Instant::now();
    let deadline = start + opts.duration;
    // (correlation id, index into `cursors`) in send order.
    let mut pending = VecDeque::new();
    for (i, c) in cursors.iter().enumerate() {
        pending.push_back((
            send(&mut tx, topic, versions.fetch, c, opts.max_bytes).await?,
            i,
        ));
    }
    while let Some((correlation_id, i)) = pending.pop_front() {
        let response = rx
            .recv::<FetchRequest>(correlation_id, versions.fetch)
            .await?;
        report.requests += 1;
        report.errors.add(response.error_code);
        let cursor = &mut cursors[i];
        let data = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == cursor.partition)
            .with_context(|| format!("Fetch response lacks partition {}", cursor.partition))?;
        report.errors.add(data.error_code);
        let log_start = data.log_start_offset.max(0);
        match ResponseError::try_from_code(data.error_code) {
            None => {
                let scan = scan_batches(data.records.as_deref().unwrap_or_default())?;
                report.records += scan.records;
                report.batch_bytes += scan.bytes;
                if let Some(next) = scan.next_offset {
                    cursor.offset = next;
                }
                if data.high_watermark <= log_start {
                    cursor.active = false; // empty partition: nothing to read
                } else if cursor.offset >= data.high_watermark {
                    cursor.offset = log_start; // reached the end: start over
                }
            }
            Some(ResponseError::OffsetOutOfRange) if data.log_start_offset > cursor.offset => {
                cursor.offset = data.log_start_offset;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
        if cursor.active && Instant::now() < deadline {
            let c = &cursors[i];
            pending.push_back((
                send(&mut tx, topic, versions.fetch, c, opts.max_bytes).await?,
                i,
            ));
        }
    }
    report.elapsed = start.elapsed();
    if report.records == 0 {
        report.print();
        bail!("fetched no records (errors: {})", report.errors.describe());
    }
    Ok(report)
}

/// Sends a Fetch for one partition at its cursor; returns the correlation id.
async fn send(
    tx: &mut Sender,
    topic: &str,
    version: i16,
    c: &Cursor,
    max_bytes: i32,
) -> Result<i32> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1) // no fetch session: every request is a full fetch
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(c.partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(c.offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(max_bytes)])]);
    tx.send(&req, version).await
}

/// What the complete batches in a Fetch response's `records` hold.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan {
    pub records: u64,
    pub bytes: u64,
    /// Offset after the last complete batch; `None` if there was none.
    pub next_offset: Option<i64>,
}

/// Walks the v2 batches in `buf` using only their headers. A truncated batch at the
/// end is normal (the broker cuts at `max_bytes`) and is ignored; a malformed header
/// or an older message format is an error.
pub fn scan_batches(buf: &[u8]) -> Result<Scan> {
    let mut scan = Scan {
        records: 0,
        bytes: 0,
        next_offset: None,
    };
    let mut pos = 0;
    while buf.len() - pos >= BATCH_HEADER_BYTES {
        let b = &buf[pos..];
        let base_offset = i64::from_be_bytes(field(b, 0)?);
        let batch_length = i32::from_be_bytes(field(b, 8)?);
        let Some(size) = usize::try_from(batch_length)
            .ok()
            .map(|l| l + 12)
            .filter(|s| *s >= BATCH_HEADER_BYTES)
        else {
            bail!("record batch at byte {pos} has invalid length {batch_length}");
        };
        if size > b.len() {
            break;
        }
        ensure!(
            b[16] == 2,
            "record batch at byte {pos} has magic {}, expected 2",
            b[16]
        );
        let last_offset_delta = i32::from_be_bytes(field(b, 23)?);
        let records_count = i32::from_be_bytes(field(b, 57)?);
        scan.records += u64::try_from(records_count).unwrap_or(0);
        scan.bytes += size as u64;
        scan.next_offset = Some(base_offset + i64::from(last_offset_delta) + 1);
        pos += size;
    }
    Ok(scan)
}

/// `N` bytes of `b` starting at `at`.
fn field<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N]> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .context("record batch header cut short")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_complete_batches_and_skips_a_truncated_tail() -> Result<()> {
        let one = crate::produce::encode_batch(100, 5)?;
        let mut two = one.to_vec();
        // Second batch: same bytes with base offset 5.
        let mut second = one.to_vec();
        second[..8].copy_from_slice(&5i64.to_be_bytes());
        two.extend_from_slice(&second);
        let full = scan_batches(&two)?;
        assert_eq!(
            full,
            Scan {
                records: 10,
                bytes: 2 * one.len() as u64,
                next_offset: Some(10)
            }
        );
        let cut = scan_batches(&two[..two.len() - 1])?;
        assert_eq!(
            cut,
            Scan {
                records: 5,
                bytes: one.len() as u64,
                next_offset: Some(5)
            }
        );
        assert_eq!(
            scan_batches(&[])?,
            Scan {
                records: 0,
                bytes: 0,
                next_offset: None
            }
        );
        Ok(())
    }

    #[test]
    fn scan_rejects_old_magic_and_bad_length() -> Result<()> {
        let mut b = crate::produce::encode_batch(10, 1)?.to_vec();
        b[16] = 1;
        assert!(scan_batches(&b).is_err());
        b[16] = 2;
        b[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(scan_batches(&b).is_err());
        Ok(())
    }
}
