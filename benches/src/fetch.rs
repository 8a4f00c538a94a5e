//! The fetch workload: read every partition from its start to its high watermark,
//! then start over, until the duration is up. Variants: `once` reads each partition
//! start to end a single time; `tail_records` reads (and re-reads) only the last
//! records of each partition, the data a caught-up consumer asks for.
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
    /// Stop reading a partition at its high watermark instead of starting over.
    pub once: bool,
    /// Read only the last this-many records of each partition (start over from there).
    pub tail_records: Option<i64>,
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
    /// Where reading starts over; `None` until the first answer tells (tail mode).
    start: Option<i64>,
}

/// Runs the fetch workload against every partition in `layout`.
pub async fn run(
    layout: &TopicLayout,
    topic: &str,
    versions: &Versions,
    opts: &FetchOptions,
) -> Result<FetchReport> {
    ensure!(opts.max_bytes > 0, "--max-bytes must be > 0");
    let (leader, partitions) = layout.single_leader()?;
    eprintln!(
        "fetch: Fetch v{}, {} partitions, max {} B per fetch, {:?}",
        versions.fetch,
        partitions.len(),
        opts.max_bytes,
        opts.duration
    );
    let (mut tx, mut rx) = connect(leader).await?;
    let mut cursors: Vec<Cursor> = partitions
        .iter()
        .map(|p| Cursor {
            partition: *p,
            offset: 0,
            active: true,
            start: if opts.tail_records.is_some() {
                None
            } else {
                Some(0)
            },
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
            None if cursor.start.is_none() => {
                // Tail mode: the first answer only tells where the tail begins.
                let tail = opts.tail_records.unwrap_or(0);
                let start = (data.high_watermark - tail).max(log_start);
                cursor.start = Some(start);
                cursor.offset = start;
                if data.high_watermark <= log_start {
                    cursor.active = false;
                }
            }
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
                    if opts.once {
                        cursor.active = false; // read it all once: done
                    } else {
                        // Reached the end: start over.
                        cursor.offset = cursor.start.unwrap_or(0).max(log_start);
                    }
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
    send_at(tx, topic, version, c.partition, c.offset, max_bytes).await
}

/// Sends a Fetch (waiting up to 500 ms for data) for one partition at `offset`;
/// returns the correlation id.
pub async fn send_at(
    tx: &mut Sender,
    topic: &str,
    version: i16,
    partition: i32,
    offset: i64,
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
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
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
    for_each_batch(buf, |b| {
        scan.records += b.records;
        scan.bytes += b.bytes;
        scan.next_offset = Some(b.next_offset);
    })?;
    Ok(scan)
}

/// Header facts of one complete batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchSeen {
    pub base_offset: i64,
    pub next_offset: i64,
    pub records: u64,
    pub bytes: u64,
}

/// Calls `f` for each complete v2 batch in `buf`, reading only batch headers, with
/// the same rules as [`scan_batches`].
pub fn for_each_batch(buf: &[u8], mut f: impl FnMut(BatchSeen)) -> Result<()> {
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
        f(BatchSeen {
            base_offset,
            next_offset: base_offset + i64::from(last_offset_delta) + 1,
            records: u64::try_from(records_count).unwrap_or(0),
            bytes: size as u64,
        });
        pos += size;
    }
    Ok(())
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
