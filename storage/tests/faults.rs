//! `Log` under injected disk faults, over both I/O engines.

mod common;

use std::cell::Cell;
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{batch, engines, run, small_config, TempDir};
use fjord_storage::batch::BatchHeader;
use fjord_storage::{Log, LogConfig, StorageError};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    }
}

/// Appends batches `from..to` with `sync`, awaiting each.
async fn append_ok(log: &mut Log, from: usize, to: usize, sync: bool) {
    for i in from..to {
        let (_, fut) = log.append_bytes(batch(i), 0, None, sync).expect("append");
        fut.await.expect("write");
    }
}

fn io_kind(r: Result<impl Sized, StorageError>) -> ErrorKind {
    match r {
        Err(StorageError::Io(e)) => e.kind(),
        Err(other) => panic!("expected an i/o error, got {other}"),
        Ok(_) => panic!("expected an i/o error, got success"),
    }
}

#[test]
fn a_failed_fsync_is_never_acknowledged() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("fsyncgate");
            let io = engine();
            let (mut log, _) = Log::open(dir.0.clone(), config(), io.clone()).expect("open");
            append_ok(&mut log, 0, 5, true).await;
            io.faults().fail_sync(1, libc::EIO);
            let (_, fut) = log.append_bytes(batch(5), 0, None, true).expect("append");
            assert!(fut.await.is_err(), "{name}: the append is not acknowledged");
            // The disk heals; the unsynced data is still never treated as safe.
            io.faults().clear();
            assert_ne!(
                io_kind(log.append_bytes(batch(6), 0, None, true)),
                ErrorKind::Other
            );
            assert!(
                log.flush().await.is_err(),
                "{name}: flush does not retry the sync"
            );
        });
    }
}

#[test]
fn a_failed_write_fails_its_append_and_every_later_one() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("failwrite");
            let io = engine();
            let (mut log, _) = Log::open(dir.0.clone(), config(), io.clone()).expect("open");
            io.faults().fail_write(3, libc::EIO);
            let futs: Vec<_> = (0..5)
                .map(|i| {
                    log.append_bytes(batch(i), 0, None, false)
                        .expect("append")
                        .1
                })
                .collect();
            let mut results = Vec::new();
            for f in futs {
                results.push(f.await.is_ok());
            }
            assert_eq!(results, [true, true, false, false, false], "{name}");
            let written = log.written_end_offset();
            assert!(written < log.log_end_offset());
            assert!(log.append_bytes(batch(5), 0, None, false).is_err());
            assert_eq!(log.written_end_offset(), written, "nothing advances");
        });
    }
}

#[test]
fn a_torn_write_is_truncated_on_the_next_recovery() {
    for (name, engine) in engines() {
        for tear_at in [30usize, 70] {
            run(|| async move {
                let dir = TempDir::new("torn");
                let io = engine();
                let (mut log, _) = Log::open(dir.0.clone(), config(), io.clone()).expect("open");
                append_ok(&mut log, 0, 10, true).await;
                let (leo, size) = (log.log_end_offset(), log.size_bytes());
                io.faults().tear_write(1, tear_at);
                let (_, fut) = log.append_bytes(batch(10), 0, None, true).expect("append");
                assert!(fut.await.is_err(), "{name}");
                drop(log);
                let segment = dir.0.join(format!("{:020}.log", 0));
                let on_disk = std::fs::metadata(&segment).expect("meta").len();
                assert_eq!(on_disk, size + tear_at as u64, "{name}: the prefix landed");

                let (mut log, truncated) =
                    Log::open(dir.0.clone(), config(), engine()).expect("reopen");
                assert_eq!(truncated, tear_at as u64, "{name}");
                assert_eq!(log.log_end_offset(), leo, "back to before the torn batch");
                assert_eq!(std::fs::metadata(&segment).expect("meta").len(), size);
                append_ok(&mut log, 10, 11, true).await;
                let r = log.read(leo, i64::MAX, 1 << 20, true).await.expect("read");
                assert_eq!(BatchHeader::parse(&r.records).expect("h").base_offset, leo);
            });
        }
    }
}

#[test]
fn a_full_disk_is_storage_full_and_the_log_reopens_once_space_returns() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("enospc");
            let io = engine();
            let (mut log, _) = Log::open(dir.0.clone(), config(), io.clone()).expect("open");
            append_ok(&mut log, 0, 8, true).await;
            let leo = log.log_end_offset();
            io.faults().fail_writes_from(1, libc::ENOSPC);
            let (_, fut) = log.append_bytes(batch(8), 0, None, true).expect("append");
            let e = fut.await.expect_err("no space");
            assert_eq!(e.kind(), ErrorKind::StorageFull, "{name}");
            assert_eq!(
                io_kind(log.append_bytes(batch(9), 0, None, true)),
                ErrorKind::StorageFull
            );
            // The partition goes offline; space returns; it is reopened from disk.
            drop(log);
            io.faults().clear();
            let (mut log, truncated) =
                Log::open(dir.0.clone(), config(), io.clone()).expect("reopen");
            assert_eq!((truncated, log.log_end_offset()), (0, leo), "{name}");
            append_ok(&mut log, 8, 12, true).await;
            let r = log.read(leo, i64::MAX, 1 << 20, true).await.expect("read");
            assert_eq!(BatchHeader::parse(&r.records).expect("h").base_offset, leo);
            log.flush().await.expect("flush");
        });
    }
}

