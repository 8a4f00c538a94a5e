//! Reading and writing `__consumer_offsets` partitions: group records go through
//! `Partition::append` with `sync = true` (acks=all), and a shard rebuilds its groups
//! by replaying the partitions it owns. Runs on the partition's owner shard only.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use fjord_storage::batch::split_batches;
use fjord_storage::{BatchHeader, RecordCodec};
use uuid::Uuid;

use crate::partition::registry::{PartitionRegistry, Unavailable};
use crate::partition::{now_ms, Partition};

/// How long a group write waits for the ISR (Kafka's `offsets.commit.timeout.ms`
/// default).
const REPLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads at most this many bytes of the log per step while loading.
const LOAD_READ_BYTES_MAX: usize = 1 << 20;

/// One record: key and value (None = tombstone).
pub type KeyValue = (Bytes, Option<Bytes>);

async fn partition(
    partitions: &Rc<PartitionRegistry>,
    topic_id: &Uuid,
    index: i32,
) -> Result<Rc<Partition>, Unavailable> {
    partitions.ready(topic_id, index).await
}

/// Appends `records` as one batch (atomically) and waits until it is durable.
/// Returns the offset of the first record.
pub async fn append(
    partitions: &Rc<PartitionRegistry>,
    topic_id: &Uuid,
    index: i32,
    records: Vec<KeyValue>,
) -> Result<i64, String> {
    let p = partition(partitions, topic_id, index)
        .await
        .map_err(|e| format!("__consumer_offsets-{index}: {e:?}"))?;
    let buf = BytesMut::from(&partitions.codec().encode(&records, now_ms())?[..]);
    let header = BatchHeader::parse(&buf).map_err(|e| format!("{e:?}"))?;
    let last = i64::from(header.last_offset_delta);
    let appended = p
        .clone()
        .append(buf, header, None, true)
        .await
        .map_err(|e| format!("{e:?}"))?;
    if p.is_replicated() {
        // As acks=all: committed once the ISR holds it.
        p.wait_replicated(appended.base_offset + last, REPLICATION_WAIT)
            .await
            .map_err(|e| format!("{e:?}"))?;
    }
    Ok(appended.base_offset)
}

/// Calls `replay(offset, key, value)` for every record of the partition, in order.
pub async fn load(
    partitions: &Rc<PartitionRegistry>,
    topic_id: &Uuid,
    index: i32,
    replay: &mut dyn FnMut(i64, Bytes, Option<Bytes>),
) -> Result<(), Unavailable> {
    let p = partition(partitions, topic_id, index).await?;
    read_all(&p, partitions.codec(), replay)
        .await
        .map_err(Unavailable::Offline)
}

/// Replays every record of `p` up to its high watermark.
async fn read_all(
    p: &Partition,
    codec: &dyn RecordCodec,
    replay: &mut dyn FnMut(i64, Bytes, Option<Bytes>),
) -> Result<(), String> {
    let mut offset = p.log_start_offset();
    let end = p.high_watermark();
    while offset < end {
        let fetched = p
            .read(offset, LOAD_READ_BYTES_MAX, true)
            .await
            .map_err(|e| e.to_string())?;
        if fetched.records.is_empty() {
            break;
        }
        let ranges = split_batches(&fetched.records).map_err(|e| format!("{e:?}"))?;
        let before = offset;
        for range in ranges {
            let batch = &fetched.records[range];
            let header = BatchHeader::parse(batch).map_err(|e| format!("{e:?}"))?;
            let next = header.next_offset();
            if !header.is_control() && next > offset {
                for r in codec.records(batch)? {
                    if r.offset < offset {
                        continue;
                    }
                    if let Some(key) = r.key {
                        replay(r.offset, key, r.value);
                    }
                }
            }
            offset = offset.max(next);
        }
        if offset == before {
            return Err(format!("no progress loading at offset {offset}"));
        }
    }
    Ok(())
}
