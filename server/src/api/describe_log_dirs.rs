//! DescribeLogDirs (key 35), versions 1–4: Fjord's one log directory (`log.dirs`), the
//! size of each partition in it (read on its owning shard) and, from v4, the file
//! system's total and usable bytes.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::shard::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    _version: i16,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let image = shard.cluster.image();
    // Requested partitions that exist, as (topic, index); null means every partition.
    let mut wanted: Vec<(String, Uuid, i32)> = Vec::new();
    match &req.topics {
        None => {
            for t in image.topics.values() {
                wanted.extend((0..t.partitions.len() as i32).map(|i| (t.name.clone(), t.id, i)));
            }
        }
        Some(topics) => {
            for rt in topics {
                if let Some(t) = image.topic(rt.topic.0.as_str()) {
                    for &i in &rt.partitions {
                        if i >= 0 && (i as usize) < t.partitions.len() {
                            wanted.push((t.name.clone(), t.id, i));
                        }
                    }
                }
            }
        }
    }
    let work = wanted
        .into_iter()
        .map(|(name, id, i)| (shard.owner(&id, i), (name, id, i)))
        .collect();
    let sizes = shard
        .scatter(
            work,
            |s: Rc<Shard>, (name, id, i): (String, Uuid, i32)| async move {
                // Every replica this broker keeps, leader or follower; the lag is
                // Kafka's: how far the log end is behind the high watermark.
                let size = s.partitions.replica(&id, i).map(|p| {
                    let lag = (p.high_watermark() - p.log_end_offset()).max(0);
                    (p.size_bytes() as i64, lag)
                });
                (name, i, size)
            },
            || (String::new(), -1, None),
        )
        .await;
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (name, i, size) in sizes {
        if let Some((size, lag)) = size {
            by_topic.entry(name).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(i)
                    .with_partition_size(size)
                    .with_offset_lag(lag)
                    .with_is_future_key(false),
            );
        }
    }
    let dir = std::path::absolute(&shard.config.log_dirs)
        .unwrap_or_else(|_| shard.config.log_dirs.clone());
    let (total, usable) = disk_space(&dir).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_total_bytes(total)
        .with_usable_bytes(usable)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// Total and usable (available to unprivileged users) bytes of the file system
/// holding `dir`.
fn disk_space(dir: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a valid NUL-terminated string and `st` points to writable
    // memory the size of `statvfs`; it is read only after the call succeeds.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize as i64;
    Some((
        (st.f_blocks as i64).saturating_mul(frsize),
        (st.f_bavail as i64).saturating_mul(frsize),
    ))
}