#[test]
fn a_delayed_read_does_not_delay_an_append() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("slowread");
            let io = engine();
            let (mut log, _) = Log::open(dir.0.clone(), config(), io.clone()).expect("open");
            append_ok(&mut log, 0, 20, false).await;
            // Evicts the written entries from the tail cache: reads go to disk.
            append_ok(&mut log, 20, 21, false).await;
            let delay = Duration::from_secs(5);
            io.faults().delay_reads(Some(delay));
            let read_done = Rc::new(Cell::new(false));
            let reads = io.faults().reads();
            let pending = log.read(0, i64::MAX, 1 << 20, true);
            let reader = tokio::task::spawn_local({
                let done = read_done.clone();
                async move {
                    let _ = pending.await;
                    done.set(true);
                }
            });
            while io.faults().reads() == reads {
                tokio::task::yield_now().await;
            }
            let started = Instant::now();
            let (_, fut) = log.append_bytes(batch(21), 0, None, true).expect("append");
            fut.await.expect("durable");
            assert!(
                started.elapsed() < delay / 2,
                "{name}: append waited for the read"
            );
            assert!(!read_done.get(), "{name}: the read is still delayed");
            reader.abort();
        });
    }
}

#[test]
fn a_failed_sync_of_a_rolled_segment_fails_the_log() {
    for (name, engine) in engines() {
        run(|| async move {
            let dir = TempDir::new("rollsync");
            let io = engine();
            let (mut log, _) = Log::open(dir.0.clone(), small_config(), io.clone()).expect("open");
            io.faults().fail_sync(1, libc::EIO);
            // No sync appends: the only syncs are the roll's background ones.
            let mut i = 0;
            while log.segment_count() < 2 {
                let (_, fut) = log.append_bytes(batch(i), 0, None, false).expect("append");
                // Writes before the roll land; the roll's failure may beat later ones.
                let _ = fut.await;
                i += 1;
            }
            assert!(log.flush().await.is_err(), "{name}");
            assert!(
                log.append_bytes(batch(i), 0, None, false).is_err(),
                "{name}: the log is offline"
            );
        });
    }
}

/// Everything the log holds, from its start.
async fn contents(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log
            .read(offset, i64::MAX, 1 << 20, true)
            .await
            .expect("read");
        for range in fjord_storage::batch::split_batches(&r.records).expect("whole batches") {
            offset = BatchHeader::parse(&r.records[range])
                .expect("h")
                .next_offset();
        }
        out.extend_from_slice(&r.records);
    }
    out
}

#[test]
fn a_failed_sync_at_any_step_of_a_truncation_fails_the_log_and_leaves_a_prefix() {
    // Truncating across segments (unlinks, a cut, checkpoints) and fully (unlinks, the
    // staged segment's install, checkpoints).
    for full in [false, true] {
        for (name, engine) in engines() {
            let truncate = move |log: &mut Log| {
                if full {
                    log.truncate_fully_and_start_at(10_000)
                } else {
                    log.truncate_to(40)
                }
            };
            let steps = Rc::new(Cell::new(0u64));
            let kept = Rc::new(std::cell::RefCell::new(Vec::new()));
            let (counted, kept_out) = (steps.clone(), kept.clone());
            run(|| async move {
                let dir = TempDir::new("truncate-count");
                let io = engine();
                let (mut log, _) =
                    Log::open(dir.0.clone(), small_config(), io.clone()).expect("open");
                append_ok(&mut log, 0, 90, false).await;
                log.settled().await;
                let before = io.faults().syncs();
                truncate(&mut log)
                    .expect("truncate")
                    .await
                    .expect("durable");
                counted.set(io.faults().syncs() - before);
                *kept_out.borrow_mut() = contents(&log).await;
            });
            let steps = steps.get();
            assert!(steps >= 4, "{name}: the truncation's syncs: {steps}");
            for nth in 1..=steps {
                let kept = kept.borrow().clone();
                run(|| async move {
                    let dir = TempDir::new("truncate-fault");
                    let io = engine();
                    let (mut log, _) =
                        Log::open(dir.0.clone(), small_config(), io.clone()).expect("open");
                    append_ok(&mut log, 0, 90, false).await;
                    log.settled().await;
                    let old = contents(&log).await;
                    io.faults().fail_sync(nth, libc::EIO);
                    let fut = truncate(&mut log).expect("truncate");
                    assert!(fut.await.is_err(), "{name} full={full}: sync {nth} fails");
                    assert_ne!(
                        io_kind(log.append_bytes(batch(90), 0, None, false)),
                        ErrorKind::Other,
                        "{name}: the log is offline"
                    );
                    assert!(log.truncate_to(1).is_err());
                    log.settled().await;
                    drop(log);
                    io.faults().clear();

                    // What a crash at that point leaves: a prefix of the old log, with
                    // at least what the truncation keeps (nothing, for a full one).
                    let (log, _) =
                        Log::open(dir.0.clone(), small_config(), engine()).expect("reopen");
                    let recovered = contents(&log).await;
                    assert!(
                        old.starts_with(&recovered) && recovered.starts_with(&kept),
                        "{name} full={full} sync {nth}: {} bytes recovered of {} ({} kept)",
                        recovered.len(),
                        old.len(),
                        kept.len()
                    );
                    for entry in std::fs::read_dir(&dir.0).expect("dir") {
                        let file = entry.expect("entry").file_name();
                        let file = file.to_string_lossy();
                        assert!(!file.ends_with(".new"), "{name}: staged {file} removed");
                    }
                });
            }
        }
    }
}
