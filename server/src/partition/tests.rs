//! A partition over a fault-injecting I/O engine: failed writes and syncs are never
//! acknowledged, a torn write is gone after reopening, and a partition whose disk was
//! full takes appends again once it is reopened with space back.

use std::collections::BTreeMap;
use std::rc::Rc;

use fjord_storage::testing::build_batch;
use fjord_storage::{Faults, IoEngine, LogConfig};
use uuid::Uuid;

use super::{AppendError, BatchHeader, Partition};
use crate::metadata::{PartitionImage, TopicImage};

fn topic() -> TopicImage {
    TopicImage {
        name: "t".into(),
        id: Uuid::from_u128(0x5eed),
        partitions: vec![PartitionImage {
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }],
        configs: BTreeMap::new(),
    }
}

async fn open(dir: &std::path::Path, io: &Rc<IoEngine>) -> Rc<Partition> {
    Partition::open(
        dir.to_path_buf(),
        &topic(),
        0,
        LogConfig::default(),
        io.clone(),
        super::ReplicaSettings {
            me: 1,
            min_insync: 1,
            durable_hw: true,
        },
    )
    .await
    .expect("open")
}

async fn append(p: &Rc<Partition>, values: &[&[u8]], sync: bool) -> Result<i64, AppendError> {
    let records = build_batch(1_700_000_000_000, values);
    let header = BatchHeader::parse(&records).expect("header");
    p.clone()
        .append(records, header, None, sync)
        .await
        .map(|a| a.base_offset)
}

/// Runs `f` on a current-thread runtime inside a LocalSet, with a fresh directory and
/// an io_uring engine (or the blocking fallback) whose faults the test sets.
fn run<F, Fut>(name: &str, f: F)
where
    F: FnOnce(std::path::PathBuf, Rc<IoEngine>, Faults) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("fjord-partition-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let io = IoEngine::new(64).expect("engine");
        let faults = io.faults();
        f(dir.join("t-0"), io, faults).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_refuses_writes_and_a_reopened_partition_takes_them_again() {
    run("full", |dir, io, faults| async move {
        let p = open(&dir, &io).await;
        assert_eq!(append(&p, &[b"a", b"b"], true).await.ok(), Some(0));
        faults.fail_writes_from(1, libc::ENOSPC);
        assert!(matches!(
            append(&p, &[b"c"], true).await,
            Err(AppendError::Storage(_))
        ));
        assert_eq!(p.failed_for_full_disk(), Some(true));
        assert!(append(&p, &[b"d"], false).await.is_err(), "stays refused");
        assert_eq!(p.high_watermark(), 2, "nothing past the failure is visible");
        // Space returns: once settled, the partition is opened again from its files.
        faults.clear();
        p.settled().await;
        drop(p);
        let p = open(&dir, &io).await;
        assert_eq!((p.log_end_offset(), p.high_watermark()), (2, 2));
        assert_eq!(append(&p, &[b"e"], true).await.ok(), Some(2));
        for (offset, base) in [(0, 0), (2, 2)] {
            let read = p.read(offset, 1 << 20, true).await.expect("read");
            let h = BatchHeader::parse(&read.records).expect("a batch");
            assert_eq!(h.base_offset, base);
        }
    });
}

#[test]
fn a_failed_fsync_is_never_acknowledged_and_keeps_the_partition_offline() {
    run("fsync", |dir, io, faults| async move {
        let p = open(&dir, &io).await;
        assert_eq!(append(&p, &[b"a"], true).await.ok(), Some(0));
        faults.fail_sync(1, libc::EIO);
        assert!(append(&p, &[b"b"], true).await.is_err());
        assert_eq!(p.failed_for_full_disk(), Some(false));
        faults.clear();
        assert!(
            append(&p, &[b"c"], true).await.is_err(),
            "a failed fsync is not retried as if the data were safe"
        );
    });
}

#[test]
fn a_torn_write_is_gone_after_reopening() {
    run("torn", |dir, io, faults| async move {
        let p = open(&dir, &io).await;
        assert_eq!(append(&p, &[b"a"], false).await.ok(), Some(0));
        faults.tear_write(1, 30);
        assert!(append(&p, &[b"torn"], false).await.is_err());
        faults.clear();
        p.settled().await;
        drop(p);
        let p = open(&dir, &io).await;
        assert_eq!(
            p.log_end_offset(),
            1,
            "the torn batch is truncated by recovery"
        );
        assert_eq!(append(&p, &[b"b"], false).await.ok(), Some(1));
    });
}
